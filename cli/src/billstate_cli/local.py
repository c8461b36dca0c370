"""Run the four services as local processes: start, wait until ready, stop by pid."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from billstate_shared.errors import ExternalError

SERVICES = ("invoicing", "collections", "access-control", "notifications")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def module(self) -> str:
        return "billstate_" + self.name.replace("-", "_")

    @property
    def prefix(self) -> str:
        return "BILLSTATE_" + self.name.replace("-", "_").upper() + "_"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=1) as answer:  # noqa: S310  (http on loopback, built here)
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False


@dataclass
class Fleet:
    """The services of one local run, each with its own port, data dir and log file."""

    root: Path
    bootstrap: str
    policy: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    # The bearer token of the services' non-probe routes, made for this run.
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def start(self, names: tuple[str, ...] = SERVICES) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in names:
            service = Service(name, free_port(), self.root / f"{name}.log")
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                f"{service.prefix}HTTP_PORT": str(service.port),
                f"{service.prefix}DATA_DIR": str(self.root / name),
                f"{service.prefix}POLICY_FILE": str(self.policy),
                f"{service.prefix}LOG_FORMAT": "json",
                "BILLSTATE_HTTP_TOKEN": self.token,
                **self.extra_env,
            }
            with service.log.open("ab") as log:
                service.process = subprocess.Popen(
                    [sys.executable, "-m", service.module],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.services.append(service)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(self.services)
        while waiting:
            for service in list(waiting):
                if service.process is not None and service.process.poll() is not None:
                    tail = service.log.read_text(errors="replace")[-2000:]
                    raise ExternalError(
                        f"{service.name} exited while starting; {service.log}:\n{tail}",
                        retryable=False,
                    )
                if service.ready():
                    waiting.remove(service)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
            time.sleep(0.2)

    def get(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL one service (for crash tests): no shutdown, no final commit."""
        service = self.get(name)
        if service.process is not None:
            os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()
        self.services.remove(service)

    def stop(self, timeout: float = 30.0) -> None:
        for service in self.services:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in self.services:
            if service.process is None:
                continue
            try:
                service.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait()
        self.services.clear()
