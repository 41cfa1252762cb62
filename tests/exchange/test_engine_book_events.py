"""Level-2 market data: `BookLevelChanged` events give each touched price level as it is after the command."""

from __future__ import annotations

from exchange.events import BookLevelChanged
from exchange.orders import TimeInForce
from tests.exchange.factories import BUY, SELL, equity, funded_market, limit, market, of_type


def levels(events):
    return [(e.side, e.price, e.quantity, e.order_count) for e in of_type(events, BookLevelChanged)]


def test_a_resting_order_publishes_its_level():
    m = funded_market(equity())

    events = m.place(limit("a", BUY, 5, 100))

    assert levels(events) == [(BUY, 100, 5, 1)]


def test_a_second_order_at_a_level_publishes_the_total_and_the_count():
    m = funded_market(equity())
    m.place(limit("a", BUY, 5, 100))

    events = m.place(limit("b", BUY, 7, 100))

    assert levels(events) == [(BUY, 100, 12, 2)]


def test_level_events_come_after_the_commands_other_events():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    events = m.place(limit("b", BUY, 5, 100))

    assert isinstance(events[-1], BookLevelChanged)
    assert not any(isinstance(e, BookLevelChanged) for e in events[:-1])


def test_a_level_emptied_by_trading_is_published_with_quantity_zero():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    events = m.place(limit("b", BUY, 5, 100))

    assert levels(events) == [(SELL, 100, 0, 0)]


def test_a_sweep_publishes_every_level_it_took_from_and_the_resting_remainder():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("a", SELL, 5, 101))
    m.place(limit("a", SELL, 5, 102))

    events = m.place(limit("b", BUY, 12, 103))

    assert levels(events) == [(SELL, 100, 0, 0), (SELL, 101, 0, 0), (SELL, 102, 3, 1)]


def test_a_partial_fill_of_a_level_publishes_what_is_left():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))
    m.place(limit("c", SELL, 5, 100))

    events = m.place(limit("b", BUY, 7, 100))

    assert levels(events) == [(SELL, 100, 3, 1)]


def test_a_crossing_order_whose_remainder_rests_publishes_both_sides():
    m = funded_market(equity())
    m.place(limit("a", SELL, 5, 100))

    events = m.place(limit("b", BUY, 7, 101))

    assert levels(events) == [(SELL, 100, 0, 0), (BUY, 101, 2, 1)]


def test_a_cancel_publishes_the_level_without_the_order():
    m = funded_market(equity())
    order_id = m.place_id(limit("a", BUY, 5, 100))
    m.place(limit("b", BUY, 7, 100))

    events = m.cancel("a", order_id)

    assert levels(events) == [(BUY, 100, 7, 1)]


def test_a_price_amend_publishes_the_old_and_the_new_level():
    m = funded_market(equity())
    order_id = m.place_id(limit("a", BUY, 5, 100))

    events = m.amend("a", order_id, price=99)

    assert levels(events) == [(BUY, 100, 0, 0), (BUY, 99, 5, 1)]


def test_a_quantity_amend_publishes_the_new_level_quantity():
    m = funded_market(equity())
    order_id = m.place_id(limit("a", BUY, 5, 100))

    events = m.amend("a", order_id, quantity=2)

    assert levels(events) == [(BUY, 100, 2, 1)]


def test_an_expiry_publishes_the_level():
    m = funded_market(equity())
    m.place(limit("a", BUY, 5, 100, tif=TimeInForce.DAY))

    events = m.end_of_day()

    assert levels(events) == [(BUY, 100, 0, 0)]


def test_an_order_that_never_rests_publishes_nothing():
    m = funded_market(equity())

    events = m.place(market("a", BUY, 5)) + m.place(limit("a", BUY, 5, 100, tif=TimeInForce.IOC))

    assert levels(events) == []


def test_a_refused_command_publishes_nothing():
    m = funded_market(equity(), cash=0)

    events = m.place(limit("a", BUY, 5, 100))

    assert levels(events) == []


def test_each_level_is_published_once_per_command_however_often_it_changed():
    m = funded_market(equity())
    m.place(limit("a", SELL, 1, 100))
    m.place(limit("c", SELL, 1, 100))
    m.place(limit("d", SELL, 1, 100))

    events = m.place(limit("b", BUY, 2, 100))

    assert levels(events) == [(SELL, 100, 1, 1)]
