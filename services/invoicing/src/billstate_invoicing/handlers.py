"""Message handlers of invoicing: decode, call the pure core, collect outputs."""
