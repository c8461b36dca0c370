"""Message handlers of collections: decode, call the pure core, collect outputs."""
