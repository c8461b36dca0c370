"""Test tooling shipped with the library: the Kafka fixture plugin and local servers."""
