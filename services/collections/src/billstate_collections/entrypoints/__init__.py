"""Kafka and HTTP entry points of collections: the only code that talks to the outside."""
