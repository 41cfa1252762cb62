"""Properties of the auction uncrossing on random books, checked against brute force over every price.

The oracle here never aggregates or sorts levels: it recounts the executable buy and sell quantity from the
raw orders at each integer price, so it shares no code or shortcut with ``exchange.auction``.
"""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.auction import (
    AuctionOrder,
    PriceRule,
    Uncrossing,
    allocate,
    determine_price,
    determine_price_from_levels,
)

LOW, HIGH = 95, 105

# A drawn limit below LOW is a market order instead (about one order in six). Few distinct quantities and a
# narrow price band make ties in volume and surplus, and so every step of the rule, common.
_prices = st.integers(LOW - 2, HIGH).map(lambda p: None if p < LOW else p)
_quantities = st.one_of(st.sampled_from([5, 10, 20]), st.integers(1, 30))
_side = st.lists(st.tuples(_prices, _quantities), max_size=10)


def _assemble(draw, raw_bids, raw_asks):
    """Orders with unique ids and unique time priorities, and a reference price."""
    priorities = draw(st.permutations(range(len(raw_bids) + len(raw_asks))))
    orders = [
        AuctionOrder(order_id=i, price=price, quantity=quantity, priority=priorities[i])
        for i, (price, quantity) in enumerate(raw_bids + raw_asks)
    ]
    reference = draw(st.integers(LOW - 10, HIGH + 10))
    return orders[: len(raw_bids)], orders[len(raw_bids) :], reference


@st.composite
def _random_books(draw):
    return _assemble(draw, draw(_side), draw(_side))


@st.composite
def _mirrored_books(draw):
    """Asks mirroring the bids around a centre price: surpluses balance, so step 4 decides often."""
    raw_bids = draw(_side.filter(bool))
    centre = draw(st.integers(LOW + 3, HIGH - 3))
    raw_asks = [(None if p is None else 2 * centre - p, q) for p, q in raw_bids]
    return _assemble(draw, raw_bids, raw_asks)


def auction_books():
    """(bids, asks, reference price)."""
    return st.one_of(_random_books(), _mirrored_books())


def executable(bids, asks, price):
    bought = sum(o.quantity for o in bids if o.price is None or o.price >= price)
    sold = sum(o.quantity for o in asks if o.price is None or o.price <= price)
    return bought, sold


def volume_at(bids, asks, price):
    return min(executable(bids, asks, price))


def surplus_at(bids, asks, price):
    bought, sold = executable(bids, asks, price)
    return bought - sold


def limit_prices(bids, asks):
    return sorted({o.price for o in bids + asks if o.price is not None})


def can_trade(order, price, is_buy):
    if order.price is None:
        return True
    return order.price >= price if is_buy else order.price <= price


def queue_key(is_buy):
    """Execution priority: market orders, then best limit, then earliest."""

    def key(order):
        if order.price is None:
            return (0, 0, order.priority)
        return (1, -order.price if is_buy else order.price, order.priority)

    return key


def filled(executions, side_attribute):
    totals = {}
    for execution in executions:
        order_id = getattr(execution, side_attribute)
        totals[order_id] = totals.get(order_id, 0) + execution.quantity
    return totals


_SETTINGS = settings(max_examples=400, deadline=None)


@_SETTINGS
@given(auction_books())
def test_no_price_executes_more_than_the_auction_price(book):
    bids, asks, reference = book
    uncrossing = determine_price(bids, asks, reference)

    every_price = [*range(LOW - 12, HIGH + 13), reference]
    most = max(volume_at(bids, asks, p) for p in every_price)

    assert uncrossing.volume == most
    if most == 0:
        assert uncrossing == Uncrossing(None, 0, 0, PriceRule.VOLUME)
    else:
        assert volume_at(bids, asks, uncrossing.price) == most
        assert uncrossing.surplus == surplus_at(bids, asks, uncrossing.price)


@_SETTINGS
@given(auction_books())
def test_the_surplus_is_no_larger_than_at_any_highest_volume_limit(book):
    bids, asks, reference = book
    uncrossing = determine_price(bids, asks, reference)
    limits = limit_prices(bids, asks)
    if uncrossing.price is None or not limits:
        return
    smallest = min(abs(surplus_at(bids, asks, p)) for p in limits if volume_at(bids, asks, p) == uncrossing.volume)

    assert abs(uncrossing.surplus) <= smallest
    if uncrossing.price in limits:
        assert abs(uncrossing.surplus) == smallest


@_SETTINGS
@given(auction_books())
def test_the_price_and_the_deciding_rule_follow_the_four_steps(book):
    bids, asks, reference = book
    limits = limit_prices(bids, asks)
    market_buy = sum(o.quantity for o in bids if o.price is None)
    market_sell = sum(o.quantity for o in asks if o.price is None)

    most = max((volume_at(bids, asks, p) for p in limits), default=0)
    if not limits and market_buy and market_sell:
        expected = (reference, PriceRule.REFERENCE_PRICE)
    elif most == 0:
        expected = (None, PriceRule.VOLUME)
    else:
        by_volume = [p for p in limits if volume_at(bids, asks, p) == most]
        least = min(abs(surplus_at(bids, asks, p)) for p in by_volume)
        by_surplus = [p for p in by_volume if abs(surplus_at(bids, asks, p)) == least]
        surpluses = [surplus_at(bids, asks, p) for p in by_surplus]
        if len(by_volume) == 1:
            expected = (by_volume[0], PriceRule.VOLUME)
        elif len(by_surplus) == 1:
            expected = (by_surplus[0], PriceRule.SURPLUS)
        elif all(s > 0 for s in surpluses):
            expected = (max(by_surplus), PriceRule.MARKET_PRESSURE)
        elif all(s < 0 for s in surpluses):
            expected = (min(by_surplus), PriceRule.MARKET_PRESSURE)
        else:
            expected = (min(max(reference, min(by_surplus)), max(by_surplus)), PriceRule.REFERENCE_PRICE)

    uncrossing = determine_price(bids, asks, reference)

    assert (uncrossing.price, uncrossing.rule) == expected


@_SETTINGS
@given(auction_books())
def test_executions_respect_limits_volume_and_quantities(book):
    bids, asks, reference = book
    uncrossing = determine_price(bids, asks, reference)
    executions = allocate(bids, asks, uncrossing)
    by_id = {o.order_id: o for o in bids + asks}
    bought = filled(executions, "buy_order_id")
    sold = filled(executions, "sell_order_id")

    assert all(e.quantity > 0 for e in executions)
    assert sum(bought.values()) == uncrossing.volume
    assert sum(sold.values()) == uncrossing.volume
    for order_id, quantity in bought.items():
        order = by_id[order_id]
        assert order in bids
        assert order.price is None or order.price >= uncrossing.price
        assert quantity <= order.quantity
    for order_id, quantity in sold.items():
        order = by_id[order_id]
        assert order in asks
        assert order.price is None or order.price <= uncrossing.price
        assert quantity <= order.quantity


@_SETTINGS
@given(auction_books())
def test_no_order_gets_a_fill_while_an_earlier_order_is_left_short(book):
    bids, asks, reference = book
    uncrossing = determine_price(bids, asks, reference)
    executions = allocate(bids, asks, uncrossing)
    if uncrossing.price is None:
        assert executions == []
        return

    for orders, attribute, is_buy in ((bids, "buy_order_id", True), (asks, "sell_order_id", False)):
        fills = filled(executions, attribute)
        eligible = sorted((o for o in orders if can_trade(o, uncrossing.price, is_buy)), key=queue_key(is_buy))
        left_short = False
        for order in eligible:
            got = fills.get(order.order_id, 0)
            if left_short:
                assert got == 0
            left_short = left_short or got < order.quantity
        # The side without the surplus fills completely.
        side_has_surplus = uncrossing.surplus > 0 if is_buy else uncrossing.surplus < 0
        if not side_has_surplus:
            assert all(fills.get(o.order_id, 0) == o.quantity for o in eligible)


@_SETTINGS
@given(auction_books())
def test_executions_pair_the_two_queues_front_to_front(book):
    bids, asks, reference = book
    executions = allocate(bids, asks, determine_price(bids, asks, reference))
    rank_buy = {o.order_id: rank for rank, o in enumerate(sorted(bids, key=queue_key(True)))}
    rank_sell = {o.order_id: rank for rank, o in enumerate(sorted(asks, key=queue_key(False)))}

    buy_ranks = [rank_buy[e.buy_order_id] for e in executions]
    sell_ranks = [rank_sell[e.sell_order_id] for e in executions]

    assert buy_ranks == sorted(buy_ranks)
    assert sell_ranks == sorted(sell_ranks)
    # Each execution moves at least one queue on: no pair repeats.
    assert len(set(zip(buy_ranks, sell_ranks))) == len(executions)


@_SETTINGS
@given(auction_books(), st.randoms(use_true_random=False))
def test_the_same_book_in_any_order_gives_the_same_uncrossing_and_executions(book, rng):
    bids, asks, reference = book
    uncrossing = determine_price(bids, asks, reference)
    executions = allocate(bids, asks, uncrossing)
    shuffled_bids, shuffled_asks = bids[:], asks[:]
    rng.shuffle(shuffled_bids)
    rng.shuffle(shuffled_asks)

    assert determine_price(bids, asks, reference) == uncrossing
    assert allocate(bids, asks, uncrossing) == executions
    assert determine_price(shuffled_bids, shuffled_asks, reference) == uncrossing
    assert allocate(shuffled_bids, shuffled_asks, uncrossing) == executions


@_SETTINGS
@given(auction_books(), st.randoms(use_true_random=False))
def test_aggregated_levels_give_the_same_uncrossing_as_the_orders(book, rng: random.Random):
    bids, asks, reference = book
    buy_levels = [(o.price, o.quantity) for o in bids if o.price is not None]
    sell_levels = [(o.price, o.quantity) for o in asks if o.price is not None]
    rng.shuffle(buy_levels)
    rng.shuffle(sell_levels)
    market_buy = sum(o.quantity for o in bids if o.price is None)
    market_sell = sum(o.quantity for o in asks if o.price is None)

    from_levels = determine_price_from_levels(buy_levels, sell_levels, market_buy, market_sell, reference)

    assert from_levels == determine_price(bids, asks, reference)
