"""Holds, releases and fees: an order reserves what it may spend, a fill pays exactly, nothing is overdrawn.

A buy holds, per lot, its limit notional plus the fee bound ceil(notional * max(maker, taker) bps / 10 000) (and, for
a bond, the largest accrued interest a unit can carry). A sell holds the securities it offers. Fees are charged per
trade and side, half-even to the minor unit, and credited to the venue's account "@venue".
"""

from __future__ import annotations

from exchange.accounts import VENUE
from exchange.commands import ListInstrument
from exchange.events import CommandRejected, OrderAccepted, Trade
from exchange.rejects import RejectReason
from tests.exchange.factories import BUY, SELL, bond, equity, funded_market, limit, of_type, one

# ---------------------------------------------------------------- what an order holds


def test_a_buy_holds_its_limit_notional_plus_the_fee_bound_per_lot():
    m = funded_market(equity(reference_price=330, lot_size=10, tick_value=7, maker_fee_bps=10, taker_fee_bps=30))

    accepted = one(m.place(limit("b", BUY, 30, 333)), OrderAccepted)

    # per lot: 333 * 7 = 2331 of notional, ceil(2331 * 30 / 10 000) = ceil(6.993) = 7 of fee bound
    assert (accepted.hold_asset, accepted.hold_amount) == ("EUR", 3 * 2338)
    assert m.balance("b") == (1_000_000 - 7014, 7014)


def test_a_sell_holds_the_securities_it_offers():
    m = funded_market(equity())

    accepted = one(m.place(limit("b", SELL, 30, 100)), OrderAccepted)

    assert (accepted.hold_asset, accepted.hold_amount) == ("ACME", 30)
    assert m.balance("b", "ACME") == (970, 30)


def test_a_bond_buy_also_holds_the_largest_accrued_interest_a_unit_can_carry():
    m = funded_market(bond(), cash=10_000_000)

    accepted = one(m.place(limit("b", BUY, 10, 10_000, "GREEN27")), OrderAccepted)

    # 4 % of EUR 100 a year accrues at most 359/360 of 400 cents = 398.9 cents per unit before a coupon date
    assert accepted.hold_amount == 10 * (10_000 + 399)


def test_cash_held_by_one_order_cannot_back_another():
    m = funded_market(equity(), cash=1_000)
    m.place(limit("b", BUY, 10, 100))

    events = m.place(limit("b", BUY, 1, 90))

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_FUNDS


def test_a_buy_costing_more_than_the_available_cash_is_refused_and_holds_nothing():
    m = funded_market(equity(), cash=999)

    events = m.place(limit("b", BUY, 10, 100))

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_FUNDS
    assert m.balance("b") == (999, 0)
    assert m.bbo() == (None, None)


def test_selling_securities_the_account_does_not_have_is_refused():
    m = funded_market(equity(), shares=10)

    events = m.place(limit("b", SELL, 11, 100))

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_HOLDINGS


def test_securities_offered_by_one_order_cannot_be_offered_again():
    m = funded_market(equity(), shares=10)
    m.place(limit("b", SELL, 10, 105))

    events = m.place(limit("b", SELL, 1, 104))

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_HOLDINGS


# ---------------------------------------------------------------- what a fill pays and releases


def test_a_fill_below_the_limit_releases_the_price_improvement():
    m = funded_market(equity())
    m.place(limit("a", SELL, 10, 100))

    trade = one(m.place(limit("b", BUY, 10, 105)), Trade)

    assert trade.buyer_release == 50
    assert m.balance("b") == (1_000_000 - 1_000, 0)


def test_a_partly_filled_buy_keeps_the_hold_of_its_remainder_at_the_limit():
    m = funded_market(equity())
    m.place(limit("a", SELL, 4, 100))

    trade = one(m.place(limit("b", BUY, 10, 105)), Trade)

    assert trade.buyer_release == 4 * 5
    assert m.balance("b") == (1_000_000 - 400 - 630, 630)


def test_a_resting_buy_filled_at_its_own_price_releases_nothing_without_fees():
    m = funded_market(equity())
    m.place(limit("b", BUY, 10, 100))

    trade = one(m.place(limit("a", SELL, 10, 95)), Trade)

    assert (trade.price, trade.buyer_release) == (100, 0)


def test_the_taker_pays_the_taker_rate_and_the_maker_the_maker_rate():
    m = funded_market(equity(tick_value=100, maker_fee_bps=10, taker_fee_bps=30), cash=10_000_000)
    m.place(limit("a", SELL, 10, 100))

    trade = one(m.place(limit("b", BUY, 10, 100)), Trade)

    assert (trade.cash, trade.seller_fee, trade.buyer_fee) == (100_000, 100, 300)


def test_the_seller_receives_the_cash_less_its_fee_and_the_buyer_pays_the_cash_plus_its_fee():
    m = funded_market(equity(tick_value=100, maker_fee_bps=10, taker_fee_bps=30), cash=10_000_000)
    m.place(limit("a", SELL, 10, 100))

    m.place(limit("b", BUY, 10, 100))

    assert m.balance("a") == (10_000_000 + 100_000 - 100, 0)
    assert m.balance("b") == (10_000_000 - 100_000 - 300, 0)


def test_both_fees_are_credited_to_the_venue():
    m = funded_market(equity(tick_value=100, maker_fee_bps=10, taker_fee_bps=30), cash=10_000_000)
    m.place(limit("a", SELL, 10, 100))

    m.place(limit("b", BUY, 10, 100))

    assert m.balance(VENUE) == (400, 0)


def test_fees_are_rounded_half_even_to_the_minor_unit():
    m = funded_market(equity(maker_fee_bps=2, taker_fee_bps=2))
    m.place(limit("a", SELL, 100, 100))

    half_to_zero = one(m.place(limit("b", BUY, 25, 100)), Trade)  # 2 500 * 2 bps = 0.5
    half_to_two = one(m.place(limit("b", BUY, 75, 100)), Trade)  # 7 500 * 2 bps = 1.5

    assert (half_to_zero.buyer_fee, half_to_zero.seller_fee) == (0, 0)
    assert (half_to_two.buyer_fee, half_to_two.seller_fee) == (2, 2)


def test_every_fill_spends_exactly_the_hold_of_its_lots():
    m = funded_market(equity(reference_price=330, lot_size=10, tick_value=7, maker_fee_bps=10, taker_fee_bps=30))
    m.place(limit("a", SELL, 20, 330))
    m.place(limit("c", SELL, 30, 331))
    hold_per_lot = 333 * 7 + 7

    trades = of_type(m.place(limit("b", BUY, 60, 333)), Trade)

    assert sum(trade.quantity for trade in trades) == 50
    for trade in trades:
        assert trade.cash + trade.buyer_fee + trade.buyer_release == trade.quantity // 10 * hold_per_lot
    assert m.balance("b")[1] == 1 * hold_per_lot


def test_a_bond_trade_carries_the_accrued_interest_from_buyer_to_seller():
    m = funded_market(bond(), cash=10_000_000)
    m.place(limit("a", SELL, 10, 9_950, "GREEN27"))

    trade = one(m.place(limit("b", BUY, 10, 9_950, "GREEN27")), Trade)

    # 30E/360 from 15 Jan to 14 Nov 2023 is 299 days: 10 units * EUR 100 * 4 % * 299/360 = 3 322.2 cents
    assert (trade.cash, trade.accrued) == (99_500, 3_322)
    assert trade.buyer_release == 10 * (9_950 + 399) - 99_500 - 3_322
    assert m.balance("a") == (10_000_000 + 99_500 + 3_322, 0)
    assert m.balance("b") == (10_000_000 - 99_500 - 3_322, 0)


# ---------------------------------------------------------------- money in and out, issuance


def test_a_deposit_credits_the_available_balance():
    m = funded_market(equity(), cash=0)

    m.deposit("b", 1_234)

    assert m.balance("b") == (1_234, 0)


def test_a_deposit_must_be_positive():
    m = funded_market(equity())

    events = m.deposit("b", 0) + m.deposit("b", -5)

    assert [e.reason for e in events] == [RejectReason.INVALID_AMOUNT] * 2


def test_securities_cannot_be_deposited_as_cash():
    m = funded_market(equity())

    events = m.deposit("b", 10, "ACME")

    assert one(events, CommandRejected).reason is RejectReason.INVALID_AMOUNT


def test_nothing_can_be_deposited_to_the_venues_fee_account():
    m = funded_market(equity())

    events = m.deposit(VENUE, 10)

    assert one(events, CommandRejected).reason is RejectReason.INVALID_AMOUNT


def test_a_withdrawal_debits_the_available_balance():
    m = funded_market(equity(), cash=1_000)

    m.withdraw("b", 400)

    assert m.balance("b") == (600, 0)


def test_cash_held_by_an_order_cannot_be_withdrawn():
    m = funded_market(equity(), cash=1_000)
    m.place(limit("b", BUY, 5, 100))

    events = m.withdraw("b", 501)

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_FUNDS
    assert m.balance("b") == (500, 500)


def test_the_venue_cannot_withdraw_its_fees_through_the_core():
    m = funded_market(equity(tick_value=100, maker_fee_bps=10, taker_fee_bps=30), cash=10_000_000)
    m.place(limit("a", SELL, 10, 100))
    m.place(limit("b", BUY, 10, 100))

    events = m.withdraw(VENUE, 1)

    assert one(events, CommandRejected).reason is RejectReason.INVALID_AMOUNT


def test_issuance_credits_the_securities_to_the_issuer():
    m = funded_market(equity(issuer="coop"))

    m.issue("coop", 5_000)

    assert m.balance("coop", "ACME") == (5_000, 0)


def test_only_the_named_issuer_may_issue_its_securities():
    m = funded_market(equity("ACME"), equity("COOP", issuer="coop"))

    events = m.issue("b", 5_000, "COOP")

    assert one(events, CommandRejected).reason is RejectReason.NOT_ISSUER
    assert m.balance("b", "COOP") == (0, 0)


def test_issuance_must_be_positive():
    m = funded_market(equity())

    events = m.issue("b", 0)

    assert one(events, CommandRejected).reason is RejectReason.INVALID_AMOUNT


def test_cash_deposited_under_a_symbol_listed_later_cannot_be_sold_as_its_securities():
    m = funded_market(equity())
    m.deposit("b", 100, "NEWCO")
    m.apply(ListInstrument(equity("NEWCO")))

    events = m.place(limit("b", SELL, 100, 100, "NEWCO"))

    assert of_type(events, OrderAccepted) == []  # NEWCO was never issued


def test_no_balance_can_grow_beyond_what_the_ledger_can_store():
    m = funded_market(equity(), cash=0)

    for _ in range(3):
        m.deposit("b", 2**62)

    assert m.balance("b")[0] <= 2**63 - 1  # PostgreSQL bigint
