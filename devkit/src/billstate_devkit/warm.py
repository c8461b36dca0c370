"""A warm fork server for a command's entry point: each call a fresh forked process, no imports."""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

# The client: stdlib only, no site (`-IS`), so it starts in milliseconds. It hands the server
# its argv, cwd, environment and its own stdin, stdout and stderr, then exits as the command did.
CLIENT = """#!{python} -IS
import json, os, signal, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.connect({path!r})
call = json.dumps({{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(conn, [len(call).to_bytes(8, "big") + call], [0, 1, 2])
answer = b""
while chunk := conn.recv(64):
    answer += chunk
code = int(answer)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class Call(NamedTuple):
    argv: list[str]
    cwd: str
    env: dict[str, str]


def _receive(conn: socket.socket) -> tuple[Call, list[int]]:
    head, fds, _, _ = socket.recv_fds(conn, 8, 3)
    size = int.from_bytes(head, "big")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the client went away mid-call")
        body += chunk
    return Call(**json.loads(body)), fds


def _become(call: Call, fds: list[int], entry: str) -> None:
    """In the forked child: the client's fds, cwd, environment and argv, then the command."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(call.cwd)
    os.environ.clear()
    os.environ.update(call.env)
    sys.argv = call.argv
    module, _, name = entry.partition(":")
    try:
        getattr(importlib.import_module(module), name)()
    except SystemExit as done:
        code = 0 if done.code is None else done.code
    except BaseException as error:  # noqa: BLE001  (reported as the interpreter would)
        # From the entry point's frame down, as a fresh process shows it below its script's.
        trace = error.__traceback__.tb_next if error.__traceback__ else None
        sys.excepthook(type(error), error, trace)
        raise SystemExit(1) from None
    else:
        code = 0
    # The interpreter's own exit (an exception's traceback, a status that is not a number, a
    # failed flush, threads to wait for) is exact but tears the whole warm heap down, seconds
    # of work: it is taken whenever the short way below could differ from it.
    if not isinstance(code, int) or threading.active_count() > 1:
        raise SystemExit(code)
    atexit._run_exitfuncs()  # noqa: SLF001  (what the interpreter's exit runs first)
    atexit._clear()  # noqa: SLF001
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001  (the interpreter's exit reports it, as it would)
        raise SystemExit(code) from None
    os._exit(code)


def serve(path: Path, entry: str, warm: tuple[str, ...]) -> None:
    """Import `warm`, listen on `path`, fork per call; report each child's exit status."""
    for module in warm:
        importlib.import_module(module)
    gc.freeze()  # the children share the warm heap instead of copying it as they collect
    listener = socket.socket(socket.AF_UNIX)
    # Bound and listening before the path appears: a client that sees it can connect.
    ready = path.with_name(path.name + ".new")
    listener.bind(str(ready))
    listener.listen(8)
    ready.rename(path)
    while True:
        conn, _ = listener.accept()
        with conn:
            call, fds = _receive(conn)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _become(call, fds, entry)
                sys.exit(0)  # an entry point that returned
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())


@contextlib.contextmanager
def warm_command(
    where: Path, name: str, entry: str, warm: tuple[str, ...], timeout: float = 120.0
) -> Iterator[Path]:
    """A fork server for `entry` ("module:function") with `warm` imported, and the path of an
    executable `name` that runs the command through it; the server stops on exit."""
    where.mkdir(parents=True, exist_ok=True)
    sock = where / "warm.sock"
    client = where / name
    client.write_text(CLIENT.format(python=sys.executable, path=str(sock)), "utf-8")
    client.chmod(0o755)
    server = subprocess.Popen(  # noqa: S603  (this interpreter, this module)
        [sys.executable, "-m", "billstate_devkit.warm", str(sock), entry, *warm],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not sock.exists():
            if server.poll() is not None:
                raise RuntimeError(f"the fork server for {entry} exited with {server.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fork server for {entry} not listening in {timeout}s")
            time.sleep(0.02)
        yield client
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], tuple(sys.argv[3:]))
