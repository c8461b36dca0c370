"""Speed work may change how decisions are reached, never what is decided: digests held here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from billstate_cli.replay import Replay
from billstate_cli.simulation import history
from billstate_shared.contracts import decode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "decisions.json"


def decisions(policy_file: str, customers: int, days: int, seed: int) -> dict[str, object]:
    """What replay decides for a simulated history: every output but the due-date events
    (whose design may change), byte for byte and in order, as a count and a SHA-256."""
    policy = load_policy(ROOT / policy_file)
    replay = Replay(policy)
    digest, counts = hashlib.sha256(), dict[str, int]()
    for envelope in history(customers, days, seed, timezone=policy.timezone):
        event = decode(json.dumps(envelope).encode())
        for out in replay.feed(event):
            if out.event_type == "invoice.aged":
                continue
            digest.update(to_bytes(out))
            digest.update(b"\n")
            counts[out.event_type] = counts.get(out.event_type, 0) + 1
    return {"counts": dict(sorted(counts.items())), "sha256": digest.hexdigest()}


CASES = {
    # `make run`: billstate demo's defaults.
    "make-run": ("policies/business-days.yaml", 200, 91, 2026),
    # A year of the benchmark's shape, a tenth of its customers (the whole benchmark year is
    # checked by `make bench-replay` against the digest below).
    "year-1000": ("policies/standard.yaml", 1000, 365, 7),
}


@pytest.mark.parametrize("name", CASES)
def test_decisions_are_the_recorded_ones(name: str) -> None:
    recorded = json.loads(GOLDEN.read_text())[name]
    assert decisions(*CASES[name]) == recorded
