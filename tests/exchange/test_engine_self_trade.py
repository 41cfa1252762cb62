"""Self-trade prevention in continuous trading: an account never trades with itself; the incoming order decides how."""

from __future__ import annotations

from exchange.events import OrderCancelled, Trade
from exchange.orders import CancelReason, SelfTradePrevention
from tests.exchange.factories import BUY, SELL, equity, funded_market, limit, market, of_type, one

NEWEST = SelfTradePrevention.CANCEL_NEWEST
OLDEST = SelfTradePrevention.CANCEL_OLDEST
BOTH = SelfTradePrevention.CANCEL_BOTH
DECREMENT = SelfTradePrevention.DECREMENT


def test_cancel_newest_cancels_the_incoming_order_and_keeps_the_resting_one():
    m = funded_market(equity())
    resting = m.place_id(limit("a", SELL, 5, 100))

    events = m.place(limit("a", BUY, 8, 100, stp=NEWEST))

    cancelled = one(events, OrderCancelled)
    assert cancelled.order_id != resting
    assert (cancelled.reason, cancelled.cancelled_quantity, cancelled.remaining) == (CancelReason.SELF_TRADE, 8, 0)
    assert of_type(events, Trade) == []
    assert m.queue(SELL, 100) == [resting]
    assert m.balance("a") == (1_000_000, 0)


def test_cancel_newest_keeps_the_trades_made_before_meeting_the_own_order():
    m = funded_market(equity())
    m.place(limit("b", SELL, 3, 100))
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 5, 100))

    events = m.place(limit("a", BUY, 10, 100, stp=NEWEST))

    assert one(events, Trade).quantity == 3
    assert one(events, OrderCancelled).cancelled_quantity == 7
    assert m.depth() == ([], [(100, 10, 2)])


def test_cancel_oldest_cancels_the_resting_order_and_the_incoming_one_trades_on():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 5, 101))

    events = m.place(limit("a", BUY, 8, 101, stp=OLDEST))

    cancelled = one(events, OrderCancelled)
    assert (cancelled.order_id, cancelled.reason, cancelled.cancelled_quantity) == (own, CancelReason.SELF_TRADE, 5)
    assert [(t.price, t.quantity) for t in of_type(events, Trade)] == [(101, 5)]
    assert m.depth() == ([(101, 3, 1)], [])


def test_cancel_oldest_cancels_every_own_order_it_meets():
    m = funded_market(equity())
    first = m.place_id(limit("a", SELL, 2, 100))
    second = m.place_id(limit("a", SELL, 2, 100))
    m.place(limit("c", SELL, 2, 100))

    events = m.place(limit("a", BUY, 2, 100, stp=OLDEST))

    assert [e.order_id for e in of_type(events, OrderCancelled)] == [first, second]
    assert one(events, Trade).seller == "c"


def test_cancel_both_cancels_the_resting_and_the_incoming_order():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 5, 100))

    events = m.place(limit("a", BUY, 8, 100, stp=BOTH))

    cancelled = of_type(events, OrderCancelled)
    assert [(e.order_id, e.cancelled_quantity) for e in cancelled] == [(own, 5), (own + 1, 8)]
    assert {e.reason for e in cancelled} == {CancelReason.SELF_TRADE}
    assert m.depth() == ([], [])


def test_decrement_takes_the_smaller_quantity_off_both_and_the_larger_resting_order_stays():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 8, 100))

    events = m.place(limit("a", BUY, 5, 100, stp=DECREMENT))

    cancelled = of_type(events, OrderCancelled)
    assert [(e.order_id, e.cancelled_quantity, e.remaining) for e in cancelled] == [(own, 5, 3), (own + 1, 5, 0)]
    assert m.depth() == ([], [(100, 3, 1)])
    assert m.balance("a", "ACME") == (997, 3)


def test_a_decremented_resting_order_keeps_its_place_in_the_queue():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 8, 100))
    other = m.place_id(limit("c", SELL, 8, 100))

    m.place(limit("a", BUY, 5, 100, stp=DECREMENT))

    assert m.queue(SELL, 100) == [own, other]


def test_decrement_lets_a_larger_incoming_order_trade_on_with_what_is_left():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 3, 100))
    m.place(limit("c", SELL, 10, 100))

    events = m.place(limit("a", BUY, 8, 100, stp=DECREMENT))

    cancelled = of_type(events, OrderCancelled)
    assert [(e.order_id, e.cancelled_quantity, e.remaining) for e in cancelled] == [(own, 3, 0), (own + 2, 3, 5)]
    assert one(events, Trade).quantity == 5


def test_the_incoming_orders_mode_decides_not_the_resting_orders():
    m = funded_market(equity())
    own = m.place_id(limit("a", SELL, 5, 100, stp=NEWEST))

    events = m.place(limit("a", BUY, 5, 100, stp=OLDEST))

    assert one(events, OrderCancelled).order_id == own


def test_a_market_order_never_trades_with_its_own_account():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    events = m.place(market("a", BUY, 5))

    assert of_type(events, Trade) == []
    assert one(events, OrderCancelled).reason is CancelReason.SELF_TRADE


def test_a_decremented_buy_releases_the_hold_of_the_lots_taken_off():
    m = funded_market(equity())
    m.place(limit("a", SELL, 3, 100))

    events = m.place(limit("a", BUY, 8, 102, stp=DECREMENT))

    taker_cut = of_type(events, OrderCancelled)[1]
    assert (taker_cut.release_asset, taker_cut.release_amount) == ("EUR", 3 * 102)
    assert m.balance("a") == (1_000_000 - 5 * 102, 5 * 102)
