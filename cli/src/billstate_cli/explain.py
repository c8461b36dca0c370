"""Render a policy as the customer-facing collections policy, in Markdown (en, zh-TW)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.lists import format_list
from babel.numbers import format_decimal, get_currency_precision

from billstate_shared.domain.policy import DEFAULT_KEY, WEEKDAYS, Policy, Stage
from billstate_shared.errors import Refused

__all__ = ["LOCALES", "explain", "stage_title"]

LOCALES: Final = ("en", "zh-TW")


@dataclass(frozen=True)
class _Words:
    """Everything locale-specific: fixed sentences, templates and the few grammar rules."""

    tag: str
    babel_locale: str
    sentence_gap: str  # between sentences: a space in English, nothing in Chinese
    stage_titles: dict[str, str]
    # How a gate refers to time spent in a known previous stage ("the final notice").
    stage_events: dict[str, str]
    days: Callable[[str, int], str]  # (formatted number, count) -> "7 days"
    join: Callable[[Sequence[str]], str]
    title: str
    intro: str
    dates_heading: str
    dates: str
    reminders_heading: str
    reminders: str
    no_reminders: str
    minimum_heading: str
    minimum: str
    minimum_other: str
    stages_heading: str
    stages_intro: str
    stages_suspension_date: str
    table_header: tuple[str, str, str, str]
    starts: str
    starts_gated: str
    gate_event_unknown: str
    gate_after_current: str
    notify: dict[tuple[str, ...], str]
    suspend: dict[str, str]
    access_unaffected: str
    access_restored: str
    avoid_heading: str
    pay: str
    dispute: str
    promise: str
    business_days: str
    public_holidays: str
    partner_holidays: str
    in_flight: str
    confirmed: str
    exposure: str
    # Billing support (policy `support:`); days as Babel names of this width, runs of
    # consecutive days as `day_range`.
    support_heading: str
    support_hours: str
    day_width: str
    day_range: str
    contact_labels: dict[str, str]
    language_names: dict[str, str]
    support_cost: str
    label: str  # "{label}: {text}" in a list item
    business_days_count: Callable[[str, int], str]
    payment_claim: str
    footer: str


def _en_days(number: str, count: int) -> str:
    return f"{number} day" if count == 1 else f"{number} days"


def _en_join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


_EN: Final = _Words(
    tag="en",
    babel_locale="en",
    sentence_gap=" ",
    stage_titles={"overdue": "Overdue", "final_notice": "Final notice", "suspended": "Suspended"},
    stage_events={
        "overdue": "the overdue notice",
        "final_notice": "the final notice",
        "suspended": "the suspension",
    },
    days=_en_days,
    join=_en_join,
    title="Collections policy: {name} (version {version})",
    intro=(
        "This is how we handle invoices that are not paid on time, and exactly when access to "
        "your subscriptions can be affected."
    ),
    dates_heading="Dates",
    dates=(
        "All dates are business dates in the {zone} time zone, that is, calendar dates there; "
        "days are counted as calendar days, weekends and holidays included. A due date ends at "
        "midnight in that time zone: an invoice that still has an unpaid "
        "amount when its due date ends is overdue from the next day."
    ),
    reminders_heading="Reminders",
    reminders=(
        "For each invoice that is not yet paid, we send you a reminder {when} before its due date."
    ),
    no_reminders="We do not send reminders before the due date.",
    minimum_heading="Minimum overdue amounts",
    minimum=(
        "Collections start only when your overdue balance in a currency reaches the minimum for "
        "that currency; a smaller overdue balance never escalates."
    ),
    minimum_other="Any other currency: {amount}",
    stages_heading="Stages",
    stages_intro=(
        "Days are counted from the due date of your oldest overdue invoice. The stages below come "
        "one at a time, in this order, and none is ever skipped; the notices of a stage go out "
        "when it starts."
    ),
    stages_suspension_date=(
        "Every notice before suspension gives the date from which your subscriptions can be "
        "suspended if nothing is paid."
    ),
    table_header=("Stage", "Starts", "What happens", "Access to your subscriptions"),
    starts="{days} after the due date",
    starts_gated="At the earliest {days} after the due date, and at least {gate} after {event}",
    gate_event_unknown="the “{title}” stage began",
    gate_after_current="your account was last up to date",
    notify={
        (): "No notice.",
        ("customer",): "A notice to you.",
        ("partner",): "A notice to your partner.",
        ("customer", "partner"): "Notices to you and to your partner.",
    },
    suspend={
        "overdue_subscriptions": "The subscriptions billed on your overdue invoices are suspended.",
        "all_subscriptions": "All your subscriptions are suspended.",
    },
    access_unaffected="Not affected.",
    access_restored=(
        "Restored automatically as soon as the overdue balance is paid, falls below the minimum, "
        "or is disputed; a notice tells you so."
    ),
    avoid_heading="How to avoid or end collections",
    pay=(
        "**Pay.** A payment for a specific invoice pays that invoice; the rest pays your invoices "
        "in the same currency, oldest due date first, and anything left is credit for your next "
        "invoice in that currency. As soon as your overdue balance is paid or falls below the "
        "minimum, collections stop at once. If a payment settles your oldest overdue invoice, "
        "days are counted from the next oldest one and you move back to the matching stage at "
        "once."
    ),
    dispute=(
        "**Dispute an invoice.** Amounts in dispute do not count toward your overdue balance."
    ),
    promise=(
        "**Promise to pay.** You can promise to pay by a date up to {max_days} ahead. Until that "
        "date, inclusive, collections do not move to a later stage. If your balance is still "
        "overdue on the day after it, the promise is broken: we send you a notice and collections "
        "resume."
    ),
    business_days=(
        "Suspension happens only on business days: not on {weekend}{holidays}. When the date a "
        "suspension would fall on is not a business day, it happens on the next business day, "
        "and the date in every notice is that business day."
    ),
    confirmed=(
        "A suspension can also wait for a person to confirm it: when unusually many "
        "suspensions fall due at once, or when our record of payments may be out of date. "
        "It then comes later than the date in the notice, never earlier, and not at all if "
        "you pay in the meantime."
    ),
    public_holidays=", nor on public holidays in {country}",
    partner_holidays=", nor on {dates}",
    in_flight=(
        "**Tell us a payment is on its way.** While a payment you have started (a bank transfer, "
        "a card payment still settling) is expected, for up to {max_days}, and it would bring "
        "your overdue balance in its currency below the minimum, your subscriptions are not "
        "suspended; other notices still go out. If it has not arrived by the expected date, "
        "collections resume the day after."
    ),
    exposure=(
        "We pay Microsoft for your subscriptions whether or not you pay us. While your balance is "
        "overdue, once what Microsoft has billed us for your unpaid periods exceeds {amounts}, "
        "our staff review your account; this does not change the dates above."
    ),
    support_heading="Support",
    support_hours="Billing support answers {days}, {opens}-{closes} ({zone} time), in {languages}.",
    day_width="wide",
    day_range="{first} to {last}",
    contact_labels={"email": "E-mail", "phone": "Phone", "web": "Web form"},
    language_names={"en": "English", "zh-TW": "Traditional Chinese"},
    support_cost="What billing support costs:",
    label="{label}: {text}",
    business_days_count=lambda n, count: f"{n} business day" + ("" if count == 1 else "s"),
    payment_claim=(
        "**Tell billing support you have paid.** If you tell billing support that you have "
        "already paid (a payment_claimed request), your subscriptions are not suspended for "
        "{days} after the day you filed it, once per delinquency episode; resolving the ticket "
        "ends the wait. Other stages and notices go on as usual."
    ),
    footer=(
        "_Generated from policy “{name}” version {version}; our collections system follows the "
        "same file._"
    ),
)


def _zh_days(number: str, _count: int) -> str:  # Chinese has no plural
    return f"{number} 天"


def _zh_join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    # Taiwanese typesetting puts a space between a Chinese character and a digit; "、" is
    # full-width punctuation and carries its own spacing.
    gap = " " if items[-1][:1].isdigit() else ""
    return f"{'、'.join(items[:-1])}及{gap}{items[-1]}"


_ZH_TW: Final = _Words(
    tag="zh-TW",
    babel_locale="zh_Hant_TW",
    sentence_gap="",
    stage_titles={"overdue": "逾期", "final_notice": "最後通知", "suspended": "已暫停"},
    stage_events={"overdue": "逾期通知", "final_notice": "最後通知", "suspended": "暫停"},
    days=_zh_days,
    join=_zh_join,
    title="催收政策：{name}（第 {version} 版）",
    intro="本文說明帳單未按時付款時我們的處理方式，以及您的訂閱服務在何時可能受到影響。",
    dates_heading="日期",
    dates=(
        "所有日期皆為 {zone} 時區的營業日期，即該時區的日曆日期；"
        "天數以日曆天計算，週末及假日亦計入。"
        "到期日於該時區的午夜結束：到期日結束時仍有未付金額的帳單，自隔天起即為逾期。"
    ),
    reminders_heading="付款提醒",
    reminders="對於尚未付清的帳單，我們會在到期日前 {when}寄送提醒通知。",
    no_reminders="到期日前不另行寄送提醒。",
    minimum_heading="最低逾期金額",
    minimum=(
        "只有當某一幣別的逾期餘額達到該幣別的最低金額時，才會開始催收；"
        "低於最低金額的逾期餘額不會進入下一步處理。"
    ),
    minimum_other="其他幣別：{amount}",
    stages_heading="催收階段",
    stages_intro=(
        "逾期天數自您最早一張逾期帳單的到期日起算。"
        "以下各階段依序逐一進行，不會跳過任何階段；每個階段開始時即寄出該階段的通知。"
    ),
    stages_suspension_date="暫停前的每一則通知都會載明：若仍未付款，您的訂閱最早可能被暫停的日期。",
    table_header=("階段", "開始時間", "處理方式", "訂閱服務"),
    starts="到期日後 {days}",
    starts_gated="最早於到期日後 {days}，且在{event}後至少 {gate}",
    gate_event_unknown="「{title}」階段開始",
    gate_after_current="帳戶恢復正常",
    notify={
        (): "不寄送通知。",
        ("customer",): "通知您。",
        ("partner",): "通知您的合作夥伴。",
        ("customer", "partner"): "通知您及您的合作夥伴。",
    },
    suspend={
        "overdue_subscriptions": "暫停逾期帳單所計費的訂閱。",
        "all_subscriptions": "暫停您所有的訂閱。",
    },
    access_unaffected="不受影響。",
    access_restored="逾期餘額一經付清、低於最低金額或提出爭議，即自動恢復，並寄送通知告知您。",
    avoid_heading="如何避免或結束催收",
    pay=(
        "**付款。** 指定帳單的付款會支付該帳單；其餘金額依到期日由早至晚支付同一幣別的帳單，"
        "剩餘款項則作為抵用額，支付該幣別的下一張帳單。逾期餘額一經付清或低於最低金額，"
        "催收即刻停止。若付款付清了最早的逾期帳單，逾期天數改由下一張最早的逾期帳單起算，"
        "並立即退回對應的階段。"
    ),
    dispute="**對帳單提出爭議。** 爭議中的金額不計入逾期餘額。",
    promise=(
        "**承諾付款。** 您可以承諾在 {max_days}內的某一日期前付款。在該日期（含當日）之前，"
        "催收不會進入下一階段。若承諾日期隔天仍有逾期餘額，即視為未履行承諾："
        "我們會寄送通知，並恢復催收。"
    ),
    business_days=(
        "暫停只會在營業日進行，{weekend}{holidays}均不進行暫停。"
        "若暫停日不是營業日，將順延至下一個營業日，每則通知所載的日期即為該營業日。"
    ),
    confirmed=(
        "暫停也可能先由專人確認後才執行：例如同時有異常大量的暫停到期，"
        "或我們的付款紀錄可能尚未更新時。此時暫停會晚於通知所載日期，絕不會提前；"
        "若您在此期間付款，則不會暫停。"
    ),
    public_holidays="，以及{country}的國定假日",
    partner_holidays="，以及 {dates}",
    in_flight=(
        "**告知我們款項正在處理中。** 當您已開始付款（例如銀行轉帳或仍在處理中的信用卡付款），"
        "在預計入帳日之前（最長 {max_days}），且該筆款項足以使該幣別的逾期餘額低於最低金額時，"
        "您的訂閱不會被暫停；其他通知仍會照常寄送。若款項未於預計日期入帳，催收將於隔天恢復。"
    ),
    exposure=(
        "無論您是否付款，我們都須為您的訂閱向 Microsoft 付費。在您有逾期餘額期間，"
        "若 Microsoft 就您未付款的期間向我們計費的金額超過 {amounts}，"
        "我們的人員將審閱您的帳戶；此審閱不會改變上述日期。"
    ),
    support_heading="帳務支援",
    support_hours="帳務支援服務時間為{days} {opens}-{closes}（{zone} 時間），提供{languages}服務。",
    day_width="abbreviated",
    day_range="{first}至{last}",
    contact_labels={"email": "電子郵件", "phone": "電話", "web": "網路表單"},
    language_names={"en": "英文", "zh-TW": "繁體中文"},
    support_cost="帳務支援費用：",
    label="{label}：{text}",
    business_days_count=lambda n, _count: f"{n} 個營業日",
    payment_claim=(
        "**告知帳務支援您已付款。** 若您告知帳務支援您已付款（payment_claimed 支援請求），"
        "在提出當日及其後 {days}內，您的訂閱不會被暫停，每次逾期期間僅適用一次；"
        "支援請求結案即結束等候。其他階段與通知照常進行。"
    ),
    footer="_本文件由政策「{name}」第 {version} 版產生；我們的催收系統依據同一份檔案執行。_",
)

_WORDS: Final = {words.tag: words for words in (_EN, _ZH_TW)}


def explain(policy: Policy, locale: str) -> str:
    """The customer-facing collections policy for `policy` in `locale` (one of LOCALES)."""
    return _Renderer(policy, _words(locale)).render()


def stage_title(name: str, locale: str) -> str:
    """A stage identifier as customers read it; unknown names are humanised identifiers."""
    return _title(name, _words(locale))


def _words(locale: str) -> _Words:
    try:
        return _WORDS[locale]
    except KeyError:
        raise Refused(
            "locale", f"unsupported locale {locale!r}; expected one of {LOCALES}"
        ) from None


def _title(name: str, words: _Words) -> str:
    return words.stage_titles.get(name) or name.replace("_", " ").capitalize()


class _Renderer:
    def __init__(self, policy: Policy, words: _Words) -> None:
        self.policy = policy
        self.words = words
        self.locale = Locale.parse(words.babel_locale)

    def render(self) -> str:
        w, p = self.words, self.policy
        lines = [
            f"# {w.title.format(name=p.name, version=self._number(p.version))}",
            "",
            w.intro,
            "",
            f"## {w.dates_heading}",
            "",
            w.dates.format(zone=p.timezone),
            "",
            f"## {w.reminders_heading}",
            "",
            self._reminders(),
            "",
            f"## {w.minimum_heading}",
            "",
            w.minimum,
            "",
            *self._minimums(),
            "",
            f"## {w.stages_heading}",
            "",
            self._stages_intro(),
            "",
            *self._table(),
            "",
            *self._exposure(),
            f"## {w.avoid_heading}",
            "",
            f"- {w.pay}",
            f"- {w.dispute}",
            f"- {w.promise.format(max_days=self._days(p.promise_to_pay.max_days))}",
            *self._in_flight(),
            "",
            *self._support(),
            w.footer.format(name=p.name, version=self._number(p.version)),
        ]
        return "\n".join(lines) + "\n"

    def _number(self, value: int | Decimal, pattern: str = "#,##0") -> str:
        return format_decimal(value, format=pattern, locale=self.locale, decimal_quantization=False)

    def _days(self, count: int) -> str:
        return self.words.days(self._number(count), count)

    def _reminders(self) -> str:
        days = self.policy.reminders.days_before_due
        if not days:
            return self.words.no_reminders
        return self.words.reminders.format(when=self.words.join([self._days(d) for d in days]))

    def _money(self, currency: str, amount: Decimal) -> str:
        # The currency's usual minor units at least ("USD 5.00" for "5"), more when written.
        digits = get_currency_precision(currency)
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return f"{currency} {self._number(amount, pattern)}"

    def _minimums(self) -> list[str]:
        minimums = self.policy.minimum_overdue
        items = [
            f"- {self._money(code, amount)}"
            for code, amount in sorted(minimums.items())
            if code != DEFAULT_KEY
        ]
        other = self._number(minimums[DEFAULT_KEY], "#,##0.##")
        items.append(f"- {self.words.minimum_other.format(amount=other)}")
        return items

    def _stages_intro(self) -> str:
        w, suspend_at = self.words, self.policy.suspend_stage_index
        # Only notices that come before the suspension carry its date.
        if suspend_at is None:
            return w.stages_intro
        text = w.stages_intro
        if suspend_at > 0:
            text += w.sentence_gap + w.stages_suspension_date
        if self.policy.calendar.suspend_on == "business_days":
            text += w.sentence_gap + self._business_days()
        # The actuator's guards (access-control's brake and payment-feed check) are settings,
        # not policy, and on by default: the customer is told they can only delay.
        return text + w.sentence_gap + w.confirmed

    def _business_days(self) -> str:
        w, calendar = self.words, self.policy.calendar
        names = self.locale.days["format"]["wide"]  # Babel: 0 is Monday
        weekend = w.join([names[WEEKDAYS.index(day)] for day in calendar.weekend])
        holidays = ""
        if calendar.holidays is not None:
            country, _, _ = calendar.holidays.partition("-")
            name = self.locale.territories.get(country, calendar.holidays)
            if country != calendar.holidays:
                name = f"{name} ({calendar.holidays})"
            holidays += w.public_holidays.format(country=name)
        if calendar.extra_holidays:
            dates = [
                format_date(day, format="long", locale=self.locale)
                for day in sorted(calendar.extra_holidays)
            ]
            holidays += w.partner_holidays.format(dates=w.join(dates))
        return w.business_days.format(weekend=weekend, holidays=holidays)

    def _exposure(self) -> list[str]:
        """The `exposure.escalate_above` thresholds, as a paragraph; none without them."""
        limits = self.policy.exposure.escalate_above
        if not limits:
            return []
        # Each currency has its own threshold: any one exceeded is enough.
        items = [self._money(c, a) for c, a in sorted(limits.items())]
        amounts = format_list(items, style="or", locale=self.locale)
        return [self.words.exposure.format(amounts=amounts), ""]

    def _in_flight(self) -> list[str]:
        if self.policy.suspend_stage_index is None:
            return []
        days = self._days(self.policy.payments_in_flight.max_days)
        return [f"- {self.words.in_flight.format(max_days=days)}"]

    def _support(self) -> list[str]:
        """The `support:` terms and the payment-claim rule, as a section; none without them."""
        w, support = self.words, self.policy.support
        if support is None:
            return []
        hours = support.hours
        names = self.locale.days["format"][w.day_width]  # Babel: 0 is Monday
        spans: list[list[int]] = []
        for day in sorted(WEEKDAYS.index(d) for d in hours.days):
            if spans and spans[-1][-1] == day - 1:
                spans[-1].append(day)
            else:
                spans.append([day])
        days = w.join(
            [
                names[s[0]]
                if len(s) == 1
                else w.day_range.format(first=names[s[0]], last=names[s[-1]])
                for s in spans
            ]
        )
        languages = w.join([w.language_names[tag] for tag in support.languages])
        lines = [
            f"## {w.support_heading}",
            "",
            w.support_hours.format(
                days=days,
                opens=hours.opens,
                closes=hours.closes,
                zone=hours.timezone,
                languages=languages,
            ),
            "",
        ]
        contact = support.contact
        given = [("email", contact.email), ("phone", contact.phone), ("web", contact.web)]
        lines += [
            "- " + w.label.format(label=w.contact_labels[key], text=value)
            for key, value in given
            if value is not None
        ]
        lines += ["", w.support_cost, ""]
        lines += [
            "- " + w.label.format(label=w.language_names[tag], text=support.cost[tag])
            for tag in LOCALES
            if tag in support.cost
        ]
        if self.policy.suspend_stage_index is not None:
            count = support.payment_claim_hold_days
            if self.policy.calendar.suspend_on == "business_days":
                held = w.business_days_count(self._number(count), count)
            else:  # every date is a business date
                held = self._days(count)
            lines += ["", w.payment_claim.format(days=held)]
        return [*lines, ""]

    def _table(self) -> list[str]:
        w, p = self.words, self.policy
        header = "| " + " | ".join(w.table_header) + " |"
        rows = [header, "|" + "---|" * len(w.table_header)]
        suspended_from = p.suspend_stage_index
        for index, stage in enumerate(p.stages):
            access = (
                w.access_restored
                if suspended_from is not None and index >= suspended_from
                else w.access_unaffected
            )
            cells = (
                _title(stage.name, w),
                self._starts(index, stage),
                self._does(stage),
                access,
            )
            rows.append("| " + " | ".join(cells) + " |")
        return rows

    def _starts(self, index: int, stage: Stage) -> str:
        w = self.words
        days = self._days(stage.days_past_due)
        if stage.min_days_in_previous == 0:
            return w.starts.format(days=days)
        if index == 0:
            event = w.gate_after_current
        else:
            previous = self.policy.stages[index - 1].name
            event = w.stage_events.get(previous) or w.gate_event_unknown.format(
                title=_title(previous, w)
            )
        return w.starts_gated.format(
            days=days, gate=self._days(stage.min_days_in_previous), event=event
        )

    def _does(self, stage: Stage) -> str:
        w = self.words
        targets = tuple(t for t in ("customer", "partner") if t in stage.notify)
        parts = [w.notify[targets]]
        if stage.scope is not None:
            parts.append(w.suspend[stage.scope])
        return w.sentence_gap.join(parts)
