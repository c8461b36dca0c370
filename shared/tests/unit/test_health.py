"""Probes judge progress: a stall is lag that does not move, not a recovery or a lost partition."""

from __future__ import annotations

from billstate_shared.runtime.health import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_when_assigned_and_not_recovering() -> None:
    progress = Progress(clock=Clock())
    assert progress.ready()[0] is False
    progress.on_assigned()
    progress.recovering = True
    assert progress.ready() == (False, "recovering state")
    progress.recovering = False
    assert progress.ready()[0] is True


def test_lag_without_progress_is_a_stall_and_fails_both_probes() -> None:
    clock = Clock()
    progress = Progress(stall_after=120, clock=clock)
    progress.on_assigned()
    progress.set_lag("billing.invoices.v1", 0, 5)
    clock.now = 121
    assert progress.live()[0] is False
    assert progress.ready()[0] is False
    progress.on_processed("billing.invoices.v1", 0, lag=4)
    assert progress.live()[0] is True


def test_a_caught_up_idle_consumer_is_not_stalled() -> None:
    clock = Clock()
    progress = Progress(stall_after=120, clock=clock)
    progress.on_assigned()
    progress.set_lag("billing.invoices.v1", 0, 0)
    clock.now = 10_000
    assert progress.live()[0] is True


def test_recovery_and_revoked_partitions_are_not_stalls() -> None:
    clock = Clock()
    progress = Progress(stall_after=120, clock=clock)
    progress.on_assigned()
    progress.set_lag("billing.invoices.v1", 0, 50)
    progress.recovering = True
    clock.now = 500
    assert progress.live()[0] is True
    progress.recovering = False
    progress.on_revoked()
    assert progress.live()[0] is True


def test_a_faust_worker_starts_up_once_its_tables_are_restored() -> None:
    """/startupz: not before the assignment, not while the tables restore, then for good."""
    progress = Progress(clock=Clock(), tables=True)
    assert progress.startup() == (False, "not assigned to the consumer group yet")
    progress.on_assigned()
    progress.recovering = True
    assert progress.startup() == (False, "recovering state")
    progress.on_recovered()
    assert progress.startup() == (True, "ok")
    progress.on_revoked()  # a later rebalance: readiness follows it, start-up is done
    progress.recovering = True
    assert progress.startup() == (True, "ok")
    assert progress.ready()[0] is False


def test_a_service_without_tables_starts_up_when_assigned() -> None:
    progress = Progress(clock=Clock())
    assert progress.startup()[0] is False
    progress.on_assigned()
    assert progress.startup() == (True, "ok")
