"""billstate's library: contracts, topic catalog, ledger, policy, logging, settings, fixtures."""
