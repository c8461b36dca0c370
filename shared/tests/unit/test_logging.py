"""Logging: JSON lines, bound context, stdlib routed through, secrets and addresses gone."""

from __future__ import annotations

import io
import json
import logging

import structlog

from billstate_shared.logging import configure_logging


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_line_is_json_with_bound_context() -> None:
    out = io.StringIO()
    configure_logging("collections", fmt="json", stream=out)
    structlog.contextvars.bind_contextvars(customer_id="contoso", partition=3, offset=17)
    structlog.get_logger("t").info("processed", event_id="e-1")
    (line,) = _lines(out)
    assert line["event"] == "processed"
    assert line["service"] == "collections"
    assert (line["customer_id"], line["partition"], line["offset"]) == ("contoso", 3, 17)
    assert line["level"] == "info"
    assert "timestamp" in line


def test_stdlib_logs_of_libraries_are_routed_through_structlog() -> None:
    out = io.StringIO()
    configure_logging("invoicing", fmt="json", stream=out)
    logging.getLogger("aiokafka.consumer").warning("rebalance for ops@contoso.example")
    (line,) = _lines(out)
    assert line["logger"] == "aiokafka.consumer"
    assert line["service"] == "invoicing"
    assert "ops@contoso.example" not in json.dumps(line)


def test_secrets_and_email_addresses_are_redacted_at_any_depth() -> None:
    out = io.StringIO()
    configure_logging("notifications", fmt="json", stream=out)
    structlog.get_logger().info(
        "sent to billing@fabrikam.example",
        client_secret="s3cr3t-value",
        smtp={"password": "hunter22", "host": "127.0.0.1"},
        header="Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload",
        recipients=["a@b.example"],
    )
    text = out.getvalue()
    for secret in (
        "s3cr3t-value",
        "hunter22",
        "billing@fabrikam.example",
        "a@b.example",
        "eyJhbGci",
    ):
        assert secret not in text
    (line,) = _lines(out)
    assert line["smtp"] == {"password": "[redacted]", "host": "127.0.0.1"}


def test_console_format_on_request() -> None:
    out = io.StringIO()
    configure_logging("cli", fmt="console", stream=out)
    structlog.get_logger().info("hello", customer_id="c1")
    assert "hello" in out.getvalue()
    assert not out.getvalue().lstrip().startswith("{")


def test_lines_below_the_level_are_dropped() -> None:
    out = io.StringIO()
    configure_logging("collections", level="WARNING", fmt="json", stream=out)
    structlog.get_logger("t").info("processed", customer_id="c1")
    structlog.get_logger("t").warning("dead-lettered", customer_id="c1")
    assert [line["event"] for line in _lines(out)] == ["dead-lettered"]
