"""`billstate send FILE` without a broker: every line checked, bad lines named, dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.main import main

NO_BROKER = ["--bootstrap", "127.0.0.1:1"]


def envelope(
    event_type: str, event_id: str, data: dict[str, Any], customer: str = "contoso"
) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-12-18T11:00:00+00:00",
            "customer_id": customer,
            "data": data,
        }
    )


MANUAL = {"hold_id": "HOLD-21", "kind": "manual", "reason": "review", "by": "ops.alice"}
RELEASE = {"hold_id": "HOLD-21", "reason": "done", "by": "ops.alice"}
INVOICE = {
    "invoice_id": "INV-1",
    "currency": "USD",
    "amount": "120.00",
    "issued_on": "2026-11-01",
    "due_on": "2026-11-30",
    "subscription_ids": ["sub-1"],
}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_bad_line_is_named_and_nothing_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_hold = {**MANUAL, "hold_id": "HOLD-22", "kind": "dispute"}
    path = write(
        tmp_path,
        envelope("hold.placed", "h-21", MANUAL),
        "",
        envelope("hold.placed", "h-22", bad_hold),
        "{not json",
    )

    code = main(["send", str(path), "--send", *NO_BROKER])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{path}:3: data.invoice_id: is required on a dispute hold",
        f"{path}:4: $: invalid JSON: key must be a string at line 1 column 2",
        "billstate send: 2 bad line(s); nothing sent",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (envelope("clock.tick", "t-1", {}, customer="*"), "customer_id: a clock tick goes to"),
        (
            envelope(
                "notice.delivered",
                "n-1",
                {"notice_id": "n-1", "channel": "email", "attempts": 1, "error": None},
            ),
            "event_type: notice.delivered is written by notifications only",
        ),
        (envelope("invoice.issued", "i-1", {**INVOICE, "amount": 120}), "data.amount: must be"),
    ],
)
def test_refused_lines(
    line: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, line)

    assert main(["send", str(path), *NO_BROKER]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:1: {message}")


def test_dry_run_says_where_each_event_goes_and_skips_a_second_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold = envelope("hold.placed", "h-21", MANUAL)
    path = write(
        tmp_path,
        hold,
        envelope("invoice.issued", "inv-1-issued", INVOICE, customer="fabrikam"),
        hold,
        envelope("hold.released", "h-21-released", RELEASE),
    )

    code = main(["send", str(path), *NO_BROKER])

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out.splitlines() == [
        f"duplicate {path}:3: event_id h-21 as on line 1, skipped",
        f"would send {path}:1: collections.control.v1 key contoso hold.placed h-21",
        f"would send {path}:2: billing.invoices.v1 key fabrikam invoice.issued inv-1-issued",
        f"would send {path}:4: collections.control.v1 key contoso hold.released h-21-released",
        "dry run: 3 to send, 1 duplicate(s); add --send to produce",
    ]


def test_two_different_events_with_one_id_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        envelope("hold.placed", "h-21", MANUAL),
        envelope("hold.placed", "h-21", {**MANUAL, "reason": "fixed"}),
    )

    assert main(["send", str(path), *NO_BROKER]) == 2
    assert capsys.readouterr().err.startswith(
        f"{path}:2: event_id: h-21 is already on line 1 with a different value"
    )


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_unreachable_broker_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, envelope("hold.placed", "h-21", MANUAL))

    assert main(["send", str(path), "--send", *NO_BROKER]) == 1
    assert capsys.readouterr().err.rstrip().endswith("; nothing sent")
