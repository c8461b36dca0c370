"""The console in a real headless Chromium, on the four services and a real broker (issue 13)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from billstate_cli.local import CONSOLE
from billstate_cli.summary import ends_now, read_all
from billstate_shared.topics import STATE, group_inputs

from .conftest import Pipeline

pytestmark = pytest.mark.broker

WAIT = 60.0
# Tall enough for the whole customer page in one picture; Chromium grows to the page's
# height up to this (a screenshot shows the window only).
TALLEST = 2600
SUFFIX = uuid.uuid4().hex[:4]
# Business time ends yesterday: a hold an operator places now is the newest entry.
TODAY = datetime.now(UTC).date()
DUE = TODAY - timedelta(days=30)  # Contoso's invoice falls due 30 days ago
CONTOSO = f"contoso-{SUFFIX}"
PROMISED = "INV-2026-0102"


def _at(day: date, hour: int = 6) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def _event(kind: str, cid: str, name: str, day: date, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"{name}-{cid}",
        "event_type": kind,
        "schema_version": 1,
        "occurred_at": _at(day),
        "customer_id": cid,
        "data": data,
    }


def _customer(cid: str, name: str, locale: str, subs: list[str]) -> dict[str, Any]:
    data = {
        "name": name,
        "locale": locale,
        "billing_email": f"ap@{cid}.example",
        "partner_contact_email": "am@partner.example",
        "tags": [],
        "subscription_ids": subs,
    }
    return _event("customer.upserted", cid, "upsert", DUE - timedelta(days=40), data)


def _invoice(cid: str, invoice: str, currency: str, amount: str, due: date) -> dict[str, Any]:
    data = {
        "invoice_id": invoice,
        "currency": currency,
        "amount": amount,
        "issued_on": (due - timedelta(days=30)).isoformat(),
        "due_on": due.isoformat(),
        "subscription_ids": [f"sub-{cid}-1"],
    }
    return _event("invoice.issued", cid, f"issued-{invoice}", due - timedelta(days=30), data)


def _payment(cid: str, invoice: str, currency: str, amount: str, day: date) -> dict[str, Any]:
    data = {
        "payment_id": f"PAY-{invoice}",
        "currency": currency,
        "amount": amount,
        "invoice_id": invoice,
    }
    return _event("payment.received", cid, f"paid-{invoice}", day, data)


def history() -> list[dict[str, Any]]:
    """Contoso is invoiced, falls due, is suspended (21 days past due), pays and is restored,
    then gets its next invoice; four others end current, overdue, final notice, suspended."""
    north, fabrikam = f"northwind-{SUFFIX}", f"fabrikam-{SUFFIX}"
    tailspin, wide = f"tailspin-{SUFFIX}", f"wideworld-{SUFFIX}"
    events = [
        _customer(CONTOSO, "Contoso Ltd.", "en", [f"sub-{CONTOSO}-1"]),
        _customer(north, "Northwind Traders", "en", [f"sub-{north}-1"]),
        _customer(fabrikam, "Fabrikam 台灣", "zh-TW", [f"sub-{fabrikam}-1"]),
        _customer(tailspin, "Tailspin Toys", "en", [f"sub-{tailspin}-1"]),
        _customer(wide, "Wide World Importers", "en", [f"sub-{wide}-1"]),
        _invoice(CONTOSO, "INV-2026-0101", "USD", "1450.00", DUE),
        _payment(CONTOSO, "INV-2026-0101", "USD", "1450.00", DUE + timedelta(days=25)),
        _invoice(CONTOSO, PROMISED, "USD", "980.00", DUE + timedelta(days=57)),
        _invoice(north, "INV-2026-0201", "EUR", "2300.00", DUE - timedelta(days=5)),
        _invoice(fabrikam, "INV-2026-0301", "TWD", "32000", DUE + timedelta(days=10)),
        _invoice(tailspin, "INV-2026-0401", "USD", "640.00", DUE + timedelta(days=20)),
        _payment(tailspin, "INV-2026-0401", "USD", "640.00", DUE + timedelta(days=18)),
        _invoice(wide, "INV-2026-0501", "GBP", "415.50", DUE + timedelta(days=25)),
    ]
    day = DUE - timedelta(days=10)
    while day < TODAY:
        at = _at(day, 1)
        tick = {"event_id": f"tick-{at}", "event_type": "clock.tick", "schema_version": 1,
                "occurred_at": at, "customer_id": "*", "data": {}}  # fmt: skip
        events.append(tick)
        day += timedelta(days=1)
    # Ticks at 01:00 and the rest at 06:00: on a day, the tick comes first.
    return sorted(events, key=lambda e: e["occurred_at"])


class Console:
    """The running console: its base URL and the operator's token."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.base = pipeline.fleet.get(CONSOLE).url("")
        self.token = pipeline.fleet.console_tokens["operator"]


@pytest_asyncio.fixture(scope="module")
async def console(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """The four services and the console on the broker, after the history was played."""
    run = Pipeline(kafka_bootstrap, tmp_path_factory.mktemp("console-browser"))
    try:
        await run.start()
        await run.restart((CONSOLE,))
        await run.drive(history())
        await run.settle()
        inputs = tuple(t.name for t in group_inputs(CONSOLE))
        ends = {
            (tp.topic, tp.partition): n for tp, n in (await ends_now(run.bootstrap, inputs)).items()
        }
        run.fleet.wait_caught_up(CONSOLE, ends, WAIT)
        yield Console(run)
    finally:
        run.fleet.stop()


def until(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)


def whole_page(driver: WebDriver) -> None:
    """Grow the window to the page's height, so a screenshot shows all of it."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 120, TALLEST))


def fonts_for(lang: str) -> bool:
    """Whether fontconfig, which Chromium draws text with, has a font for the language."""
    program = shutil.which("fc-list")  # fontconfig's, which Debian's chromium depends on
    if program is None:
        return False
    command = [program, f":lang={lang}"]
    listed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603  (fixed)
    return bool(listed.stdout.strip())


def sign_in(driver: WebDriver, console: Console, path: str = "/") -> None:
    """Open `path`, get sent to the sign-in form, sign in with the operator's token."""

    driver.get(console.base + path)
    until(driver, lambda d: "/signin" in d.current_url)
    driver.find_element(By.ID, "token").send_keys(console.token)
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    until(driver, lambda d: "/signin" not in d.current_url)
    assert driver.find_element(By.ID, "signout").is_displayed()


def rows(driver: WebDriver, selector: str) -> list[list[str]]:

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in found]


def timeline(driver: WebDriver) -> list[dict[str, str]]:
    """The timeline's entries in page order: kind (the row's class), time, type, what, why."""

    found = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#timeline tr.entry"):
        cells = row.find_elements(By.TAG_NAME, "td")
        at = cells[0].find_element(By.TAG_NAME, "time").get_attribute("datetime") or ""
        kind = (row.get_attribute("class") or "").split()[-1]
        found.append(
            {"kind": kind, "at": at, "type": cells[2].text, "what": cells[3].text,
             "why": cells[4].text}
        )  # fmt: skip
    return found


def test_overview_after_signing_in(
    console: Console, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    sign_in(browser, console)
    assert browser.title == "Overview · billstate console"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    per_stage = {r[0]: int(r[1]) for r in rows(browser, "#per-stage tr") if len(r) == 2}
    for stage in ("current", "overdue", "final notice", "suspended"):
        assert per_stage.get(stage, 0) >= 1, per_stage
    overdue = {r[0]: r[1] for r in rows(browser, "#overdue tr")}
    assert {"EUR", "GBP", "TWD"} <= set(overdue), overdue
    assert overdue["EUR"].startswith("€")
    whole_page(browser)
    screenshot("overview")


def test_search_by_name_and_the_timeline_of_a_suspension_and_restore(
    console: Console, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    sign_in(browser, console, "/customers")
    search = browser.find_element(By.NAME, "q")
    search.send_keys("contoso ltd")  # in the name only, not the id; the search ignores case
    search.submit()
    until(browser, lambda d: "q=contoso+ltd" in d.current_url)
    listed = rows(browser, "#customers tr")[1:]
    assert listed
    assert all("Contoso" in r[1] for r in listed), listed
    assert [CONTOSO, "Contoso Ltd.", "current"] in [r[:3] for r in listed]
    screenshot("customers-search")

    browser.find_element(By.LINK_TEXT, CONTOSO).click()
    until(browser, lambda d: d.current_url.split("?")[0].endswith(f"/customers/{CONTOSO}"))
    assert browser.find_element(By.ID, "stage").text == "current"
    entries = timeline(browser)
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True), "newest first"

    def first(kind: str, pattern: str) -> int:
        """Where the newest entry of that kind whose type and text match is."""
        return next(
            i for i, e in enumerate(entries)
            if e["kind"] == kind and re.search(pattern, f"{e['type']} {e['what']}")
        )  # fmt: skip

    decided = (first("decision", "entered suspended"), first("decision", "entered current"))
    commands = (first("command", "access.suspend "), first("command", "access.restore "))
    results = (first("provider", "suspended at"), first("provider", "restored at"))
    notices = (first("notice", r"\bsuspended\b"), first("notice", r"\brestored\b"))
    for suspension, restore in (decided, commands, results, notices):
        assert restore < suspension, "the restore is newer, so above the suspension"
    for i in (*decided, *commands):
        assert entries[i]["why"], f"a decision and a command say why: {entries[i]}"
    whole_page(browser)
    screenshot("customer-timeline")
    # The README's picture: the timeline from its heading down (the whole page is over 300 KB).
    browser.set_window_size(1280, 1600)
    browser.execute_script(
        "document.getElementById('timeline').previousElementSibling.scrollIntoView()"
    )
    screenshot("customer-timeline-section")


async def test_a_hold_placed_from_the_page_shows_once_collections_applied_it(
    console: Console, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    page = f"/customers/{CONTOSO}"
    sign_in(browser, console, page)
    promised = (TODAY + timedelta(days=14)).isoformat()
    Select(browser.find_element(By.ID, "hold-kind")).select_by_value("promise_to_pay")
    browser.find_element(By.ID, "hold-invoice").send_keys(PROMISED)
    # A date input's typing order follows the browser's locale; its value is ISO everywhere.
    field = browser.find_element(By.ID, "hold-until")
    browser.execute_script("arguments[0].value = arguments[1]", field, promised)
    browser.find_element(By.ID, "hold-reason").send_keys("pays after the board meets")
    browser.find_element(By.CSS_SELECTOR, "#place-hold button[type=submit]").click()
    until(browser, lambda d: "msg=" in d.current_url)

    def shown(d: WebDriver) -> bool:
        d.refresh()
        return bool(d.find_elements(By.CSS_SELECTOR, "#holds tr.hold.promise_to_pay"))

    until(browser, shown)
    (hold,) = browser.find_elements(By.CSS_SELECTOR, "#holds tr.hold.promise_to_pay")
    hold_id = hold.get_attribute("data-hold-id") or ""
    cells = [c.text for c in hold.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == PROMISED
    assert cells[5] == "token:operator"
    entries = timeline(browser)
    assert entries[0]["type"] == "hold.placed", "the newest entry"
    assert hold_id in entries[0]["what"]
    assert entries[0]["why"] == "pays after the board meets"

    # The holds section comes from collections' own state record: the service applied it.
    states = (await read_all(console.pipeline.bootstrap, [STATE.name]))[STATE.name]
    mine = [s for s in states if s["customer_id"] == CONTOSO]
    held = {h["hold_id"]: h for h in mine[-1]["data"]["holds"]}
    assert held[hold_id]["kind"] == "promise_to_pay"
    assert held[hold_id]["until"] == promised
    assert browser.find_element(By.ID, "stage").text == "current"
    whole_page(browser)
    screenshot("customer-hold")
    # The README's picture: the page's top, down to the timeline's first entries (the whole
    # page is over 300 KB).
    browser.set_window_size(1280, 1600)
    screenshot("customer-hold-top")


def test_the_customer_page_in_traditional_chinese(
    console: Console, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    if not fonts_for("zh-tw"):
        pytest.fail("no font for Traditional Chinese: the screenshot would show boxes; install"
                    " fonts-wqy-microhei (make setup-system)", pytrace=False)  # fmt: skip
    sign_in(browser, console, f"/customers/{CONTOSO}?lang=zh-TW")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-TW"
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert {"餘額", "暫緩措施", "時間軸"} <= set(headings), headings
    assert browser.find_element(By.ID, "stage").text == "正常"
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", browser.find_element(By.ID, "since").text)
    invoices = {r[0]: r for r in rows(browser, "#invoices tr") if r}
    assert invoices[PROMISED][3] == "US$980.00"
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", invoices[PROMISED][2])
    labels = [x.text for x in browser.find_elements(By.CSS_SELECTOR, "#place-hold label")]
    assert all(re.search(r"[\u4e00-\u9fff]", x) for x in labels), labels
    whole_page(browser)
    screenshot("customer-zh-TW")
