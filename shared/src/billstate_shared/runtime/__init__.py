"""What every service process shares: HTTP health and metrics, dead letters, per-message context."""
