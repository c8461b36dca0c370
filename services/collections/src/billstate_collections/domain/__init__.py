"""Pure core of collections: frozen values and functions, no I/O, no clock, no logging."""
