"""Kafka and HTTP entry points of invoicing: the only code that talks to the outside."""
