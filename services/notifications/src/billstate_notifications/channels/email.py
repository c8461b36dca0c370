"""The e-mail channel: one multipart (text + HTML) message per notice over SMTP, with aiosmtplib."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
import string
from datetime import UTC
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal
from urllib.parse import quote

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, model_validator

from billstate_notifications.channels.base import Audience, ChannelError
from billstate_notifications.domain import Rendered
from billstate_shared.logging import EMAIL
from billstate_shared.runtime.wallclock import WallClock, utc_now

Security = Literal["starttls", "tls", "none"]

# RFC 5322 atext without "%", which quote() uses as its escape; "." is handled apart,
# because a dot-atom may not start or end with one or hold two in a row.
_ATEXT = string.ascii_letters + string.digits + "!#$&'*+-/=?^_`{|}~"
# Whatever in a server's reply looks like an address: a token holding "@", bracketed or not.
_ADDRESSISH = re.compile(r"<[^<>]*>|\S*@\S*")
_MAX_REPLY = 200
# What a server refused, by the kind of reply (the first that fits; the last fits every reply).
_REFUSED: tuple[tuple[type[aiosmtplib.SMTPResponseException], str], ...] = (
    (aiosmtplib.SMTPRecipientRefused, "the recipient"),
    (aiosmtplib.SMTPSenderRefused, "the sender"),
    (aiosmtplib.SMTPDataError, "the message"),
    (aiosmtplib.SMTPResponseException, "the session"),
)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_address(value: str) -> Address:
    """An addr-spec (`user@example.com`, no display name), or ValueError (never echoing it)."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be a bare e-mail address without spaces or control characters")
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, TypeError):
        raise ValueError("must be an e-mail address such as billing@example.com") from None
    if not address.username or not address.domain or address.addr_spec != value:
        raise ValueError("must be an e-mail address such as billing@example.com")
    return address


class EmailConfig(BaseModel):
    """How to reach the mail server and whom notices come from.

    `security`: `starttls` (the default) upgrades a plain connection and refuses to go on
    when the server does not offer STARTTLS; `tls` connects over TLS from the start (port
    465 usually); `none` sends in clear and is accepted only for a loopback host (tests).
    `ca_file` is a PEM bundle of a private CA to trust instead of the system's.
    `timeout` bounds each step (connect, each command, the TLS handshake).
    """

    # Inputs stay out of validation errors: they hold addresses and credentials.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = Field(default=None, min_length=1, repr=False)
    password: SecretStr | None = Field(default=None, repr=False)
    security: Security = "starttls"
    from_address: str = Field(repr=False)
    from_name: str | None = None
    reply_to: str | None = Field(default=None, repr=False)
    ca_file: FilePath | None = None
    timeout: float = Field(default=30.0, gt=0.0, le=300.0)

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        _parse_address(self.from_address)
        if self.reply_to is not None:
            _parse_address(self.reply_to)
        if self.from_name is not None and any(ord(ch) < 32 for ch in self.from_name):
            raise ValueError("from_name must be one line")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        if self.security == "none" and not _is_loopback(self.host):
            raise ValueError("security 'none' (no TLS) is only allowed for a loopback host")
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The client TLS context (verifying the certificate and the host name), or None."""
        if self.security == "none":
            return None
        cafile = str(self.ca_file) if self.ca_file is not None else None
        context = ssl.create_default_context(cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def message_id(notice_id: str, domain: str) -> str:
    """`<id@domain>` for a notice: the same notice always gets the same Message-ID.

    The notice id is kept readable where it is RFC 5322 `atext`; anything else (":", "@",
    "<", non-ASCII...) is %-escaped, so the id-left is a valid dot-atom and two notice ids
    never share one Message-ID.
    """
    left = quote(notice_id, safe=_ATEXT + ".")
    if "" in left.split("."):  # a leading, trailing or doubled dot: escape every dot
        left = left.replace(".", "%2E")
    try:
        right = domain.encode("ascii").decode()
    except UnicodeEncodeError:
        right = domain.encode("idna").decode("ascii")
    return f"<{left}@{right.lower()}>"


def _reply(text: str, drop: tuple[str, ...]) -> str:
    """A server's reply text fit for an error: no addresses, no credentials, bounded."""
    for secret in drop:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = " ".join(_ADDRESSISH.sub("[address]", EMAIL.sub("[address]", text)).split())
    return text if len(text) <= _MAX_REPLY else text[: _MAX_REPLY - 3] + "..."


class EmailChannel:
    """Sends each notice as one e-mail: one connection per notice, STARTTLS (or TLS), AUTH.

    Errors say whether a retry may help: connection problems, timeouts and 4xx replies
    may; a 5xx reply, a refused login, an untrusted certificate or a server that will
    not encrypt will not. No error carries an address or a credential.
    """

    name = "email"

    def __init__(self, config: EmailConfig, *, clock: WallClock | None = None) -> None:
        self.config = config
        self._clock: WallClock = clock or utc_now
        self._tls = config.tls_context()
        self._domain = _parse_address(config.from_address).domain

    def build(self, notice_id: str, address: str, rendered: Rendered) -> EmailMessage:
        """The message for one notice: multipart/alternative, text first, then HTML."""
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = rendered.subject
        msg["From"] = Address(display_name=c.from_name or "", addr_spec=c.from_address)
        msg["To"] = Address(addr_spec=address)
        if c.reply_to is not None:
            msg["Reply-To"] = Address(addr_spec=c.reply_to)
        msg["Date"] = format_datetime(self._clock().astimezone(UTC))
        msg["Message-ID"] = message_id(notice_id, self._domain)
        # A notice is machine-sent: ask auto-responders not to answer (RFC 3834).
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(rendered.text, subtype="plain", charset="utf-8")
        msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
        # After the body: making the message multipart moves Content-* headers into a part.
        msg["Content-Language"] = rendered.locale
        return msg

    async def deliver(
        self, notice_id: str, audience: Audience, address: str | None, rendered: Rendered
    ) -> None:
        if not address:
            raise ChannelError(
                f"no {audience} e-mail address on file for this customer", retryable=False
            )
        try:
            _parse_address(address)
        except ValueError:
            raise ChannelError(
                f"the {audience} e-mail address on file is not a usable address", retryable=False
            ) from None
        message = self.build(notice_id, address, rendered)
        try:
            await self._send(message, address)
        except ChannelError:
            raise
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as err:
            raise self._replied(err) from None
        except aiosmtplib.SMTPException as err:
            raise self._transport(err) from None
        except ssl.SSLCertVerificationError as err:
            raise self._untrusted(err) from None
        except (TimeoutError, OSError) as err:  # ssl.SSLError is an OSError
            raise ChannelError(
                f"SMTP connection failed: {type(err).__name__}: {self._clean(str(err))}",
                retryable=True,
            ) from None

    async def _send(self, message: EmailMessage, address: str) -> None:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            timeout=c.timeout,
            use_tls=c.security == "tls",
            # STARTTLS is done by hand below: aiosmtplib's automatic mode would quietly
            # carry on in clear when the server does not offer it.
            start_tls=False,
            tls_context=self._tls,
        )
        await client.connect()
        try:
            if c.security == "starttls":
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    raise ChannelError(
                        "SMTP server does not offer STARTTLS; refusing to send in clear",
                        retryable=False,
                    )
                await client.starttls()
            if c.username is not None and c.password is not None:
                await client.ehlo()
                if not client.supports_extension("auth"):
                    raise ChannelError(
                        "SMTP server does not offer AUTH; cannot log in", retryable=False
                    )
                await client.login(c.username, c.password.get_secret_value())
            await client.send_message(message, sender=c.from_address, recipients=[address])
            # The message was accepted: a failed goodbye changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException):
                await client.quit()
        finally:
            client.close()

    def _clean(self, text: str) -> str:
        c = self.config
        password = c.password.get_secret_value() if c.password is not None else ""
        return _reply(text, (password, c.username or ""))

    def _replied(
        self, err: aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPResponseException
    ) -> ChannelError:
        """A server's reply that refused a step: a login, a recipient, the message..."""
        if isinstance(err, aiosmtplib.SMTPAuthenticationError):
            temporary = 400 <= err.code < 500
            return ChannelError(
                f"SMTP authentication failed {'temporarily ' if temporary else ''}({err.code})",
                retryable=temporary,
            )
        if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
            first = err.recipients[0] if err.recipients else None
            code, text = (first.code, first.message) if first else (550, "")
            return self._refused("the recipient", code, text)
        what = next(label for kind, label in _REFUSED if isinstance(err, kind))
        return self._refused(what, err.code, err.message)

    def _transport(self, err: aiosmtplib.SMTPException) -> ChannelError:
        """A failure to talk to the server at all: retried, unless it will never work."""
        if isinstance(err, aiosmtplib.SMTPTimeoutError):
            return ChannelError(
                f"SMTP server timed out (after {self.config.timeout:g}s)", retryable=True
            )
        if isinstance(err, aiosmtplib.SMTPConnectError):
            if isinstance(err.__cause__, ssl.SSLCertVerificationError):
                return self._untrusted(err.__cause__)
            return ChannelError(
                f"could not connect to the SMTP server: {self._clean(err.message)}",
                retryable=True,
            )
        if isinstance(err, aiosmtplib.SMTPServerDisconnected):
            return ChannelError("the SMTP server closed the connection", retryable=True)
        if isinstance(err, aiosmtplib.SMTPNotSupported):
            return ChannelError(
                f"SMTP server does not support this message: {self._clean(err.message)}",
                retryable=False,
            )
        return ChannelError(f"SMTP error: {self._clean(err.message)}", retryable=True)

    def _refused(self, what: str, code: int, text: str) -> ChannelError:
        # 4xx is "try again later" in SMTP; 5xx is a verdict.
        reply = self._clean(text)
        return ChannelError(
            f"SMTP server refused {what}: {code}{' ' + reply if reply else ''}",
            retryable=not 500 <= code < 600,
        )

    def _untrusted(self, err: ssl.SSLCertVerificationError) -> ChannelError:
        reason = self._clean(err.verify_message or err.reason or "verification failed")
        return ChannelError(
            f"SMTP server's TLS certificate is not trusted: {reason}", retryable=False
        )


__all__ = ["EmailChannel", "EmailConfig", "Security", "message_id"]
