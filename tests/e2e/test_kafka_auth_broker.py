"""The four services logging into Kafka with SCRAM-SHA-512, as on a Strimzi cluster.

Each service process gets only the unprefixed KAFKA_* security settings (their fallback) and
the SCRAM listener of the local broker; the test harness drives and reads over the plain one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from billstate_devkit.kafka import local_scram

from .conftest import ROOT, Pipeline, load_jsonl

pytestmark = pytest.mark.broker

USER, PASSWORD = "billstate-e2e", "scram-e2e-password-51d2"


async def test_the_lifecycle_runs_with_every_service_logged_in(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    sasl = await local_scram(kafka_bootstrap, USER, PASSWORD)
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    pipeline = Pipeline(
        kafka_bootstrap,
        tmp_path,
        {
            "KAFKA_BOOTSTRAP_SERVERS": sasl,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD_FILE": str(secret),
        },
    )
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-sasl")
    try:
        await pipeline.start()
        await pipeline.drive(events)
        await pipeline.settle()
        subscriptions = pipeline.access("contoso-sasl")["subscriptions"]
        assert subscriptions
        assert {s["applied"] for s in subscriptions} == {"active"}  # suspended, then restored
        assert {s["calls"] for s in subscriptions} == {2}
        outcome = await pipeline.outcome()
        stages = [
            e["data"]["stage"]
            for e in outcome.topics["collections.events.v1"]
            if e["customer_id"] == "contoso-sasl"
        ]
        assert stages == ["overdue", "final_notice", "suspended", "current"]
    finally:
        pipeline.fleet.stop()
    logs = await asyncio.to_thread(_logs, tmp_path)
    assert PASSWORD not in logs


def _logs(folder: Path) -> str:
    """What the services logged, all of it."""
    return "".join(p.read_text(errors="replace") for p in folder.glob("*.log"))
