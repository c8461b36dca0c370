"""What the worker's probes say while a refused write blocks it (the Progress it feeds)."""

from __future__ import annotations

from billstate_shared.runtime.health import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def blocked_worker() -> tuple[Progress, Clock]:
    clock = Clock()
    progress = Progress(stall_after=120.0, clock=clock)
    progress.on_assigned()
    progress.set_lag("billing.invoices.v1", 3, 5)
    return progress, clock


def test_a_blocked_worker_is_not_ready_and_says_why() -> None:
    progress, clock = blocked_worker()
    reason = "1 record(s) not acknowledged by the broker; first: collections.state.v1: X"
    progress.block(reason)
    clock.now += 12
    assert progress.ready() == (False, f"blocked for 12s: {reason}")
    ok, why = progress.live()
    assert ok
    assert why.startswith("blocked for 12s: 1 record(s)")


def test_retrying_keeps_it_live_past_the_stall_limit_and_silence_does_not() -> None:
    progress, clock = blocked_worker()
    progress.block("first try failed")
    for _ in range(10):  # 10 retries, 100 s apart: 1000 s blocked, never 120 s without one
        clock.now += 100
        progress.block("still refused")
        assert progress.live()[0]
        assert not progress.stalled()
    assert progress.ready()[1].startswith("blocked for 1000s: still refused")
    clock.now += 121
    assert progress.live() == (False, "stalled: blocked, no retry for 120s: still refused")


def test_unblocked_it_is_ready_again_and_not_stalled_by_the_time_it_was_blocked() -> None:
    progress, clock = blocked_worker()
    progress.block("refused")
    clock.now += 300
    progress.block("refused")
    progress.unblock()
    assert progress.ready() == (True, "ok (lag 5, processed 0)")
    assert progress.live() == (True, "ok")
