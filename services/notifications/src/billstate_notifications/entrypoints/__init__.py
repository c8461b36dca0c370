"""Kafka and HTTP entry points of notifications: the only code that talks to the outside."""
