"""The operator's events, built and checked once for the CLI and the console alike."""
