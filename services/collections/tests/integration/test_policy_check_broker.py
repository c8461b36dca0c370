"""The start-up check against the real broker: the policy a consumer group accepted is kept
on collections.policies.v1, and a worker refuses to start with a file that changed without a
version bump, or drops a stage without a `migrate:` entry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from billstate_collections.config import Settings
from billstate_collections.entrypoints.policy_check import accept, last_accepted
from billstate_devkit.kafka import ensure_catalog
from billstate_devkit.worker import unique
from billstate_shared.errors import ConfigRefused
from billstate_shared.policy_file import load_policy

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[4]
STANDARD = ROOT / "policies" / "standard.yaml"
TWO_STAGES = [
    {"name": "overdue", "days_past_due": 1, "notify": ["customer"]},
    {
        "name": "blocked",
        "days_past_due": 21,
        "action": "suspend",
        "scope": "overdue_subscriptions",
        "notify": ["customer"],
    },
]


def _write(path: Path, **changes: object) -> Path:
    data = yaml.safe_load(STANDARD.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _settings(bootstrap: str, group: str, policy: Path) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, consumer_group=group, policy_file=policy)


async def test_versions_are_recorded_and_a_change_without_a_bump_is_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_catalog(kafka_bootstrap)
    group = unique("policy-check")
    settings = _settings(kafka_bootstrap, group, STANDARD)
    assert await last_accepted(settings) is None
    await accept(settings, load_policy(STANDARD))
    first = await last_accepted(settings)
    assert first is not None
    assert (first.name, first.version, first.stages[-1]) == ("standard", 3, "suspended")
    await accept(settings, load_policy(STANDARD))  # the same file again: accepted

    edited = load_policy(_write(tmp_path / "edited.yaml", minimum_overdue={"USD": "9.00"}))
    with pytest.raises(ConfigRefused, match="changed but its version is still 3"):
        await accept(settings, edited)

    renamed = load_policy(
        _write(
            tmp_path / "v4.yaml",
            version=4,
            stages=TWO_STAGES,
        )
    )
    with pytest.raises(ConfigRefused, match="not in version 4: final_notice, suspended"):
        await accept(settings, renamed)
    assert await last_accepted(settings) == first  # nothing changed

    mapped = load_policy(
        _write(
            tmp_path / "v4-mapped.yaml",
            version=4,
            stages=TWO_STAGES,
            migrate={"final_notice": "overdue", "suspended": "blocked"},
        )
    )
    await accept(settings, mapped)
    latest = await last_accepted(settings)
    assert latest is not None
    assert (latest.version, latest.stages) == (4, ("overdue", "blocked"))
    # Another group's record is its own.
    assert await last_accepted(_settings(kafka_bootstrap, unique("other"), STANDARD)) is None


async def test_the_worker_process_refuses_to_start_and_says_why(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_catalog(kafka_bootstrap)
    group = unique("policy-refused")
    await accept(_settings(kafka_bootstrap, group, STANDARD), load_policy(STANDARD))
    edited = _write(tmp_path / "edited.yaml", minimum_overdue={"USD": "9.00"})
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BILLSTATE_COLLECTIONS_CONSUMER_GROUP": group,
        "BILLSTATE_COLLECTIONS_POLICY_FILE": str(edited),
        "BILLSTATE_COLLECTIONS_DATA_DIR": str(tmp_path / "data"),
        "BILLSTATE_COLLECTIONS_HTTP_PORT": "0",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "billstate_collections"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert (
        f"collections: refused policy {edited}: the policy file changed but its version is"
        " still 3" in done.stderr
    )
