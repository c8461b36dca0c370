"""`billstate policy validate|explain`: exit codes, messages, and the golden explanations."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from billstate_cli.explain import explain, stage_title
from billstate_cli.main import main
from billstate_shared.policy_file import parse_policy

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "policies" / "standard.yaml"
GOLDEN = ROOT / "cli" / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"


def write(tmp_path: Path, yaml_text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(yaml_text), encoding="utf-8")
    return path


# --- validate ------------------------------------------------------------------------------


def test_validate_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "validate", str(STANDARD)])

    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"{STANDARD}: ok: standard v3, 3 stages, suspends at day 21\n"
    assert err == ""


def test_validate_refuses_with_the_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: 5.00
        stages:
          - name: overdue
            days_past_due: 1
        """,
    )

    code = main(["policy", "validate", str(path)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith(f"{path}:5: minimum_overdue.USD: money must be a quoted decimal string")
    assert err.endswith("\n")
    assert err.count("\n") == 1


def test_validate_refuses_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["policy", "validate", str(tmp_path / "nope.yaml")])

    _, err = capsys.readouterr()
    assert code == 1
    assert "cannot read" in err


def test_validate_reports_a_policy_that_never_suspends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """\
        policy: gentle
        version: 2
        timezone: Europe/Berlin
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 3
        """,
    )

    code = main(["policy", "validate", str(path)])

    assert code == 0
    assert capsys.readouterr().out == f"{path}: ok: gentle v2, 1 stage, never suspends\n"


def test_validate_counts_the_gates_in_the_suspension_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The final notice comes at day 14 at the earliest, so a 10-day gate makes day 15 day 24.
    path = write(
        tmp_path,
        """\
        policy: gated
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
          - name: final_notice
            days_past_due: 14
          - name: suspended
            days_past_due: 15
            min_days_in_previous: 10
            action: suspend
            scope: all_subscriptions
        """,
    )

    assert main(["policy", "validate", str(path)]) == 0
    assert capsys.readouterr().out.endswith(", 3 stages, suspends at day 24\n")


# --- explain -------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize("policy", ["standard", "business-days", "support"])
def test_explain_matches_the_golden_file(
    policy: str, locale: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # business-days: suspension only on business days, with Taiwan's and the partner's holidays.
    # support: standard with the billing support section (hours, contacts, cost, payment claims).
    name = "explain" if policy == "standard" else f"explain.{policy}"
    golden = GOLDEN / f"{name}.{locale}.md"

    code = main(
        ["policy", "explain", str(ROOT / "policies" / f"{policy}.yaml"), "--locale", locale]
    )

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    if UPDATE_GOLDEN:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8"), (
        f"{golden.name} is stale; rerun with BILLSTATE_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_explain_writes_the_same_text_to_out(
    locale: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "policy.md"

    code = main(["policy", "explain", str(STANDARD), "--locale", locale, "--out", str(out_file)])

    assert code == 0
    assert capsys.readouterr().out == ""
    assert out_file.read_text(encoding="utf-8") == (GOLDEN / f"explain.{locale}.md").read_text(
        encoding="utf-8"
    )


def test_explain_refuses_a_bad_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "policy: p\nversion: 0\n")

    code = main(["policy", "explain", str(path), "--locale", "en"])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err == f"{path}:2: version: must be at least 1, got 0\n"


def test_explain_rejects_an_unknown_locale(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["policy", "explain", str(STANDARD), "--locale", "fr"])

    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_zh_tw_is_traditional_chinese_throughout() -> None:
    text = explain(parse_policy(STANDARD.read_text(encoding="utf-8")), "zh-TW")

    for word in ("逾期", "最後通知", "已暫停", "承諾付款", "爭議", "午夜", "USD 5.00"):
        assert word in text
    for english in ("Overdue", "Final notice", "Suspended", "due date", "Pay"):
        assert english not in text


def test_exempt_tags_are_not_mentioned() -> None:
    policy = parse_policy(STANDARD.read_text(encoding="utf-8"))

    for locale in ("en", "zh-TW"):
        assert "strategic" not in explain(policy, locale)


def test_unknown_stage_names_are_humanised_in_both_locales() -> None:
    policy = parse_policy(
        textwrap.dedent("""\
        policy: custom
        version: 7
        timezone: America/New_York
        minimum_overdue:
          JPY: "500"
          USD: "1234.5"
        reminders:
          days_before_due: [1, 14, 3]
        stages:
          - name: second_notice
            days_past_due: 5
            notify: [partner]
          - name: cut_off
            days_past_due: 30
            min_days_in_previous: 10
            action: suspend
            scope: all_subscriptions
        promise_to_pay:
          max_days: 1
        """)
    )

    en = explain(policy, "en")
    zh = explain(policy, "zh-TW")

    assert "| Second notice | 5 days after the due date | A notice to your partner. |" in en
    assert "at least 10 days after the “Second notice” stage began" in en
    assert "All your subscriptions are suspended." in en
    assert "14 days, 3 days and 1 day before its due date" in en
    assert "- JPY 500\n- USD 1,234.50\n- Any other currency: 0.01\n" in en
    assert "up to 1 day ahead" in en
    assert "America/New_York" in en
    assert "| Second notice | 到期日後 5 天 | 通知您的合作夥伴。 |" in zh
    assert "| Cut off | 最早於到期日後 30 天，且在「Second notice」階段開始後至少 10 天 |" in zh
    assert "到期日前 14 天、3 天及 1 天寄送" in zh
    assert "- USD 1,234.50\n- 其他幣別：0.01\n" in zh
    assert stage_title("cut_off", "en") == stage_title("cut_off", "zh-TW") == "Cut off"


SUPPORT = ROOT / "policies" / "support.yaml"
BUSINESS_DAYS = "calendar:\n  suspend_on: business_days"


def _with_support(text: str, **changes: str) -> str:
    """support.yaml with some of its lines replaced (old line -> new line)."""
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_without_support_terms_there_is_no_support_section() -> None:
    policy = parse_policy(STANDARD.read_text(encoding="utf-8"))

    assert "## Support" not in explain(policy, "en")
    assert "## 帳務支援" not in explain(policy, "zh-TW")


def test_support_names_only_the_contacts_given_and_runs_of_days() -> None:
    text = _with_support(
        SUPPORT.read_text(encoding="utf-8"),
        **{
            "    email: billing@partner.example\n": "",
            "    web: https://support.partner.example/billing\n": "",
            "tuesday, wednesday, thursday, friday]": "tuesday, thursday, saturday]",
            "  languages: [en, zh-TW]": "  languages: [zh-TW]",
        },
    )
    policy = parse_policy(text)

    en, zh = explain(policy, "en"), explain(policy, "zh-TW")

    assert "answers Monday to Tuesday, Thursday and Saturday, 09:00-18:00" in en
    assert "in Traditional Chinese." in en
    assert "- Phone: +886 2 2345 6789\n\nWhat billing support costs:" in en
    assert "E-mail" not in en
    assert "Web form" not in en
    assert (
        "服務時間為週一至週二、週四及週六 09:00-18:00（Asia/Taipei 時間），提供繁體中文服務。" in zh
    )


def test_the_payment_claim_counts_business_days_on_a_business_calendar() -> None:
    text = _with_support(
        SUPPORT.read_text(encoding="utf-8"),
        **{"payment_claim_hold_days: 3": "payment_claim_hold_days: 1\n" + BUSINESS_DAYS},
    )
    policy = parse_policy(text)

    assert "not suspended for 1 business day after the day you filed it" in explain(policy, "en")
    assert "在提出當日及其後 1 個營業日內" in explain(policy, "zh-TW")


def test_explain_is_deterministic() -> None:
    policy = parse_policy(STANDARD.read_text(encoding="utf-8"))

    assert explain(policy, "en") == explain(policy, "en")
    assert explain(policy, "zh-TW") == explain(policy, "zh-TW")


def test_explain_refuses_an_unsupported_locale_in_code() -> None:
    policy = parse_policy(STANDARD.read_text(encoding="utf-8"))

    with pytest.raises(ValueError, match="unsupported locale 'de'"):
        explain(policy, "de")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("holidays: TW", "holidays: XX", "calendar.holidays: no public holidays known for 'XX'"),
        (
            "weekend: [saturday, sunday]",
            "weekend: [saturday, sunday, saturday]",
            "calendar.weekend[2]: 'saturday' is listed twice",
        ),
        ("suspend_on: business_days", "suspend_on: weekdays", "calendar.suspend_on:"),
        ("max_days: 14", "max_days: 0", "payments_in_flight.max_days:"),
    ],
)
def test_a_broken_calendar_is_refused_at_its_line(
    old: str, new: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "policies" / "business-days.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if old in row)

    assert main(["policy", "validate", str(path)]) != 0
    assert f"{path}:{line}: {where}" in capsys.readouterr().err
