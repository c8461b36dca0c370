"""The retry schedule of a delivery: pure, so tests and the service agree on it."""

from __future__ import annotations


def backoff(attempt: int, base_delay: float, cap: float = 30.0) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): base, 2 x base, 4 x base..."""
    return float(min(cap, base_delay * 2 ** (attempt - 1)))
