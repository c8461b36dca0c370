"""A throwaway PostgreSQL server for tests, from Debian's binaries: `postgres_url` fixture.

`LocalPostgres` runs initdb into a fresh temporary folder, starts the server with pg_ctl on a
free loopback port (TCP on 127.0.0.1 only, its Unix socket in that folder), trusts every local
connection, creates one database and removes it all at the end (pg_ctl stop, then the pid
from postmaster.pid is killed if the server still runs).

Root: initdb and postgres refuse to run as root. When this process is root, every server
command runs as the unprivileged `postgres` system user (created by Debian's postgresql
package) through `runuser -u postgres --`, and the temporary folder is made in the system
temporary directory and handed to that user. Run as anyone else, the commands run as you.

Binaries are looked for in Debian's /usr/lib/postgresql/<version>/bin (the newest version),
then on PATH. Missing, the fixture fails and names `make setup-system`; it never skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from billstate_shared.errors import BillstateError

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
USER = "billstate"
DATABASE = "billstate_test"
_TOOLS = ("initdb", "pg_ctl")
_START_TIMEOUT_S = 60


class LocalPostgresError(BillstateError):
    """The local PostgreSQL server could not be found, started or stopped."""


def find_bin_dir(debian_root: Path = DEBIAN_ROOT, path: str | None = None) -> Path:
    """The folder holding initdb and pg_ctl: Debian's newest version first, then PATH."""
    versions = sorted(
        (d for d in debian_root.glob("*/bin") if all((d / t).is_file() for t in _TOOLS)),
        key=lambda d: _version_key(d.parent.name),
        reverse=True,
    )
    if versions:
        return versions[0]
    found = [shutil.which(t, path=path) for t in _TOOLS]
    if all(found):
        return Path(str(found[0])).resolve().parent
    raise LocalPostgresError(
        f"PostgreSQL's initdb and pg_ctl not found (looked in {debian_root}/*/bin and on PATH): "
        "run `make setup-system` to install Debian's postgresql package"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    """A TCP port free on loopback now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalPostgres:
    """One PostgreSQL server in its own temporary folder; `start()`, `url`, `stop()`."""

    def __init__(self, bin_dir: Path | None = None, database: str = DATABASE) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.database = database
        self.port = 0
        self.root: Path | None = None
        self.pid: int | None = None
        self._run_as: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        assert self.root is not None, "the server has not been started"
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None, "the server has not been started"
        return self.root / "server.log"

    def start(self) -> str:
        """initdb, start on a free loopback port, create the database; return its URL."""
        owner = self._prepare_user()
        # As root, in /tmp: the postgres user must reach it, and TMPDIR may be root's own.
        # mkdtemp makes a fresh, unguessable 0700 folder, then handed to that user only.
        shared_tmp = "/tmp" if owner else None  # noqa: S108
        self.root = Path(tempfile.mkdtemp(prefix="billstate-pg-", dir=shared_tmp))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            self._start_server()
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown; killed if it will not) and delete its folder."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            pid = self._postmaster_pid()
            with contextlib.suppress(LocalPostgresError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            # pg_ctl returns once postmaster.pid is gone, a moment before the process is.
            if pid is not None and not _gone_within(pid, 10.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _gone_within(pid, 5.0)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root, self.pid = None, None

    def _prepare_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            owner = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise LocalPostgresError(
                f"running as root, and PostgreSQL refuses root: no `{SERVICE_USER}` user to run "
                "it as; run `make setup-system` (Debian's postgresql package creates it)"
            ) from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise LocalPostgresError("running as root, and no `runuser` to drop to postgres")
        self._run_as = [runuser, "-u", SERVICE_USER, "--"]
        return owner

    def _start_server(self) -> None:
        for _ in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                    "-w", "-t", str(_START_TIMEOUT_S), "start",
                    timeout=_START_TIMEOUT_S + 10,
                )  # fmt: skip
            except LocalPostgresError:
                if "could not bind" in self._log_tail():
                    continue
                raise
            self.pid = self._postmaster_pid()
            return
        raise LocalPostgresError(f"no free loopback port for PostgreSQL:\n{self._log_tail()}")

    def _create_database(self) -> None:
        import psycopg  # noqa: PLC0415  (only the server's users need the driver)

        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}" OWNER "{USER}"')

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        argv: Sequence[str] = [*self._run_as, str(self.bin_dir / tool), *args]
        done = subprocess.run(  # noqa: S603  (fixed argv: our own binaries and folder)
            argv, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise LocalPostgresError(
                f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"server log:\n{self._log_tail() if self.root else ''}"
            )


def _alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, waiting for its parent to reap it) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql://billstate@127.0.0.1:<port>/billstate_test of a server for this session."""
    try:
        server = LocalPostgres()
        url = server.start()
    except LocalPostgresError as err:
        pytest.fail(f"no PostgreSQL server for the tests: {err}", pytrace=False)
    try:
        yield url
    finally:
        server.stop()
