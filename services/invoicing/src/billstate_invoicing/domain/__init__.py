"""Pure core of invoicing: frozen values and functions, no I/O, no clock, no logging."""
