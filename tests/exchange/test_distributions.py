"""Coupons, dividends, redemption and impact-linked coupons: the issuer's cash to every holder at the record seq.

The bond GREEN27 of the cooperative `coop` pays 4 % a year on EUR 100.00 (EUR 4.00 = 400 cents a unit) every
15 January from 2024 to its maturity on 2027-01-15, 30E/360. The equity COOP is worth EUR 10.00 a share.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import codec
from exchange.commands import PayCoupon, PayDividend, RecordImpactOutcome, Redeem
from exchange.daycount import coupon_amount
from exchange.events import (
    BondRedeemed,
    CommandRejected,
    CouponPaid,
    CouponRateChanged,
    DistributionCompleted,
    DistributionKind,
    DividendPaid,
    OrderCancelled,
    Trade,
    TradingStateChanged,
)
from exchange.instrument import TradingState
from exchange.orders import CancelReason
from exchange.rejects import RejectReason
from tests.exchange.corporate_factories import (
    ISSUER,
    CorporateMarket,
    conserved,
    holds_explained,
    snapshot,
    social_bond,
    social_equity,
)
from tests.exchange.factories import BUY, SELL, limit, of_type, one

FIRST_COUPON = date(2024, 1, 15)
MATURITY = date(2027, 1, 15)


def market_with_holders(*instruments, holdings: dict[str, int], symbol: str = "GREEN27", price: int = 10_000):
    """The instruments listed, `coop` issued 1 000 units of `symbol` and sold each holder its units at `price`."""
    m = CorporateMarket(*instruments)
    m.issue(ISSUER, 1_000, symbol)
    for account, units in holdings.items():
        m.deposit(account, 10_000_000)
        m.place(limit(ISSUER, SELL, units, price, symbol))
        assert of_type(m.place(limit(account, BUY, units, price, symbol)), Trade)
    return m


def refused(events: list) -> RejectReason:
    assert len(events) == 1, events
    return one(events, CommandRejected).reason


# ---------------------------------------------------------------- coupons


def test_a_coupon_pays_every_holder_its_coupon_from_the_issuers_cash():
    m = market_with_holders(social_bond(), holdings={"a": 10, "b": 3})
    issuer_cash = m.balance(ISSUER)[0]
    m.move_to(FIRST_COUPON)

    events = m.pay_coupon(FIRST_COUPON)

    assert [(p.account, p.units, p.amount) for p in of_type(events, CouponPaid)] == [("a", 10, 4_000), ("b", 3, 1_200)]
    summary = one(events, DistributionCompleted)
    assert (summary.kind, summary.holders, summary.units, summary.total, summary.rate) == (
        DistributionKind.COUPON,
        2,
        13,
        5_200,
        40_000,
    )
    assert m.balance(ISSUER)[0] == issuer_cash - 5_200


def test_units_held_by_an_open_sell_order_earn_the_coupon_and_the_issuers_own_units_earn_nothing():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.place(limit("a", SELL, 4, 10_400, "GREEN27"))
    m.move_to(FIRST_COUPON)

    events = m.pay_coupon(FIRST_COUPON)

    assert [(p.account, p.units, p.amount) for p in of_type(events, CouponPaid)] == [("a", 10, 4_000)]
    assert m.balance(ISSUER, "GREEN27") == (990, 0)  # the issuer holds 990 units and paid itself nothing


def test_each_holders_coupon_is_rounded_half_even_and_the_issuer_pays_exactly_their_sum():
    small = social_bond()
    small = replace(small, bond=replace(small.bond, nominal_minor=100, coupon_rate_ppm=25_000))  # 2.5 cents a unit
    m = market_with_holders(small, holdings={"a": 1, "b": 3, "c": 5})
    issuer_cash = m.balance(ISSUER)[0]
    m.move_to(FIRST_COUPON)

    events = m.pay_coupon(FIRST_COUPON)

    # 2.5 -> 2, 7.5 -> 8, 12.5 -> 12 (ties to even)
    assert [p.amount for p in of_type(events, CouponPaid)] == [2, 8, 12]
    assert one(events, DistributionCompleted).total == 22
    assert m.balance(ISSUER)[0] == issuer_cash - 22


def test_an_issuer_without_the_cash_pays_no_holder_at_all():
    m = market_with_holders(social_bond(), holdings={"a": 10, "b": 3})
    m.withdraw(ISSUER, m.balance(ISSUER)[0] - 5_199)
    m.move_to(FIRST_COUPON)
    before = snapshot(m.engine)

    assert refused(m.pay_coupon(FIRST_COUPON)) is RejectReason.ISSUER_LACKS_CASH
    assert snapshot(m.engine) == before


@pytest.mark.parametrize(
    ("today", "payment_date", "reason"),
    [
        (FIRST_COUPON, date(2024, 1, 16), RejectReason.NO_COUPON_ON_DATE),
        (date(2024, 1, 14), FIRST_COUPON, RejectReason.COUPON_NOT_DUE),
    ],
)
def test_a_coupon_is_paid_only_on_a_date_of_the_schedule_once_that_date_has_come(today, payment_date, reason):
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.move_to(today)

    assert refused(m.pay_coupon(payment_date)) is reason


def test_a_coupon_is_paid_once():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.move_to(FIRST_COUPON)
    m.pay_coupon(FIRST_COUPON)

    assert refused(m.pay_coupon(FIRST_COUPON)) is RejectReason.COUPON_ALREADY_PAID


def test_only_a_bond_with_an_issuer_pays_coupons():
    m = market_with_holders(social_equity(), social_bond("NOISSUER", issuer=None), holdings={})

    assert refused(m.apply(PayCoupon("COOP", FIRST_COUPON))) is RejectReason.WRONG_INSTRUMENT_KIND
    assert refused(m.apply(PayCoupon("NOISSUER", FIRST_COUPON))) is RejectReason.NO_ISSUER


# ---------------------------------------------------------------- dividends


def test_a_dividend_pays_the_amount_per_share_rounded_half_even_per_holder():
    m = market_with_holders(social_equity(), holdings={"a": 3, "b": 5, "c": 10}, symbol="COOP", price=1_000)
    issuer_cash = m.balance(ISSUER)[0]

    events = m.pay_dividend(125_000)  # EUR 0.125 a share

    # 37.5 -> 38, 62.5 -> 62, 125 cents
    assert [(p.account, p.units, p.amount) for p in of_type(events, DividendPaid)] == [
        ("a", 3, 38),
        ("b", 5, 62),
        ("c", 10, 125),
    ]
    assert one(events, DistributionCompleted).total == 225
    assert m.balance(ISSUER)[0] == issuer_cash - 225


def test_a_dividend_needs_a_positive_amount_an_equity_and_the_issuers_cash():
    m = market_with_holders(social_equity(), social_bond(), holdings={"a": 3}, symbol="COOP", price=1_000)

    assert refused(m.pay_dividend(0)) is RejectReason.INVALID_AMOUNT
    assert refused(m.apply(PayDividend("GREEN27", 1))) is RejectReason.WRONG_INSTRUMENT_KIND
    assert refused(m.pay_dividend(10**12)) is RejectReason.ISSUER_LACKS_CASH


# ---------------------------------------------------------------- redemption


def test_redemption_waits_for_maturity_and_for_the_final_coupon():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.move_to(date(2026, 6, 1))
    assert refused(m.redeem()) is RejectReason.NOT_MATURED

    m.move_to(MATURITY)
    assert refused(m.redeem()) is RejectReason.FINAL_COUPON_UNPAID


def test_redemption_cancels_open_orders_retires_every_unit_and_repays_the_nominal():
    m = market_with_holders(social_bond(), holdings={"a": 10, "b": 3})
    m.place(limit("b", SELL, 1, 10_100, "GREEN27"))
    m.place(limit("a", BUY, 2, 9_900, "GREEN27"))
    m.deposit(ISSUER, 1_000_000)
    m.move_to(MATURITY)
    m.pay_coupon(MATURITY)
    issuer_cash = m.balance(ISSUER)[0]

    events = m.redeem()

    assert one(events, TradingStateChanged).state is TradingState.DELISTED
    assert {e.account for e in of_type(events, OrderCancelled)} == {"a", "b"}
    assert [(r.account, r.units, r.amount) for r in of_type(events, BondRedeemed)] == [
        ("a", 10, 100_000),
        ("b", 3, 30_000),
        (ISSUER, 987, 0),
    ]
    assert m.balance(ISSUER)[0] == issuer_cash - 130_000
    assert all(m.balance(account, "GREEN27") == (0, 0) for account in ("a", "b", ISSUER))
    assert m.engine.supply["GREEN27"] == 0
    assert conserved(m.engine) and holds_explained(m.engine)


def test_redemption_above_par_pays_the_redemption_price():
    listed = social_bond()
    m = market_with_holders(replace(listed, bond=replace(listed.bond, redemption_ppm=1_020_000)), holdings={"a": 10})
    m.deposit(ISSUER, 1_000_000)
    m.move_to(MATURITY)
    m.pay_coupon(MATURITY)

    assert [(r.account, r.amount) for r in of_type(m.redeem(), BondRedeemed)] == [("a", 102_000), (ISSUER, 0)]


def test_a_redemption_the_issuer_cannot_pay_changes_nothing():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.place(limit("a", SELL, 1, 10_100, "GREEN27"))
    m.move_to(MATURITY)
    m.pay_coupon(MATURITY)
    m.withdraw(ISSUER, m.balance(ISSUER)[0] - 99_999)
    before = snapshot(m.engine)

    assert refused(m.redeem()) is RejectReason.ISSUER_LACKS_CASH
    assert snapshot(m.engine) == before


def test_a_redeemed_bond_pays_nothing_more():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.deposit(ISSUER, 1_000_000)
    m.move_to(MATURITY)
    m.pay_coupon(MATURITY)
    m.redeem()

    assert refused(m.redeem()) is RejectReason.ALREADY_REDEEMED
    assert refused(m.pay_coupon(MATURITY)) is RejectReason.ALREADY_REDEEMED


def test_a_bond_with_an_offer_open_is_not_redeemed():
    m = market_with_holders(social_bond(), holdings={"a": 10})
    m.move_to(MATURITY)
    m.pay_coupon(MATURITY)
    m.open_offer(symbol="GREEN27", quantity=10)

    assert refused(m.redeem()) is RejectReason.OFFER_IN_PROGRESS


# ---------------------------------------------------------------- impact-linked coupons


def impact_bond():
    """GREEN27 whose 4 % coupon steps down 0.50 % when the impact target is met and up 0.75 % when it is missed."""
    return social_bond(impact_step_down_ppm=5_000, impact_step_up_ppm=7_500)


@pytest.mark.parametrize(("target_met", "rate", "coupon"), [(True, 35_000, 3_500), (False, 47_500, 4_750)])
def test_the_coupon_follows_the_latest_impact_outcome(target_met, rate, coupon):
    m = market_with_holders(impact_bond(), holdings={"a": 10})

    changed = one(m.impact(target_met, report="report-2023"), CouponRateChanged)
    m.move_to(FIRST_COUPON)

    assert (changed.previous_rate_ppm, changed.rate_ppm, changed.report) == (40_000, rate, "report-2023")
    assert one(m.pay_coupon(FIRST_COUPON), CouponPaid).amount == coupon


def test_impact_steps_are_relative_to_the_listed_rate_never_cumulative():
    m = market_with_holders(impact_bond(), holdings={"a": 10})

    m.impact(True)
    again = one(m.impact(True), CouponRateChanged)
    missed = one(m.impact(False), CouponRateChanged)

    assert (again.previous_rate_ppm, again.rate_ppm) == (35_000, 35_000)
    assert (missed.previous_rate_ppm, missed.rate_ppm) == (35_000, 47_500)


def test_a_step_down_never_takes_the_coupon_below_zero():
    listed = social_bond(impact_step_down_ppm=50_000)

    m = market_with_holders(listed, holdings={})

    assert one(m.impact(True), CouponRateChanged).rate_ppm == 0


def test_a_rate_change_cancels_the_bonds_open_orders_and_later_trades_accrue_at_the_new_rate():
    m = market_with_holders(impact_bond(), holdings={"a": 10})
    m.deposit("b", 10_000_000)
    m.place(limit("a", SELL, 1, 10_000, "GREEN27"))
    m.place(limit("b", BUY, 1, 9_600, "GREEN27"))

    events = m.impact(False)

    assert {(c.account, c.reason) for c in of_type(events, OrderCancelled)} == {
        ("a", CancelReason.OPERATOR),
        ("b", CancelReason.OPERATOR),
    }
    assert holds_explained(m.engine)
    m.place(limit("a", SELL, 1, 10_000, "GREEN27"))
    trade = one(m.place(limit("b", BUY, 1, 10_000, "GREEN27")), Trade)
    # 2023-11-14 is 299 days (30E/360) after 2023-01-15: 299/360 of EUR 4.75 = 394.51 cents
    assert trade.accrued == 395


def test_an_outcome_for_a_bond_that_is_not_impact_linked_is_refused():
    m = market_with_holders(social_bond(), social_equity(), holdings={})

    assert refused(m.impact(True)) is RejectReason.NOT_IMPACT_LINKED
    assert refused(m.impact(True, symbol="COOP")) is RejectReason.NOT_IMPACT_LINKED


# ---------------------------------------------------------------- any holdings: exact sums, conservation, replay


@settings(max_examples=40, deadline=None)
@given(
    holdings=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 120), max_size=8),
    rate_ppm=st.integers(0, 123_457),
    nominal=st.sampled_from([100, 1_000, 5_000, 10_000, 100_000]),
)
def test_a_coupon_creates_and_loses_no_cent(holdings, rate_ppm, nominal):
    listed = social_bond()
    listed = replace(listed, bond=replace(listed.bond, nominal_minor=nominal, coupon_rate_ppm=rate_ppm))
    m = market_with_holders(listed, holdings=holdings)
    m.deposit(ISSUER, 100_000_000)
    cash_before = {account: m.balance(account)[0] for account in (*holdings, ISSUER)}
    m.move_to(FIRST_COUPON)

    events = m.pay_coupon(FIRST_COUPON)

    paid = {p.account: p.amount for p in of_type(events, CouponPaid)}
    assert paid == {a: coupon_amount(listed.bond, FIRST_COUPON, units) for a, units in holdings.items()}
    assert cash_before[ISSUER] - m.balance(ISSUER)[0] == sum(paid.values()) == one(events, DistributionCompleted).total
    assert all(m.balance(a)[0] - cash_before[a] == paid[a] for a in holdings)
    assert conserved(m.engine) and holds_explained(m.engine)


def life_of_an_impact_bond() -> list:
    """An offer, trading, an impact outcome, every coupon and the redemption: (date or None, command) steps."""
    return [
        (None, "offer"),
        (FIRST_COUPON, PayCoupon("GREEN27", FIRST_COUPON)),
        (None, RecordImpactOutcome("GREEN27", False, "2024")),
        (date(2025, 1, 15), PayCoupon("GREEN27", date(2025, 1, 15))),
        (None, RecordImpactOutcome("GREEN27", True, "2025")),
        (date(2026, 1, 15), PayCoupon("GREEN27", date(2026, 1, 15))),
        (MATURITY, PayCoupon("GREEN27", MATURITY)),
        (None, Redeem("GREEN27")),
    ]


def run_life() -> tuple[CorporateMarket, list[bytes]]:
    m = CorporateMarket(impact_bond())
    m.issue(ISSUER, 1_000, "GREEN27")
    m.deposit(ISSUER, 1_000_000)
    encoded: list[bytes] = []
    for day, step in life_of_an_impact_bond():
        if day is not None:
            m.move_to(day)
        if step == "offer":
            for account in "abc":
                m.deposit(account, 5_000_000)
            events = m.open_offer(symbol="GREEN27", price=10_000, quantity=300, min_subscription=100)
            for account, units in (("a", 150), ("b", 200), ("c", 50)):
                events += m.subscribe(account, units)
            events += m.close_offer()
            events += m.place(limit("a", SELL, 20, 10_050, "GREEN27"))
            events += m.place(limit("c", BUY, 25, 10_050, "GREEN27"))
        else:
            events = m.apply(step)
        assert not of_type(events, CommandRejected), events
        assert conserved(m.engine) and holds_explained(m.engine)
        encoded += [codec.encode(e) for e in events]
    return m, encoded


def test_the_life_of_an_impact_bond_conserves_cash_and_units_at_every_step_and_replays_byte_for_byte():
    m, first = run_life()
    _, second = run_life()

    assert first == second
    # after the offer (a 113, b 150, c 37 of 300 units) a sold 20 to c: 300 units outside the issuer all along
    summaries = [codec.decode(line) for line in first if line.startswith(b'["DistributionCompleted"')]
    assert [(s.kind, s.rate, s.units, s.total) for s in summaries] == [
        (DistributionKind.COUPON, 40_000, 300, 120_000),
        (DistributionKind.COUPON, 47_500, 300, 142_500),  # target missed: 4.75 %
        (DistributionKind.COUPON, 35_000, 300, 105_000),  # target met: 3.50 %
        (DistributionKind.COUPON, 35_000, 300, 105_000),
        (DistributionKind.REDEMPTION, 1_000_000, 1_000, 3_000_000),  # the issuer's 700 units retired for nothing
    ]
    assert m.engine.supply["GREEN27"] == 0


@pytest.mark.parametrize(
    "command",
    [PayCoupon("GREEN27", FIRST_COUPON), PayDividend("COOP", 125_000), Redeem("GREEN27")]
    + [RecordImpactOutcome("X", True, "r")],
)
def test_distribution_commands_round_trip_through_the_journal_encoding(command):
    assert codec.decode(codec.encode(command)) == command
