"""Log lines: their shape, levels, the libraries' lines, and redaction at any depth."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billstate_shared.logging import configure_logging


class Out:
    """A stream like the worker's stderr: text over bytes, so our lines take the bytes path."""

    def __init__(self) -> None:
        self.raw = io.BytesIO()
        self.stream = io.TextIOWrapper(self.raw, encoding="utf-8", write_through=True)

    def text(self) -> str:
        self.stream.flush()
        return self.raw.getvalue().decode("utf-8")

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def clear(self) -> None:
        self.stream.flush()
        self.raw.seek(0)
        self.raw.truncate()


def _bind_record() -> None:
    structlog.contextvars.bind_contextvars(
        topic="billing.payments.v1",
        partition=3,
        offset=1187,
        customer_id="contoso",
        event_id="PAY-2026-0001-received",
    )


def test_a_worker_line_has_the_documented_keys() -> None:
    out = Out()
    configure_logging("collections", fmt="json", stream=out.stream)
    _bind_record()
    structlog.get_logger("billstate.collections").info(
        "processed", event_type="payment.received", outputs=3
    )
    (line,) = out.lines()
    stamp = line.pop("timestamp")
    assert line == {
        "event_type": "payment.received",
        "outputs": 3,
        "event": "processed",
        "service": "collections",
        "topic": "billing.payments.v1",
        "partition": 3,
        "offset": 1187,
        "customer_id": "contoso",
        "event_id": "PAY-2026-0001-received",
        "level": "info",
        "logger": "billstate.collections",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert datetime.fromisoformat(stamp).utcoffset() == UTC.utcoffset(None)


def test_the_call_wins_over_the_bound_context_and_levels_are_named() -> None:
    out = Out()
    configure_logging("collections", level="DEBUG", fmt="json", stream=out.stream)
    _bind_record()
    log = structlog.get_logger("t")
    log.debug("a", offset=7)
    log.warning("b")
    log.error("c")
    log.critical("d")
    levels = [(line["event"], line["level"]) for line in out.lines()]
    assert levels == [("a", "debug"), ("b", "warning"), ("c", "error"), ("d", "critical")]
    assert out.lines()[0]["offset"] == 7


def test_bound_values_and_positional_arguments() -> None:
    out = Out()
    configure_logging("collections", fmt="json", stream=out.stream)
    log = structlog.get_logger("t").bind(attempt=2, password="p4ss")
    log.warning("retry %d of %d", 2, 5, error="refused")
    (line,) = out.lines()
    assert (line["event"], line["attempt"], line["error"]) == ("retry 2 of 5", 2, "refused")
    assert line["password"] == "[redacted]"


def test_levels_filter_our_lines_and_the_libraries() -> None:
    out = Out()
    configure_logging("collections", level="WARNING", fmt="json", stream=out.stream)
    log = structlog.get_logger("t")
    log.debug("d")
    log.info("i")
    logging.getLogger("faust.worker").info("library info")
    log.warning("w")
    logging.getLogger("aiokafka").error("library error")
    assert [line["event"] for line in out.lines()] == ["w", "library error"]


def test_a_library_line_is_the_same_json_with_the_bound_context_and_redacted() -> None:
    out = Out()
    configure_logging("invoicing", fmt="json", stream=out.stream)
    _bind_record()
    logging.getLogger("aiokafka.conn").warning(
        "auth for %s failed: Authorization: Basic dXNlcjpzZWNyZXQ=", "ops@contoso.example"
    )
    (line,) = out.lines()
    assert line["logger"] == "aiokafka.conn"
    assert line["level"] == "warning"
    assert (line["service"], line["customer_id"], line["offset"]) == ("invoicing", "contoso", 1187)
    assert line["event"] == "auth for [email] failed: Authorization: Basic [redacted]"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() == UTC.utcoffset(None)


def test_ours_and_the_libraries_lines_stay_in_order_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "worker.log"
    with path.open("w", encoding="utf-8") as stream:
        configure_logging("collections", fmt="json", stream=stream)
        log = structlog.get_logger("t")
        for i in range(3):
            log.info("ours", i=i)
            logging.getLogger("faust").warning("theirs %d", i)
        lines = [json.loads(s) for s in path.read_text(encoding="utf-8").splitlines()]
    assert [line["event"] for line in lines] == [
        "ours",
        "theirs 0",
        "ours",
        "theirs 1",
        "ours",
        "theirs 2",
    ]


def test_secrets_addresses_and_tokens_are_redacted_at_any_depth() -> None:
    out = Out()
    configure_logging("notifications", fmt="json", stream=out.stream)
    structlog.get_logger().info(
        "delivery",
        api_key="k-123456",
        smtp={"Password": "hunter22", "hosts": [{"SIGNING-KEY": "abc", "to": "a@b.example"}]},
        attempts=[("x", "mail for c.d@e-f.example failed"), {"n": 2}],
        headers={"h": ["BEARER eyJhbGciOiJIUzI1NiJ9.payload", "bAsIc dXNlcjpwYXNz"]},
        note="über café c@d.example",
        err=ValueError("no route to ops@contoso.example"),
        seen={"x@y.example"},
        nested={1: "one@two.example"},
        amount=Decimal("12.50"),
        ok=True,
    )
    text = out.text()
    for leaked in (
        "k-123456",
        "hunter22",
        '"abc"',
        "a@b.example",
        "c.d@e-f.example",
        "eyJhbGci",
        "dXNlcjpwYXNz",
        "c@d.example",
        "ops@contoso.example",
        "x@y.example",
        "one@two.example",
    ):
        assert leaked not in text
    (line,) = out.lines()
    assert line["api_key"] == "[redacted]"
    assert line["smtp"] == {
        "Password": "[redacted]",
        "hosts": [{"SIGNING-KEY": "[redacted]", "to": "[email]"}],
    }
    assert line["attempts"] == [["x", "mail for [email] failed"], {"n": 2}]
    assert line["headers"] == {"h": ["BEARER [redacted]", "bAsIc [redacted]"]}
    assert line["note"] == "über café [email]"
    assert line["err"] == "ValueError('no route to [email]')"
    assert line["nested"] == {"1": "[email]"}
    assert "12.50" in line["amount"]
    assert line["ok"] is True


def test_the_callers_values_are_not_changed() -> None:
    out = Out()
    configure_logging("notifications", fmt="json", stream=out.stream)
    smtp = {"password": "hunter22", "to": ["a@b.example"]}
    structlog.get_logger().info("sent", smtp=smtp)
    assert smtp == {"password": "hunter22", "to": ["a@b.example"]}


def _refuse() -> None:
    raise RuntimeError("refused for ops@contoso.example")


def test_a_traceback_is_logged_and_redacted() -> None:
    out = Out()
    configure_logging("collections", fmt="json", stream=out.stream)
    try:
        _refuse()
    except RuntimeError:
        structlog.get_logger("t").exception("failed")
    (line,) = out.lines()
    assert line["level"] == "error"
    assert "Traceback" in line["exception"]
    assert "RuntimeError: refused for [email]" in line["exception"]
    assert "ops@contoso.example" not in out.text()


def test_what_json_cannot_hold_is_still_logged() -> None:
    out = Out()
    configure_logging("collections", fmt="json", stream=out.stream)
    structlog.get_logger("t").info("odd", s="lone \ud800 surrogate", k={(1, 2): "v"})
    (line,) = out.lines()
    assert line["event"] == "odd"
    assert "surrogate" in line["s"]


def test_a_stream_without_bytes_gets_the_same_lines() -> None:
    out = io.StringIO()
    configure_logging("collections", fmt="json", stream=out)
    structlog.get_logger("t").info("processed", to="a@b.example")
    (line,) = [json.loads(s) for s in out.getvalue().splitlines()]
    assert (line["event"], line["to"], line["logger"]) == ("processed", "[email]", "t")


def test_a_cached_logger_follows_a_new_configuration_and_a_closed_stream_is_harmless() -> None:
    first, second = Out(), Out()
    configure_logging("collections", fmt="json", stream=first.stream)
    log = structlog.get_logger("t")
    log.info("one")
    configure_logging("collections", fmt="json", stream=second.stream)
    log.info("two")
    assert [line["event"] for line in first.lines()] == ["one"]
    assert [line["event"] for line in second.lines()] == ["two"]
    second.stream.close()
    log.info("three")  # nowhere to go, and no exception


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


@st.composite
def _carrying(draw: st.DrawFn, address: str) -> Any:
    """A value holding `address` somewhere: in text, a list, a dict, at some depth."""
    value: Any = draw(_TEXT) + draw(st.sampled_from(["", " ", "<", "(", ":"])) + address
    value += draw(st.sampled_from(["", " ", ">", ")", ","])) + draw(_TEXT)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["list", "dict", "tuple"]))
        if kind == "list":
            value = [draw(_TEXT), value]
        elif kind == "tuple":
            value = (value, draw(st.integers()))
        else:
            value = {draw(st.sampled_from(["to", "cc", "detail", "x"])): value}
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), address=st.emails())
def test_no_generated_address_survives_in_any_line(data: st.DataObject, address: str) -> None:
    out = Out()
    configure_logging("notifications", fmt="json", stream=out.stream)
    value = data.draw(_carrying(address))
    structlog.contextvars.bind_contextvars(customer_id=data.draw(_carrying(address)))
    structlog.get_logger("t").info("sent", detail=value)
    structlog.get_logger("t").info(data.draw(_TEXT) + " " + address)
    logging.getLogger("aiosmtplib").warning("bounce: %s", value)
    lines = out.text().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert address not in line
        assert address not in json.dumps(json.loads(line), ensure_ascii=False)
