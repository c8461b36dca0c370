"""The collections policy (v1) as frozen, validated values: stages, minimums, reminders."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as public_holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from billstate_shared.domain.currencies import ISO_4217_CODES

__all__ = [
    "CURRENT",
    "DEFAULT_KEY",
    "DEFAULT_MINIMUM",
    "ERROR_LOC_KEY",
    "MAX_MONEY_DECIMALS",
    "MAX_MONEY_INTEGER_DIGITS",
    "Accepted",
    "Action",
    "Calendar",
    "Exposure",
    "NotifyTarget",
    "PaymentsInFlight",
    "Policy",
    "PromiseToPay",
    "Reminders",
    "Scope",
    "Stage",
    "Support",
    "SupportContact",
    "SupportHours",
    "digest",
    "known_zone",
    "refuse_change",
]

CURRENT: Final = "current"
"""The name of the state of a customer in no stage (a book's stage index -1)."""

DEFAULT_KEY: Final = "default"
"""The `minimum_overdue` key for every currency not listed; always present after validation."""
DEFAULT_MINIMUM: Final = Decimal("0.01")
MAX_MONEY_DECIMALS: Final = 4

Action = Literal["suspend"]
Scope = Literal["overdue_subscriptions", "all_subscriptions"]
NotifyTarget = Literal["customer", "partner"]

# Validators below that check one field against its siblings can only fail at the location of
# the field they are attached to. They put the path of the value actually at fault, relative to
# that location, in the error context under this key, so that the file loader can point at the
# right line. pydantic keeps the context as given.
ERROR_LOC_KEY: Final = "loc"

_STAGE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# As in the wire contracts: sums of amounts stay exact in the default 28-digit decimal context.
MAX_MONEY_INTEGER_DIGITS: Final = 18
_MONEY_HINT = (
    f'money must be a quoted decimal string like "5.00" '
    f"(at most {MAX_MONEY_DECIMALS} fractional digits)"
)


def _check_stage_name(name: str) -> str:
    if _STAGE_NAME.fullmatch(name) is None:
        raise PydanticCustomError(
            "stage_name",
            "stage name '{name}' is not an identifier: lower-case letters, digits and _, "
            "starting with a letter, at most 32 characters",
            {"name": name},
        )
    if name == CURRENT:
        raise PydanticCustomError(
            "stage_name_reserved",
            "stage name 'current' is reserved for a customer who is in no stage",
        )
    return name


def _check_currency_key(key: str) -> str:
    if key != DEFAULT_KEY and key not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency_code",
            "unknown currency '{key}': expected an ISO 4217 code such as USD, or 'default'",
            {"key": key},
        )
    return key


def _parse_money(value: Any) -> Decimal:
    # YAML turns unquoted 5.00 into the float 5.0 and 5 into an int: both lose the written
    # precision (and floats are binary), so amounts must arrive as text or as a Decimal.
    if isinstance(value, int | float):  # bool is an int too
        kind = "a boolean" if isinstance(value, bool) else f"the number {value!r}"
        raise PydanticCustomError(
            "money_type", "{hint}, not {kind}; quote it", {"hint": _MONEY_HINT, "kind": kind}
        )
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            raise PydanticCustomError(
                "money_text",
                "'{text}' is not a decimal amount: {hint}",
                {"text": value, "hint": _MONEY_HINT},
            )
        try:
            amount = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
            raise PydanticCustomError("money_text", "not a decimal amount") from exc
    elif isinstance(value, Decimal):
        amount = value
        if not amount.is_finite():
            raise PydanticCustomError("money_text", "amount must be finite")
    else:
        raise PydanticCustomError("money_type", "{hint}", {"hint": _MONEY_HINT})
    if amount.is_signed():
        raise PydanticCustomError(
            "money_negative",
            "amount {amount} is negative; it must be 0 or more",
            {"amount": str(amount)},
        )
    if amount.adjusted() >= MAX_MONEY_INTEGER_DIGITS:
        raise PydanticCustomError(
            "money_size",
            "amount {amount} has more than {max} integer digits",
            {"amount": str(amount), "max": MAX_MONEY_INTEGER_DIGITS},
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_DECIMALS:
        raise PydanticCustomError(
            "money_precision",
            "amount {amount} has more than {max} fractional digits; {hint}",
            {"amount": str(amount), "max": MAX_MONEY_DECIMALS, "hint": _MONEY_HINT},
        )
    return amount


def _freeze_minimums(minimums: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    merged = dict(minimums)
    merged.setdefault(DEFAULT_KEY, DEFAULT_MINIMUM)
    # Read-only, so the thresholds precomputed at construction cannot drift from the field.
    return MappingProxyType(merged)


StageName = Annotated[str, Strict(), AfterValidator(_check_stage_name)]
CurrencyKey = Annotated[str, Strict(), AfterValidator(_check_currency_key)]
Money = Annotated[Decimal, BeforeValidator(_parse_money)]
Days = Annotated[int, Strict(), Field(ge=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(_Frozen):
    """One rung of the ladder: entered `days_past_due` days after the anchor due date."""

    name: StageName
    days_past_due: Days
    min_days_in_previous: Annotated[int, Strict(), Field(ge=0)] = 0
    action: Action | None = None
    scope: Scope | None = None
    notify: tuple[NotifyTarget, ...] = ()

    @field_validator("notify")
    @classmethod
    def _notify_once(cls, notify: tuple[NotifyTarget, ...]) -> tuple[NotifyTarget, ...]:
        for index, target in enumerate(notify):
            if target in notify[:index]:
                raise PydanticCustomError(
                    "notify_duplicate",
                    "'{target}' is listed twice",
                    {"target": target, ERROR_LOC_KEY: (index,)},
                )
        return notify

    @model_validator(mode="after")
    def _suspend_has_scope(self) -> Stage:
        if self.action == "suspend" and self.scope is None:
            raise PydanticCustomError(
                "suspend_without_scope",
                "stage '{name}' has action: suspend but no scope; "
                "add scope: overdue_subscriptions or scope: all_subscriptions",
                {"name": self.name, ERROR_LOC_KEY: ("scope",)},
            )
        if self.scope is not None and self.action != "suspend":
            raise PydanticCustomError(
                "scope_without_suspend",
                "stage '{name}' has a scope but no action: suspend; "
                "scope says which subscriptions a suspend stage suspends",
                {"name": self.name, ERROR_LOC_KEY: ("scope",)},
            )
        return self

    @property
    def suspends(self) -> bool:
        """Whether entering this stage suspends subscriptions."""
        return self.action == "suspend"


class Reminders(_Frozen):
    """Reminder notices before an invoice falls due."""

    days_before_due: tuple[Days, ...] = ()

    @field_validator("days_before_due")
    @classmethod
    def _unique_descending(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        for index, day in enumerate(days):
            if day in days[:index]:
                raise PydanticCustomError(
                    "reminder_duplicate",
                    "reminder day {day} is listed twice",
                    {"day": day, ERROR_LOC_KEY: (index,)},
                )
        # Descending is chronological: the reminder furthest from the due date goes first.
        return tuple(sorted(days, reverse=True))


class PromiseToPay(_Frozen):
    """How long a customer's promise to pay may pause the climb."""

    max_days: Days = 30


class PaymentsInFlight(_Frozen):
    """How long a payment in flight (`payment.pending`) may keep a customer out of the
    suspend stage: its `expected_by` is held to at most this many days after it arrived."""

    max_days: Days = 14


def _check_currency(key: str) -> str:
    if key not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency_code",
            "unknown currency '{key}': expected an ISO 4217 code such as USD",
            {"key": key},
        )
    return key


Currency = Annotated[str, Strict(), AfterValidator(_check_currency)]


class Exposure(_Frozen):
    """What the partner has advanced to Microsoft for a customer's unpaid periods
    (docs/policy.md "Exposure"): above `escalate_above` in a currency, a delinquent
    customer's staff get one `exposure_high` notice per delinquency episode."""

    escalate_above: Annotated[
        Mapping[Currency, Money],
        AfterValidator(MappingProxyType),
        PlainSerializer(dict, return_type=dict[str, Decimal]),
    ] = Field(default_factory=dict, validate_default=True)


WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# The partner's own holidays; with at least one weekday open, they close at most this many
# weeks in a row, so a business date is always found within MAX_CLOSED_RUN days.
MAX_EXTRA_HOLIDAYS: Final = 366
MAX_CLOSED_RUN: Final = 7 * (MAX_EXTRA_HOLIDAYS + 60)  # 60: public holidays' weeks, generously


def known_zone(name: str) -> str:
    """`name` if it is an IANA zone the zone data knows; a pydantic error otherwise.

    "localtime" is refused: it resolves to whatever zone the host is set to, so the same file
    or record would mean different dates on different machines."""
    try:
        if name and name != "localtime":
            ZoneInfo(name)
            return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise PydanticCustomError(
        "timezone",
        "unknown time zone '{name}': expected an IANA zone name such as Asia/Taipei",
        {"name": name},
    )


def _check_country(code: str | None) -> str | None:
    if code is None:
        return code
    country, _, subdivision = code.partition("-")
    supported = public_holidays.list_supported_countries()
    if country not in supported:
        raise PydanticCustomError(
            "holiday_country",
            "no public holidays known for '{code}': expected an ISO 3166 country code such as"
            " TW or US, optionally with a subdivision (US-CA)",
            {"code": code},
        )
    if subdivision and subdivision not in supported[country]:
        raise PydanticCustomError(
            "holiday_subdivision",
            "'{subdivision}' is not a subdivision of {country} the holidays data knows",
            {"subdivision": subdivision, "country": country},
        )
    return code


class Calendar(_Frozen):
    """When a suspension may happen: any day, or business days only (not a weekend day, not
    a public or partner holiday, in the policy's time zone)."""

    suspend_on: Literal["any_day", "business_days"] = "any_day"
    weekend: tuple[Weekday, ...] = ("saturday", "sunday")
    holidays: Annotated[str | None, Strict(), AfterValidator(_check_country)] = None
    extra_holidays: Annotated[tuple[date, ...], Field(max_length=MAX_EXTRA_HOLIDAYS)] = ()

    @field_validator("weekend")
    @classmethod
    def _weekend_leaves_a_day(cls, weekend: tuple[str, ...]) -> tuple[str, ...]:
        for index, day in enumerate(weekend):
            if day in weekend[:index]:
                raise PydanticCustomError(
                    "weekend_duplicate",
                    "'{day}' is listed twice",
                    {"day": day, ERROR_LOC_KEY: (index,)},
                )
        if len(weekend) == len(WEEKDAYS):
            raise PydanticCustomError(
                "weekend_all_week", "every day of the week is a weekend day: nothing is left"
            )
        return weekend

    @cached_property
    def _weekend_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(day) for day in self.weekend)

    @cached_property
    def _public(self) -> public_holidays.HolidayBase | None:
        if self.holidays is None:
            return None
        country, _, subdivision = self.holidays.partition("-")
        return public_holidays.country_holidays(country, subdiv=subdivision or None)

    def closed(self, day: date) -> str | None:
        """Why `day` is not a business date ("2026-02-14 is a Saturday"), or None if it is one
        (always None with `suspend_on: any_day`)."""
        if self.suspend_on == "any_day":
            return None
        if day.weekday() in self._weekend_numbers:
            return f"{day.isoformat()} is a {WEEKDAYS[day.weekday()].capitalize()}"
        if day in self.extra_holidays:
            return f"{day.isoformat()} is a partner holiday"
        public = self._public
        if public is not None:
            name = public.get(day)
            if name is not None:
                return f"{day.isoformat()} is a public holiday in {self.holidays} ({name})"
        return None

    def next_open(self, day: date) -> date:
        """The first business date on or after `day` (`day` itself with `any_day`)."""
        for _ in range(MAX_CLOSED_RUN):
            if self.closed(day) is None:
                return day
            day += timedelta(days=1)
        return date.max  # pragma: no cover - beyond what a valid calendar can close


NoticeLanguage = Literal["en", "zh-TW"]
"""The languages notices are written in; a support term in each is what a footer shows."""

HourMinute = Annotated[str, Strict(), Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
SupportLine = Annotated[
    str, Strict(), Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f\x7f]+$")
]


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise PydanticCustomError(
                f"{what}_duplicate",
                "'{value}' is listed twice",
                {"value": value, ERROR_LOC_KEY: (index,)},
            )
    return values


class SupportHours(_Frozen):
    """When billing support answers: these weekdays, from `opens` to `closes`, in `timezone`."""

    days: Annotated[tuple[Weekday, ...], Field(min_length=1)]
    opens: HourMinute
    closes: HourMinute
    timezone: Annotated[str, Strict(), AfterValidator(known_zone)]

    @field_validator("days")
    @classmethod
    def _days_once(cls, days: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(days, "support_day")

    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> SupportHours:
        if self.closes <= self.opens:
            raise PydanticCustomError(
                "support_hours", "closes ({closes}) must be after opens ({opens})",
                {"closes": self.closes, "opens": self.opens},
            )  # fmt: skip
        return self


class SupportContact(_Frozen):
    """How a customer reaches billing support: at least one of e-mail, phone, a web form."""

    email: Annotated[
        str | None, Strict(), Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    ] = None
    phone: Annotated[
        str | None, Strict(), Field(max_length=40, pattern=r"^\+?[0-9][0-9 ()./-]{3,38}$")
    ] = None
    web: Annotated[str | None, Strict(), Field(max_length=300, pattern=r"^https://[^\s]+$")] = None

    @model_validator(mode="after")
    def _reachable(self) -> SupportContact:
        if self.email is None and self.phone is None and self.web is None:
            raise PydanticCustomError("support_contact", "give at least one of email, phone or web")
        return self


class Support(_Frozen):
    """The billing support the partner gives (docs/policy.md "Support requests"): hours,
    contact, languages and cost, told in every customer notice's footer; and how many
    business days a customer's claim of a payment holds the climb into a suspend stage."""

    hours: SupportHours
    contact: SupportContact
    languages: Annotated[tuple[NoticeLanguage, ...], Field(min_length=1)]
    # What support costs, one line per notice language; `en` is required and stands in for
    # a language without its own line.
    cost: Annotated[
        Mapping[NoticeLanguage, SupportLine],
        AfterValidator(MappingProxyType),
        PlainSerializer(dict, return_type=dict[str, str]),
    ]
    payment_claim_hold_days: Annotated[int, Strict(), Field(ge=1, le=10)] = 3

    @field_validator("languages")
    @classmethod
    def _languages_once(cls, languages: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(languages, "support_language")

    @field_validator("cost")
    @classmethod
    def _cost_in_english(cls, cost: Mapping[str, str]) -> Mapping[str, str]:
        if "en" not in cost:
            raise PydanticCustomError(
                "support_cost", "give the cost line in en (it stands in for other languages)"
            )
        return cost

    def cost_in(self, language: str) -> str:
        return self.cost.get(language) or self.cost["en"]  # type: ignore[call-overload]


class Policy(BaseModel):
    """A validated collections policy; the helpers are precomputed for the engine's hot path.

    Build it with `Policy.model_validate(...)` or the constructor (not `model_copy(update=...)`,
    which skips validation and would leave the precomputed lookups stale).
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    # Every decision carries the name and version (contracts' PolicyRef): the same limits.
    name: Annotated[
        str,
        Strict(),
        Field(alias="policy", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"),
    ]
    version: Annotated[int, Strict(), Field(ge=1, le=1_000_000_000)]
    timezone: Annotated[str, Strict()]
    minimum_overdue: Annotated[
        Mapping[CurrencyKey, Money],
        AfterValidator(_freeze_minimums),
        PlainSerializer(dict, return_type=dict[str, Decimal]),
    ]
    reminders: Reminders = Reminders()
    stages: Annotated[tuple[Stage, ...], Field(min_length=1)]
    exempt_tags: tuple[Annotated[str, Strict()], ...] = ()
    promise_to_pay: PromiseToPay = PromiseToPay()
    payments_in_flight: PaymentsInFlight = PaymentsInFlight()
    calendar: Calendar = Calendar()
    exposure: Exposure = Field(default_factory=Exposure)
    support: Support | None = None
    # Where a customer goes when its stage is not in this version: old stage name -> a stage
    # of this policy (or `current`). Checked against the previous version at start-up.
    migrate: Annotated[
        Mapping[StageName | Literal["current"], Annotated[str, Strict()]],
        AfterValidator(MappingProxyType),
        PlainSerializer(dict, return_type=dict[str, str]),
    ] = Field(default_factory=dict, validate_default=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        return known_zone(name)

    @field_validator("stages")
    @classmethod
    def _ladder(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        seen: dict[str, int] = {}
        suspend_at: int | None = None
        for index, stage in enumerate(stages):
            if stage.name in seen:
                raise PydanticCustomError(
                    "stage_duplicate",
                    "stage name '{name}' is used twice (first at stages[{first}])",
                    {"name": stage.name, "first": seen[stage.name], ERROR_LOC_KEY: (index, "name")},
                )
            seen[stage.name] = index
            if index > 0 and stage.days_past_due <= stages[index - 1].days_past_due:
                previous = stages[index - 1]
                raise PydanticCustomError(
                    "stage_order",
                    "stage '{name}' has days_past_due {days}, which must be greater than "
                    "{previous_days} of the previous stage '{previous}' "
                    "(days_past_due must strictly increase)",
                    {
                        "name": stage.name,
                        "days": stage.days_past_due,
                        "previous": previous.name,
                        "previous_days": previous.days_past_due,
                        ERROR_LOC_KEY: (index, "days_past_due"),
                    },
                )
            if stage.suspends:
                if suspend_at is not None:
                    raise PydanticCustomError(
                        "suspend_twice",
                        "stage '{name}' is a second suspend stage after '{first}'; "
                        "policy v1 supports zero or one stage with action: suspend",
                        {
                            "name": stage.name,
                            "first": stages[suspend_at].name,
                            ERROR_LOC_KEY: (index, "action"),
                        },
                    )
                suspend_at = index
        return stages

    @model_validator(mode="after")
    def _migrate_targets(self) -> Policy:
        names = {stage.name for stage in self.stages}
        for old, new in self.migrate.items():
            if old in names:
                raise PydanticCustomError(
                    "migrate_kept",
                    "migrate: '{old}' is still a stage of this policy; only a stage that no"
                    " longer exists can be migrated",
                    {"old": old, ERROR_LOC_KEY: ("migrate", old)},
                )
            if new != CURRENT and new not in names:
                raise PydanticCustomError(
                    "migrate_target",
                    "migrate: '{old}' goes to '{new}', which is not a stage of this policy"
                    " (stages: {names})",
                    {
                        "old": old,
                        "new": new,
                        "names": ", ".join(s.name for s in self.stages),
                        ERROR_LOC_KEY: ("migrate", old),
                    },
                )
        return self

    def stage_index(self, name: str) -> int | None:
        """The index of stage `name` (-1 for `current`); None when this policy has no such
        stage."""
        if name == CURRENT:
            return -1
        return self._stage_indexes.get(name)

    @cached_property
    def _stage_indexes(self) -> dict[str, int]:
        return {stage.name: index for index, stage in enumerate(self.stages)}

    # cached_property values live in the instance __dict__, so the engine's hot path reads
    # them as plain attributes (pydantic private attributes go through a slow __getattr__).
    @cached_property
    def _thresholds(self) -> dict[str, Decimal]:
        return {k: v for k, v in self.minimum_overdue.items() if k != DEFAULT_KEY}

    @cached_property
    def _default_minimum(self) -> Decimal:
        return self.minimum_overdue[DEFAULT_KEY]

    def threshold(self, currency: str) -> Decimal:
        """The overdue amount from which `currency` escalates: its own minimum, else `default`."""
        return self._thresholds.get(currency, self._default_minimum)

    @cached_property
    def zone(self) -> ZoneInfo:
        """The time zone whose dates are the business dates."""
        return ZoneInfo(self.timezone)

    @cached_property
    def suspend_stage_index(self) -> int | None:
        """Index of the stage with `action: suspend`, or None when the policy never suspends."""
        return next((i for i, stage in enumerate(self.stages) if stage.suspends), None)

    @property
    def ref(self) -> tuple[str, int]:
        """(name, version): what every decision carries to say which policy made it."""
        return (self.name, self.version)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The policy a collections consumer group last accepted (its `policy.accepted` record)."""

    name: str
    version: int
    digest: str
    stages: tuple[str, ...]


def digest(policy: Policy) -> str:
    """A fingerprint of what the policy decides: equal files (comments and key order aside)
    give equal digests."""
    dumped = policy.model_dump(mode="json", by_alias=True)
    if not policy.exposure.escalate_above:
        # A file without `exposure:` keeps the digest it had before the section existed, so
        # a running consumer group accepts it again without a version bump.
        del dumped["exposure"]
    if policy.support is None:
        del dumped["support"]  # likewise for a file without `support:`
    canonical = json.dumps(dumped, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def refuse_change(previous: Accepted | None, policy: Policy) -> str | None:
    """Why a consumer group that accepted `previous` must not start with `policy`, or None.

    The same version must be the same policy; a newer version needs a `migrate` entry for
    every stage of the previous one it no longer has, so no book is left in a stage that
    does not exist.
    """
    if previous is None:
        return None
    running = f"{previous.name} v{previous.version}"
    if policy.version == previous.version:
        if digest(policy) == previous.digest:
            return None
        return (
            f"the policy file changed but its version is still {policy.version}: bump"
            f" `version` on every change (running: {running})"
        )
    if policy.version < previous.version:
        return (
            f"version {policy.version} is older than the running {running}; to go back to an"
            " older file, give it a version above the running one"
        )
    names = {stage.name for stage in policy.stages}
    missing = [s for s in previous.stages if s not in names and s not in policy.migrate]
    if missing:
        return (
            f"stages of the running {running} are not in version {policy.version}:"
            f" {', '.join(missing)}; add `migrate:` entries saying where their customers go"
            f" (one of: current, {', '.join(s.name for s in policy.stages)})"
        )
    return None
