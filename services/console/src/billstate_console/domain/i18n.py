"""The pages' words in en and zh-TW, which language a request gets, and Babel formatting."""

from __future__ import annotations

import functools
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
        "exposure_totals": "Exposure to Microsoft per currency",
        "exposure": "Exposure to Microsoft",
        "exposure_help": "What Microsoft has billed the partner for the periods the customer"
        " has not paid for",
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
        "command": "command",
        "operator": "operator",
        # customer detail
        "step_line": "{stage} on {date} unless {amounts} is paid",
        "step_plain": "{stage} on {date}",
        "step_waits": "held back: {what}",
        "and": " and ",
        "balances": "Balances",
        "currency": "Currency",
        "open": "Open",
        "credit": "Credit",
        "invoice": "Invoice",
        "issued": "Issued",
        "due": "Due",
        "amount": "Amount",
        "disputed": "Disputed",
        "days_past_due": "Days past due",
        "holds": "Holds",
        "hold_kind": "Kind",
        "until": "Until",
        "reason": "Reason",
        "by": "By",
        "placed_on": "Placed on",
        "promise_to_pay": "promise to pay",
        "dispute": "dispute",
        "manual": "manual hold",
        "pending_payments": "Payments in flight",
        "payment": "Payment",
        "expected_by": "Expected by",
        "subscriptions": "Subscriptions",
        "subscription": "Subscription",
        "access": "Access",
        "reported_at": "Reported at",
        "detail": "Detail",
        "suspended_subscriptions": "Suspended subscriptions",
        "policy": "Policy",
        "contacts": "Contacts",
        "billing_email": "Billing e-mail",
        "partner_email": "Partner contact",
        "access_active": "active",
        "access_suspended": "suspended",
        "access_failed": "failed",
        "access_drift": "drift",
        "access_parked": "parked",
        "access_unknown": "unknown",
        "tag": "Tag",
        "all_tags": "any tag",
        "owes_in": "Owes in",
        "any_currency": "any currency",
        "sort": "Sort by",
        "sort_id": "id",
        "sort_name": "name",
        "sort_stage": "stage",
        "sort_overdue": "overdue",
        "sort_next": "next date",
        "asc": "ascending",
        "desc": "descending",
        "ignored": "Ignored",
    },
    "zh-TW": {
        "title": "billstate 主控台",
        "overview": "總覽",
        "customers": "客戶",
        "customer": "客戶",
        "per_stage": "各階段客戶數",
        "overdue_totals": "各幣別逾期金額",
        "exposure_totals": "各幣別對 Microsoft 的曝險",
        "exposure": "對 Microsoft 的曝險",
        "exposure_help": "客戶尚未付款期間，Microsoft 已向合作夥伴計費的金額",
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
        "command": "存取指令",
        "operator": "操作人員",
        # customer detail
        "step_line": "{date}進入{stage}，除非付清 {amounts}",
        "step_plain": "{date}進入{stage}",
        "step_waits": "暫緩：{what}",
        "and": " 及 ",
        "balances": "餘額",
        "currency": "幣別",
        "open": "未付金額",
        "credit": "溢收款",
        "invoice": "發票",
        "issued": "開立日",
        "due": "到期日",
        "amount": "金額",
        "disputed": "爭議金額",
        "days_past_due": "逾期天數",
        "holds": "暫緩措施",
        "hold_kind": "類別",
        "until": "截止日",
        "reason": "原因",
        "by": "設定者",
        "placed_on": "設定日",
        "promise_to_pay": "承諾付款",
        "dispute": "爭議",
        "manual": "人工暫緩",
        "pending_payments": "處理中的付款",
        "payment": "付款",
        "expected_by": "預計入帳日",
        "subscriptions": "訂閱",
        "subscription": "訂閱",
        "access": "存取狀態",
        "reported_at": "回報時間",
        "detail": "說明",
        "suspended_subscriptions": "已暫停的訂閱",
        "policy": "政策",
        "contacts": "聯絡人",
        "billing_email": "帳務電子郵件",
        "partner_email": "合作夥伴聯絡人",
        "access_active": "使用中",
        "access_suspended": "已暫停",
        "access_failed": "失敗",
        "access_drift": "狀態不符",
        "access_parked": "待核准",
        "access_unknown": "未知",
        "tag": "標籤",
        "all_tags": "任何標籤",
        "owes_in": "欠款幣別",
        "any_currency": "任何幣別",
        "sort": "排序",
        "sort_id": "編號",
        "sort_name": "名稱",
        "sort_stage": "階段",
        "sort_overdue": "逾期金額",
        "sort_next": "下一步日期",
        "asc": "遞增",
        "desc": "遞減",
        "ignored": "已忽略",
    },
}

# operations
MESSAGES["en"].update(
    {
        "escalations": "Escalations",
        "escalation": "Escalation",
        "approvals": "Approvals",
        "dead_letters": "Dead letters",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "token": "Access token",
        "token_refused": "This token signs in no one.",
        "all": "all",
        "case_open": "open",
        "case_acknowledged": "acknowledged",
        "case_resolved": "resolved",
        "case_status": "Status",
        "error": "Error",
        "provider_name": "Provider",
        "actor": "By",
        "escalation_pack": "Escalation pack for Microsoft support (text)",
        "exchanges": "Requests to the provider",
        "request": "Request",
        "answer": "Answer",
        "no_exchanges": "no exchanges recorded",
        "notes": "Notes",
        "note": "Note",
        "step": "Step",
        "acknowledge": "Acknowledge",
        "resolve": "Resolve",
        "sent_message": "Sent; it appears here when it has been processed"
        " (a hold, when collections has processed it).",
        "guard": "Guard",
        "guard_brake": "daily brake",
        "guard_stale_payment_feed": "silent payment feed",
        "parked_at": "Parked at",
        "age": "Waiting",
        "decide": "Decide",
        "approve": "Approve",
        "reject": "Reject",
        "topic": "Topic",
        "position": "Position",
        "source": "Original",
        "service": "Service",
        "redrive": "Re-drive the selected letters",
        "redriven": "Re-driven",
        "release": "Release",
        "place_hold": "Place a hold",
        "hold_refused": "The hold was not sent",
        "hold_invoice": "Invoice (a dispute's)",
        "hold_amount": "Amount (a dispute's part)",
        "hold_until": "Until (a promise to pay's date)",
        "hold_reason": "Reason",
        "hold_kind_dispute": "dispute",
        "hold_kind_promise_to_pay": "promise to pay",
        "hold_kind_manual": "manual hold",
        "operations": "Operations",
        "waiting_approval": "Suspensions waiting for approval",
        "open_escalations": "Open escalations",
        "acknowledged_escalations": "Acknowledged escalations",
        "lag": "Records not yet read, per topic",
        "no_lag": "none behind",
        "audit": "Audit",
        "audit_action": "Action",
        "audit_subject": "On",
        "audit_event": "Event id",
        "audit_result": "Result",
        "result_sent": "sent",
        "result_refused": "refused",
        "result_failed": "failed",
    }
)
MESSAGES["zh-TW"].update(
    {
        "escalations": "待處理問題",
        "escalation": "問題",
        "approvals": "待核准",
        "dead_letters": "無法處理的訊息",
        "sign_in": "登入",
        "sign_out": "登出",
        "token": "存取權杖",
        "token_refused": "此權杖無法登入。",
        "all": "全部",
        "case_open": "未處理",
        "case_acknowledged": "處理中",
        "case_resolved": "已解決",
        "case_status": "狀態",
        "error": "錯誤",
        "provider_name": "供應商",
        "actor": "處理人",
        "escalation_pack": "提交 Microsoft 支援的資料（純文字）",
        "exchanges": "對供應商的請求",
        "request": "請求",
        "answer": "回應",
        "no_exchanges": "沒有記錄任何請求",
        "notes": "備註",
        "note": "備註",
        "step": "步驟",
        "acknowledge": "確認處理",
        "resolve": "標示為已解決",
        "sent_message": "已送出；處理完成後會顯示於此（暫緩項目須待催收服務處理）。",
        "guard": "防護機制",
        "guard_brake": "每日暫停上限",
        "guard_stale_payment_feed": "付款資料中斷",
        "parked_at": "擱置時間",
        "age": "已等待",
        "decide": "決定",
        "approve": "核准",
        "reject": "駁回",
        "topic": "主題",
        "position": "位置",
        "source": "原始位置",
        "service": "服務",
        "redrive": "重新送出所選訊息",
        "redriven": "已重新送出",
        "release": "解除",
        "place_hold": "設定暫緩",
        "hold_refused": "暫緩未送出",
        "hold_invoice": "發票（爭議用）",
        "hold_amount": "金額（爭議部分）",
        "hold_until": "截止日（承諾付款日）",
        "hold_reason": "原因",
        "hold_kind_dispute": "爭議",
        "hold_kind_promise_to_pay": "承諾付款",
        "hold_kind_manual": "人工暫緩",
        "operations": "營運",
        "waiting_approval": "等待核准的暫停",
        "open_escalations": "未處理的問題",
        "acknowledged_escalations": "處理中的問題",
        "lag": "各主題尚未讀取的記錄數",
        "no_lag": "無積壓",
        "audit": "操作紀錄",
        "audit_action": "操作",
        "audit_subject": "對象",
        "audit_event": "事件編號",
        "audit_result": "結果",
        "result_sent": "已送出",
        "result_refused": "已拒絕",
        "result_failed": "失敗",
    }
)

# Support requests (issue 17): the list, the ticket page, the customer's flag.
MESSAGES["en"].update(
    {
        "support": "Support",
        "support_requests": "Open support requests",
        "no_support_requests": "No open support requests.",
        "ticket": "Ticket",
        "support_topic": "Topic",
        "channel": "Channel",
        "summary": "Summary",
        "opened": "Opened",
        "age_today": "today",
        "age_day": "{n} day",
        "age_days": "{n} days",
        "dispute_flag": "Disputed: an open support ticket says the customer disputes the bill",
        "ticket_page": "Support ticket",
        "ticket_resolved": "Resolved",
        "claim_hold": "Claim hold until",
        "customer_state": "The customer's state",
        "access_problems": "Access changes that failed or drifted",
        "no_access_problems": "None: every reported access is as billstate wants it.",
        "escalate": "Escalate to Microsoft commercial support",
        "escalate_help": "billstate cannot fix this by itself: send the pack with the ticket id.",
        "topic_billing_question": "billing question",
        "topic_payment_claimed": "payment claimed",
        "topic_dispute": "dispute",
        "topic_access_problem": "access problem",
    }
)
MESSAGES["zh-TW"].update(
    {
        "support": "客服",
        "support_requests": "未結案的客服單",
        "no_support_requests": "沒有未結案的客服單。",
        "ticket": "客服單",
        "support_topic": "類別",
        "channel": "管道",
        "summary": "摘要",
        "opened": "開立時間",
        "age_today": "今天",
        "age_day": "{n} 天",
        "age_days": "{n} 天",
        "dispute_flag": "帳務爭議：有未結案的客服單表示客戶對帳單有異議",
        "ticket_page": "客服單",
        "ticket_resolved": "已結案",
        "claim_hold": "付款聲明暫緩至",
        "customer_state": "客戶狀態",
        "access_problems": "失敗或不一致的存取變更",
        "no_access_problems": "無：所有回報的存取狀態皆符合 billstate 的設定。",
        "escalate": "提交 Microsoft 商務支援",
        "escalate_help": "billstate 無法自行修正：請連同客服單編號提交此資料。",
        "topic_billing_question": "帳務問題",
        "topic_payment_claimed": "客戶表示已付款",
        "topic_dispute": "帳務爭議",
        "topic_access_problem": "存取問題",
    }
)

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
        return format_currency(Decimal(amount), currency, locale=_locale(self.lang))

    def day(self, iso: str | None) -> str:
        if not iso:
            return self("none")
        return format_date(date.fromisoformat(iso), "medium", locale=_locale(self.lang))


@functools.cache
def _locale(lang: str) -> Locale:
    # Parsed once: Babel parses a locale given by name on every call (0.5 ms each).
    return Locale.parse(lang.replace("-", "_"))


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
