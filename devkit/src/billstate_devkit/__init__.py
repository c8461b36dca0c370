"""Development only: the pytest plugin, the local Kafka launcher, and local test servers."""
