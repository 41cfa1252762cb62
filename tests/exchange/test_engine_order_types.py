"""Order types and validity: market, IOC, FOK, post-only, GTC, DAY and GTD."""

from __future__ import annotations

from dataclasses import replace

from exchange.commands import Deposit
from exchange.events import BalanceChanged, CommandRejected, OrderAccepted, OrderCancelled, Trade
from exchange.orders import CancelReason, OrderType, SelfTradePrevention, TimeInForce
from exchange.rejects import RejectReason
from tests.exchange.factories import (
    BUY,
    SELL,
    equity,
    funded_market,
    limit,
    market,
    of_type,
    one,
)

SECOND = 1_000_000


def snapshot(m):
    e = m.engine
    return (
        {s: e.depth(s, 100) for s in e.books},
        [(k, b.available, b.held) for k, b in e.balances.items()],
        e.next_order_id,
        e.next_trade_id,
        {s: i.reference_price for s, i in e.instruments.items()},
    )


# ---------------------------------------------------------------- market orders


def test_a_market_buy_takes_the_best_offers_at_their_prices():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 101))
    m.place(limit("a", SELL, 5, 102))

    trades = of_type(m.place(market("b", BUY, 8)), Trade)

    assert [(t.price, t.quantity) for t in trades] == [(101, 5), (102, 3)]


def test_a_market_order_never_trades_beyond_the_price_band():
    m = funded_market(equity(reference_price=100, band_bps=1_000))  # band 90..110
    m.place(limit("a", SELL, 5, 110))
    m.place(limit("b", BUY, 1, 110))  # the reference is now 110, the band 99..121
    m.place(limit("a", SELL, 5, 121))
    m.place(limit("a", SELL, 5, 100))  # hits nothing; rests
    m.place(limit("c", BUY, 1, 100))  # trade at 100: the band is now 90..110, 121 lies outside it

    events = m.place(market("d", BUY, 20))

    assert [(t.price, t.quantity) for t in of_type(events, Trade)] == [(100, 4), (110, 4)]
    assert m.bbo() == (None, 121)


def test_a_market_order_remainder_is_cancelled_as_market_remainder():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 101))

    events = m.place(market("b", BUY, 8))

    cancelled = one(events, OrderCancelled)
    assert (cancelled.reason, cancelled.cancelled_quantity, cancelled.remaining) == (
        CancelReason.MARKET_REMAINDER,
        3,
        0,
    )
    assert m.bbo() == (None, None)
    assert m.engine.open_orders("b") == []


def test_a_market_order_on_an_empty_book_is_accepted_and_cancelled_whole():
    m = funded_market(equity())

    events = m.place(market("b", SELL, 8))

    assert [type(e) for e in events] == [OrderAccepted, OrderCancelled]
    assert m.balance("b", "ACME") == (1_000, 0)


def test_a_market_order_is_immediate_or_cancel_whatever_validity_it_asks_for():
    m = funded_market(equity())

    accepted = one(m.place(market("b", BUY, 8, tif=TimeInForce.GTC)), OrderAccepted)

    assert accepted.tif is TimeInForce.IOC
    assert m.engine.open_orders("b") == []


def test_a_market_buy_holds_cash_up_to_the_upper_edge_of_the_band():
    m = funded_market(equity(reference_price=100, band_bps=1_000))

    accepted = one(m.place(market("b", BUY, 8)), OrderAccepted)

    assert (accepted.price, accepted.hold_amount) == (110, 8 * 110)


def test_a_market_sell_may_trade_down_to_the_lower_edge_of_the_band():
    m = funded_market(equity(reference_price=100, band_bps=1_000))

    accepted = one(m.place(market("b", SELL, 8)), OrderAccepted)

    assert accepted.price == 90


def test_a_market_order_with_a_price_is_refused():
    m = funded_market(equity())

    events = m.place(replace(market("b", BUY, 8), price=100))

    assert one(events, CommandRejected).reason is RejectReason.PRICE_NOT_ALLOWED


def test_a_market_buy_releases_the_unused_band_hold_when_it_ends():
    m = funded_market(equity(reference_price=100, band_bps=1_000), cash=10_000)
    m.place(limit("a", SELL, 5, 101))

    m.place(market("b", BUY, 8))

    assert m.balance("b") == (10_000 - 5 * 101, 0)


# ---------------------------------------------------------------- immediate or cancel


def test_an_ioc_order_trades_what_it_can_and_its_remainder_is_cancelled():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    events = m.place(limit("b", BUY, 8, 100, tif=TimeInForce.IOC))

    assert one(events, Trade).quantity == 5
    cancelled = one(events, OrderCancelled)
    assert (cancelled.reason, cancelled.cancelled_quantity) == (CancelReason.IOC_REMAINDER, 3)
    assert m.bbo() == (None, None)


def test_an_ioc_order_that_cannot_trade_is_cancelled_whole():
    m = funded_market(equity())

    events = m.place(limit("b", BUY, 8, 100, tif=TimeInForce.IOC))

    assert one(events, OrderCancelled).cancelled_quantity == 8
    assert m.balance("b") == (1_000_000, 0)


# ---------------------------------------------------------------- fill or kill


def test_a_fok_order_that_can_fill_completely_fills_across_levels():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 5, 101))

    events = m.place(limit("b", BUY, 10, 101, tif=TimeInForce.FOK))

    assert sum(t.quantity for t in of_type(events, Trade)) == 10
    assert of_type(events, OrderCancelled) == []


def test_a_fok_order_that_cannot_fill_completely_is_refused_and_changes_nothing():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 4, 101))
    before = snapshot(m)

    events = m.place(limit("b", BUY, 10, 101, tif=TimeInForce.FOK))

    assert [(type(e), e.reason) for e in events] == [(CommandRejected, RejectReason.FOK_NOT_FILLABLE)]
    assert snapshot(m) == before


def test_a_fok_order_counts_only_quantity_within_its_limit():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 5, 102))

    events = m.place(limit("b", BUY, 10, 101, tif=TimeInForce.FOK))

    assert one(events, CommandRejected).reason is RejectReason.FOK_NOT_FILLABLE


def test_a_fok_order_that_would_meet_its_own_order_first_is_refused():
    m = funded_market(equity())
    m.place(limit("b", SELL, 5, 100))
    m.place(limit("a", SELL, 10, 100))

    events = m.place(limit("b", BUY, 10, 100, tif=TimeInForce.FOK))

    assert one(events, CommandRejected).reason is RejectReason.FOK_NOT_FILLABLE


def test_a_fok_order_cancelling_its_own_older_orders_fills_from_the_others():
    m = funded_market(equity())
    own = m.place_id(limit("b", SELL, 5, 100))
    m.place(limit("a", SELL, 10, 100))

    events = m.place(limit("b", BUY, 10, 100, tif=TimeInForce.FOK, stp=SelfTradePrevention.CANCEL_OLDEST))

    assert one(events, OrderCancelled).order_id == own
    assert one(events, Trade).quantity == 10


def test_a_fok_market_order_fills_completely_or_is_refused():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    refused = m.place(market("b", BUY, 6, tif=TimeInForce.FOK))
    filled = m.place(market("b", BUY, 5, tif=TimeInForce.FOK))

    assert one(refused, CommandRejected).reason is RejectReason.FOK_NOT_FILLABLE
    assert one(filled, Trade).quantity == 5


# ---------------------------------------------------------------- post-only


def test_a_post_only_order_that_would_take_liquidity_is_refused():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 101))

    events = m.place(limit("b", BUY, 5, 101, post_only=True))

    assert one(events, CommandRejected).reason is RejectReason.WOULD_TAKE_LIQUIDITY
    assert m.bbo() == (None, 101)


def test_a_post_only_order_that_does_not_cross_rests():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 101))

    order_id = m.place_id(limit("b", BUY, 5, 100, post_only=True))

    assert m.queue(BUY, 100) == [order_id]


def test_a_post_only_order_is_refused_against_the_accounts_own_resting_order_too():
    m = funded_market(equity())
    m.place(limit("b", SELL, 5, 101))

    events = m.place(limit("b", BUY, 5, 102, post_only=True))

    assert one(events, CommandRejected).reason is RejectReason.WOULD_TAKE_LIQUIDITY


def test_a_post_only_order_cannot_be_immediate_or_cancel():
    m = funded_market(equity())

    events = m.place(limit("b", BUY, 5, 100, post_only=True, tif=TimeInForce.IOC))

    assert one(events, CommandRejected).reason is RejectReason.INVALID_TIME_IN_FORCE


def test_a_post_only_market_order_is_refused_as_taking_liquidity():
    m = funded_market(equity())

    events = m.place(replace(market("b", BUY, 5), post_only=True))

    assert one(events, CommandRejected).reason is RejectReason.WOULD_TAKE_LIQUIDITY


# ---------------------------------------------------------------- GTC, DAY, GTD


def test_a_gtc_order_outlives_the_end_of_the_day():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100))

    events = m.end_of_day()

    assert events == []
    assert m.queue(BUY, 100) == [order_id]


def test_a_day_order_expires_at_the_end_of_the_day_and_releases_its_hold():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100, tif=TimeInForce.DAY))

    cancelled = one(m.end_of_day(), OrderCancelled)

    assert (cancelled.order_id, cancelled.reason, cancelled.release_amount) == (order_id, CancelReason.EXPIRED, 500)
    assert m.balance("b") == (1_000_000, 0)
    assert m.bbo() == (None, None)


def test_the_end_of_day_of_one_instrument_expires_only_its_day_orders():
    m = funded_market(equity("ACME"), equity("BETA"))
    m.place(limit("b", BUY, 5, 100, "ACME", tif=TimeInForce.DAY))
    beta = m.place_id(limit("b", BUY, 5, 100, "BETA", tif=TimeInForce.DAY))

    m.end_of_day("ACME")

    assert [o.order_id for o in m.engine.open_orders("b")] == [beta]


def test_a_gtd_order_rests_until_its_expiry_time():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us + 10 * SECOND))

    events = m.tick(10 * SECOND - 1)

    assert events == []
    assert m.queue(BUY, 100) == [order_id]


def test_a_gtd_order_expires_when_the_clock_reaches_its_expiry_time():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us + 10 * SECOND))

    cancelled = one(m.tick(10 * SECOND), OrderCancelled)

    assert (cancelled.order_id, cancelled.reason) == (order_id, CancelReason.EXPIRED)
    assert m.balance("b") == (1_000_000, 0)


def test_a_gtd_order_expires_before_any_command_arriving_at_or_after_its_expiry():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us + SECOND))
    m.advance(2 * SECOND)

    events = m.apply(Deposit("c", "EUR", 1))

    assert [type(e) for e in events[:2]] == [OrderCancelled, BalanceChanged]
    assert (events[0].order_id, events[0].reason) == (order_id, CancelReason.EXPIRED)


def test_an_expired_gtd_order_does_not_trade_with_an_order_arriving_after_its_expiry():
    m = funded_market(equity())
    m.place(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us + SECOND))
    m.advance(SECOND)

    events = m.place(limit("a", SELL, 5, 100))

    assert of_type(events, Trade) == []
    assert m.bbo() == (None, 100)


def test_gtd_orders_due_together_expire_in_order_of_expiry_time():
    m = funded_market(equity())
    late = m.place_id(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us + 3 * SECOND))
    early = m.place_id(limit("c", BUY, 5, 99, tif=TimeInForce.GTD, expire_at_us=m.now_us + 2 * SECOND))

    events = m.tick(5 * SECOND)

    assert [e.order_id for e in of_type(events, OrderCancelled)] == [early, late]


def test_a_gtd_order_needs_an_expiry_in_the_future():
    m = funded_market(equity())

    missing = m.place(limit("b", BUY, 5, 100, tif=TimeInForce.GTD))
    now = m.place(limit("b", BUY, 5, 100, tif=TimeInForce.GTD, expire_at_us=m.now_us))

    assert one(missing, CommandRejected).reason is RejectReason.INVALID_EXPIRY
    assert one(now, CommandRejected).reason is RejectReason.INVALID_EXPIRY


def test_only_a_gtd_order_may_carry_an_expiry():
    m = funded_market(equity())

    events = m.place(limit("b", BUY, 5, 100, tif=TimeInForce.DAY, expire_at_us=m.now_us + SECOND))

    assert one(events, CommandRejected).reason is RejectReason.INVALID_EXPIRY


def test_an_accepted_order_reports_its_type_and_validity():
    m = funded_market(equity())

    accepted = one(m.place(limit("b", BUY, 5, 100, tif=TimeInForce.DAY, client_order_id="x1")), OrderAccepted)

    assert (accepted.type, accepted.tif, accepted.client_order_id) == (OrderType.LIMIT, TimeInForce.DAY, "x1")
