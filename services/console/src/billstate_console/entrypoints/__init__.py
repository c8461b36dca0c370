"""Kafka and HTTP entry points of the console: the only code that imports aiokafka."""
