"""`billstate costs import FILE`: Partner Center's billed reconciliation export to cost.recorded."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from billstate_cli.commands.send import (
    SendError,
    SettingsError,
    add_bootstrap,
    kafka_of,
    produce,
    report_failure,
)
from billstate_shared.contracts import ContractError
from billstate_shared.contracts.types import CustomerId, SubscriptionId
from billstate_shared.domain.ids import readable_id
from billstate_shared.errors import ConfigRefused, Refused
from billstate_shared.operator.letters import Outgoing, check
from billstate_shared.topics import COSTS

COMMAND = "billstate costs import"

# Header names are compared folded: case, spaces, underscores and dashes ignored, so
# "Charge Start Date", "chargeStartDate" and "CHARGE_START_DATE" are one column.
TENANT = ("customerid", "customertenantid", "tenantid")
# The legacy license-based file's SubscriptionId is Microsoft's internal id; the one Partner
# Center (and billstate) knows is SyndicationPartnerSubscriptionNumber. New commerce files
# carry only SubscriptionId, which is that id.
SUBSCRIPTION = ("syndicationpartnersubscriptionnumber", "subscriptionid")
CHARGE_START = ("chargestartdate",)
CHARGE_END = ("chargeenddate",)
CURRENCY = ("currency", "billingcurrency")
INVOICE = ("invoicenumber", "invoiceid")
AMOUNTS = {
    "subtotal": ("subtotal",),  # pre-tax: what the partner owes Microsoft before tax
    "total": ("total", "totalforcustomer"),  # tax included
}

_DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d")
_AMOUNT = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d{1,4})?")


def fold(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    costs = sub.add_parser("costs", help="what Microsoft bills the partner (cost lines)")
    verbs = costs.add_subparsers(dest="verb", required=True, metavar="VERB")
    parser = verbs.add_parser(
        "import",
        help="check a billed reconciliation export and produce cost.recorded (or --dry-run)",
        description=(
            "Reads Partner Center's billed invoice reconciliation line items (CSV, legacy "
            "license-based or new commerce), sums the lines of each subscription, charge "
            "period and invoice into one cost.recorded with a deterministic id, and keys each "
            "by the billstate customer id of the line's tenant. Every row is checked first: a "
            "bad row is reported as FILE:LINE: column: reason and nothing is sent (exit 2)."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the reconciliation export (CSV)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--customers",
        metavar="MAP.csv",
        help="CSV of tenant_id,customer_id: the billstate customer of each tenant",
    )
    who.add_argument(
        "--customer-column",
        metavar="COLUMN",
        help="a column of the export that holds the billstate customer id",
    )
    parser.add_argument(
        "--amount",
        choices=sorted(AMOUNTS),
        default="subtotal",
        help="which amount is the cost: subtotal (before tax, default) or total",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--send", action="store_true", help="produce (default: dry run)")
    mode.add_argument("--dry-run", action="store_true", help="only check and summarise")
    add_bootstrap(parser)
    parser.set_defaults(func=_run)


class RowRefused(Refused):
    """A bad row of the operator's own file: `field` is the export's column. Unlike a
    record's refusal, the reason may quote the cell (a date, an amount, a tenant id): it goes
    to the operator's terminal, never to a log or a dead letter."""


# ---- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Where each needed value is in the export's header (original names, for messages)."""

    tenant: str | None
    subscription: str
    start: str
    end: str
    amount: str
    currency: str
    invoice: str
    customer: str | None = None


def _pick(header: Sequence[str], names: Sequence[str]) -> str | None:
    folded = {fold(h): h for h in reversed(header)}  # the first of twin columns wins
    for name in names:
        if name in folded:
            return folded[name]
    return None


def columns_of(header: Sequence[str], amount: str, customer_column: str | None) -> Columns:
    """The columns to read, or a `RowRefused` naming the first one missing."""

    def need(names: Sequence[str], label: str) -> str:
        found = _pick(header, names)
        if found is None:
            raise RowRefused("header", f"no {label} column")
        return found

    customer = None
    if customer_column is not None:
        customer = need((fold(customer_column),), customer_column)
    tenant = _pick(header, TENANT)
    if tenant is None and customer is None:
        raise RowRefused("header", "no CustomerId (or CustomerTenantId) column")
    return Columns(
        tenant=tenant,
        subscription=need(SUBSCRIPTION, "SubscriptionId"),
        start=need(CHARGE_START, "ChargeStartDate"),
        end=need(CHARGE_END, "ChargeEndDate"),
        amount=need(AMOUNTS[amount], "Total" if amount == "total" else "Subtotal"),
        currency=need(CURRENCY, "Currency"),
        invoice=need(INVOICE, "InvoiceNumber"),
        customer=customer,
    )


def rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for record in reader:
        yield start, record
        start = reader.line_num + 1


def parse_date(text: str) -> date:
    """The exports' dates: 10/3/2026 (month first), 2026-10-03, either with a time after."""
    day = text.strip().split(" ")[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(day, fmt).date()  # noqa: DTZ007  (a calendar date, no zone)
        except ValueError:
            continue
    raise ValueError(f"not a date: {text.strip()!r} (expected M/D/YYYY or YYYY-MM-DD)")


def parse_amount(text: str) -> Decimal:
    """A decimal with at most 4 fractional digits, thousands separated by commas or not."""
    raw = text.strip()
    if not _AMOUNT.fullmatch(raw):
        raise ValueError(f"not an amount: {raw!r} (expected e.g. 1234.56 or 1,234.56)")
    try:
        return Decimal(raw.replace(",", ""))
    except InvalidOperation:  # pragma: no cover  (the pattern admits only decimals)
        raise ValueError(f"not an amount: {raw!r}") from None


def read_customers(name: str) -> dict[str, str]:
    """tenant id (lower case) -> customer id; a header row `tenant_id,customer_id` is optional."""
    found: dict[str, str] = {}
    text = Path(name).read_text(encoding="utf-8-sig")
    for number, record in rows(text):
        cells = [c.strip() for c in record]
        if not any(cells) or (number == 1 and fold(cells[0]) in ("tenantid", *TENANT)):
            continue
        if len(cells) != 2 or not all(cells):
            raise ConfigRefused(f"{name}:{number}", "expected two columns: tenant_id,customer_id")
        tenant = cells[0].lower()
        if found.get(tenant, cells[1]) != cells[1]:
            raise ConfigRefused(f"{name}:{number}", f"tenant {cells[0]} is mapped twice")
        found[tenant] = cells[1]
    return found


# ---- grouping ---------------------------------------------------------------------------------


@dataclass
class Cost:
    """The lines of one subscription, charge period and invoice, summed."""

    line: int
    customer: str
    subscription: str
    start: date
    end: date
    currency: str
    invoice: str
    amount: Decimal = Decimal(0)

    @property
    def parts(self) -> tuple[str, ...]:
        # As access-control's poller makes them, so an import and the poller never count one
        # cost twice; the customer too, since a subscription id is unique only in its tenant.
        return (
            self.invoice, self.customer, self.subscription, self.start.isoformat(),
            self.end.isoformat(),
        )  # fmt: skip

    @property
    def cost_id(self) -> str:
        return readable_id(*self.parts)

    def envelope(self) -> bytes:
        doc = {
            "event_id": readable_id("cost", *self.parts),
            "event_type": "cost.recorded",
            "schema_version": 1,
            # Time is data: the first day charged, never the clock, so a re-import is equal.
            "occurred_at": f"{self.start.isoformat()}T00:00:00+00:00",
            "customer_id": self.customer,
            "data": {
                "cost_id": self.cost_id,
                "subscription_id": self.subscription,
                "charge_start": self.start.isoformat(),
                "charge_end": self.end.isoformat(),
                "amount": str(self.amount),
                "currency": self.currency,
                "invoice_ref": self.invoice,
            },
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Plan:
    """What an export would send, what it skips, and every bad row."""

    items: list[Outgoing] = field(default_factory=list)
    lines: int = 0
    zero: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _field_column(cols: Columns, contract_field: str) -> str:
    """The export column behind a contract field a built event was refused at."""
    by_field = {
        "customer_id": cols.customer or cols.tenant or "customer",
        "data.subscription_id": cols.subscription,
        "data.charge_start": cols.start,
        "data.charge_end": cols.end,
        "data.amount": cols.amount,
        "data.currency": cols.currency,
        "data.invoice_ref": cols.invoice,
        "data.cost_id": cols.invoice,
        "event_id": cols.invoice,
        "occurred_at": cols.start,
    }
    return by_field.get(contract_field, contract_field)


_SUBSCRIPTION_ID: TypeAdapter[str] = TypeAdapter(SubscriptionId)
_CUSTOMER_ID: TypeAdapter[str] = TypeAdapter(CustomerId)


def _valid(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _cell(values: Mapping[str, str], column: str) -> str:
    text = values.get(column, "").strip()
    if not text:
        raise RowRefused(column, "is empty")
    return text


def _customer(cols: Columns, values: Mapping[str, str], options: Options) -> str:
    """The billstate customer of a line: its own column, or its tenant through the map."""
    if cols.customer is not None:
        column, customer = cols.customer, _cell(values, cols.customer)
    else:
        assert cols.tenant is not None  # columns_of requires one of the two
        column, tenant = cols.tenant, _cell(values, cols.tenant)
        found = (options.tenants or {}).get(tenant.lower())
        if found is None:
            raise RowRefused(column, f"tenant {tenant} is not in {options.map_name}")
        customer = found
    # Checked here, not only by the decoder: the ids are made of it, and a refusal of the
    # id would name the wrong column.
    if not _valid(_CUSTOMER_ID, customer):
        raise RowRefused(column, f"{customer!r} is no customer id (1 to 64 of A-Za-z0-9._:-)")
    return customer


def _date(values: Mapping[str, str], column: str) -> date:
    try:
        return parse_date(_cell(values, column))
    except ValueError as err:
        raise RowRefused(column, str(err)) from None


def _read_line(
    cols: Columns, values: Mapping[str, str], options: Options
) -> tuple[str, str, date, date, Decimal, str, str]:
    customer = _customer(cols, values, options)
    subscription = _cell(values, cols.subscription)
    if not _valid(_SUBSCRIPTION_ID, subscription):
        raise RowRefused(
            cols.subscription, "not a subscription id (1 to 64 printable ASCII, no spaces)"
        )
    start, end = _date(values, cols.start), _date(values, cols.end)
    if end < start:
        raise RowRefused(cols.end, f"{end} is before {cols.start} {start}")
    try:
        amount = parse_amount(_cell(values, cols.amount))
    except ValueError as err:
        raise RowRefused(cols.amount, str(err)) from None
    currency = _cell(values, cols.currency).upper()
    invoice = _cell(values, cols.invoice)
    return customer, subscription, start, end, amount, currency, invoice


@dataclass(frozen=True)
class Options:
    """How to read an export: who each tenant is, which amount is the cost."""

    tenants: Mapping[str, str] | None = None  # tenant id (lower case) -> customer id
    customer_column: str | None = None
    amount: str = "subtotal"
    map_name: str = "the customer map"


def plan_export(name: str, text: str, options: Options) -> Plan:
    """Every row checked; the costs to send if none is bad."""
    plan = Plan()
    records = rows(text.removeprefix("\ufeff"))
    first = next(records, None)
    if first is None:
        plan.errors.append(f"{name}:1: header: the file is empty")
        return plan
    try:
        header = [h.strip() for h in first[1]]
        cols = columns_of(header, options.amount, options.customer_column)
    except RowRefused as bad:
        plan.errors.append(f"{name}:1: {bad}")
        return plan
    groups: dict[tuple[str, str, date, date], Cost] = {}
    refused: list[tuple[int, str]] = []
    for number, record in records:
        if not any(c.strip() for c in record):
            continue
        plan.lines += 1
        try:
            _add(groups, cols, header, (number, record), options=options)
        except RowRefused as err:
            refused.append((number, str(err)))
    for cost in groups.values():
        if cost.amount == 0:
            # Lines that cancel out (a charge and its full credit) cost the partner nothing.
            plan.zero.append(f"{name}:{cost.line}: {cost.cost_id} sums to zero, skipped")
            continue
        raw = cost.envelope()
        try:
            event = check(raw, COSTS.name)
        except ContractError as err:
            refused.append((cost.line, f"{_field_column(cols, err.field)}: {err.reason}"))
            continue
        plan.items.append(Outgoing(f"{name}:{cost.line}", COSTS.name, event, raw))
    plan.errors = [f"{name}:{number}: {why}" for number, why in sorted(refused)]
    return plan


def _add(
    groups: dict[tuple[str, str, date, date], Cost],
    cols: Columns,
    header: Sequence[str],
    line: tuple[int, Sequence[str]],
    *,
    options: Options,
) -> None:
    """One line into its cost, or a `RowRefused` saying why it cannot be."""
    number, record = line
    if len(record) != len(header):
        raise RowRefused("row", f"{len(record)} fields where the header has {len(header)}")
    values = dict(zip(header, record, strict=True))
    customer, sub, start, end, value, currency, invoice = _read_line(cols, values, options)
    key = (invoice, sub, start, end)
    cost = groups.get(key)
    if cost is None:
        cost = groups[key] = Cost(number, customer, sub, start, end, currency, invoice)
    elif cost.currency != currency:
        raise RowRefused(
            cols.currency,
            f"{currency} where line {cost.line} has {cost.currency} for the same "
            "subscription, period and invoice",
        )
    elif cost.customer != customer:
        raise RowRefused(
            cols.customer or cols.tenant or "customer",
            f"customer {customer} where line {cost.line} has {cost.customer} for the same "
            "subscription",
        )
    cost.amount += value


# ---- the command ------------------------------------------------------------------------------


def _summary(items: Sequence[Outgoing]) -> str:
    totals: dict[str, Decimal] = {}
    customers = {i.event.customer_id for i in items}
    for item in items:
        data = item.event.data
        currency: str = getattr(data, "currency")  # noqa: B009  (cost.recorded data)
        totals[currency] = totals.get(currency, Decimal(0)) + getattr(data, "amount")  # noqa: B009
    money = ", ".join(f"{c} {totals[c]}" for c in sorted(totals)) or "nothing"
    return f"{len(items)} cost(s) for {len(customers)} customer(s): {money}"


def _load(args: argparse.Namespace) -> tuple[str, Options]:
    """The export's text and how to read it; OSError, UnicodeDecodeError or ConfigRefused."""
    tenants = None if args.customers is None else read_customers(args.customers)
    text = Path(args.file).read_text(encoding="utf-8-sig")
    options = Options(tenants, args.customer_column, args.amount, args.customers or "")
    return text, options


def _run(args: argparse.Namespace) -> int:
    try:
        text, options = _load(args)
    except OSError as err:
        print(f"{COMMAND}: cannot read {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        print(f"{COMMAND}: not UTF-8 text: {err.reason}", file=sys.stderr)
        return 2
    except ConfigRefused as err:
        print(f"{COMMAND}: {err}; nothing sent", file=sys.stderr)
        return 2
    plan = plan_export(args.file, text, options)
    for error in plan.errors:
        print(error, file=sys.stderr)
    if plan.errors:
        print(f"{COMMAND}: {len(plan.errors)} bad row(s); nothing sent", file=sys.stderr)
        return 2
    for note in plan.zero:
        print(note)
    print(f"{plan.lines} line(s) read; {_summary(plan.items)}")
    if not args.send:
        for item in plan.items:
            print(f"would send {item.origin}: {item.describe()}")
        print(f"dry run: {len(plan.items)} to send; add --send to produce")
        return 0
    return _send(args, plan.items)


def _send(args: argparse.Namespace, items: Sequence[Outgoing]) -> int:
    try:
        kafka = kafka_of(args)
        delivered = asyncio.run(produce(kafka, items))
    except SettingsError as err:
        print(f"{COMMAND}: {err}; nothing sent", file=sys.stderr)
        return 2
    except SendError as err:
        report_failure(COMMAND, err, len(items))
        return 1
    print(f"sent {len(delivered)} to {kafka.bootstrap} ({COSTS.name})")
    return 0
