"""Cost of one worker log line at INFO, as a worker logs it (`make bench-log`; target 20 µs)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from billstate_shared.logging import configure_logging

TARGET_US = 20.0


def _bind(i: int) -> None:
    # As runtime.faustkit.Intake.bind does for each decoded record.
    structlog.contextvars.bind_contextvars(
        topic="billing.payments.v1",
        partition=i % 8,
        offset=1000 + i,
        customer_id=f"cust-{i % 997:05d}",
        event_id=f"PAY-2026-{i:06d}-received",
    )


def _batches(step: Callable[[int], None], n: int, size: int) -> tuple[list[float], float]:
    """µs per call of `step`: wall, one figure per batch of `size` calls; CPU, overall."""
    out: list[float] = []
    clock, cpu = time.perf_counter_ns, time.process_time_ns
    c0 = cpu()
    for start in range(0, n, size):
        t0 = clock()
        for i in range(start, start + size):
            step(i)
        out.append((clock() - t0) / size / 1000)
    return out, (cpu() - c0) / n / 1000


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[-1] if len(xs) > 1 else xs[0]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_log", description=__doc__)
    ap.add_argument("--lines", type=int, default=50_000, help="lines per case (default 50,000)")
    ap.add_argument("--batch", type=int, default=500, help="lines per timed batch (default 500)")
    args = ap.parse_args(argv)
    n, size = max(args.batch, args.lines - args.lines % args.batch), args.batch

    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        path = Path(tmp) / "collections.log"
        # A text stream like the worker's stderr: UTF-8, line-buffered, over a real file.
        with path.open("w", encoding="utf-8", errors="backslashreplace", buffering=1) as stream:
            configure_logging("collections", "INFO", "json", stream=stream)
            log = structlog.get_logger("billstate.collections")
            lib = logging.getLogger("aiokafka.consumer")

            def line(_i: int) -> None:
                log.info("processed", event_type="payment.received", outputs=3)

            def scrubbed(_i: int) -> None:
                log.info(
                    "processed",
                    event_type="notice.sent",
                    outputs=3,
                    error="SMTP 550 for billing@fabrikam.example",
                    request={"headers": {"Authorization": "Bearer eyJhbGciOi.x.y"}},
                )

            def debug(_i: int) -> None:
                log.debug("processed", event_type="payment.received", outputs=3)

            def bound(i: int) -> None:
                _bind(i)
                log.info("processed", event_type="payment.received", outputs=3)

            def foreign(_i: int) -> None:
                lib.info("Heartbeat ok for group %s", "collections")

            _bind(0)
            for step in (line, scrubbed, debug, bound, foreign):
                _batches(step, size * 4, size)  # warm up: first-use caches, the file's pages
            cases = [
                ("info line (context bound once)", line),
                ("info line needing redaction", scrubbed),
                ("debug line, filtered out", debug),
                ("bind + info line (per record)", bound),
                ("stdlib (aiokafka) info line", foreign),
            ]
            rows = [(name, _batches(step, n, size)) for name, step in cases]
            stream.flush()
        lines = path.read_text(encoding="utf-8").splitlines()
        sample = json.loads(lines[-1 - n])  # the last "bind + info" line
        size_b = len(lines[0].encode()) + 1

    print(f"bench-log: {n:,} lines per case, batches of {size}; {len(lines):,} lines written")
    print(f"  python {sys.version.split()[0]}, structlog {structlog.__version__}")
    print(f"  load average {os.getloadavg()[0]:.2f} (other work on the host moves the figures)")
    print(f"  {'µs per line':<34} {'mean':>7} {'p99':>7} {'CPU':>7}  (p99 of batch means)")
    for name, (xs, cpu) in rows:
        print(f"  {name:<34} {statistics.fmean(xs):7.2f} {_p99(xs):7.2f} {cpu:7.2f}")
    mean = statistics.fmean(rows[0][1][0])
    verdict = "met" if mean <= TARGET_US else "MISSED"
    print(f"  line size {size_b} bytes; keys: {', '.join(sample)}")
    print(
        f"target: an INFO line <= {TARGET_US:.0f} µs (mean): {mean:.2f} µs wall,"
        f" {rows[0][1][1]:.2f} µs CPU, {verdict}"
    )
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print("  (the host is busier than its cores: wall figures include waiting; compare CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
