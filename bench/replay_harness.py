"""The replay benchmark: generate a history once, replay it in a fresh process, report.

`bench/bench_replay.py` (`make bench-replay`) runs `main_bench`. The measured replay runs in a
child interpreter started as `python bench/replay_harness.py EVENTS ...` (`_replay_child`), so its
peak memory is the replay's alone; `--profile` replays once more under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from hashlib import blake2b
from pathlib import Path
from typing import Any

from billstate_cli import simulation
from billstate_cli.policy_arg import REFUSED_EXIT, policy_or_none
from billstate_cli.replay import Replay, replay_lines
from billstate_cli.simulation import DEFAULT_START
from billstate_shared.policy_file import load_policy

TARGET_INBOUND_PER_SECOND = 25_000  # issue 15: the benchmark year in 21.9 s
GOLDEN = Path(__file__).resolve().parents[1] / "cli" / "tests" / "golden" / "decisions.json"
BENCHMARK_YEAR = (10_000, 365, 7, DEFAULT_START, Path("policies/standard.yaml"))
_CLI = "import sys; from billstate_cli.main import main; sys.exit(main())"
_MIB = 1024 * 1024


def _maxrss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here


def _vm_hwm_mib() -> float | None:
    """Linux's own peak RSS of this process image (not inherited across exec), or None."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _generator_fingerprint() -> str:
    """Changes when the generator's module changes, so a cached history is never stale."""
    return blake2b(Path(simulation.__file__).read_bytes(), digest_size=4).hexdigest()


def main_bench(argv: Sequence[str] | None = None) -> int:
    """`python bench/bench_replay.py`: replay throughput and peak memory on one core."""
    parser = argparse.ArgumentParser(
        prog="bench_replay.py",
        description="Generate (or reuse) a realistic billing history, replay it on one core "
        "exactly as `billstate replay` does (outputs encoded and written to a file), and report "
        "throughput and peak memory. Generation is neither timed nor counted in memory.",
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--policy", type=Path, default=Path("policies/standard.yaml"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/bench"))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed run, replay once more under cProfile; print the top 25 "
        "functions by cumulative time and save the stats next to the history",
    )
    args = parser.parse_args(argv)

    policy = policy_or_none(args.policy)
    if policy is None:
        return REFUSED_EXIT
    timezone = policy.timezone
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    stem = (
        f"history-c{args.customers}-d{args.days}-s{args.seed}-{args.start.isoformat()}"
        f"-{timezone.replace('/', '_')}"
    )
    events = args.cache_dir / f"{stem}-{_generator_fingerprint()}.jsonl"
    if events.exists():
        print(f"history: reusing {events}")
    else:
        for stale in [
            *args.cache_dir.glob(f"{stem}-*.jsonl"),
            *args.cache_dir.glob(f"{stem}-*.partial"),
        ]:
            stale.unlink()  # made by an earlier version of the generator
        partial = events.with_suffix(".partial")
        # `billstate simulate` in its own process, as the replay below: this process stays
        # small, which matters because Linux hands a parent's peak RSS on to every child
        # (ru_maxrss survives fork and exec), and the replay's peak is what is measured.
        command = [sys.executable, "-c", _CLI, "simulate", "--out", str(partial)]
        command += ["--customers", str(args.customers), "--days", str(args.days)]
        command += ["--seed", str(args.seed), "--start", args.start.isoformat()]
        command += ["--timezone", timezone]
        began = time.perf_counter()
        if subprocess.run(command, check=False).returncode != 0:
            print("history: generation failed", file=sys.stderr)
            return 1
        partial.replace(events)
        print(f"history: generated in {time.perf_counter() - began:.1f} s into {events}")
    print(f"         {events.stat().st_size / _MIB:,.1f} MiB")

    output = args.cache_dir / "replay-output.jsonl"
    result = _run_child(events, policy=args.policy, output=output, profile=None)
    if result is None:
        return 1
    _report(result, output)
    if (args.customers, args.days, args.seed, args.start, args.policy) == BENCHMARK_YEAR:
        recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))["benchmark-year"]
        found = decisions(output)
        same = found == recorded
        print(
            f'decisions: {"same as" if same else "DIFFER from"} {GOLDEN.name} "benchmark-year"'
            f" (sha256 {found['sha256'][:16]}..., {sum(found['counts'].values()):,} outputs)"
        )
        if not same:
            return 1
    if args.profile:
        stats = args.cache_dir / "replay.prof"
        print(f"\nprofiled run (cProfile; times inflated by the profiler), stats in {stats}:")
        if _run_child(events, policy=args.policy, output=output, profile=stats) is None:
            return 1
    return 0


def _run_child(
    events: Path, *, policy: Path, output: Path, profile: Path | None
) -> dict[str, Any] | None:
    """Replay in a fresh interpreter, so its peak memory is the replay's alone."""
    result = output.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), str(events)]
    command += ["--policy", str(policy), "--out", str(output), "--result", str(result)]
    if profile is not None:
        command += ["--profile", str(profile)]
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0 or not result.exists():
        print(f"replay subprocess failed (exit {completed.returncode})", file=sys.stderr)
        return None
    loaded: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return loaded


_AGED = b'","event_type":"invoice.aged","'
_TYPE = b'","event_type":"'


def decisions(output: Path) -> dict[str, Any]:
    """Every output but the due-date events, as cli/tests/golden/decisions.json holds them:
    counts by type and the SHA-256 of their bytes, each followed by a newline, in order."""
    digest, counts = hashlib.sha256(), dict[str, int]()
    with output.open("rb") as lines:
        for line in lines:
            # An event id's JSON has no bare quote: the first `","event_type":"` is the type's.
            at = line.find(_TYPE)
            if line.startswith(_AGED, at):
                continue
            digest.update(line)
            start = at + len(_TYPE)
            kind = line[start : line.index(b'"', start)].decode()
            counts[kind] = counts.get(kind, 0) + 1
    return {"counts": dict(sorted(counts.items())), "sha256": digest.hexdigest()}


def _report(r: dict[str, Any], output: Path) -> None:
    counts: dict[str, int] = r["outputs"]
    aged = counts.get("invoice.aged", 0)
    seconds = r["seconds"]
    inbound = r["inbound"] / seconds if seconds > 0 else float("inf")
    handled = (r["inbound"] + aged) / seconds if seconds > 0 else float("inf")
    print(f"replay: pinned to {r['cpus']}; output written to {output}")
    print(
        f"  inbound events        {r['inbound']:>12,}" + (f"  ({r['bad']} bad)" if r["bad"] else "")
    )
    print(f"  invoice.aged events   {aged:>12,}")
    print("  outputs by type:")
    for event_type, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {event_type:<26}{count:>12,}")
    print(f"    {'total':<26}{sum(counts.values()):>12,}  ({r['output_mib']:,.1f} MiB written)")
    print(f"  customers             {r['customers']:>12,}")
    print(f"  seconds               {seconds:>12.2f}  (cpu {r['cpu_seconds']:.2f})")
    print(f"  throughput            {inbound:>12,.0f}  inbound events/s")
    print(f"                        {handled:>12,.0f}  events/s (inbound + invoice.aged)")
    hwm = "" if r["vm_hwm_mib"] is None else f", VmHWM {r['vm_hwm_mib']:,.1f} MiB"
    print(
        f"  peak memory           {r['peak_mib']:>12,.1f}  MiB ru_maxrss "
        f"({r['baseline_mib']:,.1f} MiB before the first event{hwm})"
    )
    print(
        f"replay throughput: {inbound:,.0f} inbound events/s (target"
        f" {TARGET_INBOUND_PER_SECOND:,}; {handled:,.0f}/s with invoice.aged)"
    )


def _replay_child(argv: Sequence[str]) -> int:
    """The measured process: nothing but the replay, as `billstate replay` runs it."""
    parser = argparse.ArgumentParser(prog="python bench/replay_harness.py")
    parser.add_argument("events", type=Path)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv)

    cpus = "all CPUs"
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        cpus = f"CPU {cpu}"
    replay = Replay(load_policy(args.policy))
    profiler = None
    if args.profile is not None:
        profiler = cProfile.Profile()
    baseline = _maxrss_mib()
    with args.events.open("rb") as source, args.out.open("wb") as out:
        began, cpu_began = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        # Exactly billstate replay's loop, so the bench measures the command.
        tally = replay_lines(replay, source, out, str(args.events))
        out.flush()
        if profiler is not None:
            profiler.disable()
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    result = {
        "inbound": tally.inbound,
        "bad": tally.bad,
        "outputs": dict(tally.produced),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_mib": _maxrss_mib(),
        "vm_hwm_mib": _vm_hwm_mib(),
        "baseline_mib": baseline,
        "output_mib": args.out.stat().st_size / _MIB,
        "customers": len(replay.books),
        "cpus": cpus,
    }
    args.result.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_replay_child(sys.argv[1:]))
