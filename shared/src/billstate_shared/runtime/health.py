"""Readiness and liveness from consumer progress and lag, not from the HTTP loop answering."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    """What a consumer reports; the probes and /metrics read it.

    A consumer that is assigned, not recovering, and either caught up or still moving is
    ready. One with lag that has not moved for `stall_after` seconds is stalled, which is
    what faust and aiokafka consumers do without crashing; liveness fails then.
    """

    stall_after: float = 120.0
    clock: Callable[[], float] = time.monotonic
    assigned: bool = False
    recovering: bool = False
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    last_progress: float = field(default_factory=time.monotonic)
    processed: int = 0
    started: float = field(default_factory=time.monotonic)

    def on_assigned(self) -> None:
        self.assigned = True
        self.last_progress = self.clock()

    def on_revoked(self) -> None:
        self.assigned = False
        self.lag.clear()  # lag of partitions now another worker's would look like a stall

    def on_processed(self, topic: str, partition: int, lag: int | None = None) -> None:
        self.processed += 1
        self.last_progress = self.clock()
        if lag is not None:
            self.lag[(topic, partition)] = lag

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag[(topic, partition)] = lag

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def stalled(self) -> bool:
        # Restoring tables is progress of its own: a long recovery must not look like a stall.
        if self.recovering:
            return False
        return self.total_lag > 0 and self.clock() - self.last_progress > self.stall_after

    def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "not assigned to the consumer group yet"
        if self.recovering:
            return False, "recovering state"
        if self.stalled():
            return False, f"lag {self.total_lag} and no progress for {self.stall_after:.0f}s"
        return True, f"ok (lag {self.total_lag}, processed {self.processed})"

    def live(self) -> tuple[bool, str]:
        if self.stalled():
            return False, f"stalled: lag {self.total_lag}, no progress for {self.stall_after:.0f}s"
        return True, "ok"
