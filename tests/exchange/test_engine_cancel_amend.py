"""Cancel, cancel-all and amend: what they take off the book, what they release, and what they do to priority."""

from __future__ import annotations

from exchange.events import CommandRejected, OrderAmended, OrderCancelled, Trade
from exchange.orders import CancelReason, TimeInForce
from exchange.rejects import RejectReason
from tests.exchange.factories import BUY, SELL, equity, funded_market, limit, of_type, one

# ---------------------------------------------------------------- cancel


def test_cancelling_an_order_takes_it_off_the_book_and_releases_its_hold():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100))

    cancelled = one(m.cancel("b", order_id), OrderCancelled)

    assert (cancelled.reason, cancelled.cancelled_quantity, cancelled.release_asset, cancelled.release_amount) == (
        CancelReason.USER,
        5,
        "EUR",
        500,
    )
    assert m.bbo() == (None, None)
    assert m.balance("b") == (1_000_000, 0)


def test_cancelling_a_sell_releases_the_securities_it_held():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", SELL, 5, 100))

    m.cancel("b", order_id)

    assert m.balance("b", "ACME") == (1_000, 0)


def test_cancelling_a_partly_filled_order_releases_only_what_is_left():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100))
    m.place(limit("a", SELL, 2, 100))

    cancelled = one(m.cancel("b", order_id), OrderCancelled)

    assert (cancelled.cancelled_quantity, cancelled.release_amount) == (3, 300)
    assert m.balance("b") == (1_000_000 - 200, 0)


def test_cancelling_an_unknown_order_is_refused():
    m = funded_market(equity())

    events = m.cancel("b", 42)

    assert (one(events, CommandRejected).reason, events[0].order_id) == (RejectReason.UNKNOWN_ORDER, 42)


def test_cancelling_a_filled_order_is_refused_as_unknown():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100))
    m.place(limit("a", SELL, 5, 100))

    events = m.cancel("b", order_id)

    assert one(events, CommandRejected).reason is RejectReason.UNKNOWN_ORDER


def test_cancelling_another_accounts_order_is_refused():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 5, 100))

    events = m.cancel("c", order_id)

    assert one(events, CommandRejected).reason is RejectReason.NOT_YOUR_ORDER
    assert m.queue(BUY, 100) == [order_id]


def test_cancel_all_cancels_every_order_of_the_account_in_order_id_order():
    m = funded_market(equity("ACME"), equity("BETA"))
    first = m.place_id(limit("b", BUY, 5, 100, "ACME"))
    second = m.place_id(limit("b", SELL, 5, 105, "BETA"))
    third = m.place_id(limit("b", BUY, 5, 99, "ACME"))
    others = m.place_id(limit("c", BUY, 5, 100, "ACME"))

    events = m.cancel_all("b")

    assert [e.order_id for e in of_type(events, OrderCancelled)] == [first, second, third]
    assert [o.order_id for o in m.engine.open_orders("c")] == [others]
    assert m.engine.open_orders("b") == []


def test_cancel_all_for_one_instrument_leaves_the_accounts_other_orders():
    m = funded_market(equity("ACME"), equity("BETA"))
    m.place(limit("b", BUY, 5, 100, "ACME"))
    beta = m.place_id(limit("b", BUY, 5, 100, "BETA"))

    m.cancel_all("b", "ACME")

    assert [o.order_id for o in m.engine.open_orders("b")] == [beta]


def test_cancel_all_with_nothing_open_does_nothing():
    m = funded_market(equity())

    assert m.cancel_all("b") == []


def test_cancel_all_for_an_unknown_instrument_is_refused():
    m = funded_market(equity())

    events = m.cancel_all("b", "NOPE")

    assert one(events, CommandRejected).reason is RejectReason.UNKNOWN_INSTRUMENT


# ---------------------------------------------------------------- amend: priority


def test_lowering_the_quantity_keeps_the_orders_place_in_the_queue():
    m = funded_market(equity())
    first = m.place_id(limit("a", BUY, 10, 100))
    second = m.place_id(limit("b", BUY, 10, 100))

    amended = one(m.amend("a", first, quantity=4), OrderAmended)

    assert amended.priority_kept
    assert m.queue(BUY, 100) == [first, second]
    assert m.depth() == ([(100, 14, 2)], [])


def test_lowering_the_quantity_releases_the_hold_of_the_lots_given_up():
    m = funded_market(equity())
    order_id = m.place_id(limit("a", BUY, 10, 100))

    amended = one(m.amend("a", order_id, quantity=4), OrderAmended)

    assert amended.hold_delta == -600
    assert m.balance("a") == (1_000_000 - 400, 400)


def test_raising_the_quantity_sends_the_order_to_the_back_of_its_level():
    m = funded_market(equity())
    first = m.place_id(limit("a", BUY, 10, 100))
    second = m.place_id(limit("b", BUY, 10, 100))

    amended = one(m.amend("a", first, quantity=12), OrderAmended)

    assert not amended.priority_kept
    assert amended.hold_delta == 200
    assert m.queue(BUY, 100) == [second, first]


def test_changing_the_price_sends_the_order_to_the_back_of_the_new_level():
    m = funded_market(equity())
    moved = m.place_id(limit("a", BUY, 10, 100))
    waiting = m.place_id(limit("b", BUY, 10, 99))

    amended = one(m.amend("a", moved, price=99), OrderAmended)

    assert (amended.price, amended.priority_kept, amended.hold_delta) == (99, False, -10)
    assert m.queue(BUY, 99) == [waiting, moved]
    assert m.queue(BUY, 100) == []


def test_a_price_amend_that_crosses_trades_as_the_incoming_order():
    m = funded_market(equity(maker_fee_bps=10, taker_fee_bps=30))
    m.place(limit("a", SELL, 4, 101))
    buy = m.place_id(limit("b", BUY, 10, 100))

    events = m.amend("b", buy, price=101)

    trade = one(events, Trade)
    assert (trade.price, trade.quantity, trade.buy_order_id, trade.aggressor) == (101, 4, buy, BUY)
    assert trade.buyer_fee == 1  # 404 * 30 bps = 1.212, the taker's rate
    assert m.depth() == ([(101, 6, 1)], [])


def test_a_price_amend_that_fills_completely_leaves_nothing_open():
    m = funded_market(equity())
    m.place(limit("a", SELL, 10, 101))
    buy = m.place_id(limit("b", BUY, 10, 100))

    m.amend("b", buy, price=101)

    assert m.engine.open_orders("b") == []
    assert m.cancel("b", buy)[0].reason is RejectReason.UNKNOWN_ORDER


def test_the_amended_quantity_counts_what_has_already_traded():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 10, 100))
    m.place(limit("a", SELL, 4, 100))

    amended = one(m.amend("b", order_id, quantity=7), OrderAmended)

    assert (amended.quantity, amended.remaining) == (7, 3)
    assert m.depth() == ([(100, 3, 1)], [])


def test_amending_to_no_more_than_what_has_traded_is_refused():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 10, 100))
    m.place(limit("a", SELL, 4, 100))

    events = m.amend("b", order_id, quantity=4)

    assert one(events, CommandRejected).reason is RejectReason.QUANTITY_OUT_OF_RANGE


def test_amending_to_the_same_price_and_quantity_is_refused_as_no_change():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 10, 100))

    events = m.amend("b", order_id, price=100, quantity=10)

    assert one(events, CommandRejected).reason is RejectReason.NO_CHANGE


def test_amending_a_post_only_order_to_a_crossing_price_is_refused():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 101))
    order_id = m.place_id(limit("b", BUY, 5, 100, post_only=True))

    events = m.amend("b", order_id, price=101)

    assert one(events, CommandRejected).reason is RejectReason.WOULD_TAKE_LIQUIDITY
    assert m.queue(BUY, 100) == [order_id]


def test_amending_a_buy_upwards_without_the_cash_is_refused():
    m = funded_market(equity(), cash=1_000)
    order_id = m.place_id(limit("b", BUY, 9, 100))

    events = m.amend("b", order_id, quantity=11)

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_FUNDS
    assert m.balance("b") == (100, 900)


def test_amending_a_sell_upwards_without_the_securities_is_refused():
    m = funded_market(equity(), shares=10)
    order_id = m.place_id(limit("b", SELL, 9, 100))

    events = m.amend("b", order_id, quantity=11)

    assert one(events, CommandRejected).reason is RejectReason.INSUFFICIENT_HOLDINGS


def test_amending_to_a_price_outside_the_band_is_refused():
    m = funded_market(equity(reference_price=100, band_bps=1_000))
    order_id = m.place_id(limit("b", BUY, 9, 100))

    events = m.amend("b", order_id, price=111)

    assert one(events, CommandRejected).reason is RejectReason.PRICE_OUTSIDE_BAND


def test_amending_another_accounts_order_is_refused():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 9, 100))

    events = m.amend("c", order_id, quantity=5)

    assert one(events, CommandRejected).reason is RejectReason.NOT_YOUR_ORDER


def test_an_amended_day_order_still_expires_at_the_end_of_the_day():
    m = funded_market(equity())
    order_id = m.place_id(limit("b", BUY, 9, 100, tif=TimeInForce.DAY))
    m.amend("b", order_id, price=99)

    cancelled = one(m.end_of_day(), OrderCancelled)

    assert cancelled.order_id == order_id
