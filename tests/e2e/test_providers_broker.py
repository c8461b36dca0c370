"""The lifecycle end to end with real parts outside: Partner Center (test server) and SMTP.

The services run as processes configured as a partner would configure them (environment and
mounted secret files); the Partner Center test server and the SMTP server run in threads of
the test process. Afterwards the services' logs are scanned for addresses and secrets.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from billstate_devkit.partner_center import PartnerCenterServer
from billstate_devkit.smtp import Received, SmtpTestServer
from billstate_notifications.channels.email import message_id
from billstate_notifications.domain.staff import staff_notice
from billstate_shared.contracts import AccessDrift

from .conftest import ROOT, Pipeline, load_jsonl

pytestmark = pytest.mark.broker

CUSTOMER = "contoso-pc"
TENANT = "6f1c3a52-8d0e-4b7a-9c1f-2e4d5a6b7c8d"
# billstate's subscription ids -> Partner Center's, as the partner's mapping file says.
SUBSCRIPTIONS = {
    "sub-7c1e9a": "a3b9c1d2-0e4f-4a5b-8c6d-7e8f9a0b1c2d",
    "sub-55d0f2": "b4c0d2e3-1f5a-4b6c-9d7e-8f9a0b1c2d3e",
}
CLIENT_SECRET = "pc-client-secret-e2e-9f3b7d"
SMTP_PASSWORD = "smtp-password-e2e-4c8a1e"
FROM = "collections@partner.example"
# What the partner scheduled for the renewal; suspension drops it, restoring brings it back.
SCHEDULED = {"product": {"productId": "CFQ7TTC0LH18"}}


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.1)


async def test_lifecycle_with_partner_center_and_email(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = load_jsonl(ROOT / "docs" / "examples" / "lifecycle.jsonl", "-pc")
    profile = next(e for e in events if e["event_type"] == "customer.upserted")["data"]
    emails = (profile["billing_email"], profile["partner_contact_email"])
    client_secret, mapping = _configure(tmp_path)

    with (
        PartnerCenterServer.in_thread(client_secret=CLIENT_SECRET) as pc,
        SmtpTestServer(password=SMTP_PASSWORD) as smtp,
    ):
        for theirs in SUBSCRIPTIONS.values():
            pc.add_subscription(
                TENANT, theirs, autoRenewEnabled=True, scheduledNextTermInstructions=SCHEDULED
            )
        pipeline = Pipeline(
            kafka_bootstrap, tmp_path, _environment(pc, smtp, client_secret, mapping)
        )
        try:
            await pipeline.start()
            after_restore = await _suspend_then_restore(pipeline, pc, events)
            await _one_email_per_notice(pipeline, smtp, profile)
            await _drift_is_repaired_and_reported(pipeline, pc, smtp, profile, after_restore)
            issued = pc.issued_tokens()
        finally:
            pipeline.fleet.stop()

    # The services' logs hold no address, no secret and no token.
    logs = await asyncio.to_thread(_logs, tmp_path)
    _no_leaks(logs, (*emails, FROM, CLIENT_SECRET, SMTP_PASSWORD, *issued))


def _configure(tmp_path: Path) -> tuple[Path, Path]:
    """The mounted client-secret file and the partner's mapping file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    client_secret = secrets / "client-secret"
    client_secret.write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    mapping = tmp_path / "partner-center.yaml"
    mapping.write_text(
        f"customers:\n  {CUSTOMER}: {TENANT}\nsubscriptions:\n"
        + "".join(f"  {ours}: {theirs}\n" for ours, theirs in SUBSCRIPTIONS.items()),
        encoding="utf-8",
    )
    return client_secret, mapping


def _environment(
    pc: PartnerCenterServer, smtp: SmtpTestServer, client_secret: Path, mapping: Path
) -> dict[str, str]:
    """The services configured as a partner would configure them."""
    return {
        "BILLSTATE_ACCESS_CONTROL_PROVIDER": "partner_center",
        "BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_BASE_URL": pc.base_url,
        "BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_TOKEN_URL": pc.token_url,
        "BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_CLIENT_ID": pc.client_id,
        "BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_CLIENT_SECRET_FILE": str(client_secret),
        "BILLSTATE_ACCESS_CONTROL_PARTNER_CENTER_MAPPING_FILE": str(mapping),
        "BILLSTATE_ACCESS_CONTROL_RECONCILE_INTERVAL": "1",
        "BILLSTATE_ACCESS_CONTROL_RETRY_BASE_DELAY": "0.05",
        "BILLSTATE_NOTIFICATIONS_CHANNEL": "email",
        "BILLSTATE_NOTIFICATIONS_SMTP_HOST": smtp.host,
        "BILLSTATE_NOTIFICATIONS_SMTP_PORT": str(smtp.port),
        "BILLSTATE_NOTIFICATIONS_SMTP_USERNAME": smtp.username,
        "BILLSTATE_NOTIFICATIONS_SMTP_PASSWORD": SMTP_PASSWORD,
        "BILLSTATE_NOTIFICATIONS_SMTP_FROM_ADDRESS": FROM,
        "BILLSTATE_NOTIFICATIONS_SMTP_CA_FILE": str(smtp.ca_file),
    }


async def _suspend_then_restore(
    pipeline: Pipeline, pc: PartnerCenterServer, events: list[dict[str, Any]]
) -> dict[str, int]:
    """Drive the lifecycle; the PATCH count per subscription once it is restored."""
    payment = next(i for i, e in enumerate(events) if e["event_type"] == "payment.received")

    # Unpaid: climbs to suspension; Partner Center shows both subscriptions suspended,
    # auto-renew and the scheduled change dropped, as the real service does.
    await pipeline.drive(events[:payment])
    await pipeline.settle()
    for theirs in SUBSCRIPTIONS.values():
        held = pc.subscription(TENANT, theirs)
        assert held["status"] == "suspended"
        assert held["autoRenewEnabled"] is False
    patches = {t: pc.patches(TENANT, t) for t in SUBSCRIPTIONS.values()}

    # Paid: restored, and what suspension dropped is back.
    await pipeline.drive(events[payment:])
    await pipeline.settle()
    for theirs in SUBSCRIPTIONS.values():
        held = pc.subscription(TENANT, theirs)
        assert held["status"] == "active"
        assert held["autoRenewEnabled"] is True
        assert held.get("scheduledNextTermInstructions") == {
            "product": {"productId": "CFQ7TTC0LH18"}
        }
        assert pc.patches(TENANT, theirs) > patches[theirs]
    return {t: pc.patches(TENANT, t) for t in SUBSCRIPTIONS.values()}


async def _one_email_per_notice(
    pipeline: Pipeline, smtp: SmtpTestServer, profile: dict[str, Any]
) -> None:
    """One e-mail per notice, to the audience's address, in the audience's language."""
    outcome = await pipeline.outcome()
    notices = [
        n for n in outcome.topics["notifications.requests.v1"] if n["customer_id"] == CUSTOMER
    ]
    kinds = Counter(n["data"]["kind"] for n in notices)
    assert kinds["reminder"] == 2
    assert kinds["restored"] == 1

    def one_each(received: list[Received]) -> bool:
        ids = {r.message["Message-ID"] for r in received}
        return all(message_id(n["data"]["notice_id"], "partner.example") in ids
                   for n in notices)  # fmt: skip

    received = await smtp.wait_async(one_each, timeout=60)
    by_id = Counter(r.message["Message-ID"] for r in received)
    for notice in notices:
        data = notice["data"]
        mid = message_id(data["notice_id"], "partner.example")
        assert by_id[mid] == 1, data["notice_id"]
        mail = next(r for r in received if r.message["Message-ID"] == mid)
        assert mail.tls
        assert mail.login == smtp.username
        if data["audience"] == "customer":
            assert mail.rcpt_tos == (profile["billing_email"],)
            assert mail.message["Content-Language"] == "zh-TW"
        else:
            assert mail.rcpt_tos == (profile["partner_contact_email"],)
            assert mail.message["Content-Language"] == "en"
        assert mail.message["Subject"]
        assert mail.text()
        assert mail.html()
    overdue = [
        r for r in received if r.message["Content-Language"] == "zh-TW" and "1,450.00" in r.text()
    ]
    assert overdue, "the zh-TW notices state the overdue amount"


async def _drift_is_repaired_and_reported(
    pipeline: Pipeline,
    pc: PartnerCenterServer,
    smtp: SmtpTestServer,
    profile: dict[str, Any],
    after_restore: dict[str, int],
) -> None:
    """Someone suspends a subscription by hand in Partner Center: the reconciler reports
    the drift, puts it back, and staff get a notice."""
    theirs = SUBSCRIPTIONS["sub-7c1e9a"]
    pc.hand_change(TENANT, theirs, status="suspended")
    await asyncio.to_thread(
        until,
        lambda: pc.subscription(TENANT, theirs)["status"] == "active",
        60,
        "the reconciler re-applies the desired state",
    )
    await pipeline.settle()
    drift = [
        e
        for e in (await pipeline.outcome()).topics["access.events.v1"]
        if e["event_type"] == "access.drift" and e["customer_id"] == CUSTOMER
    ]
    [data] = [dict(d["data"]) for d in drift]
    exchanges = data.pop("exchanges")
    assert data == {
        "subscription_id": "sub-7c1e9a",
        "provider": "partner_center",
        "desired": "active",
        "observed": "suspended",
    }
    # The evidence for an escalation: the read that found the drift, then the repair, each
    # with the ids Partner Center received.
    methods = [x["method"] for x in exchanges]
    assert (methods[0], methods[-1]) == ("GET", "PATCH")
    seen = {(r.request_id, r.correlation_id) for r in pc.requests()}
    assert {(x["request_id"], x["correlation_id"]) for x in exchanges} <= seen
    staff = staff_notice(AccessDrift.model_validate(drift[0]), "en")
    staff_mid = message_id(staff.notice_id, "partner.example")
    received = await smtp.wait_async(
        lambda rs: any(r.message["Message-ID"] == staff_mid for r in rs), timeout=60
    )
    (alert,) = [r for r in received if r.message["Message-ID"] == staff_mid]
    assert alert.rcpt_tos == (profile["partner_contact_email"],)
    # Nothing else was touched twice: the other subscription saw no new PATCH.
    other = SUBSCRIPTIONS["sub-55d0f2"]
    assert pc.patches(TENANT, other) == after_restore[other]


def _logs(folder: Path) -> dict[str, str]:
    """Each service's log by file name."""
    return {p.name: p.read_text(errors="replace") for p in folder.glob("*.log")}


def _no_leaks(logs: dict[str, str], leaks: tuple[str, ...]) -> None:
    """Every service line is JSON, and none holds any of `leaks`."""
    assert set(logs) >= {"access-control.log", "notifications.log"}
    assert sum(len(text.splitlines()) for text in logs.values()) > 100
    for name, text in logs.items():
        for line in text.splitlines():
            if line.startswith("{"):
                json.loads(line)  # every service line is JSON
        for secret in leaks:
            assert secret not in text, f"{name} leaks a secret or an address"
