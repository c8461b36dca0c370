"""Rendering every kind in both locales: money, dates, the suspension sentence, escaping,
fallbacks and the typed RenderError."""

from __future__ import annotations

import html as htmllib
from importlib.resources import files
from typing import Any

import pytest

from billstate_notifications.domain import RenderError, available_kinds, render
from billstate_notifications.domain import rendering as render_module
from billstate_shared.contracts import NoticeRequestedData

CUSTOMER_KINDS = (
    "reminder",
    "overdue",
    "final_notice",
    "suspended",
    "restored",
    "payment_failed",
    "promise_broken",
)
STAFF_KINDS = (
    "access_failed",
    "access_drift",
    "approval_needed",
    "exposure_high",
    "commitment_alert",
)
ALL_KINDS = {*CUSTOMER_KINDS, *STAFF_KINDS, "stage"}

EN_SENTENCE = (
    "Access to your subscriptions can be suspended from November 21, 2026"
    " if the overdue amount is not paid."
)
ZH_SENTENCE = "若逾期金額未獲付清，您的訂閱服務自2026年11月21日起可能會被暫停使用。"


def facts(kind: str, **extra: Any) -> dict[str, Any]:
    """Facts shaped like the collections engine's `_facts` for `kind`."""
    base: dict[str, Any] = {
        "customer_id": "contoso",
        "stage": kind if kind in ("overdue", "final_notice", "suspended") else "overdue",
        "as_of": "2026-11-14",
        "days_past_due": 14,
        "overdue": [{"amount": "1234.5", "currency": "USD"}],
        "invoices": [
            {"invoice_id": "INV-1", "due_on": "2026-10-31", "open": "1234.5", "currency": "USD"}
        ],
        "suspension_on": "2026-11-21",
        "policy": {"name": "standard", "version": 3},
    }
    if kind == "reminder":
        base.update(
            stage="current",
            overdue=[],
            invoices=[],
            invoice={
                "invoice_id": "INV-2",
                "due_on": "2026-12-01",
                "open": "99",
                "currency": "TWD",
            },
            days_before_due=7,
        )
    elif kind == "suspended":
        base.update(suspension_on=None, subscription_ids=["sub-1", "sub-2"])
    elif kind == "restored":
        base.update(subscription_ids=["sub-1"], still_delinquent=True)
    elif kind == "payment_failed":
        base.update(invoice_id="INV-1", will_retry=True)
    elif kind == "promise_broken":
        base.update(hold_id="hold-1", promised_until="2026-11-10")
    elif kind == "access_failed":
        base = {
            "customer_id": "contoso",
            "subscription_id": "sub-1",
            "provider": "partner_center",
            "command_id": "cmd-1",
            "attempts": 5,
            "error": "HTTP 409",
        }
    elif kind == "access_drift":
        base = {
            "customer_id": "contoso",
            "subscription_id": "sub-1",
            "provider": "partner_center",
            "desired": "suspended",
            "observed": "active",
        }
    elif kind == "commitment_alert":
        base = {
            "customer_id": "contoso",
            "subscription_id": "sub-1",
            "provider": "partner_center",
            "term_end": "2026-11-30",
            "auto_renew": True,
            "renews_on": "2026-12-01",
            "cancellable_until": None,
            "term_cost": {"amount": "7348.80", "currency": "USD"},
            "reason": "auto-renews on 2026-12-01",
        }
    elif kind == "approval_needed":
        base = {
            "batch_id": "brake-partner_center-2026-11-14T09:00Z",
            "guard": "brake",
            "count": 7,
            "customer_ids": ["contoso", "fabrikam"],
            "reason": "more than 50 suspensions in 24 hours on partner_center",
        }
    base.update(extra)
    return base


def notice(
    kind: str, locale: str = "en", audience: str = "customer", **extra: Any
) -> NoticeRequestedData:
    return NoticeRequestedData(
        notice_id=f"ntc-{kind}",
        kind=kind,
        audience=audience,  # type: ignore[arg-type]
        locale=locale,
        facts=facts(kind, **extra),
    )


def test_templates_are_package_data_for_every_kind_in_both_locales() -> None:
    root = files("billstate_notifications").joinpath("templates")
    for locale in ("en", "zh-TW"):
        assert available_kinds(locale) == ALL_KINDS
        for kind in ALL_KINDS:
            for part in ("subject", "txt", "html"):
                assert root.joinpath(locale, f"{kind}.{part}.j2").is_file()


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize("kind", [*CUSTOMER_KINDS, *STAFF_KINDS])
@pytest.mark.parametrize("audience", ["customer", "partner"])
def test_every_kind_renders_in_both_locales(kind: str, locale: str, audience: str) -> None:
    rendered = render(notice(kind, locale, audience), "Contoso Ltd", customer_id="contoso")
    assert rendered.locale == locale
    assert rendered.template == kind
    assert rendered.kind == kind
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.text.endswith("\n")
    assert "\n\n\n" not in rendered.text
    assert rendered.html.startswith("<!DOCTYPE html>")
    expected_lang = "en" if locale == "en" else "zh-Hant-TW"
    assert f'<html lang="{expected_lang}">' in rendered.html
    assert "None" not in rendered.text
    assert "None" not in rendered.subject
    if audience == "customer" and kind not in STAFF_KINDS:
        greeting = "Dear Contoso Ltd," if locale == "en" else "Contoso Ltd 您好："
        assert rendered.text.startswith(greeting)
    if kind in STAFF_KINDS or audience == "partner":
        assert "contoso" in rendered.text  # staff see which customer it is about


@pytest.mark.parametrize(
    ("locale", "amount", "date"),
    [
        ("en", "$1,234.50", "November 14, 2026"),
        ("zh-TW", "US$1,234.50", "2026年11月14日"),
    ],
)
def test_amounts_and_dates_are_formatted_per_locale(locale: str, amount: str, date: str) -> None:
    rendered = render(notice("overdue", locale), None)
    assert amount in rendered.text
    assert amount in rendered.html
    assert amount in rendered.subject
    assert date in rendered.text
    assert "1234.5" not in rendered.text  # never the raw wire amount


def test_amounts_keep_their_exact_digits_and_each_currency() -> None:
    overdue = [{"amount": "30.1234", "currency": "EUR"}, {"amount": "99", "currency": "TWD"}]
    en = render(notice("overdue", "en", overdue=overdue), None)
    assert "€30.1234 and NT$99.00" in en.text
    zh = render(notice("overdue", "zh-TW", overdue=overdue), None)
    assert "€30.1234和$99.00" in zh.text


def test_reminder_names_the_invoice_and_its_due_date() -> None:
    en = render(notice("reminder", "en"), None)
    assert en.subject == "Reminder: invoice INV-2 is due on December 1, 2026"
    assert "invoice INV-2 for NT$99.00 is due on December 1, 2026 (in 7 days)." in en.text
    zh = render(notice("reminder", "zh-TW"), None)
    assert zh.subject == "付款提醒：帳單 INV-2 將於2026年12月1日到期"
    assert "（還有 7 天）" in zh.text


@pytest.mark.parametrize(
    "kind", ["overdue", "final_notice", "restored", "payment_failed", "promise_broken"]
)
def test_suspension_on_is_stated_plainly(kind: str) -> None:
    en = render(notice(kind, "en"), None)
    assert EN_SENTENCE in en.text
    assert htmllib.escape(EN_SENTENCE, quote=False) in en.html
    zh = render(notice(kind, "zh-TW"), None)
    assert ZH_SENTENCE in zh.text
    assert ZH_SENTENCE in zh.html


def test_reminder_states_the_suspension_date_too() -> None:
    en = render(notice("reminder", "en"), None)
    assert "access to your subscriptions can be suspended from November 21, 2026." in en.text
    zh = render(notice("reminder", "zh-TW"), None)
    assert "您的訂閱服務自2026年11月21日起可能會被暫停使用。" in zh.text


def test_no_suspension_sentence_without_a_date() -> None:
    rendered = render(notice("overdue", "en", suspension_on=None), None)
    assert "can be suspended" not in rendered.text


def test_suspended_lists_the_subscriptions() -> None:
    rendered = render(notice("suspended", "en"), None)
    assert "- sub-1\n- sub-2\n" in rendered.text
    assert "<li>sub-1</li>" in rendered.html


def test_customer_name_is_escaped_in_html_and_plain_in_text() -> None:
    name = "<script>alert('x')</script> & Co"
    for locale in ("en", "zh-TW"):
        for audience in ("customer", "partner"):
            rendered = render(notice("final_notice", locale, audience), name, customer_id="c-1")
            assert "<script>" not in rendered.html
            assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in rendered.html
            assert name in rendered.text  # plain text is not HTML: no entities there


def test_every_fact_is_escaped_in_html() -> None:
    hostile = "<b>x</b>"
    data = notice(
        "access_failed",
        "en",
        "partner",
        subscription_id=hostile,
        provider=hostile,
        command_id=hostile,
        error=hostile,
    )
    rendered = render(data, hostile, customer_id="c-1")
    assert "<b>" not in rendered.html
    assert rendered.html.count("&lt;b&gt;x&lt;/b&gt;") >= 5


def test_unknown_customer_gets_a_neutral_greeting() -> None:
    assert render(notice("overdue", "en"), None).text.startswith("Dear customer,")
    assert render(notice("overdue", "zh-TW"), None).text.startswith("親愛的客戶您好：")


@pytest.mark.parametrize(
    ("locale", "babel_date"), [("en-GB", "14 November 2026"), ("en-US", "November 14, 2026")]
)
def test_regional_english_formats_in_its_region(locale: str, babel_date: str) -> None:
    rendered = render(notice("overdue", locale), None)
    assert rendered.locale == "en"
    assert babel_date in rendered.text


@pytest.mark.parametrize("locale", ["zh-HK", "zh-Hant", "zh-TW"])
def test_traditional_chinese_tags_use_zh_tw(locale: str) -> None:
    assert render(notice("overdue", locale), None).locale == "zh-TW"


@pytest.mark.parametrize("locale", ["fr", "de-DE", "zh-CN", "ja"])
def test_a_locale_without_templates_is_a_render_error(locale: str) -> None:
    # Never silently another language: the notice fails with its reason and is re-drivable
    # once the partner adds the templates.
    with pytest.raises(RenderError) as caught:
        render(notice("overdue", locale), None)
    assert caught.value.field == "data.locale"
    assert "templates exist for en, zh-TW" in caught.value.reason


@pytest.mark.parametrize("locale", ["en-GB", "en-US", "en"])
def test_english_variants_read_en(locale: str) -> None:
    rendered = render(notice("overdue", locale), None)
    assert rendered.locale == "en"
    assert "overdue balance" in rendered.text


@pytest.mark.parametrize(
    ("locale", "phrase"),
    [
        ("en", 'Your account has entered the collections stage "second reminder"'),
        ("zh-TW", "您的帳戶已進入催收階段「second reminder」"),
    ],
)
def test_unknown_stage_uses_the_generic_stage_template(locale: str, phrase: str) -> None:
    data = notice("second_reminder", locale, stage="second_reminder")
    rendered = render(data, None)
    assert rendered.template == "stage"
    assert rendered.kind == "second_reminder"
    assert phrase in rendered.text
    assert "second reminder" in rendered.subject


def test_unknown_kind_that_is_not_a_stage_raises_render_error() -> None:
    with pytest.raises(RenderError) as err:
        render(notice("carrier_pigeon", "en"), None)  # facts.stage is "overdue"
    assert err.value.field == "data.kind"
    assert "carrier_pigeon" in err.value.reason


def test_supported_locale_never_borrows_english_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind missing in zh-TW is missing: the customer does not get English instead."""
    real = render_module.available_kinds

    def without_reminder_in_zh(locale: str) -> frozenset[str]:
        kinds = real(locale)
        return kinds - {"reminder"} if locale == "zh-TW" else kinds

    monkeypatch.setattr(render_module, "available_kinds", without_reminder_in_zh)
    assert render(notice("reminder", "en"), None).locale == "en"
    with pytest.raises(RenderError):
        render(notice("reminder", "zh-TW"), None)
    # A stage kind still falls back to the zh-TW generic stage text.
    monkeypatch.setattr(
        render_module,
        "available_kinds",
        lambda locale: real(locale) - {"overdue"} if locale == "zh-TW" else real(locale),
    )
    rendered = render(notice("overdue", "zh-TW"), None)
    assert (rendered.locale, rendered.template) == ("zh-TW", "stage")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"overdue": [{"amount": 12.5, "currency": "USD"}]}, "data.facts.overdue.0.amount"),
        ({"overdue": [{"amount": "12.50", "currency": "usd"}]}, "data.facts.overdue.0.currency"),
        ({"overdue": ["12.50 USD"]}, "data.facts.overdue.0"),
        ({"suspension_on": "21/11/2026"}, "data.facts.suspension_on"),
        ({"as_of": 20261114}, "data.facts.as_of"),
        ({"days_past_due": "14"}, "data.facts.days_past_due"),
        ({"invoices": {"invoice_id": "INV-1"}}, "data.facts.invoices"),
        ({"subscription_ids": ["s", 1]}, "data.facts.subscription_ids.1"),
        ({"still_delinquent": "yes"}, "data.facts.still_delinquent"),
    ],
)
def test_facts_of_the_wrong_shape_raise_render_error(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(RenderError) as err:
        render(notice("overdue", "en", **extra), None)
    assert err.value.field == field
    assert "12.5" not in err.value.reason  # reasons never quote fact values


def test_sparse_facts_still_render() -> None:
    """Only what the text needs is required; missing facts leave their sentence out."""
    data = NoticeRequestedData(
        notice_id="n-1", kind="final_notice", audience="customer", locale="en", facts={}
    )
    rendered = render(data, None)
    assert rendered.subject == "Final notice"
    assert "This is the final notice about the overdue balance on your account." in rendered.text


def test_rendering_is_deterministic() -> None:
    a = render(notice("final_notice", "zh-TW"), "Contoso")
    b = render(notice("final_notice", "zh-TW"), "Contoso")
    assert a == b
