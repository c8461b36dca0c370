"""Every output the cores build without validation is exactly what the contract models encode."""

from __future__ import annotations

import json
from pathlib import Path

from billstate_cli.replay import Replay
from billstate_cli.simulation import history
from billstate_shared.contracts import decode, encode
from billstate_shared.contracts.outbound import to_bytes
from billstate_shared.policy_file import load_policy

POLICY = Path(__file__).resolve().parents[3] / "policies" / "standard.yaml"


def test_light_outputs_validate_and_encode_byte_for_byte_like_the_models() -> None:
    replay = Replay(load_policy(POLICY))
    seen: set[str] = set()
    for envelope in history(60, 200, seed=9):
        event = decode(json.dumps(envelope).encode())
        for produced in replay.feed(event):
            raw = to_bytes(produced)
            model = decode(raw)  # validates against the contract
            assert encode(model) == raw
            seen.add(produced.event_type)
    assert seen >= {
        "invoice.aged",
        "collections.stage_entered",
        "access.suspend",
        "access.restore",
        "notice.requested",
    }
