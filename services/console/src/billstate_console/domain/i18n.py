"""The pages' words in en and zh-TW, which language a request gets, and Babel formatting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

SUPPORTED: tuple[str, ...] = ("en", "zh-TW")
FALLBACK = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "billstate console",
        "overview": "Overview",
        "customers": "Customers",
        "customer": "Customer",
        "per_stage": "Customers per stage",
        "overdue_totals": "Overdue per currency",
        "as_of": "Business date reached",
        "none": "none",
        "stage": "Stage",
        "all_stages": "all stages",
        "search": "Search by id or name",
        "find": "Find",
        "id": "Id",
        "name": "Name",
        "overdue": "Overdue",
        "next": "Next step",
        "since": "Since",
        "why": "Why",
        "timeline": "Timeline",
        "time": "Time",
        "kind": "Kind",
        "event": "Event",
        "what": "What",
        "previous": "Previous",
        "following": "Next page",
        "page": "Page",
        "count": "Count",
        "not_found": "No such customer",
        "waiting": "Waiting for",
        "tags": "Tags",
        "signed_in": "Signed in as",
        "next_line": "{stage} on {date}",
        "inbound": "inbound",
        "decision": "decision",
        "provider": "provider",
        "notice": "notice",
        "delivery": "delivery",
    },
    "zh-TW": {
        "title": "billstate 主控台",
        "overview": "總覽",
        "customers": "客戶",
        "customer": "客戶",
        "per_stage": "各階段客戶數",
        "overdue_totals": "各幣別逾期金額",
        "as_of": "已處理至營業日",
        "none": "無",
        "stage": "階段",
        "all_stages": "所有階段",
        "search": "以編號或名稱搜尋",
        "find": "搜尋",
        "id": "編號",
        "name": "名稱",
        "overdue": "逾期金額",
        "next": "下一步",
        "since": "起始日",
        "why": "原因",
        "timeline": "時間軸",
        "time": "時間",
        "kind": "類別",
        "event": "事件",
        "what": "內容",
        "previous": "上一頁",
        "following": "下一頁",
        "page": "頁次",
        "count": "數量",
        "not_found": "查無此客戶",
        "waiting": "等待中",
        "tags": "標籤",
        "signed_in": "登入身分",
        "next_line": "{date}進入{stage}",
        "inbound": "帳務事件",
        "decision": "決策",
        "provider": "供應商結果",
        "notice": "通知",
        "delivery": "寄送結果",
    },
}

# The standard policy's stages; a stage a policy adds shows its own label.
STAGES: dict[str, dict[str, str]] = {
    "zh-TW": {
        "current": "正常",
        "reminder": "提醒",
        "overdue": "逾期",
        "final_notice": "最後通知",
        "suspended": "已暫停",
    },
}


@dataclass(frozen=True)
class Words:
    """One language's words and formats, as the templates use them."""

    lang: str

    def __call__(self, key: str) -> str:
        return MESSAGES[self.lang].get(key, MESSAGES[FALLBACK].get(key, key))

    def stage(self, label: str | None) -> str:
        if label is None:
            return self("none")
        return STAGES.get(self.lang, {}).get(label, label.replace("_", " "))

    def money(self, amount: str, currency: str) -> str:
        return format_currency(Decimal(amount), currency, locale=self.lang.replace("-", "_"))

    def day(self, iso: str | None) -> str:
        if not iso:
            return self("none")
        return format_date(date.fromisoformat(iso), "medium", locale=self.lang.replace("-", "_"))


def _supported(tag: str) -> str | None:
    try:
        parsed = Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    if parsed.language == "en":
        return "en"
    if parsed.language == "zh" and (parsed.script == "Hant" or parsed.territory in {"TW", "HK"}):
        return "zh-TW"
    return None


def choose(lang: str | None, accept_language: str | None) -> str:
    """`?lang=` first, then Accept-Language by quality; en when neither names ours."""
    if lang and (chosen := _supported(lang)):
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag.strip() and tag.strip() != "*":
            ranked.append((-quality, index, tag.strip()))
    for quality, _index, tag in sorted(ranked):
        if quality < 0 and (chosen := _supported(tag)):
            return chosen
    return FALLBACK
