"""Per-customer ledger and policy stage machine; publishes access commands and notice requests."""
