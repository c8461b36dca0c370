"""Applies desired access state through provider adapters, with retries and drift reconciliation."""
