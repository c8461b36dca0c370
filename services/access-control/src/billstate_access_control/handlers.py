"""Message handlers of access-control: decode, call the pure core, collect outputs."""
