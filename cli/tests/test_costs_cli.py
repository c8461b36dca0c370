"""`billstate costs import` without a broker: real exports read, every bad row named, no send."""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billstate_cli.commands.costs import Options, plan_export
from billstate_cli.main import main
from billstate_shared.contracts import CostRecorded, decode

NO_BROKER = ["--bootstrap", "127.0.0.1:1"]
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

# The new commerce export's columns, in Partner Center's order (a subset of the trailing ones).
NEW_COMMERCE = [
    "PartnerId", "CustomerId", "CustomerName", "CustomerDomainName", "CustomerCountry",
    "InvoiceNumber", "MpnId", "ResellerMpnId", "OrderId", "OrderDate", "ProductId", "SkuId",
    "AvailabilityId", "SkuName", "ProductName", "ChargeType", "UnitPrice", "Quantity",
    "Subtotal", "TaxTotal", "Total", "Currency", "PriceAdjustmentDescription",
    "SubscriptionDescription", "SubscriptionId", "ChargeStartDate", "ChargeEndDate",
    "TermAndBillingCycle", "BillableQuantity", "BillingFrequency",
]  # fmt: skip
# The legacy license-based export: SubscriptionId is Microsoft's internal id there.
LEGACY = [
    "PartnerId", "CustomerId", "CustomerName", "MpnId", "ResellerMpnId", "OrderId",
    "SubscriptionId", "SyndicationPartnerSubscriptionNumber", "OfferId", "DurableOfferId",
    "OfferName", "SubscriptionStartDate", "SubscriptionEndDate", "ChargeStartDate",
    "ChargeEndDate", "ChargeType", "UnitPrice", "Quantity", "Amount", "TotalOtherDiscount",
    "Subtotal", "Tax", "TotalForCustomer", "Currency", "InvoiceNumber",
]  # fmt: skip

SKUS = [
    ("Microsoft 365 Business Premium", Decimal("22.00")),
    ("Microsoft 365 E3", Decimal("36.00")),
    ("Exchange Online (Plan 1)", Decimal("4.00")),
    ("Teams Essentials", Decimal("4.00")),
    ("Power BI Pro", Decimal("10.00")),
]
NAMES = ["Contoso, Ltd.", 'Fabrikam "North" Inc', "Northwind Traders", "Tailspin Toys, GmbH"]


MINIMAL = (
    "CustomerId,SubscriptionId,ChargeStartDate,ChargeEndDate,Subtotal,Currency,InvoiceNumber\n"
)
HEADER = (
    "CustomerId,CustomerName,SubscriptionId,ChargeStartDate,ChargeEndDate,Subtotal,Currency,"
    "InvoiceNumber"
)
GOOD = 't1,"Contoso, Ltd.",sub-1,12/1/2026,12/31/2026,"1,234.50",USD,G1'
CONTOSO = "196e2273-9651-43a3-ba7e-7cbcd918fc40"
FABRIKAM = "5d2f8e1a-7b3c-4e9d-a6f0-1c2b3a4d5e6f"


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311  (test data, not secrets)


@dataclass(frozen=True)
class Line:
    tenant: str
    customer: str
    subscription: str
    start: date
    end: date
    subtotal: Decimal
    tax: Decimal
    invoice: str
    currency: str


def money(value: Decimal, rng: random.Random) -> str:
    """As the exports write it: plain or with thousands separators."""
    return f"{value:,.2f}" if rng.random() < 0.5 else f"{value:.2f}"


def day(value: date, rng: random.Random) -> str:
    """Month first as Partner Center writes it, sometimes ISO, sometimes with a time."""
    choice = rng.randrange(4)
    if choice == 0:
        return value.isoformat()
    if choice == 1:
        return f"{value.month}/{value.day}/{value.year} 12:00:00 AM"
    return f"{value.month}/{value.day}/{value.year}"


def realistic(rng: random.Random, customers: int, subscriptions: int) -> list[Line]:
    """A partner's month: subscriptions billed monthly, seats added and removed mid-period."""
    lines: list[Line] = []
    currency = "EUR" if rng.random() < 0.3 else "USD"
    for c in range(customers):
        tenant = f"{c:08x}-{rng.getrandbits(16):04x}-4a5b-8c6d-{rng.getrandbits(48):012x}"
        for s in range(subscriptions):
            _, price = rng.choice(SKUS)
            start = date(2026, 11, 1) + timedelta(days=rng.randrange(30))
            end = start + timedelta(days=29)
            invoice = rng.choice(["G012345678", "G012345679"])
            seats = rng.randrange(1, 400)
            sub = f"{c:04x}{s:04x}-0e4f-4a5b-8c6d-7e8f9a0b1c2d"
            charges = [price * seats]
            for _ in range(rng.randrange(3)):  # prorated seat changes, credits included
                delta = rng.randrange(-seats + 1, 20) or 1
                charges.append(
                    (price * delta * rng.randrange(1, 30) / 30).quantize(Decimal("0.01"))
                )
            for charge in charges:
                tax = (charge * Decimal("0.05")).quantize(Decimal("0.01"))
                lines.append(
                    Line(tenant, f"cust-{c}", sub, start, end, charge, tax, invoice, currency)
                )
    return lines


def export(lines: list[Line], rng: random.Random, *, legacy: bool = False, bom: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = LEGACY if legacy else NEW_COMMERCE
    # Header spellings vary between exports and the tools partners open them in.
    shown = [rng.choice([h, h.lower(), h.upper(), _spaced(h), _snake(h)]) for h in header]
    writer.writerow(shown)
    for line in lines:
        total = line.subtotal + line.tax
        values = {
            "PartnerId": "0e195b37-4574-4539-bc42-0e539b9684c0",
            "CustomerId": line.tenant,
            "CustomerName": rng.choice(NAMES),
            "CustomerDomainName": "example.onmicrosoft.com",
            "CustomerCountry": "TW",
            "InvoiceNumber": line.invoice,
            "MpnId": "6034453",
            "OrderDate": day(line.start, rng),
            "SkuName": "Microsoft 365, Business Premium",
            "ChargeType": "cycleCharge",
            "Subtotal": money(line.subtotal, rng),
            "TaxTotal": money(line.tax, rng),
            "Tax": money(line.tax, rng),
            "Total": money(total, rng),
            "TotalForCustomer": money(total, rng),
            "Amount": money(line.subtotal, rng),
            "TotalOtherDiscount": "0",
            "Currency": line.currency,
            "PriceAdjustmentDescription": "Prorated, seats changed\nmid-period",
            "SubscriptionId": f"int-{line.subscription[:8]}" if legacy else line.subscription,
            "SyndicationPartnerSubscriptionNumber": line.subscription,
            "ChargeStartDate": day(line.start, rng),
            "ChargeEndDate": day(line.end, rng),
            "TermAndBillingCycle": "One-Year commitment for monthly/yearly billing",
        }
        writer.writerow([values.get(h, "") for h in header])
    return ("\ufeff" if bom else "") + out.getvalue()


def _spaced(name: str) -> str:
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(name))


def _snake(name: str) -> str:
    return _spaced(name).replace(" ", "_").upper()


def expected(lines: list[Line], *, total: bool = False) -> dict[tuple[str, str, str], Decimal]:
    sums: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        key = (line.customer, line.subscription, f"{line.start}/{line.end}/{line.invoice}")
        sums[key] += line.subtotal + (line.tax if total else 0)
    return {k: v for k, v in sums.items() if v}


def got(items: list[CostRecorded]) -> dict[tuple[str, str, str], Decimal]:
    return {
        (e.customer_id, e.data.subscription_id,
         f"{e.data.charge_start}/{e.data.charge_end}/{e.data.invoice_ref}"): e.data.amount
        for e in items
    }  # fmt: skip


def tenants_of(lines: list[Line]) -> dict[str, str]:
    return {line.tenant: line.customer for line in lines}


def costs(text: str, lines: list[Line], **options: str) -> list[CostRecorded]:
    plan = plan_export("export.csv", text, Options(tenants=tenants_of(lines), **options))
    assert plan.errors == []
    events = [i.event for i in plan.items]
    assert all(isinstance(e, CostRecorded) for e in events)
    return [e for e in events if isinstance(e, CostRecorded)]


def write_map(tmp_path: Path, lines: list[Line]) -> Path:
    path = tmp_path / "tenants.csv"
    rows = "".join(f"{t.upper()},{c}\n" for t, c in tenants_of(lines).items())
    path.write_text("tenant_id,customer_id\n" + rows, encoding="utf-8")
    return path


# ---- realistic exports ---------------------------------------------------------------------


def test_a_new_commerce_export_of_thousands_of_rows_sums_each_subscription_and_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = seeded(14)
    lines = realistic(rng, customers=120, subscriptions=12)
    assert len(lines) > 2500
    text = export(lines, rng)
    assert text.startswith("\ufeff")
    assert '"Contoso, Ltd."' in text
    assert '"Fabrikam ""North"" Inc"' in text
    assert re.search(r',"\d{1,3},\d{3}\.\d\d",', text)  # a thousands separator, quoted

    assert got(costs(text, lines)) == expected(lines)

    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("utf-8"))
    code = main(["costs", "import", str(path), "--customers", str(write_map(tmp_path, lines))])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"{len(lines)} line(s) read; {len(expected(lines))} cost(s) for 120")
    assert out[-1] == f"dry run: {len(expected(lines))} to send; add --send to produce"


def test_the_total_includes_tax_when_asked() -> None:
    rng = seeded(7)
    lines = realistic(rng, customers=5, subscriptions=3)
    text = export(lines, rng)
    assert got(costs(text, lines, amount="total")) == expected(lines, total=True)


def test_a_legacy_license_based_export_uses_the_partner_center_subscription_id() -> None:
    rng = seeded(3)
    lines = realistic(rng, customers=10, subscriptions=4)
    text = export(lines, rng, legacy=True, bom=False)
    events = costs(text, lines, amount="total")
    assert got(events) == expected(lines, total=True)
    # SyndicationPartnerSubscriptionNumber, never Microsoft's internal SubscriptionId.
    assert not [e for e in events if e.data.subscription_id.startswith("int-")]


def test_the_example_export_in_the_docs_imports() -> None:
    text = (EXAMPLES / "reconciliation.csv").read_text(encoding="utf-8")
    plan = plan_export("r.csv", text, Options(tenants={CONTOSO: "contoso", FABRIKAM: "fabrikam"}))
    events = [i.event for i in plan.items if isinstance(i.event, CostRecorded)]
    amounts = {(e.customer_id, str(e.data.amount)) for e in events}
    # Two lines of one subscription and period (a seat added mid-month) make one cost;
    # a charge and its prorated credit make another.
    assert amounts == {("contoso", "1390.97"), ("contoso", "120.00"), ("fabrikam", "227.33")}


def test_a_column_of_the_export_may_name_the_customer(tmp_path: Path) -> None:
    text = (
        "CustomerTenantId,Partner Customer,SubscriptionId,ChargeStartDate,ChargeEndDate,"
        "Subtotal,Billing Currency,InvoiceNumber\n"
        "t-1,contoso,sub-1,2026-12-01,2026-12-31,10.00,usd,G1\n"
    )
    plan = plan_export("x.csv", text, Options(customer_column="partner_customer"))
    assert plan.errors == []
    (event,) = [i.event for i in plan.items if isinstance(i.event, CostRecorded)]
    assert (event.customer_id, event.data.currency) == ("contoso", "USD")


def test_lines_that_cancel_out_send_nothing_and_say_so() -> None:
    text = MINIMAL + "t1,sub-1,12/1/2026,12/31/2026,22.00,USD,G1\n"
    text += "t1,sub-1,12/1/2026,12/31/2026,-22.00,USD,G1\n"
    plan = plan_export("x.csv", text, Options(tenants={"t1": "contoso"}))
    assert (plan.items, plan.errors) == ([], [])
    assert plan.zero == ["x.csv:2: G1:contoso:sub-1:2026-12-01:2026-12-31 sums to zero, skipped"]


# ---- determinism ---------------------------------------------------------------------------


def test_the_same_file_gives_the_same_events_byte_for_byte() -> None:
    rng = seeded(5)
    lines = realistic(rng, customers=8, subscriptions=5)
    text = export(lines, rng)
    first = plan_export("a.csv", text, Options(tenants=tenants_of(lines)))
    again = plan_export("b.csv", text, Options(tenants=tenants_of(lines)))
    assert [i.value for i in first.items] == [i.value for i in again.items]
    ids = [i.event.event_id for i in first.items]
    assert len(ids) == len(set(ids))
    for item in first.items:
        assert decode(item.value) == item.event
        assert item.event.event_id == f"cost:{item.event.data.cost_id}"  # type: ignore[union-attr]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_row_order_and_header_spelling_change_no_event(
    data: random.Random, looks: random.Random
) -> None:
    lines = realistic(data, customers=3, subscriptions=3)
    shuffled = list(lines)
    looks.shuffle(shuffled)
    one = {e.event_id: e for e in costs(export(lines, looks), lines)}
    two = {e.event_id: e for e in costs(export(shuffled, looks), lines)}
    assert one == two
    assert got(list(one.values())) == expected(lines)


def test_long_customer_and_subscription_ids_still_give_a_deterministic_id_within_limits() -> None:
    customer, subscription = "c" * 64, "s/" * 32
    text = MINIMAL + f"t1,{subscription},12/1/2026,12/31/2026,5.00,USD,G012345678\n"
    plans = [plan_export("x.csv", text, Options(tenants={"t1": customer})) for _ in range(2)]
    (event,) = {p.items[0].event for p in plans}
    assert len(event.event_id) <= 128
    assert event.event_id.startswith("cost-")  # hashed: the readable id would be too long
    assert event.data.subscription_id == subscription  # type: ignore[union-attr]


# ---- bad rows ------------------------------------------------------------------------------


def test_every_bad_row_is_named_and_nothing_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        GOOD,  # 2
        't1,"Contoso, Ltd.",sub-2,13/1/2026,12/31/2026,1.00,USD,G1',  # 3: month 13
        't1,"Contoso, Ltd.",sub-3,12/1/2026,11/30/2026,1.00,USD,G1',  # 4: ends before start
        't1,"Contoso, Ltd.",sub-4,12/1/2026,12/31/2026,"1,23.00",USD,G1',  # 5: bad grouping
        't1,"Contoso, Ltd.",sub-5,12/1/2026,12/31/2026,1.00001,USD,G1',  # 6: 5 decimals
        't9,"Unknown",sub-6,12/1/2026,12/31/2026,1.00,USD,G1',  # 7: tenant not mapped
        't1,"Contoso, Ltd.",sub-7,12/1/2026,12/31/2026,,USD,G1',  # 8: empty amount
        't1,"Contoso, Ltd.",sub-8,12/1/2026,12/31/2026,1.00,USD',  # 9: a field short
        't1,"Contoso, Ltd.",sub-1,12/1/2026,12/31/2026,2.00,EUR,G1',  # 10: second currency
        't1,"Contoso, Ltd.",sub-9,12/1/2026,12/31/2026,1.00,XYZ,G1',  # 11: no such currency
        't1,"Contoso, Ltd.",sub 10,12/1/2026,12/31/2026,1.00,USD,G1',  # 12: space in the id
        't1,"Contoso, Ltd.",sub-11,12/1/2026,12/31/2026,"1,000,000,000,000.00",USD,G1',  # 13
        't2,"Mapped wrong",sub-12,12/1/2026,12/31/2026,1.00,USD,G1',  # 14: bad customer id
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\ufeff" + HEADER + "\r\n" + "\r\n".join(rows) + "\r\n", encoding="utf-8")
    tenants = tmp_path / "t.csv"
    tenants.write_text("t1,contoso\nt2,not a customer id\n", encoding="utf-8")

    code = main(["costs", "import", str(path), "--customers", str(tenants), "--send", *NO_BROKER])

    err = capsys.readouterr().err.splitlines()
    assert code == 2
    where = f"{path}:"
    assert [e.removeprefix(where).split(":")[0:2] for e in err[:-1]] == [
        ["3", " ChargeStartDate"],
        ["4", " ChargeEndDate"],
        ["5", " Subtotal"],
        ["6", " Subtotal"],
        ["7", " CustomerId"],
        ["8", " Subtotal"],
        ["9", " row"],
        ["10", " Currency"],
        ["11", " Currency"],
        ["12", " SubscriptionId"],
        ["13", " Subtotal"],
        ["14", " CustomerId"],
    ]
    assert f"{where}7: CustomerId: tenant t9 is not in {tenants}" in err
    assert f"{where}9: row: 7 fields where the header has 8" in err
    assert err[-1] == "billstate costs import: 12 bad row(s); nothing sent"


def test_a_missing_column_is_named_on_the_header_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER.replace(",ChargeEndDate", "") + "\n", encoding="utf-8")
    code = main(["costs", "import", str(path), "--customer-column", "CustomerName"])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == f"{path}:1: header: no ChargeEndDate column"


def test_a_quoted_field_across_lines_keeps_the_line_numbers_right() -> None:
    quoted = 't1,"Contoso,\nLtd.",sub-1,12/1/2026,12/31/2026,1.00,USD,G1'
    text = f"{HEADER}\n{quoted}\nt1,x,sub-2,12/1/2026,12/32/2026,1.00,USD,G1"
    plan = plan_export("x.csv", text, Options(tenants={"t1": "c"}))
    assert [e.split(":")[1] for e in plan.errors] == ["4"]


def test_a_bad_customer_map_stops_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + "\n" + GOOD + "\n", encoding="utf-8")
    tenants = tmp_path / "t.csv"
    tenants.write_text("t1,contoso\nt1,fabrikam\n", encoding="utf-8")
    code = main(["costs", "import", str(path), "--customers", str(tenants)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"billstate costs import: {tenants}:2: tenant t1 is mapped twice; nothing sent\n"
    )


def test_the_customer_is_required_one_way_or_the_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["costs", "import", str(tmp_path / "x.csv")])
    assert info.value.code == 2


def test_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["costs", "import", str(tmp_path / "none.csv"), "--customer-column", "c"])
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_unreachable_broker_is_exit_1_after_a_clean_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(HEADER + "\n" + GOOD + "\n", encoding="utf-8")
    tenants = tmp_path / "t.csv"
    tenants.write_text("t1,contoso\n", encoding="utf-8")
    code = main(["costs", "import", str(path), "--customers", str(tenants), "--send", *NO_BROKER])
    assert code == 1
    assert "nothing sent" in capsys.readouterr().err
