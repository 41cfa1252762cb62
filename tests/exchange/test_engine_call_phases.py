"""Call phases and trading states: orders collected without matching, one uncrossing price, halts and delisting.

The auction arithmetic itself (price determination and allocation) is specified in `test_auction_uncross.py`; these
tests are about what the engine does around it.
"""

from __future__ import annotations

from exchange.commands import RunAuction
from exchange.events import (
    AuctionUncrossed,
    CommandRejected,
    IndicativeAuction,
    OrderAccepted,
    OrderCancelled,
    Trade,
    TradingStateChanged,
)
from exchange.instrument import TradingState
from exchange.orders import CancelReason, TimeInForce
from exchange.rejects import RejectReason
from tests.exchange.factories import BUY, SELL, Market, equity, funded_market, limit, market, of_type, one

PRE_OPEN = TradingState.PRE_OPEN
OPEN = TradingState.OPEN


def collected_book(**instrument) -> Market:
    """Pre-open with two crossing buys and sells: the auction price is 101 (volume 10, sell surplus 4)."""
    m = funded_market(equity(**instrument))
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 102))
    m.place(limit("b", BUY, 5, 100))
    m.place(limit("c", SELL, 8, 99))
    m.place(limit("d", SELL, 6, 101))
    return m


def test_orders_rest_without_matching_during_a_call_phase():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 102))

    events = m.place(limit("c", SELL, 8, 99))

    assert of_type(events, Trade) == []
    assert m.depth() == ([(102, 10, 1)], [(99, 8, 1)])


def test_every_order_in_a_call_phase_publishes_the_indicative_auction():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 102))
    m.place(limit("b", BUY, 5, 100))
    m.place(limit("c", SELL, 8, 99))

    indicative = one(m.place(limit("d", SELL, 6, 101)), IndicativeAuction)

    assert (indicative.price, indicative.volume, indicative.surplus) == (101, 10, -4)


def test_opening_the_market_uncrosses_the_collected_orders_at_one_price():
    m = collected_book()

    events = m.set_state(OPEN)

    assert [type(e) for e in events[:2]] == [TradingStateChanged, AuctionUncrossed]
    uncrossed = events[1]
    assert (uncrossed.price, uncrossed.volume, uncrossed.rule) == (101, 10, "market_pressure")
    trades = of_type(events, Trade)
    assert [(t.price, t.quantity, t.buyer, t.seller) for t in trades] == [(101, 8, "a", "c"), (101, 2, "a", "d")]
    assert m.depth() == ([(100, 5, 1)], [(101, 4, 1)])


def test_closing_the_market_uncrosses_a_closing_auction():
    m = funded_market(equity())
    m.set_state(TradingState.CLOSING_AUCTION)
    m.place(limit("a", BUY, 10, 100))
    m.place(limit("c", SELL, 10, 100))

    events = m.set_state(TradingState.CLOSED)

    assert one(events, AuctionUncrossed).price == 100
    assert one(events, Trade).quantity == 10


def test_the_auction_price_becomes_the_reference_price():
    m = collected_book()

    m.set_state(OPEN)

    assert m.engine.instruments["ACME"].reference_price == 101


def test_an_auction_charges_both_sides_the_maker_rate():
    m = funded_market(equity(tick_value=100, maker_fee_bps=10, taker_fee_bps=30), cash=10_000_000)
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 100))
    m.place(limit("c", SELL, 10, 100))

    trade = one(m.set_state(OPEN), Trade)

    assert (trade.buyer_fee, trade.seller_fee) == (100, 100)


def test_holds_stay_exact_through_an_uncrossing():
    m = collected_book(maker_fee_bps=10, taker_fee_bps=30)

    m.set_state(OPEN)

    assert m.holds_match()


def test_a_call_phase_with_nothing_crossing_opens_without_trades():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 99))
    m.place(limit("c", SELL, 10, 101))

    events = m.set_state(OPEN)

    assert [u.price for u in of_type(events, AuctionUncrossed)] in ([], [None])
    assert of_type(events, Trade) == []
    assert m.depth() == ([(99, 10, 1)], [(101, 10, 1)])


def test_immediate_limit_orders_are_refused_during_a_call_phase():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)

    ioc = m.place(limit("a", BUY, 10, 99, tif=TimeInForce.IOC))
    fok = m.place(limit("a", BUY, 10, 99, tif=TimeInForce.FOK))

    assert [one(ioc, CommandRejected).reason, one(fok, CommandRejected).reason] == [
        RejectReason.INVALID_TIME_IN_FORCE
    ] * 2


def test_a_market_order_waits_for_the_uncrossing_and_its_remainder_is_then_cancelled():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("c", SELL, 4, 100))
    buy = m.place_id(market("a", BUY, 10))

    events = m.set_state(OPEN)

    assert one(events, Trade).quantity == 4
    cancelled = one(events, OrderCancelled)
    assert (cancelled.order_id, cancelled.reason, cancelled.cancelled_quantity) == (
        buy,
        CancelReason.MARKET_REMAINDER,
        6,
    )
    assert m.holds_match()


def test_the_call_phase_book_can_be_cancelled_from():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    order_id = m.place_id(limit("a", BUY, 10, 102))

    cancelled = one(m.cancel("a", order_id), OrderCancelled)

    assert cancelled.release_amount == 1_020


def test_a_cancel_during_a_call_phase_publishes_the_new_indicative_auction():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 101))
    sell = m.place_id(limit("c", SELL, 10, 100))

    events = m.cancel("c", sell)

    indicative = one(events, IndicativeAuction)
    assert (indicative.price, indicative.volume) == (None, 0)


def test_an_expiry_during_a_call_phase_publishes_the_new_indicative_auction():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 101))
    m.place(limit("c", SELL, 10, 100, tif=TimeInForce.DAY))

    events = m.end_of_day()

    assert one(events, IndicativeAuction).volume == 0


# ---------------------------------------------------------------- halts, delisting, auction-only


def test_a_halt_refuses_new_orders_and_amends_but_lets_orders_be_cancelled():
    m = funded_market(equity())
    order_id = m.place_id(limit("a", BUY, 10, 99))
    m.set_state(TradingState.HALTED)

    placed = m.place(limit("a", BUY, 1, 99))
    amended = m.amend("a", order_id, quantity=5)
    cancelled = m.cancel("a", order_id)

    assert one(placed, CommandRejected).reason is RejectReason.INSTRUMENT_HALTED
    assert one(amended, CommandRejected).reason is RejectReason.INSTRUMENT_HALTED
    assert one(cancelled, OrderCancelled).reason is CancelReason.USER


def test_delisting_cancels_every_open_order_of_the_instrument():
    m = funded_market(equity("ACME"), equity("BETA"))
    first = m.place_id(limit("a", BUY, 10, 99))
    second = m.place_id(limit("b", SELL, 10, 101))
    other = m.place_id(limit("a", BUY, 10, 99, "BETA"))

    events = m.set_state(TradingState.DELISTED)

    cancelled = of_type(events, OrderCancelled)
    assert [(e.order_id, e.reason) for e in cancelled] == [
        (first, CancelReason.DELISTED),
        (second, CancelReason.DELISTED),
    ]
    assert [o.order_id for o in m.engine.open_orders("a")] == [other]
    assert m.balance("a") == (1_000_000 - 990, 990)


def test_a_delisted_instrument_never_changes_state_again():
    m = funded_market(equity())
    m.set_state(TradingState.DELISTED)

    events = m.set_state(OPEN)

    assert one(events, CommandRejected).reason is RejectReason.INVALID_STATE_CHANGE


# ---------------------------------------------------------------- found by these tests (see /tmp/engine_bugs.md)


def test_resuming_from_a_halt_during_a_call_phase_never_leaves_a_crossed_book():
    m = funded_market(equity())
    m.set_state(PRE_OPEN)
    m.place(limit("a", BUY, 10, 105))
    m.place(limit("b", SELL, 10, 95))
    m.set_state(TradingState.HALTED)

    m.set_state(OPEN)

    bid, ask = m.bbo()
    assert bid is None or ask is None or bid < ask
    m.place(limit("c", BUY, 1, 90))  # matching must find a sane book
    assert m.holds_match()


def walk_reference(m: Market, prices: list[int]) -> None:
    """Move the reference price with one-unit trades between accounts b and c at each price in turn."""
    for price in prices:
        m.place(limit("b", BUY, 1, price))
        m.place(limit("c", SELL, 1, price))
    assert m.engine.instruments["ACME"].reference_price == prices[-1]


def test_an_auction_market_buy_never_pays_more_than_its_band_limit():
    m = funded_market(equity(reference_price=100, band_bps=1_000))
    m.place(limit("a", SELL, 10, 110))  # at the top of today's band; rests
    walk_reference(m, [99, 95, 91])  # the band is now 82..100: the offer at 110 lies above it
    m.set_state(TradingState.CLOSING_AUCTION)
    band_limit = one(m.place(market("d", BUY, 10)), OrderAccepted).price
    assert band_limit == 100

    events = m.set_state(TradingState.CLOSED)

    assert [t.price for t in of_type(events, Trade) if t.buyer == "d" and t.price > band_limit] == []
    assert m.holds_match()


def test_an_auction_market_sell_never_sells_below_its_band_limit():
    m = funded_market(equity(reference_price=100, band_bps=1_000))
    m.place(limit("a", BUY, 10, 90))  # at the bottom of today's band; rests
    walk_reference(m, [101, 105, 110, 115, 120])  # the band is now 108..132: the bid at 90 lies below it
    m.set_state(TradingState.CLOSING_AUCTION)
    band_limit = one(m.place(market("d", SELL, 10)), OrderAccepted).price
    assert band_limit == 108

    events = m.set_state(TradingState.CLOSED)

    assert [t.price for t in of_type(events, Trade) if t.seller == "d" and t.price < band_limit] == []


# ---------------------------------------------------------------- volatility interruptions and periodic auctions

SECOND = 1_000_000


def jumpy_market() -> Market:
    """Reference 100, calm range 97..103 (3 %), band 80..120, five-second volatility auctions."""
    instrument = equity(reference_price=100, band_bps=2_000)
    instrument.volatility_bps = 300
    instrument.volatility_auction_us = 5 * SECOND
    return funded_market(instrument)


def test_an_order_that_would_trade_beyond_the_calm_range_interrupts_continuous_trading():
    m = jumpy_market()
    m.place(limit("a", SELL, 5, 103))
    m.place(limit("a", SELL, 5, 105))

    events = m.place(limit("b", BUY, 10, 105))

    assert [(t.price, t.quantity) for t in of_type(events, Trade)] == [(103, 5)]
    changed = one(events, TradingStateChanged)
    assert (changed.state, changed.reason) == (TradingState.VOLATILITY_AUCTION, "volatility_interruption")
    assert m.depth() == ([(105, 5, 1)], [(105, 5, 1)])  # the remainder joins the auction
    assert one(events, IndicativeAuction).price == 105


def test_a_volatility_auction_ends_after_its_time_with_an_uncrossing():
    m = jumpy_market()
    m.place(limit("a", SELL, 5, 105))
    m.place(limit("b", BUY, 5, 105))

    too_early = m.tick(5 * SECOND - 1)
    events = m.tick(1)

    assert too_early == []
    changed = one(events, TradingStateChanged)
    assert (changed.state, changed.reason) == (OPEN, "volatility_auction_ended")
    assert (one(events, AuctionUncrossed).price, one(events, Trade).quantity) == (105, 5)


def test_a_fok_order_never_triggers_a_volatility_interruption():
    m = jumpy_market()
    m.place(limit("a", SELL, 5, 105))

    events = m.place(limit("b", BUY, 5, 105, tif=TimeInForce.FOK))

    assert one(events, CommandRejected).reason is RejectReason.FOK_NOT_FILLABLE
    assert m.engine.instruments["ACME"].state is OPEN


def test_a_market_order_that_triggers_an_interruption_has_its_remainder_cancelled():
    m = jumpy_market()
    m.place(limit("a", SELL, 5, 110))

    events = m.place(market("b", BUY, 5))

    assert one(events, TradingStateChanged).state is TradingState.VOLATILITY_AUCTION
    cancelled = one(events, OrderCancelled)
    assert (cancelled.reason, cancelled.cancelled_quantity) == (CancelReason.MARKET_REMAINDER, 5)
    assert m.holds_match()


def test_a_volatility_auction_lasts_its_full_time_even_after_an_earlier_one_ended_early():
    m = jumpy_market()
    m.place(limit("a", SELL, 10, 105))
    m.place(limit("b", BUY, 10, 105))  # interrupted at t0, due to end at t0 + 5 s
    m.advance(1 * SECOND)
    m.set_state(OPEN)  # the operator reopens early: uncrossed at 105
    m.advance(1 * SECOND)
    m.place(limit("a", SELL, 10, 110))
    m.place(limit("b", BUY, 10, 110))  # 110 is beyond 105 + 3 %: interrupted at t0 + 2 s, due to end at t0 + 7 s
    assert m.engine.instruments["ACME"].state is TradingState.VOLATILITY_AUCTION

    m.tick(3 * SECOND)  # t0 + 5 s

    assert m.engine.instruments["ACME"].state is TradingState.VOLATILITY_AUCTION


def test_a_periodic_auction_uncrosses_and_stays_in_the_call_phase():
    m = funded_market(equity(auction_only=True, state=TradingState.PRE_OPEN))
    m.place(limit("a", BUY, 10, 101))
    m.place(limit("c", SELL, 6, 100))

    events = m.apply(RunAuction("ACME"))

    # volume 6 at both 100 and 101, buy surplus 4 at both: market pressure picks the higher price
    assert (one(events, AuctionUncrossed).price, one(events, Trade).quantity) == (101, 6)
    assert m.engine.instruments["ACME"].state is TradingState.PRE_OPEN
    assert m.depth() == ([(101, 4, 1)], [])
    m.place(limit("c", SELL, 4, 101))
    assert of_type(m.apply(RunAuction("ACME")), Trade)[0].quantity == 4


def test_a_periodic_auction_outside_a_call_phase_is_refused():
    m = funded_market(equity())

    events = m.apply(RunAuction("ACME"))

    assert one(events, CommandRejected).reason is RejectReason.INVALID_STATE_CHANGE
