"""Run the services as local processes (the four and the console): start, wait, stop by pid."""

from __future__ import annotations

import os
import re
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
CONSOLE = "console"
ROLES = ("viewer", "operator")
_LAG = re.compile(r"^billstate_consumer_lag\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


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

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end, per partition it consumes, from its /metrics (empty until
        its first fetch, or when it does not answer)."""
        try:
            with urllib.request.urlopen(self.url("/metrics"), timeout=2) as answer:  # noqa: S310  (as above)
                text = answer.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        found: dict[tuple[str, int], int] = {}
        for match in _LAG.finditer(text):
            labels = dict(_LABEL.findall(match["labels"]))
            found[(labels["topic"], int(labels["partition"]))] = int(float(match["value"]))
        return found


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
    # Ports to use rather than a free one, by service (the console's URL is printed).
    ports: dict[str, int] = field(default_factory=dict)
    # The console's viewer and operator tokens, made for this run (files: `token_file`).
    console_tokens: dict[str, str] = field(
        default_factory=lambda: {role: secrets.token_urlsafe(24) for role in ROLES}
    )

    def token_file(self, role: str) -> Path:
        return self.root / f"console-{role}.token"

    def _console_env(self) -> dict[str, str]:
        """The console's store and sign-in: SQLite in its data dir (whatever store the shell
        names, a local run never writes to it); its tokens in files only this user reads."""
        store = (self.root / CONSOLE / "console.sqlite3").resolve()
        env = {"BILLSTATE_CONSOLE_DATABASE_URL": f"sqlite:///{store}"}
        for role, token in self.console_tokens.items():
            path = self.token_file(role)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(token + "\n")
            env[f"BILLSTATE_CONSOLE_{role.upper()}_TOKEN_FILE"] = str(path.resolve())
        return env

    def start(self, names: tuple[str, ...] = SERVICES) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in names:
            service = Service(name, self.ports.get(name) or free_port(), self.root / f"{name}.log")
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                f"{service.prefix}HTTP_PORT": str(service.port),
                f"{service.prefix}DATA_DIR": str(self.root / name),
                f"{service.prefix}POLICY_FILE": str(self.policy),
                f"{service.prefix}LOG_FORMAT": "json",
                "BILLSTATE_HTTP_TOKEN": self.token,
                **(self._console_env() if name == CONSOLE else {}),
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

    def wait_caught_up(self, name: str, ends: dict[tuple[str, int], int], timeout: float) -> None:
        """Wait until `name` has read every record up to `ends` (where each partition ended
        when it started): its lag, from /metrics, is zero on every partition it consumes, and
        every partition with records of a topic it consumes has reported one."""
        service = self.get(name)
        deadline = time.monotonic() + timeout
        while True:
            if service.process is not None and service.process.poll() is not None:
                tail = service.log.read_text(errors="replace")[-2000:]
                raise ExternalError(f"{name} exited; {service.log}:\n{tail}", retryable=False)
            lag = service.lag()
            read = {topic for topic, _ in lag}
            wanted = {tp for tp, end in ends.items() if end > 0 and tp[0] in read}
            behind = sum(lag.values())
            if lag and not behind and wanted <= set(lag):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name} has not caught up after {timeout:.0f}s: {behind} records behind"
                )
            time.sleep(0.5)

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
