"""Continuous matching: price-time priority, execution at the maker's price, FIFO within a level, partial fills."""

from __future__ import annotations

from exchange.events import OrderAccepted, Trade
from exchange.orders import Side
from tests.exchange.factories import BUY, SELL, equity, funded_market, limit, of_type, one


def test_a_buy_that_crosses_trades_at_the_resting_sell_price():
    m = funded_market(equity())
    m.place(limit("a", SELL, 10, 100))

    trade = one(m.place(limit("b", BUY, 10, 104)), Trade)

    assert (trade.price, trade.quantity, trade.seller, trade.buyer) == (100, 10, "a", "b")


def test_a_sell_that_crosses_trades_at_the_resting_buy_price():
    m = funded_market(equity())
    m.place(limit("a", BUY, 10, 103))

    trade = one(m.place(limit("b", SELL, 10, 97)), Trade)

    assert (trade.price, trade.buyer, trade.seller) == (103, "a", "b")


def test_the_incoming_order_is_the_aggressor():
    m = funded_market(equity())
    m.place(limit("a", BUY, 10, 100))

    trade = one(m.place(limit("b", SELL, 10, 100)), Trade)

    assert trade.aggressor is Side.SELL


def test_better_priced_offers_trade_before_earlier_worse_priced_ones():
    m = funded_market(equity())
    worse = m.place_id(limit("a", SELL, 5, 102))
    better = m.place_id(limit("b", SELL, 5, 101))

    trades = of_type(m.place(limit("c", BUY, 10, 102)), Trade)

    assert [(t.sell_order_id, t.price) for t in trades] == [(better, 101), (worse, 102)]


def test_orders_at_the_same_price_trade_in_arrival_order():
    m = funded_market(equity())
    first = m.place_id(limit("a", BUY, 3, 100))
    second = m.place_id(limit("b", BUY, 3, 100))
    third = m.place_id(limit("c", BUY, 3, 100))

    trades = of_type(m.place(limit("d", SELL, 9, 100)), Trade)

    assert [t.buy_order_id for t in trades] == [first, second, third]


def test_an_order_larger_than_the_best_level_sweeps_the_next_levels_up_to_its_limit():
    m = funded_market(equity())
    m.place(limit("a", SELL, 4, 100))
    m.place(limit("a", SELL, 4, 101))
    m.place(limit("a", SELL, 4, 103))

    trades = of_type(m.place(limit("b", BUY, 20, 102)), Trade)

    assert [(t.price, t.quantity) for t in trades] == [(100, 4), (101, 4)]
    assert m.depth() == ([(102, 12, 1)], [(103, 4, 1)])


def test_the_unfilled_part_of_a_crossing_limit_order_rests_at_its_limit():
    m = funded_market(equity())
    m.place(limit("a", SELL, 4, 100))

    buy = m.place_id(limit("b", BUY, 10, 101))

    assert m.depth() == ([(101, 6, 1)], [])
    assert m.queue(BUY, 101) == [buy]


def test_a_partially_filled_maker_keeps_its_place_at_the_front_of_the_queue():
    m = funded_market(equity())
    first = m.place_id(limit("a", SELL, 10, 100))
    second = m.place_id(limit("b", SELL, 10, 100))

    m.place(limit("c", BUY, 4, 100))

    assert m.queue(SELL, 100) == [first, second]
    assert [o.remaining for o in m.engine.level_orders("ACME", SELL, 100)] == [6, 10]


def test_a_partial_fill_is_followed_by_the_rest_of_the_queue():
    m = funded_market(equity())
    first = m.place_id(limit("a", SELL, 10, 100))
    second = m.place_id(limit("b", SELL, 10, 100))
    m.place(limit("c", BUY, 4, 100))

    trades = of_type(m.place(limit("d", BUY, 10, 100)), Trade)

    assert [(t.sell_order_id, t.quantity) for t in trades] == [(first, 6), (second, 4)]


def test_an_order_that_does_not_cross_rests_without_trading():
    m = funded_market(equity())
    m.place(limit("a", SELL, 10, 101))

    events = m.place(limit("b", BUY, 10, 100))

    assert of_type(events, Trade) == []
    assert m.bbo() == (100, 101)


def test_trades_report_what_is_left_of_both_orders():
    m = funded_market(equity())
    m.place(limit("a", SELL, 10, 100))

    trade = one(m.place(limit("b", BUY, 4, 100)), Trade)

    assert (trade.buy_remaining, trade.sell_remaining) == (0, 6)


def test_trade_ids_count_up_by_one_per_execution():
    m = funded_market(equity())
    m.place(limit("a", SELL, 1, 100))
    m.place(limit("b", SELL, 1, 101))

    first = of_type(m.place(limit("c", BUY, 2, 101)), Trade)
    m.place(limit("a", SELL, 1, 101))
    later = of_type(m.place(limit("c", BUY, 1, 101)), Trade)

    assert [t.trade_id for t in first + later] == [1, 2, 3]


def test_order_ids_count_up_by_one_per_accepted_order():
    m = funded_market(equity())

    ids = [one(m.place(limit("a", BUY, 1, 90 + i)), OrderAccepted).order_id for i in range(3)]

    assert ids == [1, 2, 3]


def test_the_last_trade_price_moves_the_price_band():
    m = funded_market(equity(reference_price=100, band_bps=1_000))
    assert m.engine.instruments["ACME"].band() == (90, 110)
    m.place(limit("a", SELL, 1, 110))
    m.place(limit("b", BUY, 1, 110))

    accepted = m.place(limit("b", BUY, 1, 120))

    assert m.engine.instruments["ACME"].reference_price == 110
    assert m.engine.instruments["ACME"].band() == (99, 121)
    assert one(accepted, OrderAccepted).price == 120


def test_a_buy_receives_the_securities_and_the_seller_the_cash():
    m = funded_market(equity(), cash=10_000, shares=100)

    m.place(limit("a", SELL, 10, 100))
    m.place(limit("b", BUY, 10, 100))

    assert m.balance("a", "ACME") == (90, 0)
    assert m.balance("b", "ACME") == (110, 0)
    assert m.balance("a") == (11_000, 0)
    assert m.balance("b") == (9_000, 0)


def test_prices_and_cash_use_the_tick_value_of_a_lot():
    m = funded_market(equity(lot_size=10, tick_value=25), cash=1_000_000, shares=100)
    m.place(limit("a", SELL, 30, 100))

    trade = one(m.place(limit("b", BUY, 20, 100)), Trade)

    assert trade.cash == 100 * 2 * 25  # price x lots x tick value of a lot
