"""Replay throughput and peak memory for a realistic year of 10,000 customers (`make bench-replay`).

Generates (or reuses, under .cache/bench/) the history of `billstate simulate --customers 10000
--days 365 --seed 7`, then replays it on one core in a fresh process exactly as `billstate replay`
does (decode each line, `Replay(policy).feed`, encode every output and write it to a file),
timing only the replay, and prints the counts, the seconds, the throughput (inbound events
per second, target 25,000; with the invoice.aged events beside it) and the peak RSS; on the
benchmark year, whether its decisions equal cli/tests/golden/decisions.json (exit 1 if not).
`--profile` adds a cProfile run (top 25 by cumulative time). See `--help` for the options.
The implementation is `replay_harness.main_bench` (bench/replay_harness.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from replay_harness import main_bench

if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])  # defaults are relative to the workspace root
    sys.exit(main_bench(sys.argv[1:]))
