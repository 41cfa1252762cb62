"""Volatility interruptions and periodic call auctions (issue 7), through the engine alone."""

from __future__ import annotations

from dataclasses import replace

from exchange.commands import RunAuction
from exchange.events import AuctionUncrossed, CommandRejected, IndicativeAuction, Trade, TradingStateChanged
from exchange.instrument import TradingState
from exchange.orders import TimeInForce
from exchange.rejects import RejectReason
from tests.exchange.factories import BUY, SELL, equity, funded_market, limit, market, of_type, one

SECOND = 1_000_000


def volatile(**changes: object):
    """Reference 100, a 10 % band, trading interrupted for 60 s beyond 3 % of the reference price."""
    return replace(equity(), volatility_bps=300, volatility_auction_us=60 * SECOND, **changes)


def test_a_trade_within_the_calm_range_does_not_interrupt_trading():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 103))
    events = m.place(limit("b", BUY, 10, 103))
    assert one(events, Trade).price == 103
    assert m.engine.instruments["ACME"].state is TradingState.OPEN


def test_an_order_that_would_trade_beyond_the_calm_range_starts_a_volatility_auction_instead():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 104))
    events = m.place(limit("b", BUY, 10, 105))
    assert of_type(events, Trade) == []
    change = one(events, TradingStateChanged)
    assert change.state is TradingState.VOLATILITY_AUCTION and change.reason == "volatility_interruption"
    # The triggering order joins the auction: the book may now be crossed until the uncrossing.
    assert m.bbo() == (105, 104)
    assert one(events, IndicativeAuction).volume == 10


def test_trades_inside_the_range_happen_before_the_interruption_stops_the_sweep():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 5, 102))
    m.place(limit("a", SELL, 5, 106))
    events = m.place(limit("b", BUY, 10, 106))
    assert [t.price for t in of_type(events, Trade)] == [102]
    assert m.engine.instruments["ACME"].state is TradingState.VOLATILITY_AUCTION


def test_an_ioc_remainder_is_cancelled_when_it_triggers_an_interruption():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 105))
    m.place(limit("b", BUY, 10, 105, tif=TimeInForce.IOC))
    assert m.bbo() == (None, 105)
    assert m.holds_match()


def test_a_fok_order_is_refused_rather_than_trigger_an_interruption():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 105))
    events = m.place(limit("b", BUY, 10, 105, tif=TimeInForce.FOK))
    assert one(events, CommandRejected).reason is RejectReason.FOK_NOT_FILLABLE
    assert m.engine.instruments["ACME"].state is TradingState.OPEN


def test_the_volatility_auction_uncrosses_and_trading_resumes_when_its_time_is_up():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 104))
    m.place(limit("b", BUY, 10, 105))
    assert m.tick(59 * SECOND) == []
    events = m.tick(1 * SECOND)
    assert [e.state for e in of_type(events, TradingStateChanged)] == [TradingState.OPEN]
    uncrossed = one(events, AuctionUncrossed)
    assert uncrossed.volume == 10
    assert one(events, Trade).price == uncrossed.price
    assert m.bbo() == (None, None)
    # The auction price is the new reference: the calm range moved with it.
    assert m.engine.instruments["ACME"].reference_price == uncrossed.price


def test_the_engine_reports_when_its_next_timer_is_due():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 104))
    m.place(limit("b", BUY, 10, 105))
    assert m.engine.next_timer_us() == m.now_us + 60 * SECOND


def test_a_halt_during_a_volatility_auction_is_not_ended_by_the_auction_timer():
    m = funded_market(volatile())
    m.place(limit("a", SELL, 10, 104))
    m.place(limit("b", BUY, 10, 105))
    m.set_state(TradingState.HALTED)
    m.tick(120 * SECOND)
    assert m.engine.instruments["ACME"].state is TradingState.HALTED


def test_a_periodic_auction_executes_and_stays_in_the_call_phase():
    m = funded_market(equity(state=TradingState.PRE_OPEN, auction_only=True))
    m.place(limit("a", SELL, 10, 99))
    m.place(limit("b", BUY, 6, 101))
    events = m.apply(RunAuction("ACME"))
    assert one(events, AuctionUncrossed).volume == 6
    assert m.engine.instruments["ACME"].state is TradingState.PRE_OPEN
    assert m.depth() == ([], [(99, 4, 1)])


def test_market_orders_do_not_outlive_a_periodic_auction():
    m = funded_market(equity(state=TradingState.PRE_OPEN, auction_only=True))
    m.place(market("b", BUY, 5))
    m.apply(RunAuction("ACME"))
    assert m.engine.open_orders("b") == []
    assert m.balance("b") == (1_000_000, 0)


def test_a_periodic_auction_outside_a_call_phase_is_refused():
    m = funded_market(equity())
    events = m.apply(RunAuction("ACME"))
    assert one(events, CommandRejected).reason is RejectReason.INVALID_STATE_CHANGE


def test_an_auction_only_instrument_never_opens_for_continuous_trading():
    m = funded_market(equity(state=TradingState.PRE_OPEN, auction_only=True))
    events = m.set_state(TradingState.OPEN)
    assert one(events, CommandRejected).reason is RejectReason.INVALID_STATE_CHANGE


def test_an_auction_never_trades_an_account_with_itself():
    m = funded_market(equity(state=TradingState.PRE_OPEN))
    m.place(limit("a", BUY, 10, 101))
    m.place(limit("a", SELL, 4, 99))
    m.place(limit("b", SELL, 6, 100))
    events = m.set_state(TradingState.OPEN)
    trades = of_type(events, Trade)
    assert all(t.buyer != t.seller for t in trades)
    assert m.holds_match()
    # The self-matched quantity left both of a's orders without a trade or a fee.
    assert m.engine.open_orders("a") == []


def test_end_of_day_expires_market_orders_waiting_for_an_auction():
    m = funded_market(equity(state=TradingState.PRE_OPEN))
    m.place(market("b", BUY, 5))
    m.end_of_day()
    assert m.engine.open_orders("b") == []
    assert m.balance("b") == (1_000_000, 0)
