"""Subcommands of `billstate`, one module per group."""
