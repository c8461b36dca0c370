"""The console's pure core: events to read-model rows, identities to roles, page words."""
