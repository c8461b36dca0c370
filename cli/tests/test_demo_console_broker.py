"""`billstate demo --console` (what `make console` runs) on a real broker: a short simulated
history, then the console on the run's data, shown only once it has read all of it, serving
the API and `billstate status` until interrupted; Ctrl-C stops it by pid."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from billstate_cli.commands.demo import DEMO_START
from billstate_cli.drive import start_at_end
from billstate_cli.local import SERVICES, free_port
from billstate_cli.simulation import history
from billstate_cli.summary import CONSOLE_HINT, read_all
from billstate_devkit.kafka import ensure_catalog
from billstate_shared.policy_file import load_policy
from billstate_shared.topics import STATE

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
BILLSTATE = Path(sys.executable).parent / "billstate"
CUSTOMERS, DAYS, SEED = 3, 40, 11
POLICY = ROOT / "policies/business-days.yaml"  # the demo's default


def get(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


async def groups_at_the_end(bootstrap: str) -> None:
    """The demo runs the services under their default consumer groups, which an earlier demo
    on this broker left behind what other tests wrote since: moved to the end of what they
    read, they see this run's records only, whatever ran before (the order of the tests)."""
    await ensure_catalog(bootstrap)
    await start_at_end(bootstrap, {service: service for service in SERVICES})


def test_demo_then_the_console_until_interrupted(kafka_bootstrap: str, tmp_path: Path) -> None:
    asyncio.run(groups_at_the_end(kafka_bootstrap))
    port, workdir = free_port(), tmp_path / "run"
    argv = [str(BILLSTATE), "demo", "--bootstrap", kafka_bootstrap, "--workdir", str(workdir),
            "--customers", str(CUSTOMERS), "--days", str(DAYS), "--seed", str(SEED),
            "--console", "--console-port", str(port)]  # fmt: skip
    demo = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        said: list[str] = []
        for line in demo.stdout:  # until the console is shown (the test's timeout bounds it)
            said.append(line)
            if line.startswith("Ctrl-C stops the console"):
                break
        out = "".join(said)
        assert "Ctrl-C stops the console" in out, out[-3000:]
        url = f"http://127.0.0.1:{port}"
        assert f"The console: {url}/\n" in out
        assert CONSOLE_HINT not in out  # the summary names `make console` only without it

        token_file = workdir / "console-viewer.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert str(token_file) in out
        token = token_file.read_text().strip()
        assert token not in out  # printed by path, never itself

        # Shown only once caught up: every customer's stage is already the run's last one.
        tz = load_policy(POLICY).timezone
        events = history(CUSTOMERS, DAYS, SEED, DEMO_START, tz)
        ids = sorted({e["customer_id"] for e in events if e["event_type"] == "customer.upserted"})
        assert len(ids) == CUSTOMERS
        states = asyncio.run(read_all(kafka_bootstrap, [STATE.name]))[STATE.name]
        last = {s["customer_id"]: s["data"]["stage"] for s in states if s["customer_id"] in ids}
        assert sorted(last) == ids
        for customer in ids:
            shown = get(f"{url}/api/customers/{customer}", token)
            assert shown["stage"] == last[customer], customer

        env = {**os.environ, "BILLSTATE_CONSOLE_TOKEN": token, "BILLSTATE_CONSOLE_URL": url}
        status = subprocess.run(
            [str(BILLSTATE), "status", ids[0]], env=env, capture_output=True, text=True, check=False
        )
        assert status.returncode == 0, status.stderr
        assert f"stage: {last[ids[0]]}" in status.stdout

        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        os.killpg(demo.pid, signal.SIGINT)  # and `uv run` passing the same one on
        assert demo.wait(60) == 0
        rest = demo.stdout.read()
        assert "console stopped" in rest
        assert "Traceback" not in rest
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
    finally:
        # Interrupted first: the demo stops the console it started (a SIGKILL would leave it).
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
