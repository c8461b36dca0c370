"""`billstate topics list|acls|strimzi` without a broker: what the catalog says, printed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from billstate_cli.main import main
from billstate_shared.acls import service_acls
from billstate_shared.topics import CASES, CATALOG, DLQ_TOPICS


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_list_prints_every_catalog_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "list"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert list(rows) == [t.name for t in CATALOG]
    assert "case.acknowledged, case.resolved" in rows[CASES.name]
    assert "forever" in rows[CASES.name]
    assert rows[DLQ_TOPICS[0].name].endswith("dead letters")


def test_list_who_names_writers_readers_and_observers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "list", "--who"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert list(rows) == [t.name for t in CATALOG]
    # The cases topic: written and observed by the console, read (and so dead-lettered) by none.
    assert rows[CASES.name].split() == [CASES.name, "console", "-", "console"]
    dlq = rows["access.commands.v1.dlq"].split()
    assert dlq == ["access.commands.v1.dlq", "access-control", "-", "console"]


def test_acls_prints_the_consoles_bindings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "acls", "--service", "console"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(service_acls("console"))
    assert any(line.split()[1:] == ["Read", "group", "console-", "(prefix)"] for line in lines)
    writes = {line.split()[3] for line in lines if line.split()[1] == "Write"}
    assert CASES.name in writes
    assert not [name for name in writes if name.endswith(".dlq")]


def test_acls_with_a_group_prefixes_the_consoles_generations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["topics", "acls", "--service", "console", "--user", "c1", "--group", "console-e2e"]
    assert main(argv) == 0
    groups = [line.split() for line in capsys.readouterr().out.splitlines() if " group " in line]
    assert groups == [["User:c1", "Read", "group", "console-e2e-", "(prefix)"]]


def test_strimzi_writes_one_kafka_topic_per_catalog_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "topics.yaml"
    assert main(["topics", "strimzi", "--out", str(out), "--replicas", "1"]) == 0
    docs = [d for d in yaml.safe_load_all(out.read_text(encoding="utf-8")) if d]
    assert [d["spec"]["topicName"] for d in docs] == [t.name for t in CATALOG]
    (cases,) = [d for d in docs if d["spec"]["topicName"] == CASES.name]
    assert cases["metadata"]["name"] == "operations-cases-v1"
    assert cases["spec"]["config"] == {"cleanup.policy": "delete", "retention.ms": "-1"}
    assert f"wrote {len(CATALOG)} KafkaTopic" in capsys.readouterr().out
