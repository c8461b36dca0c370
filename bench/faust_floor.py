"""faust's floor beside the collections worker: an agent doing nothing, or decode + produce one."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson

from billstate_shared.runtime.faustkit import make_app, raw_topic

MODES = ("nothing", "produce")
OUT_BYTES = 300  # about one collections output record
HELD = 1000  # records awaiting their write's acknowledgement, at most (the worker's WINDOW)
# The collections worker's settings where they differ from make_app's defaults
# (billstate_collections.config.Settings).
COMMIT_INTERVAL = 0.5
PRODUCER_LINGER = 0.005


def output(event: dict[str, Any], partition: int, offset: int) -> bytes:
    """One record of about OUT_BYTES for a decoded input event."""
    out = {
        "event_id": f"{event.get('event_id')}-floor",
        "event_type": "bench.floor",
        "customer_id": event.get("customer_id"),
        "source": {"event_type": event.get("event_type"), "partition": partition,
                   "offset": offset},
        "pad": "",
    }  # fmt: skip
    size = len(orjson.dumps(out))
    out["pad"] = "x" * max(OUT_BYTES - size, 0)
    return orjson.dumps(out)


def build(
    mode: str, *, bootstrap: str, group: str, data_dir: Path, inputs: list[str], out: str
) -> Any:
    """The app: the worker's faust settings, one agent (concurrency 1) on `inputs`."""
    app = make_app(
        group, bootstrap, data_dir, commit_interval=COMMIT_INTERVAL, producer_linger=PRODUCER_LINGER
    )
    inbound = raw_topic(app, *inputs)

    async def nothing(stream: Any) -> None:
        async for _ in stream.events():
            pass  # acked by faust when the next one is taken

    outbound = raw_topic(app, out)

    async def produce(stream: Any) -> None:
        # As the worker does: each record's write handed to the producer now (force: not
        # deferred to the commit), the record acked in order once the broker acknowledged it.
        manual = stream.noack()
        held: deque[tuple[Any, asyncio.Future[Any]]] = deque()
        work = asyncio.Event()

        async def settle() -> None:
            while True:
                if not held:
                    work.clear()
                    await work.wait()
                    continue
                event, sent = held[0]
                try:
                    await sent
                except Exception as err:
                    await app.crash(err)  # a floor that loses writes measures nothing
                    raise
                held.popleft()
                await manual.ack(event)

        settling = asyncio.ensure_future(settle())
        try:
            async for event in manual.events():
                message = event.message
                value = output(orjson.loads(message.value), message.partition, message.offset)
                sent = await outbound.send(
                    key=message.key,
                    value=value,
                    key_serializer="raw",
                    value_serializer="raw",
                    force=True,
                )
                held.append((event, sent))
                work.set()
                if len(held) >= HELD:
                    await asyncio.wait((held[0][1],))
        finally:
            settling.cancel()

    agent = nothing if mode == "nothing" else produce
    app.agent(inbound, name=f"bench.floor.{mode}", concurrency=1)(agent)
    return app


# ---- the bench's side: one floor run as a process ---------------------------------------


@dataclass
class Floor:
    """One floor process (this file run as a script), its data dir and log under `root`."""

    mode: str
    root: Path
    bootstrap: str
    group: str
    inputs: list[str]
    out: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "floor.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        profile = os.environ.get("BENCH_PROFILE_DIR")
        if profile:
            # bench/profile_hook/sitecustomize.py profiles the process until it exits.
            env["PYTHONPATH"] = str(Path(__file__).parent / "profile_hook")
            env["BILLSTATE_BENCH_PROFILE"] = str(Path(profile) / f"{self.group}.prof")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--mode", self.mode, "--bootstrap", self.bootstrap,
                 "--group", self.group, "--data-dir", str(self.root / "data"),
                 "--out", self.out, *self.inputs],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as one
            )  # fmt: skip

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"faust floor ({self.mode}) exited; {self.log}:\n{tail}")

    def stop(self, grace: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="faust_floor.py", description=__doc__)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True, help="consumer group and faust app id")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", required=True, help="the topic `produce` writes to")
    parser.add_argument("inputs", nargs="+", help="topics the agent reads")
    args = parser.parse_args(argv)
    app = build(
        args.mode,
        bootstrap=args.bootstrap,
        group=args.group,
        data_dir=args.data_dir,
        inputs=args.inputs,
        out=args.out,
    )
    started = time.monotonic()
    sys.stdout.write(f"faust floor {args.mode}: {json.dumps(args.inputs)} as {args.group}\n")
    sys.stdout.flush()
    worker = faust.Worker(app, loglevel="warning", override_logging=False)
    try:
        worker.execute_from_commandline()
    finally:
        sys.stdout.write(
            f"faust floor {args.mode}: exited after {time.monotonic() - started:.1f} s\n"
        )


if __name__ == "__main__":
    main()
