"""Pure shared core: money, ledger and policy values; no I/O, no clock, no logging."""
