"""Kafka and HTTP entry points of access-control: the only code that talks to the outside."""
