"""The e-mail channel: one multipart (text + HTML) message per notice over SMTP, with aiosmtplib."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
import string
from collections.abc import Callable
from datetime import UTC, datetime
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

Security = Literal["starttls", "tls", "none"]
Clock = Callable[[], datetime]

# RFC 5322 atext without "%", which quote() uses as its escape; "." is handled apart,
# because a dot-atom may not start or end with one or hold two in a row.
_ATEXT = string.ascii_letters + string.digits + "!#$&'*+-/=?^_`{|}~"
# Whatever in a server's reply looks like an address: a token holding "@", bracketed or not.
_ADDRESSISH = re.compile(r"<[^<>]*>|\S*@\S*")
_MAX_REPLY = 200


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

    def __init__(self, config: EmailConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
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
            raise ChannelError(False, f"no {audience} e-mail address on file for this customer")
        try:
            _parse_address(address)
        except ValueError:
            raise ChannelError(
                False, f"the {audience} e-mail address on file is not a usable address"
            ) from None
        message = self.build(notice_id, address, rendered)
        try:
            await self._send(message, address)
        except ChannelError:
            raise
        except aiosmtplib.SMTPAuthenticationError as err:
            if 400 <= err.code < 500:
                raise ChannelError(
                    True, f"SMTP authentication failed temporarily ({err.code})"
                ) from None
            raise ChannelError(False, f"SMTP authentication failed ({err.code})") from None
        except aiosmtplib.SMTPRecipientsRefused as err:
            first = err.recipients[0] if err.recipients else None
            code, text = (first.code, first.message) if first else (550, "")
            raise self._refused("the recipient", code, text) from None
        except aiosmtplib.SMTPRecipientRefused as err:
            raise self._refused("the recipient", err.code, err.message) from None
        except aiosmtplib.SMTPSenderRefused as err:
            raise self._refused("the sender", err.code, err.message) from None
        except aiosmtplib.SMTPDataError as err:
            raise self._refused("the message", err.code, err.message) from None
        except aiosmtplib.SMTPResponseException as err:
            raise self._refused("the session", err.code, err.message) from None
        except aiosmtplib.SMTPTimeoutError:
            raise ChannelError(
                True, f"SMTP server timed out (after {self.config.timeout:g}s)"
            ) from None
        except ssl.SSLCertVerificationError as err:
            raise self._untrusted(err) from None
        except aiosmtplib.SMTPConnectError as err:
            if isinstance(err.__cause__, ssl.SSLCertVerificationError):
                raise self._untrusted(err.__cause__) from None
            raise ChannelError(
                True, f"could not connect to the SMTP server: {self._clean(err.message)}"
            ) from None
        except aiosmtplib.SMTPServerDisconnected:
            raise ChannelError(True, "the SMTP server closed the connection") from None
        except aiosmtplib.SMTPNotSupported as err:
            raise ChannelError(
                False, f"SMTP server does not support this message: {self._clean(err.message)}"
            ) from None
        except aiosmtplib.SMTPException as err:
            raise ChannelError(True, f"SMTP error: {self._clean(err.message)}") from None
        except (TimeoutError, OSError) as err:  # ssl.SSLError is an OSError
            raise ChannelError(
                True, f"SMTP connection failed: {type(err).__name__}: {self._clean(str(err))}"
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
                        False, "SMTP server does not offer STARTTLS; refusing to send in clear"
                    )
                await client.starttls()
            if c.username is not None and c.password is not None:
                await client.ehlo()
                if not client.supports_extension("auth"):
                    raise ChannelError(False, "SMTP server does not offer AUTH; cannot log in")
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

    def _refused(self, what: str, code: int, text: str) -> ChannelError:
        # 4xx is "try again later" in SMTP; 5xx is a verdict.
        retryable = not 500 <= code < 600
        reply = self._clean(text)
        return ChannelError(
            retryable, f"SMTP server refused {what}: {code}{' ' + reply if reply else ''}"
        )

    def _untrusted(self, err: ssl.SSLCertVerificationError) -> ChannelError:
        reason = self._clean(err.verify_message or err.reason or "verification failed")
        return ChannelError(False, f"SMTP server's TLS certificate is not trusted: {reason}")


__all__ = ["EmailChannel", "EmailConfig", "Security", "message_id"]
