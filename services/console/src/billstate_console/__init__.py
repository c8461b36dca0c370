"""The billing-operations console: a read model of the topics, pages and a JSON API."""
