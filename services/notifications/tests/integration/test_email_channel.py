"""The e-mail channel against a real local SMTP server: STARTTLS, AUTH, multipart per locale,
deterministic Message-IDs, and which failures are worth a retry."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from billstate_devkit.events import notice_request
from billstate_devkit.smtp import SmtpTestServer, TlsMode
from billstate_notifications.channels import Channel, ChannelError
from billstate_notifications.channels.email import EmailChannel, EmailConfig, message_id
from billstate_notifications.domain import Rendered, render
from billstate_shared.contracts import NoticeRequested

FROM = "billing@billstate.test"
BILLING = "ap@contoso.example"
PARTNER = "csp@partner.example"
NOW = datetime(2026, 11, 14, 0, 30, tzinfo=UTC)
# RFC 5322 msg-id with a dot-atom id-left and id-right.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
MSG_ID = re.compile(rf"<{_ATOM}(\.{_ATOM})*@{_ATOM}(\.{_ATOM})*>")


def notice(locale: str, notice_id: str = "ntc-final-1", audience: str = "customer") -> Rendered:
    """A final notice as collections would request it, rendered by the real templates."""
    raw = notice_request("contoso", notice_id, audience=audience, locale=locale)
    data = NoticeRequested.model_validate_json(raw).data
    return render(data, "Contoso Ltd", customer_id="contoso")


def config(server: SmtpTestServer, **changes: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "from_address": FROM,
        "from_name": "Fabrikam 帳務",
        "reply_to": "collections@billstate.test",
        "ca_file": server.ca_file,
        "timeout": 5.0,
    }
    values.update(changes)
    return EmailConfig(**values)


def channel(server: SmtpTestServer, **changes: Any) -> EmailChannel:
    return EmailChannel(config(server, **changes), clock=lambda: NOW)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def server(smtp: SmtpTestServer) -> SmtpTestServer:
    smtp.reset()
    return smtp


@pytest.fixture
def other_server(request: pytest.FixtureRequest) -> Iterator[SmtpTestServer]:
    mode: TlsMode = getattr(request, "param", "none")
    with SmtpTestServer(tls=mode) as server:
        yield server


def assert_no_secrets(message: str, server: SmtpTestServer) -> None:
    assert "@" not in message
    assert server.password not in message
    assert server.username not in message


def test_is_a_channel(server: SmtpTestServer) -> None:
    assert isinstance(channel(server), Channel)
    assert channel(server).name == "email"


def test_config_defaults_and_refusals(tmp_path: Path) -> None:
    plain = EmailConfig(host="smtp.example.com", from_address=FROM)
    assert (plain.port, plain.security, plain.timeout) == (587, "starttls", 30.0)
    assert (plain.username, plain.password, plain.ca_file, plain.reply_to) == (None,) * 4
    with pytest.raises(ValidationError, match="loopback") as err:
        EmailConfig(host="smtp.example.com", from_address=FROM, security="none")
    with pytest.raises(ValidationError, match="give both or neither"):
        EmailConfig(host="smtp.example.com", from_address=FROM, username="mailer")
    with pytest.raises(ValidationError) as err:
        EmailConfig(host="smtp.example.com", from_address="not an address <x@y.example>")
    assert "@" not in str(err.value)  # inputs are kept out of validation errors
    with pytest.raises(ValidationError):
        EmailConfig(host="smtp.example.com", from_address=FROM, ca_file=tmp_path / "none.pem")
    with pytest.raises(ValidationError):
        EmailConfig(host="smtp.example.com", from_address=FROM, timeout=0)
    secret = EmailConfig(
        host="127.0.0.1", from_address=FROM, username="mailer@x.example", password="hunter22"
    )
    assert "hunter22" not in repr(secret)
    assert "@" not in repr(secret)


@pytest.mark.parametrize(
    ("locale", "subject", "amount", "suspension", "lang"),
    [
        ("en", "Final notice", "$1,234.50", "November 21, 2026", "en"),
        ("zh-TW", "最後通知：逾期金額 US$1,234.50", "US$1,234.50", "2026年11月21日", "zh-TW"),
    ],
)
async def test_a_notice_is_sent_as_multipart_text_and_html_in_its_locale(
    server: SmtpTestServer, *, locale: str, subject: str, amount: str, suspension: str, lang: str
) -> None:
    rendered = notice(locale)
    await channel(server).deliver("ntc-final-1", "customer", BILLING, rendered)

    (got,) = server.received
    assert got.tls, "the session was upgraded with STARTTLS"
    assert got.login == server.username, "the client authenticated"
    assert (got.mail_from, got.rcpt_tos) == (FROM, (BILLING,))
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == rendered.subject
    assert msg["Subject"].startswith(subject)
    assert msg["To"] == BILLING
    assert msg["From"].addresses[0].addr_spec == FROM
    assert msg["From"].addresses[0].display_name == "Fabrikam 帳務"
    assert msg["Reply-To"] == "collections@billstate.test"
    assert msg["Content-Language"] == lang
    assert msg["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert msg["Message-ID"] == "<ntc-final-1@billstate.test>"

    assert got.text() == rendered.text
    assert got.html() == rendered.html
    for part in (got.text(), got.html()):
        assert amount in part
        assert suspension in part
    assert f'<html lang="{"en" if locale == "en" else "zh-Hant-TW"}">' in got.html()


async def test_the_partner_copy_goes_to_the_address_given(server: SmtpTestServer) -> None:
    rendered = notice("en", "ntc-partner-1", audience="partner")
    await channel(server).deliver("ntc-partner-1", "partner", PARTNER, rendered)
    (got,) = server.received
    assert got.rcpt_tos == (PARTNER,)
    assert "contoso" in got.text()


async def test_the_same_notice_always_gets_the_same_message_id(server: SmtpTestServer) -> None:
    rendered = notice("en")
    mailer = channel(server)
    await mailer.deliver("ntc-again", "customer", BILLING, rendered)
    await mailer.deliver("ntc-again", "customer", BILLING, rendered)
    await mailer.deliver("ntc-other", "customer", BILLING, rendered)
    ids = [r.message["Message-ID"] for r in server.received]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    "notice_id",
    [
        "ntc:contoso:final_notice:2026-11-14",
        "a@b<c>",
        "..lead.and..double.",
        "通知-1",
        'quote"and space\\',
        "x" * 128,
    ],
)
async def test_message_ids_are_valid_and_distinct_for_any_notice_id(
    server: SmtpTestServer, notice_id: str
) -> None:
    expected = message_id(notice_id, "billstate.test")
    assert MSG_ID.fullmatch(expected), expected
    assert expected != message_id(notice_id + "x", "billstate.test")
    await channel(server).deliver(notice_id, "customer", BILLING, notice("en"))
    (got,) = server.received
    assert got.message["Message-ID"] == expected
    assert message_id("ntc-1", "Bücher.example") == "<ntc-1@xn--bcher-kva.example>"


async def test_a_wrong_password_is_a_permanent_failure_without_credentials(
    server: SmtpTestServer,
) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(server, password="not-the-password").deliver(
            "ntc-1", "customer", BILLING, notice("en")
        )
    assert err.value.retryable is False
    assert err.value.message.startswith("SMTP authentication failed")
    assert "not-the-password" not in err.value.message
    assert_no_secrets(err.value.message, server)
    assert server.received == []


@pytest.mark.parametrize("other_server", ["none"], indirect=True)
async def test_a_server_without_starttls_is_refused_not_used_in_clear(
    other_server: SmtpTestServer,
) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(other_server).deliver("ntc-1", "customer", BILLING, notice("en"))
    assert err.value.retryable is False
    assert "does not offer STARTTLS" in err.value.message
    assert other_server.received == []

    # The same server is fine for a loopback test that says so.
    await channel(other_server, security="none").deliver("ntc-1", "customer", BILLING, notice("en"))
    (got,) = other_server.received
    assert (got.tls, got.login) == (False, other_server.username)


@pytest.mark.parametrize("other_server", ["implicit"], indirect=True)
async def test_implicit_tls(other_server: SmtpTestServer) -> None:
    await channel(other_server, security="tls").deliver("ntc-1", "customer", BILLING, notice("en"))
    (got,) = other_server.received
    assert (got.tls, got.login) == (True, other_server.username)


async def test_an_untrusted_certificate_is_refused(server: SmtpTestServer) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(server, ca_file=None).deliver("ntc-1", "customer", BILLING, notice("en"))
    assert err.value.retryable is False
    assert "certificate is not trusted" in err.value.message
    assert server.received == []


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
async def test_a_451_is_retryable_and_the_next_try_delivers(
    server: SmtpTestServer, stage: str
) -> None:
    server.fail(1, 451, "4.3.0 Mailbox busy, try again later", at=stage)  # type: ignore[arg-type]
    mailer = channel(server)
    with pytest.raises(ChannelError) as err:
        await mailer.deliver("ntc-busy", "customer", BILLING, notice("en"))
    assert err.value.retryable is True
    assert "451" in err.value.message
    assert server.received == []

    await mailer.deliver("ntc-busy", "customer", BILLING, notice("en"))
    (got,) = server.received
    assert got.message["Message-ID"] == "<ntc-busy@billstate.test>"


@pytest.mark.parametrize(
    ("stage", "what"), [("RCPT", "refused the recipient"), ("DATA", "refused the message")]
)
async def test_a_550_is_permanent_and_the_reply_loses_its_addresses(
    server: SmtpTestServer, stage: str, what: str
) -> None:
    server.fail(1, 550, f"5.1.1 <{BILLING}>: Recipient address rejected", at=stage)  # type: ignore[arg-type]
    with pytest.raises(ChannelError) as err:
        await channel(server).deliver("ntc-1", "customer", BILLING, notice("en"))
    assert err.value.retryable is False
    assert what in err.value.message
    assert "550" in err.value.message
    assert "Recipient address rejected" in err.value.message
    assert_no_secrets(err.value.message, server)
    assert server.received == []


@pytest.mark.parametrize("audience", ["customer", "partner"])
@pytest.mark.parametrize("address", [None, ""])
async def test_no_address_is_permanent(
    server: SmtpTestServer, audience: Any, address: str | None
) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(server).deliver("ntc-1", audience, address, notice("en"))
    assert err.value.retryable is False
    assert err.value.message == f"no {audience} e-mail address on file for this customer"
    assert server.received == []


@pytest.mark.parametrize(
    "address", ["not-an-address", "ap@contoso.example\r\nBcc: x@evil.example", "a b@c.example"]
)
async def test_an_unusable_address_is_permanent_and_not_repeated(
    server: SmtpTestServer, address: str
) -> None:
    with pytest.raises(ChannelError) as err:
        await channel(server).deliver("ntc-1", "customer", address, notice("en"))
    assert err.value.retryable is False
    assert "not a usable address" in err.value.message
    assert_no_secrets(err.value.message, server)
    assert server.received == []


async def test_a_closed_port_is_retryable() -> None:
    with SmtpTestServer() as gone:
        settings = config(gone, ca_file=None)  # the CA file goes with the server
    with pytest.raises(ChannelError) as err:
        await EmailChannel(settings).deliver("ntc-1", "customer", BILLING, notice("en"))
    assert err.value.retryable is True
    assert "could not connect" in err.value.message


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    listener = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_silent_server_times_out_and_is_retryable(
    server: SmtpTestServer, silent_port: int
) -> None:
    mailer = channel(server, port=silent_port, timeout=0.3)
    with pytest.raises(ChannelError) as err:
        await asyncio.wait_for(mailer.deliver("ntc-1", "customer", BILLING, notice("en")), 10)
    assert err.value.retryable is True
    assert "timed out" in err.value.message
