"""Profile a benchmarked service: cProfile from start to exit, into BILLSTATE_BENCH_PROFILE."""

import atexit
import cProfile
import os


def _start(out: str) -> None:
    profile = cProfile.Profile()
    profile.enable()

    def dump() -> None:
        profile.disable()
        profile.dump_stats(out)

    atexit.register(dump)


if os.environ.get("BILLSTATE_BENCH_PROFILE"):
    _start(os.environ["BILLSTATE_BENCH_PROFILE"])
