"""Timeline entries are rendered at read time in the page's language: zh-TW words, Babel
money and dates; the engine's English why is marked `lang="en"`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billstate_console.domain.auth import AuthConfig
from billstate_console.domain.i18n import SUPPORTED, Words
from billstate_console.domain.timeline import RENDER, SENTENCES, tell
from billstate_console.store import Store
from billstate_console.web import build_app
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics

Client = TestClient[web.Request, web.Application]
VIEWER = "words-viewer"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def values(data: Any) -> list[str]:
    """Every text and number of an event's data: ids, providers, channels, locales."""
    if isinstance(data, dict):
        return [v for item in data.values() for v in values(item)]
    if isinstance(data, list):
        return [v for item in data for v in values(item)]
    return [] if data is None or isinstance(data, bool) else [str(data)]


def test_every_shown_type_has_its_sentence_in_every_language() -> None:
    for lang in SUPPORTED:
        missing = {t for t in RENDER if t not in SENTENCES[lang]}
        assert not missing, (lang, missing)
    assert set(SENTENCES["en"]) == set(SENTENCES["zh-TW"])


@pytest.mark.parametrize("event_type", sorted(RENDER))
def test_a_zh_tw_summary_has_no_english_words(event_type: str) -> None:
    data = json.loads(EXAMPLES[event_type].model_dump_json())["data"]
    zh = tell(event_type, data, Words("zh-TW")).summary
    en = tell(event_type, data, Words("en")).summary
    assert CJK.search(zh), zh
    left = zh
    for value in sorted(values(data), key=len, reverse=True):  # the event's own values
        left = left.replace(value, "")
    left = re.sub(r"US\$|€|NT\$|£|\d", "", left)  # money and numbers (Babel's)
    assert not re.search(r"[A-Za-z]{2,}", left), (zh, left)
    assert en != zh


def test_money_and_dates_are_babels() -> None:
    data = json.loads(EXAMPLES["invoice.issued"].model_dump_json())["data"]
    assert tell("invoice.issued", data, Words("zh-TW")).summary == (
        "開立發票 INV-2026-0001：US$1,450.00，2026年12月1日到期"
    )
    assert tell("invoice.issued", data, Words("en")).summary == (
        "invoice INV-2026-0001 issued: $1,450.00, due Dec 1, 2026"
    )


def test_the_engines_why_is_english_and_marked_so_off_english() -> None:
    data = json.loads(EXAMPLES["collections.stage_entered"].model_dump_json())["data"]
    zh, en = (
        tell("collections.stage_entered", data, Words("zh-TW")),
        tell("collections.stage_entered", data, Words("en")),
    )
    assert (zh.summary, zh.why_lang) == ("進入提醒（原為正常）", "en")
    assert (en.summary, en.why_lang) == ("entered reminder (from current)", None)
    assert zh.why == en.why == data["why"]["text"]
    # A person's words are shown as typed, unmarked.
    note = json.loads(EXAMPLES["case.resolved"].model_dump_json())["data"]
    assert tell("case.resolved", note, Words("zh-TW")).why_lang is None


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    auth = AuthConfig(tokens=((VIEWER, "viewer"),))
    app = build_app(store, auth, progress=Progress(), metrics=Metrics("console"))
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_the_customer_page_in_zh_tw_has_no_english_summary(client: Client) -> None:
    async with client.get("/customers/contoso?lang=zh-TW", headers=AS_VIEWER) as answer:
        html = await answer.text()
    table = html.split('id="timeline"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="entry (\w+)".*?</tr>', table, re.DOTALL)
    assert len(rows) > 10
    summaries = re.findall(r"</td>\n<td>[^<]*</td>\n<td>([^<]*)</td>\n<td class=\"why\"", table)
    assert len(summaries) == len(rows)
    assert all(CJK.search(s) for s in summaries), summaries
    assert "進入已暫停（原為最後通知）" in summaries
    # Each decision's why is the engine's English, marked so.
    assert table.count('<td class="why" lang="en">') >= 4
    english = await client.get("/customers/contoso?lang=en", headers=AS_VIEWER)
    assert 'lang="en">' not in (await english.text()).split('id="timeline"', 1)[1]


async def test_the_timeline_api_takes_lang(client: Client, store: Store) -> None:
    path = "/api/customers/contoso/timeline"
    async with client.get(f"{path}?lang=zh-TW", headers=AS_VIEWER) as answer:
        zh = (await answer.json())["items"]
    async with client.get(path, headers=AS_VIEWER) as answer:
        en = (await answer.json())["items"]
    assert [e["event_id"] for e in zh] == [e["event_id"] for e in en]
    decided = [(z, e) for z, e in zip(zh, en, strict=True) if e["kind"] == "decision"]
    assert decided
    for z, e in decided:
        assert CJK.search(z["summary"])
        assert e["summary"].startswith("entered ")
        assert (z["why"], z["why_lang"], e["why_lang"]) == (e["why"], "en", None)
    # The English rendering is the one the store keeps for a reader of its table.
    kept = {x.event_id: x.summary for x in store.timeline("contoso")}
    assert kept == {e["event_id"]: e["summary"] for e in en}
