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

    A faust worker whose send the broker refused is `blocked`: it takes no new record until
    the send is acknowledged, and says why. It is not ready; it stays live while it keeps
    retrying (each retry is progress of its own: a restart would not help), and is stalled
    only when no retry came for `stall_after` seconds.
    """

    stall_after: float = 120.0
    clock: Callable[[], float] = time.monotonic
    assigned: bool = False
    recovering: bool = False
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    last_progress: float = field(default_factory=time.monotonic)
    processed: int = 0
    started: float = field(default_factory=time.monotonic)
    # A faust worker restores its tables after an assignment (watch_progress sets this);
    # the aiokafka services have none, so their first assignment is their start-up.
    tables: bool = False
    recovered: bool = False  # latched: started up once (/startupz)
    blocked: str | None = None  # why, while a failed send stops the worker
    blocked_since: float = 0.0
    last_retry: float = 0.0

    def block(self, reason: str) -> None:
        """A send failed and is being retried: the worker takes no new record."""
        now = self.clock()
        if self.blocked is None:
            self.blocked_since = now
        self.blocked, self.last_retry = reason, now

    def unblock(self) -> None:
        self.blocked = None
        self.last_progress = self.clock()

    def on_assigned(self) -> None:
        self.assigned = True
        self.last_progress = self.clock()
        if not self.tables:
            self.recovered = True

    def on_recovered(self) -> None:
        """faust finished restoring the tables of an assignment and resumed its streams."""
        self.recovering = False
        self.recovered = True

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
        if self.blocked is not None:
            return self.clock() - self.last_retry > self.stall_after
        return self.total_lag > 0 and self.clock() - self.last_progress > self.stall_after

    def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "not assigned to the consumer group yet"
        if self.recovering:
            return False, "recovering state"
        if self.blocked is not None:
            return False, f"blocked for {self._blocked_for():.0f}s: {self.blocked}"
        if self.stalled():
            return False, f"lag {self.total_lag} and no progress for {self.stall_after:.0f}s"
        return True, f"ok (lag {self.total_lag}, processed {self.processed})"

    def startup(self) -> tuple[bool, str]:
        """Started once: assigned, and for a faust worker its tables restored. It stays true
        afterwards; liveness and readiness take over from there."""
        if self.recovered:
            return True, "ok"
        if not self.assigned:
            return False, "not assigned to the consumer group yet"
        return False, "recovering state"

    def live(self) -> tuple[bool, str]:
        if self.blocked is not None:
            if self.stalled():
                quiet = f"{self.stall_after:.0f}s"
                return False, f"stalled: blocked, no retry for {quiet}: {self.blocked}"
            return True, f"blocked for {self._blocked_for():.0f}s: {self.blocked}"
        if self.stalled():
            return False, f"stalled: lag {self.total_lag}, no progress for {self.stall_after:.0f}s"
        return True, "ok"

    def _blocked_for(self) -> float:
        return self.clock() - self.blocked_since
