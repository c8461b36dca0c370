"""The pure rules of the cost poller and the commitment checks, with properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billstate_access_control.domain.commitments import Terms, at_stake, commitment, terms
from billstate_access_control.domain.costs import Line, costs, line
from billstate_shared.errors import Refused

NOW = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
BILLED = date(2027, 1, 9)

amounts = st.decimals(min_value=-500, max_value=5000, places=2, allow_nan=False)
lines_ = st.lists(
    st.builds(
        Line,
        customer_id=st.sampled_from(["contoso", "fabrikam"]),
        subscription_id=st.sampled_from(["sub-a", "sub-b", "sub-c"]),
        charge_start=st.sampled_from([date(2026, 11, 1), date(2026, 12, 1)]),
        charge_end=st.just(date(2026, 12, 31)),
        amount=amounts,
        currency=st.just("USD"),
    ),
    max_size=40,
)


@given(lines_, st.randoms(use_true_random=False))
def test_costs_keep_every_line_once_whatever_the_order(found: list[Line], rnd: object) -> None:
    events = costs("G1", BILLED, found)
    shuffled = list(found)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]

    assert costs("G1", BILLED, shuffled) == events
    assert len({e.event_id for e in events}) == len(events)
    for customer in ("contoso", "fabrikam"):
        expected = sum((x.amount for x in found if x.customer_id == customer), Decimal(0))
        got = sum((e.data.amount for e in events if e.customer_id == customer), Decimal(0))
        assert got == expected
    assert all(e.data.amount != 0 for e in events)


def test_costs_never_mix_currencies() -> None:
    usd = Line("contoso", "sub-a", date(2026, 12, 1), date(2026, 12, 31), Decimal(1), "USD")
    eur = Line("contoso", "sub-a", date(2026, 12, 1), date(2026, 12, 31), Decimal(1), "EUR")

    with pytest.raises(Refused, match="mixes USD and EUR"):
        costs("G1", BILLED, [usd, eur])


def test_a_line_of_a_tenant_not_ours_is_none_and_a_bad_amount_is_refused() -> None:
    item = {
        "customerId": "t-1",
        "subscriptionId": "S",
        "chargeStartDate": "2026-12-01T00:00:00Z",
        "chargeEndDate": "2026-12-31T00:00:00Z",
        "subtotal": 10.1,
        "currency": "usd",
    }
    ours = {"t-1": "contoso"}.get

    assert line(item, lambda _t: None, str) is None
    got = line(item, ours, str)
    assert got is not None
    assert (got.amount, got.currency) == (Decimal("10.1"), "USD")
    with pytest.raises(Refused, match="subtotal"):
        line({**item, "subtotal": "ten"}, ours, str)
    with pytest.raises(Refused, match="chargeEndDate"):
        line({**item, "chargeEndDate": "soon"}, ours, str)


def found(**kw: object) -> Terms:
    fields: dict[str, object] = {
        "subscription_id": "sub-a",
        "status": "active",
        "term_end": None,
        "auto_renew": True,
        "cancellable_until": None,
        "term": "P1Y",
    }
    fields.update(kw)
    return Terms(**fields)  # type: ignore[arg-type]


@given(st.integers(min_value=-30, max_value=60), st.booleans(), st.integers(0, 30))
def test_a_renewal_is_at_stake_exactly_within_the_days_ahead(
    days: int,
    auto_renew: bool,  # noqa: FBT001  (hypothesis passes it by position)
    ahead: int,
) -> None:
    renews = NOW.date() + timedelta(days=days)
    sub = found(term_end=renews - timedelta(days=1), auto_renew=auto_renew)

    stakes = at_stake(sub, NOW, ahead, "final_notice")

    assert bool(stakes) == (auto_renew and 0 <= days <= ahead)
    assert all(s.renews_on == renews for s in stakes)


@given(st.integers(min_value=-10_000, max_value=10_000))
def test_a_cancellation_window_is_at_stake_while_it_is_open(minutes: int) -> None:
    until = NOW + timedelta(minutes=minutes)
    stakes = at_stake(found(auto_renew=False, cancellable_until=until), NOW, 14, "suspended")

    assert bool(stakes) == (minutes > 0)


def test_an_ended_subscription_and_the_ids_of_what_is_at_stake() -> None:
    sub = found(term_end=NOW.date() + timedelta(days=3))
    assert at_stake(found(status="deleted", term_end=sub.term_end), NOW, 14, "x") == []

    (stake,) = at_stake(sub, NOW, 14, "final_notice")
    one = commitment("contoso", "partner_center", sub, stake, NOW)
    later = commitment("contoso", "partner_center", sub, stake, NOW + timedelta(hours=6))

    assert one.event_id == later.event_id
    assert one.event_id == "commitment:partner_center:sub-a:renewal:2027-01-24"


def test_terms_read_partner_centers_fields_and_leave_out_what_is_garbled() -> None:
    read = terms(
        {
            "status": "suspended",
            "commitmentEndDate": "2027-01-31T00:00:00Z",
            "autoRenewEnabled": True,
            "cancellationAllowedUntilDate": "not a date",
            "termDuration": "P1Y",
        },
        "sub-a",
    )

    assert read == Terms("sub-a", "suspended", date(2027, 1, 31), True, None, "P1Y")
