"""A real local SMTP server for tests: aiosmtpd in a thread, STARTTLS and AUTH, faults on demand.

`SmtpTestServer` listens on 127.0.0.1 on a free port, in its own thread and event loop, so
an async test in the same process and a service started as a separate process can both
send to it. By default it offers STARTTLS with a certificate from a throw-away `trustme`
CA (`ca_file` is that CA's PEM, for the client to trust), refuses anything before STARTTLS
and requires AUTH (PLAIN or LOGIN) with the configured credentials. Every accepted message
is kept, parsed, with its envelope. `fail(n, code, message)` makes the next n RCPT or DATA
commands fail with that reply.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import itertools
import logging
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["RCPT", "DATA"]
TlsMode = Literal["starttls", "implicit", "none"]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope, the parsed message, and how the session was held
    (`tls`: after STARTTLS; `login`: the user that authenticated, None without AUTH)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    tls: bool
    login: str | None

    def text(self) -> str:
        """The text/plain part, decoded, with `\n` line ends (the wire has CRLF)."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        content: str = part.get_content()
        return content.replace("\r\n", "\n")

    def html(self) -> str:
        """The text/html part, decoded, with `\n` line ends (the wire has CRLF)."""
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no text/html part"
        content: str = part.get_content()
        return content.replace("\r\n", "\n")


@dataclass
class _Fault:
    stage: Stage
    reply: str


class _Handler:
    """aiosmtpd hooks; they run on the server's thread, so all shared state is locked (the
    owner's `take_fault` and `accept` take its lock)."""

    def __init__(
        self,
        take_fault: Callable[[Stage], str | None],
        accept: Callable[[Received], None],
    ) -> None:
        self.take_fault, self.accept = take_fault, accept
        self.sequence = itertools.count(1)

    async def handle_RCPT(  # noqa: N802  (aiosmtpd looks its hooks up by this name)
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        _rcpt_options: list[str],
    ) -> str:
        fault = self.take_fault("RCPT")
        if fault is not None:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802  (aiosmtpd looks its hooks up by this name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        fault = self.take_fault("DATA")
        if fault is not None:
            return fault
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.accept(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                raw=raw,
                tls=session.ssl is not None or _over_tls(server),
                login=login,
            )
        )
        return f"250 OK queued as t{next(self.sequence)}"


def _over_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("sslcontext") is not None


class _Controller(Controller):
    """aiosmtpd's threaded Controller, bound to port 0 and then told which port it got
    (its readiness probe connects to `self.port`, so the port must be known by then)."""

    auth_in_clear = False

    def factory(self) -> SMTP:
        smtp = SMTP(self.handler, **self.SMTP_kwargs)
        if self.auth_in_clear:
            # Set after construction: the constructor argument makes aiosmtpd warn on
            # every connection, and its warning cannot be filtered from this thread.
            smtp._auth_require_tls = False  # noqa: SLF001  (aiosmtpd has no public setter)
        return smtp

    def _create_server(self) -> Any:
        create = super()._create_server()

        async def bind() -> asyncio.Server:
            server = await create
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bind()


class SmtpTestServer:
    """A local SMTP server; use as a context manager, or start() and stop().

    `tls`: "starttls" (the default) offers STARTTLS and refuses other commands before it;
    "implicit" speaks TLS from the first byte (like port 465); "none" offers no TLS at all
    (and then takes AUTH in clear, as such a server would). `require_auth=False` accepts
    mail without AUTH.
    """

    def __init__(
        self,
        *,
        username: str = "billstate",
        password: str = "smtp-test-password",  # noqa: S107  (a throw-away test credential)
        tls: TlsMode = "starttls",
        require_auth: bool = True,
        directory: Path | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.tls, self.require_auth = tls, require_auth
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="billstate-smtp-"))
        self.ca = trustme.CA()
        self.ca_file = self.directory / "smtp-test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._faults: list[_Fault] = []
        self._controller: _Controller | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        assert self._controller is not None, "start() first"
        return int(self._controller.port)

    def start(self) -> Self:
        # aiosmtpd logs every envelope address at INFO and a deprecation notice per login
        # at WARNING; tests' logs carry no addresses and no noise.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        context: ssl.SSLContext | None = None
        if self.tls != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(HOST, "localhost").configure_cert(context)
        starttls = self.tls == "starttls"
        controller = _Controller(
            _Handler(self._take_fault, self._accept),
            hostname=HOST,
            port=0,
            ssl_context=context if self.tls == "implicit" else None,
            tls_context=context if starttls else None,
            require_starttls=starttls,
            auth_required=self.require_auth,
            authenticator=self._authenticate,
            ready_timeout=10.0,
        )
        # aiosmtpd counts only STARTTLS as TLS: an implicit-TLS session is encrypted but
        # would be refused AUTH, and a server without TLS must take AUTH in clear.
        controller.auth_in_clear = not starttls
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- what tests ask ------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """A copy of the messages accepted so far, in order."""
        with self._lock:
            return list(self._received)

    def fail(
        self,
        times: int = 1,
        code: int = 451,
        message: str = "4.3.0 Try again later",
        *,
        at: Stage = "DATA",
    ) -> None:
        """Reply `code message` to the next `times` RCPT (at="RCPT") or DATA commands."""
        if not 400 <= code < 600:
            raise ValueError("a failure reply is 4xx or 5xx")
        with self._lock:
            self._faults.extend(_Fault(at, f"{code} {message}") for _ in range(times))

    def reset(self) -> None:
        """Forget received messages and pending faults."""
        with self._lock:
            self._received.clear()
            self._faults.clear()

    def wait(
        self, until: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Block until `until(received)` holds; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not until(list(self._received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"SMTP condition not met within {timeout}s;"
                        f" {len(self._received)} messages received"
                    )
                self._lock.wait(left)
            return list(self._received)

    async def wait_async(
        self,
        until: Callable[[list[Received]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109  (bounds the worker thread's wait; a cancel cannot)
    ) -> list[Received]:
        """`wait` for async tests: blocks a worker thread, not the event loop."""
        return await asyncio.to_thread(self.wait, until, timeout)

    # ---- server side (the server's thread) ------------------------------------------------

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(data.login, self.username.encode()) & hmac.compare_digest(
            data.password, self.password.encode()
        )
        if not ok:
            # handled=False makes aiosmtpd answer 535 itself; True would leave the client
            # waiting for a reply nobody sends.
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data)

    def _take_fault(self, stage: Stage) -> str | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.stage == stage:
                    return self._faults.pop(i).reply
        return None

    def _accept(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()


__all__ = ["HOST", "Received", "SmtpTestServer", "Stage", "TlsMode"]
