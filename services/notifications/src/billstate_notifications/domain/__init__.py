"""Pure core of notifications: frozen values and functions, no I/O, no clock, no logging."""
