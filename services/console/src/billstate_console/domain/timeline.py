"""Timeline entries in words, per language, rendered at read time from the stored event."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billstate_console.domain.i18n import Words

# What a timeline entry is, for the pages' grouping and labels.
INBOUND, DECISION, COMMAND, OPERATOR, PROVIDER, NOTICE, DELIVERY = (
    "inbound",
    "decision",
    "command",
    "operator",
    "provider",
    "notice",
    "delivery",
)
KINDS = (INBOUND, DECISION, COMMAND, OPERATOR, PROVIDER, NOTICE, DELIVERY)


@dataclass(frozen=True)
class Told:
    """An entry in one language. `why_lang` is the language of `why` when it is not the
    page's: the engine writes its why in English only."""

    summary: str
    why: str | None = None
    why_lang: str | None = None


Data = dict[str, Any]
Render = Callable[[Data, Words], Told]

# Each event type's sentence; `{...}` are filled by its function below.
SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "customer.upserted": "customer record: {count} subscriptions",
        "invoice.issued": "invoice {invoice} issued: {amount}, due {due}",
        "invoice.adjusted": "invoice {invoice} adjusted by {delta}",
        "invoice.voided": "invoice {invoice} voided",
        "payment.received": "payment {payment} received: {amount}",
        "payment.received.for": "payment {payment} received: {amount} for {invoice}",
        "payment.reversed": "payment {payment} reversed",
        "payment.failed": "payment attempt failed",
        "payment.failed.retry": "payment attempt failed (will retry)",
        "payment.pending": "payment {payment} in flight: {amount} by {by}",
        "collections.stage_entered": "entered {stage} (from {previous})",
        "access.suspend": "suspend {subscriptions} (command {command})",
        "access.restore": "restore {subscriptions} (command {command})",
        "hold.placed": "{kind} {hold} placed by {by}",
        "hold.released": "hold {hold} released by {by}",
        "access.approve": "command {command} approved by {by}",
        "access.reject": "command {command} rejected by {by}",
        "case.acknowledged": "case {case} acknowledged by {by}",
        "case.resolved": "case {case} resolved by {by}",
        "access.suspended": "{subscription} suspended at {provider}",
        "access.restored": "{subscription} restored at {provider}",
        "access.failed": "{subscription}: {provider} failed after {attempts}",
        "access.drift": "{subscription} is {observed} at {provider}, should be {desired}",
        "access.parked": "command {command} parked by the {guard} guard",
        "access.unparked": "command {command} {outcome} by {by}",
        "access.approval_needed": "{count} suspensions wait for approval",
        "notice.requested": "notice to the {audience}: {kind} ({locale})",
        "notice.delivered": "notice {notice} delivered by {channel} ({attempts})",
        "notice.failed": "notice {notice} failed on {channel} ({attempts})",
        "support.requested": "support ticket {ticket}: {topic} (by {channel})",
        "support.resolved": "support ticket {ticket} resolved",
        "support_billing_question": "billing question",
        "support_payment_claimed": "payment claimed",
        "support_dispute": "dispute",
        "support_access_problem": "access problem",
        "attempts.one": "{n} attempt",
        "attempts.other": "{n} attempts",
        # words inside the sentences
        "approved": "approved",
        "rejected": "rejected",
        "cancelled": "cancelled",
        "customer": "customer",
        "partner": "partner",
        "active": "active",
        "suspended": "suspended",
        "hold_dispute": "dispute hold",
        "hold_promise_to_pay": "promise-to-pay hold",
        "hold_manual": "manual hold",
        "notice_restored": "restored",
        "notice_promise_broken": "promise broken",
        "notice_payment_failed": "payment failed",
        "list": ", ",
    },
    "zh-TW": {
        "customer.upserted": "客戶資料：{count} 個訂閱",
        "invoice.issued": "開立發票 {invoice}：{amount}，{due}到期",
        "invoice.adjusted": "發票 {invoice} 調整 {delta}",
        "invoice.voided": "發票 {invoice} 作廢",
        "payment.received": "收到付款 {payment}：{amount}",
        "payment.received.for": "收到付款 {payment}：{amount}，用於 {invoice}",
        "payment.reversed": "付款 {payment} 已退回",
        "payment.failed": "付款失敗",
        "payment.failed.retry": "付款失敗（將重試）",
        "payment.pending": "付款 {payment} 處理中：{amount}，預計 {by} 入帳",
        "collections.stage_entered": "進入{stage}（原為{previous}）",
        "access.suspend": "暫停 {subscriptions}（指令 {command}）",
        "access.restore": "恢復 {subscriptions}（指令 {command}）",
        "hold.placed": "{by} 設定{kind} {hold}",
        "hold.released": "{by} 解除暫緩 {hold}",
        "access.approve": "{by} 核准指令 {command}",
        "access.reject": "{by} 駁回指令 {command}",
        "case.acknowledged": "{by} 確認處理問題 {case}",
        "case.resolved": "{by} 將問題 {case} 標示為已解決",
        "access.suspended": "{subscription} 已於 {provider} 暫停",
        "access.restored": "{subscription} 已於 {provider} 恢復",
        "access.failed": "{subscription}：{provider} {attempts}後失敗",
        "access.drift": "{subscription} 於 {provider} 為{observed}，應為{desired}",
        "access.parked": "指令 {command} 因{guard}而擱置",
        "access.unparked": "指令 {command} 由 {by} {outcome}",
        "access.approval_needed": "{count} 筆暫停等待核准",
        "notice.requested": "寄給{audience}的通知：{kind}（{locale}）",
        "notice.delivered": "通知 {notice} 已由 {channel} 送出（{attempts}）",
        "notice.failed": "通知 {notice} 經 {channel} 送出失敗（{attempts}）",
        "support.requested": "客服單 {ticket}：{topic}（經由 {channel}）",
        "support.resolved": "客服單 {ticket} 已結案",
        "support_billing_question": "帳務問題",
        "support_payment_claimed": "客戶表示已付款",
        "support_dispute": "帳務爭議",
        "support_access_problem": "存取問題",
        "attempts.one": "嘗試 {n} 次",
        "attempts.other": "嘗試 {n} 次",
        "approved": "核准",
        "rejected": "駁回",
        "cancelled": "取消",
        "customer": "客戶",
        "partner": "合作夥伴",
        "active": "使用中",
        "suspended": "已暫停",
        "hold_dispute": "爭議暫緩",
        "hold_promise_to_pay": "承諾付款暫緩",
        "hold_manual": "人工暫緩",
        "notice_restored": "恢復服務",
        "notice_promise_broken": "未履行付款承諾",
        "notice_payment_failed": "付款失敗",
        "list": "、",
    },
}


def _say(w: Words, key: str, **values: object) -> str:
    return SENTENCES[w.lang][key].format(**values)


def _word(w: Words, key: str) -> str:
    return SENTENCES[w.lang].get(key, key)


def _money(w: Words, amount: object, currency: object) -> str:
    return w.money(str(amount), str(currency))


def _attempts(w: Words, n: int) -> str:
    return _say(w, "attempts.one" if n == 1 else "attempts.other", n=n)


def _ours(w: Words, text: str | None) -> tuple[str | None, str | None]:
    """A why our services wrote (the engine, access-control, notifications): English only,
    so marked as such on any other page. A person's words are shown as they were typed."""
    return text, None if w.lang == "en" or text is None else "en"


def _guard(w: Words, guard: str) -> str:
    found = w(f"guard_{guard}")
    return guard if found == f"guard_{guard}" else found


# ---- one function per event type -------------------------------------------------------------


def customer_upserted(d: Data, w: Words) -> Told:
    return Told(_say(w, "customer.upserted", count=len(d.get("subscription_ids", []))))


def invoice_issued(d: Data, w: Words) -> Told:
    text = _say(
        w, "invoice.issued", invoice=d["invoice_id"],
        amount=_money(w, d["amount"], d["currency"]), due=w.day(d["due_on"]),
    )  # fmt: skip
    return Told(text)


def invoice_adjusted(d: Data, w: Words) -> Told:
    # No currency in the event: the delta is a plain signed decimal.
    return Told(_say(w, "invoice.adjusted", invoice=d["invoice_id"], delta=d["amount_delta"]),
                d.get("reason"))  # fmt: skip


def invoice_voided(d: Data, w: Words) -> Told:
    return Told(_say(w, "invoice.voided", invoice=d["invoice_id"]), d.get("reason"))


def payment_received(d: Data, w: Words) -> Told:
    amount = _money(w, d["amount"], d["currency"])
    if d.get("invoice_id"):
        key = "payment.received.for"
        return Told(_say(w, key, payment=d["payment_id"], amount=amount, invoice=d["invoice_id"]))
    return Told(_say(w, "payment.received", payment=d["payment_id"], amount=amount))


def payment_reversed(d: Data, w: Words) -> Told:
    return Told(_say(w, "payment.reversed", payment=d["payment_id"]), d.get("reason"))


def payment_failed(d: Data, w: Words) -> Told:
    key = "payment.failed.retry" if d.get("will_retry") else "payment.failed"
    return Told(_say(w, key), d.get("reason"))


def payment_pending(d: Data, w: Words) -> Told:
    text = _say(
        w, "payment.pending", payment=d["payment_id"],
        amount=_money(w, d["amount"], d["currency"]), by=w.day(d["expected_by"]),
    )  # fmt: skip
    return Told(text)


def stage_entered(d: Data, w: Words) -> Told:
    text = _say(
        w, "collections.stage_entered", stage=w.stage(d["stage"]), previous=w.stage(d["previous"])
    )
    # The engine's why is English text; the repo renders no other language from `Why`.
    return Told(text, *_ours(w, (d.get("why") or {}).get("text")))


def _command(d: Data, w: Words, key: str) -> Told:
    subs = _word(w, "list").join(d.get("subscription_ids", []))
    text = _say(w, key, subscriptions=subs, command=d["command_id"])
    return Told(text, *_ours(w, d.get("reason")))


def access_suspend(d: Data, w: Words) -> Told:
    return _command(d, w, "access.suspend")


def access_restore(d: Data, w: Words) -> Told:
    return _command(d, w, "access.restore")


def hold_placed(d: Data, w: Words) -> Told:
    kind = _word(w, f"hold_{d['kind']}")
    return Told(_say(w, "hold.placed", kind=kind, hold=d["hold_id"], by=d["by"]), d.get("reason"))


def hold_released(d: Data, w: Words) -> Told:
    return Told(_say(w, "hold.released", hold=d["hold_id"], by=d["by"]), d.get("reason"))


def access_approve(d: Data, w: Words) -> Told:
    return Told(_say(w, "access.approve", command=d["command_id"], by=d["by"]), d.get("reason"))


def access_reject(d: Data, w: Words) -> Told:
    return Told(_say(w, "access.reject", command=d["command_id"], by=d["by"]), d.get("reason"))


def case_acknowledged(d: Data, w: Words) -> Told:
    return Told(_say(w, "case.acknowledged", case=d["case_id"], by=d["by"]), d.get("note"))


def case_resolved(d: Data, w: Words) -> Told:
    return Told(_say(w, "case.resolved", case=d["case_id"], by=d["by"]), d.get("note"))


def access_suspended(d: Data, w: Words) -> Told:
    key = "access.suspended"
    return Told(_say(w, key, subscription=d["subscription_id"], provider=d["provider"]))


def access_restored(d: Data, w: Words) -> Told:
    key = "access.restored"
    return Told(_say(w, key, subscription=d["subscription_id"], provider=d["provider"]))


def access_failed(d: Data, w: Words) -> Told:
    text = _say(
        w, "access.failed", subscription=d["subscription_id"], provider=d["provider"],
        attempts=_attempts(w, d["attempts"]),
    )  # fmt: skip
    return Told(text, *_ours(w, d.get("error")))


def access_drift(d: Data, w: Words) -> Told:
    text = _say(
        w, "access.drift", subscription=d["subscription_id"], provider=d["provider"],
        observed=_word(w, str(d["observed"])), desired=_word(w, d["desired"]),
    )  # fmt: skip
    return Told(text)


def access_parked(d: Data, w: Words) -> Told:
    guard = _guard(w, d["guard"])
    text = _say(w, "access.parked", command=d["command_id"], guard=guard)
    return Told(text, *_ours(w, d.get("reason")))


def access_unparked(d: Data, w: Words) -> Told:
    text = _say(
        w, "access.unparked", command=d["command_id"], outcome=_word(w, d["outcome"]), by=d["by"]
    )
    return Told(text, d.get("reason"))


def approval_needed(d: Data, w: Words) -> Told:
    return Told(_say(w, "access.approval_needed", count=d["count"]), *_ours(w, d.get("reason")))


def notice_requested(d: Data, w: Words) -> Told:
    # A notice is named after a stage, or is one of the engine's other notices.
    kind = SENTENCES[w.lang].get(f"notice_{d['kind']}") or w.stage(d["kind"])
    text = _say(
        w, "notice.requested", kind=kind, audience=_word(w, d["audience"]),
        locale=d["locale"],
    )  # fmt: skip
    return Told(text)


def notice_delivered(d: Data, w: Words) -> Told:
    text = _say(
        w, "notice.delivered", notice=d["notice_id"], channel=d["channel"],
        attempts=_attempts(w, d["attempts"]),
    )  # fmt: skip
    return Told(text)


def notice_failed(d: Data, w: Words) -> Told:
    text = _say(
        w, "notice.failed", notice=d["notice_id"], channel=d["channel"],
        attempts=_attempts(w, d["attempts"]),
    )  # fmt: skip
    return Told(text, *_ours(w, d.get("error")))


def support_requested(d: Data, w: Words) -> Told:
    topic = _word(w, f"support_{d['topic']}")
    text = _say(w, "support.requested", ticket=d["ticket_id"], topic=topic, channel=d["channel"])
    # The summary is the customer's words, shown as they were typed.
    return Told(text, d.get("summary"))


def support_resolved(d: Data, w: Words) -> Told:
    return Told(_say(w, "support.resolved", ticket=d["ticket_id"]), d.get("resolution"))


# The event types the timeline shows: their kind and their function.
RENDER: dict[str, tuple[str, Render]] = {
    "customer.upserted": (INBOUND, customer_upserted),
    "invoice.issued": (INBOUND, invoice_issued),
    "invoice.adjusted": (INBOUND, invoice_adjusted),
    "invoice.voided": (INBOUND, invoice_voided),
    "payment.received": (INBOUND, payment_received),
    "payment.reversed": (INBOUND, payment_reversed),
    "payment.failed": (INBOUND, payment_failed),
    "payment.pending": (INBOUND, payment_pending),
    "collections.stage_entered": (DECISION, stage_entered),
    "access.suspend": (COMMAND, access_suspend),
    "access.restore": (COMMAND, access_restore),
    "hold.placed": (OPERATOR, hold_placed),
    "hold.released": (OPERATOR, hold_released),
    "access.approve": (OPERATOR, access_approve),
    "access.reject": (OPERATOR, access_reject),
    "case.acknowledged": (OPERATOR, case_acknowledged),
    "case.resolved": (OPERATOR, case_resolved),
    "access.suspended": (PROVIDER, access_suspended),
    "access.restored": (PROVIDER, access_restored),
    "access.failed": (PROVIDER, access_failed),
    "access.drift": (PROVIDER, access_drift),
    "access.parked": (PROVIDER, access_parked),
    "access.unparked": (PROVIDER, access_unparked),
    "access.approval_needed": (PROVIDER, approval_needed),
    "support.requested": (INBOUND, support_requested),
    "support.resolved": (INBOUND, support_resolved),
    "notice.requested": (NOTICE, notice_requested),
    "notice.delivered": (DELIVERY, notice_delivered),
    "notice.failed": (DELIVERY, notice_failed),
}


def kind_of(event_type: str) -> str | None:
    """The entry's kind; None for an event the timeline does not show."""
    found = RENDER.get(event_type)
    return None if found is None else found[0]


def tell(event_type: str, data: Data, words: Words) -> Told:
    """The entry of a shown event type in the language of `words`."""
    return RENDER[event_type][1](data, words)


def tell_raw(raw: str, words: Words) -> Told:
    """The entry from the event's stored JSON."""
    body = json.loads(raw)
    return tell(body["event_type"], body["data"], words)
