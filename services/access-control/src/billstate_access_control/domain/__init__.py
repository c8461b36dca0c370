"""Pure core of access-control: frozen values and functions, no I/O, no clock, no logging."""
