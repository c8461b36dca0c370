"""The policy model and its YAML loader: the example loads, every bad file is refused by line."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from billstate_shared.domain.policy import CURRENT, Policy, Stage, digest
from billstate_shared.policy_file import PolicyError, load_policy, parse_policy

STANDARD = Path(__file__).resolve().parents[3] / "policies" / "standard.yaml"


def refused(yaml_text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(textwrap.dedent(yaml_text), "test.yaml")
    return caught.value


def loads(yaml_text: str) -> Policy:
    return parse_policy(textwrap.dedent(yaml_text), "test.yaml")


# --- the example policy -------------------------------------------------------------------


def test_example_policy_loads_with_every_field() -> None:
    policy = load_policy(STANDARD)

    assert policy.name == "standard"
    assert policy.version == 3
    assert policy.timezone == "Asia/Taipei"
    assert dict(policy.minimum_overdue) == {
        "USD": Decimal("5.00"),
        "EUR": Decimal("5.00"),
        "default": Decimal("0.01"),
    }
    assert policy.reminders.days_before_due == (7, 1)
    assert [s.name for s in policy.stages] == ["overdue", "final_notice", "suspended"]
    assert policy.stages[2] == Stage(
        name="suspended",
        days_past_due=21,
        min_days_in_previous=7,
        action="suspend",
        scope="overdue_subscriptions",
        notify=("customer", "partner"),
    )
    assert policy.stages[0].notify == ("customer",)
    assert policy.stages[0].action is None
    assert policy.exempt_tags == ("strategic",)
    assert policy.promise_to_pay.max_days == 30


def test_example_policy_helpers() -> None:
    policy = load_policy(STANDARD)

    assert policy.threshold("USD") == Decimal("5.00")
    assert policy.threshold("EUR") == Decimal("5.00")
    assert policy.threshold("JPY") == Decimal("0.01")
    assert policy.zone == ZoneInfo("Asia/Taipei")
    names = [stage.name for stage in policy.stages]
    assert CURRENT not in names  # "current" is no stage: the index before the first
    assert names.index("overdue") == 0
    assert names.index("suspended") == 2
    assert policy.suspend_stage_index == 2
    assert policy.ref == ("standard", 3)
    assert "paused" not in names


def test_policy_is_frozen_and_round_trips() -> None:
    policy = load_policy(STANDARD)

    with pytest.raises(ValidationError):
        policy.version = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.minimum_overdue["USD"] = Decimal(1)  # type: ignore[index]
    assert Policy.model_validate_json(policy.model_dump_json()) == policy
    assert policy.model_dump(mode="json")["policy"] == "standard"


def test_policy_can_be_built_in_code_by_field_name() -> None:
    policy = Policy(
        name="inline",
        version=1,
        timezone="UTC",
        minimum_overdue={"USD": Decimal("1.00")},
        stages=(Stage(name="overdue", days_past_due=1),),
    )

    assert policy.ref == ("inline", 1)
    assert policy.suspend_stage_index is None
    assert policy.threshold("USD") == Decimal("1.00")


def test_default_minimum_falls_back_to_one_cent() -> None:
    policy = loads("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: "5.00"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert policy.threshold("TWD") == Decimal("0.01")
    assert policy.minimum_overdue["default"] == Decimal("0.01")
    assert policy.reminders.days_before_due == ()
    assert policy.promise_to_pay.max_days == 30


def test_explicit_default_minimum_is_used_for_other_currencies() -> None:
    policy = loads("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          default: "1.50"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert policy.threshold("USD") == Decimal("1.50")


def test_reminders_are_stored_furthest_first() -> None:
    policy = loads("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        reminders:
          days_before_due: [1, 7, 3]
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert policy.reminders.days_before_due == (7, 3, 1)


# --- refusals: each names the line and the problem -----------------------------------------


def test_error_string_is_source_line_field_reason() -> None:
    error = PolicyError("p.yaml", 4, "stages[0].name", "bad")

    assert str(error) == "p.yaml:4: stages[0].name: bad"
    assert isinstance(error, ValueError)
    assert (error.source, error.line, error.field, error.reason) == (
        "p.yaml",
        4,
        "stages[0].name",
        "bad",
    )


def test_unknown_key_at_the_top_is_refused_on_its_line() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        grace_days: 3
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 5
    assert error.field == "grace_days"
    assert "unknown key 'grace_days'" in error.reason
    assert "minimum_overdue" in error.reason  # the keys it could have been


def test_unknown_key_in_a_stage_is_refused_on_its_line() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
            notfy: [customer]
        """)

    assert error.line == 8
    assert error.field == "stages[0].notfy"
    assert "unknown key 'notfy'" in error.reason


def test_unknown_key_in_promise_to_pay_is_refused_on_its_line() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        promise_to_pay:
          max_days: 10
          grace: 2
        """)

    assert error.line == 10
    assert error.field == "promise_to_pay.grace"


def test_the_model_name_is_not_a_file_key() -> None:
    error = refused("""\
        name: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 1
    assert error.field == "policy"
    assert "missing required key 'policy'" in error.reason


def test_stages_must_strictly_increase() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
          - name: final_notice
            days_past_due: 14
          - name: last_call
            days_past_due: 14
        """)

    assert error.line == 11
    assert error.field == "stages[2].days_past_due"
    assert "'last_call'" in error.reason
    assert "previous stage 'final_notice'" in error.reason
    assert "14" in error.reason
    assert "strictly increase" in error.reason


def test_duplicate_stage_names_are_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
          - name: overdue
            days_past_due: 7
        """)

    assert error.line == 8
    assert error.field == "stages[1].name"
    assert "'overdue' is used twice" in error.reason


def test_unknown_currency_is_refused_on_its_key() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: "5.00"
          XYZ: "5.00"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 6
    assert error.field == "minimum_overdue.XYZ"
    assert "unknown currency 'XYZ'" in error.reason


def test_lower_case_currency_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          usd: "5.00"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 5
    assert "unknown currency 'usd'" in error.reason


def test_negative_amount_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: "5.00"
          default: "-0.01"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 6
    assert error.field == "minimum_overdue.default"
    assert "negative" in error.reason


@pytest.mark.parametrize("written", ["5.00", "5", "5.5e+2", "true"])
def test_amount_written_as_a_yaml_number_is_refused(written: str) -> None:
    error = refused(f"""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          EUR: "1.00"
          USD: {written}
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 6
    assert error.field == "minimum_overdue.USD"
    assert 'quoted decimal string like "5.00"' in error.reason
    assert "at most 4 fractional digits" in error.reason


def test_amount_with_five_fractional_digits_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: "0.00001"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 5
    assert "more than 4 fractional digits" in error.reason


@pytest.mark.parametrize("written", ['"5,00"', '"five"', '" 5.00"', '"NaN"', '"1e3"'])
def test_amount_that_is_not_a_plain_decimal_is_refused(written: str) -> None:
    error = refused(f"""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: {written}
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 5
    assert "not a decimal amount" in error.reason


def test_suspend_without_scope_is_refused_on_the_stage() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
          - name: suspended
            days_past_due: 21
            action: suspend
        """)

    assert error.line == 8  # the key is missing: the stage's own line
    assert error.field == "stages[1].scope"
    assert "no scope" in error.reason
    assert "overdue_subscriptions" in error.reason


def test_scope_without_suspend_is_refused_on_the_scope() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
            scope: all_subscriptions
        """)

    assert error.line == 8
    assert error.field == "stages[0].scope"
    assert "no action: suspend" in error.reason


def test_a_second_suspend_stage_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: suspended
            days_past_due: 21
            action: suspend
            scope: overdue_subscriptions
          - name: suspended_all
            days_past_due: 45
            action: suspend
            scope: all_subscriptions
        """)

    assert error.line == 12
    assert error.field == "stages[1].action"
    assert "zero or one" in error.reason
    assert "'suspended'" in error.reason


def test_unknown_action_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: paused
            days_past_due: 3
            action: pause
        """)

    assert error.line == 8
    assert "must be 'suspend'" in error.reason


def test_promise_max_days_below_one_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        promise_to_pay:
          max_days: 0
        """)

    assert error.line == 9
    assert error.field == "promise_to_pay.max_days"
    assert "at least 1" in error.reason


def test_unknown_time_zone_is_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: Asia/Taipie
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 3
    assert error.field == "timezone"
    assert "unknown time zone 'Asia/Taipie'" in error.reason


def test_missing_key_in_a_stage_points_at_the_stage() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
          - name: final_notice
            notify: [customer]
        """)

    assert error.line == 8
    assert error.field == "stages[1].days_past_due"
    assert "missing required key 'days_past_due'" in error.reason


def test_missing_top_level_key_points_at_the_document() -> None:
    error = refused("""\
        policy: p
        version: 1
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 1
    assert error.field == "timezone"
    assert "missing required key 'timezone'" in error.reason


def test_a_policy_needs_at_least_one_stage() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages: []
        """)

    assert error.line == 5
    assert "must not be empty" in error.reason


def test_days_must_be_whole_numbers_not_text() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: "1"
        """)

    assert error.line == 7
    assert "valid integer" in error.reason


def test_days_past_due_must_be_at_least_one() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 0
        """)

    assert error.line == 7
    assert "must be at least 1, got 0" in error.reason


@pytest.mark.parametrize(
    ("name", "problem"),
    [("current", "reserved"), ("Final", "not an identifier"), ("9lives", "not an identifier")],
)
def test_stage_names_are_identifiers_other_than_current(name: str, problem: str) -> None:
    error = refused(f"""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {{}}
        stages:
          - name: {name}
            days_past_due: 1
        """)

    assert error.line == 6
    assert error.field == "stages[0].name"
    assert problem in error.reason


def test_duplicate_reminder_days_are_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        reminders:
          days_before_due:
            - 7
            - 7
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 8
    assert error.field == "reminders.days_before_due[1]"
    assert "reminder day 7 is listed twice" in error.reason


def test_duplicate_yaml_keys_are_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue:
          USD: "5.00"
          USD: "1.00"
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line == 6
    assert "duplicate key 'USD'" in error.reason


def test_keys_that_yaml_reads_as_booleans_are_refused() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
            days_past_due: 1
        on: true
        """)

    assert error.line == 8
    assert "quote it" in error.reason


def test_yaml_syntax_error_gives_its_line() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        stages:
          - name: overdue
           days_past_due: 1
        """)

    assert error.line == 7
    assert error.field == "(yaml)"
    assert "YAML syntax error" in error.reason


def test_unclosed_flow_sequence_gives_a_line() -> None:
    error = refused("""\
        policy: p
        version: 1
        timezone: UTC
        minimum_overdue: {}
        reminders:
          days_before_due: [7, 1
        stages:
          - name: overdue
            days_past_due: 1
        """)

    assert error.line >= 6
    assert "YAML syntax error" in error.reason


def test_an_empty_file_is_refused() -> None:
    error = refused("# nothing here\n")

    assert error.line == 1
    assert "empty" in error.reason


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    error = refused("- policy: p\n")

    assert error.line == 1
    assert "mapping" in error.reason


def test_aliases_that_expand_too_far_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 10)]

    error = refused("\n".join(lines) + "\n")

    assert "too many values" in error.reason


def test_an_unreadable_file_is_refused_with_line_zero(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(PolicyError) as caught:
        load_policy(missing)

    assert caught.value.line == 0
    assert caught.value.source == str(missing)
    assert "cannot read" in caught.value.reason


def test_load_policy_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("policy: p\nversion: 0\n", encoding="utf-8")

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert str(caught.value) == f"{path}:2: version: must be at least 1, got 0"


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("policy: " + "p" * 129, "policy", "at most 128 characters"),
        ('policy: "p\\u0007"', "policy", "pattern"),
        ("policy: p\nversion: 1000000001", "version", "less than or equal to 1000000000"),
    ],
)
def test_a_policy_name_or_version_no_decision_could_carry_is_refused(
    line: str, field: str, reason: str
) -> None:
    # Every decision names its policy (contracts' PolicyRef): a name or version outside its
    # limits would make every output invalid, so the file is refused instead.
    head = line if "version:" in line else line + "\nversion: 1"
    error = refused(
        head
        + "\ntimezone: UTC\nminimum_overdue: {}\nstages:\n  - {name: overdue, days_past_due: 1}\n"
    )

    assert error.field == field
    assert reason in error.reason


# ---- exposure (docs/policy.md "Exposure") ---------------------------------------------------

EXPOSURE_HEAD = (
    "policy: p\nversion: 1\ntimezone: UTC\nminimum_overdue: {}\n"
    "stages:\n  - {name: overdue, days_past_due: 1}\n"
)


def test_exposure_thresholds_are_read_per_currency_as_decimals() -> None:
    policy = loads(EXPOSURE_HEAD + 'exposure:\n  escalate_above:\n    USD: "5000.00"\n')

    assert dict(policy.exposure.escalate_above) == {"USD": Decimal("5000.00")}
    assert loads(EXPOSURE_HEAD).exposure.escalate_above == {}


def test_a_file_without_exposure_keeps_its_digest() -> None:
    without = loads(EXPOSURE_HEAD)
    empty = loads(EXPOSURE_HEAD + "exposure: {}\n")
    with_it = loads(EXPOSURE_HEAD + 'exposure:\n  escalate_above:\n    USD: "1.00"\n')

    # The digest of the file as it was before the section existed (running groups accept it).
    assert digest(without) == digest(empty)
    assert digest(with_it) != digest(without)


@pytest.mark.parametrize(
    ("body", "line", "field", "reason"),
    [
        ('    usd: "1.00"\n', 9, "exposure.escalate_above.usd", "unknown currency 'usd'"),
        ('    default: "1.00"\n', 9, "exposure.escalate_above.default", "unknown currency"),
        ("    USD: 5000\n", 9, "exposure.escalate_above.USD", "quote it"),
        ('    USD: "-1.00"\n', 9, "exposure.escalate_above.USD", "negative"),
    ],
)
def test_a_bad_exposure_threshold_is_refused_on_its_line(
    body: str, line: int, field: str, reason: str
) -> None:
    error = refused(EXPOSURE_HEAD + "exposure:\n  escalate_above:\n" + body)

    assert (error.line, error.field) == (line, field)
    assert reason in error.reason


def test_an_unknown_key_in_exposure_is_refused() -> None:
    error = refused(EXPOSURE_HEAD + "exposure:\n  escalate_over: {}\n")

    assert error.line == 8
    assert "escalate_above" in error.reason


# ---- support (docs/policy.md "Support requests") --------------------------------------------

SUPPORT = """support:
  hours:
    days: [monday, tuesday, wednesday, thursday, friday]
    opens: "09:00"
    closes: "18:00"
    timezone: Asia/Taipei
  contact:
    email: billing@partner.example
    phone: "+886 2 2345 6789"
    web: https://support.partner.example/billing
  languages: [en, zh-TW]
  cost:
    en: Included at no extra charge.
    zh-TW: 不另收費。
"""


def test_support_terms_are_read_with_their_defaults() -> None:
    support = loads(EXPOSURE_HEAD + SUPPORT).support

    assert support is not None
    assert support.hours.days[0] == "monday"
    assert (support.hours.opens, support.hours.closes) == ("09:00", "18:00")
    assert support.contact.web == "https://support.partner.example/billing"
    assert support.payment_claim_hold_days == 3
    assert support.cost_in("zh-TW") == "不另收費。"
    assert (
        loads(EXPOSURE_HEAD + SUPPORT.replace("    zh-TW: 不另收費。\n", "")).support.cost_in(  # type: ignore[union-attr]
            "zh-TW"
        )
        == "Included at no extra charge."
    )  # en stands in
    assert loads(EXPOSURE_HEAD).support is None


def test_a_file_without_support_keeps_its_digest() -> None:
    without, with_it = loads(EXPOSURE_HEAD), loads(EXPOSURE_HEAD + SUPPORT)

    assert digest(with_it) != digest(without)
    assert digest(loads(STANDARD.read_text("utf-8"))) == digest(load_policy(STANDARD))


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "reason"),
    [
        ('closes: "18:00"', 'closes: "08:00"', 9, "support.hours", "after opens"),
        ('opens: "09:00"', 'opens: "9:00"', 10, "support.hours.opens", "pattern"),
        (
            "timezone: Asia/Taipei",
            "timezone: Mars/Olympus",
            12,
            "support.hours.timezone",
            "time zone",
        ),
        ("days: [monday,", "days: [monday, monday,", 9, "support.hours.days[1]", "listed twice"),
        ('phone: "+886', 'phone: "call-', 15, "support.contact.phone", "pattern"),
        ("web: https://", "web: http://", 16, "support.contact.web", "pattern"),
        ("languages: [en, zh-TW]", "languages: [en, fr]", 17, "support.languages[1]", "zh-TW"),
        ("    en: Included", "    de: Included", 19, "support.cost.de", "zh-TW"),
    ],
)
def test_bad_support_terms_are_refused_on_their_line(
    old: str, new: str, line: int, field: str, reason: str
) -> None:
    text = EXPOSURE_HEAD + SUPPORT
    assert old in text
    error = refused(text.replace(old, new, 1))

    assert (error.line, error.field) == (line, field), error
    assert reason in error.reason, error.reason


def test_support_needs_a_contact_and_a_cost_line_in_english() -> None:
    no_contact = EXPOSURE_HEAD + SUPPORT.replace(
        '    email: billing@partner.example\n    phone: "+886 2 2345 6789"\n'
        "    web: https://support.partner.example/billing\n",
        "    {}\n",
    ).replace("  contact:\n    {}\n", "  contact: {}\n")
    assert "at least one of email, phone or web" in refused(no_contact).reason
    no_english = EXPOSURE_HEAD + SUPPORT.replace("    en: Included at no extra charge.\n", "")
    assert "in en" in refused(no_english).reason
    too_long = EXPOSURE_HEAD + SUPPORT + "  payment_claim_hold_days: 11\n"
    assert refused(too_long).field == "support.payment_claim_hold_days"
