"""Message handlers of notifications: decode, call the pure core, collect outputs."""
