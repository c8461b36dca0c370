"""The billstate command."""
