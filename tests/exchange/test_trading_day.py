"""A full trading day driven by the calendar, through the engine alone, and replayed byte for byte (issue 7).

The day is scripted in `tests/exchange/trading_day.py`: participants' orders at Rome wall-clock times, the calendar's
commands from `api.schedule.due_commands` at each boundary, the engine's timers as clock ticks. After every command
the invariants hold (no crossed book outside a call phase, holds equal to what open orders require, cash and
securities conserved); the tests below check what each phase of the day did. In the tables, B(p) is what buys at p,
S(p) what sells at p, volume = min(B, S), surplus = B - S (see `exchange/auction.py`).

The last tests follow two published worked examples of the Xetra auction price rule end to end through the engine:
orders entered in PRE_OPEN, the market opened, the uncrossing price and the trades compared with the example.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from exchange import codec
from exchange.commands import ClockTick, EndOfDay, RunAuction, SetTradingState
from exchange.engine import Engine
from exchange.events import (
    AuctionUncrossed,
    CommandRejected,
    IndicativeAuction,
    OrderCancelled,
    Trade,
    TradingStateChanged,
)
from exchange.instrument import TradingState
from exchange.orders import CancelReason
from exchange.rejects import RejectReason
from tests.exchange.factories import BUY, SELL, Market, equity, limit, market, of_type, one
from tests.exchange.trading_day import CLOCK, ROME, EngineDay, Step, at, invariant_violations, run_day

S = TradingState


@pytest.fixture(scope="module")
def day() -> EngineDay:
    return run_day()


def clock(step: Step) -> str:
    return datetime.fromtimestamp(step.ts_us / 1_000_000, ROME).strftime("%H:%M")


def trades(events) -> list[tuple[int, int, str, str]]:
    """(price, quantity, buyer, seller) of each trade, in order."""
    return [(t.price, t.quantity, t.buyer, t.seller) for t in of_type(events, Trade)]


def scheduled(day: EngineDay) -> list[Step]:
    return [s for s in day.steps if s.sender == "@schedule"]


def state_change_step(day: EngineDay, symbol: str, state: TradingState, reason: str | None = None) -> Step:
    found = [
        s
        for s in day.steps
        if any(
            e.symbol == symbol and e.state is state and reason in (None, e.reason)
            for e in of_type(s.events, TradingStateChanged)
        )
    ]
    assert len(found) == 1, found
    return found[0]


# --- the day as a whole ------------------------------------------------------------------------------------


def test_the_market_holds_its_invariants_after_every_command_of_the_day(day):
    assert len(day.steps) > 50
    assert day.violations == []


def test_the_calendar_moves_both_instruments_through_the_day_at_their_times(day):
    changes = [
        (clock(s), s.command.symbol, s.command.state)
        for s in scheduled(day)
        if isinstance(s.command, SetTradingState)
    ]

    assert changes == [
        ("08:00", "ACME", S.PRE_OPEN),
        ("08:00", "COOP", S.PRE_OPEN),
        ("09:00", "ACME", S.OPEN),
        ("17:30", "ACME", S.CLOSING_AUCTION),
        ("17:35", "ACME", S.CLOSED),
        ("17:35", "COOP", S.CLOSED),
    ]
    assert all(not of_type(s.events, CommandRejected) for s in scheduled(day))


def test_the_day_ends_closed_with_an_end_of_day_after_the_closing_transitions(day):
    last = scheduled(day)[-1]

    assert (clock(last), last.command) == ("17:35", EndOfDay(None))
    assert {s: i.state for s, i in day.engine.instruments.items()} == {"ACME": S.CLOSED, "COOP": S.CLOSED}


def test_orders_before_the_pre_open_and_after_the_close_are_refused(day):
    for label in ("too early", "too late"):
        assert one(day.step(label).events, CommandRejected).reason is RejectReason.INSTRUMENT_NOT_OPEN


def test_the_invariant_check_notices_a_crossed_book_a_wrong_hold_and_created_cash():
    m = Market(equity(state=S.PRE_OPEN))
    m.deposit("a", 10_000)
    m.issue("b", 10)
    m.place(limit("a", BUY, 5, 101))
    m.place(limit("b", SELL, 5, 100))
    injected = {"EUR": 10_000, "ACME": 10}
    assert invariant_violations(m.engine, injected) == []  # crossed, but in a call phase

    # Forged behind the engine's back: open without the uncrossing, hold one cent too many.
    m.engine.instruments["ACME"].state = S.OPEN
    m.engine.balances.of("a", "EUR").held += 1

    problems = invariant_violations(m.engine, injected)
    assert [p.split(" ")[0] for p in problems] == ["ACME", "holds", "totals"]


# --- ACME: pre-open and the opening auction ----------------------------------------------------------------


def test_pre_open_orders_rest_without_trading_and_publish_the_indicative_auction(day):
    pre_open = day.events_between(at(8), at(8, 59))

    assert [t for t in of_type(pre_open, Trade) if t.symbol == "ACME"] == []
    indicative = one(day.step("pre-open market buy").events, IndicativeAuction)
    assert (indicative.price, indicative.volume, indicative.surplus) == (100, 100, 30)


def test_the_opening_auction_uncrosses_the_pre_open_book_at_one_price(day):
    """Buys: market 20 (c), 60@101 (b), 50@100 (c); sells: 100@99 (a), 30@102 (d).

      p    B    S   volume surplus
      99  130  100   100    +30
     100  130  100   100    +30   <- both buy-surplus: the highest (market pressure)
     101   80  100    80
     102   20  130    20
    The market order goes first, then the best limits in time order: c 20, b 60, c 20 of 50, all from a.
    """
    opening = state_change_step(day, "ACME", S.OPEN, "schedule_open")

    assert clock(opening) == "09:00" and opening.sender == "@schedule"
    assert one(opening.events, AuctionUncrossed) == AuctionUncrossed(opening.seq, "ACME", 100, 100, 30, "market_pressure")
    assert trades(opening.events) == [(100, 20, "c", "a"), (100, 60, "b", "a"), (100, 20, "c", "a")]
    assert opening.books["ACME"] == ([(100, 30, 1)], [(102, 30, 1)])


# --- ACME: continuous trading and a volatility interruption ------------------------------------------------


def test_continuous_trading_matches_incoming_orders_at_the_resting_price(day):
    assert trades(day.step("continuous sell").events) == [(100, 10, "c", "b")]
    assert trades(day.step("continuous buy").events) == [(102, 10, "a", "d")]


def test_an_order_beyond_the_calm_range_interrupts_trading_for_a_volatility_auction(day):
    """Reference 102 (the last trade): the calm range is 99..105, so the buy takes d's 20@102 and stops at 107."""
    events = day.step("interrupting buy").events

    assert trades(events) == [(102, 20, "b", "d")]
    assert one(events, TradingStateChanged).state is S.VOLATILITY_AUCTION
    # The rest of the buy joins the auction against a's 20@107: the book is crossed until the uncrossing.
    assert day.step("interrupting buy").books["ACME"] == ([(107, 20, 1), (100, 20, 1)], [(107, 20, 1)])


def test_the_volatility_auction_uncrosses_when_its_five_minutes_are_up(day):
    """Buys: 20@107 (b); sells: 10@106 (c, entered during the auction), 20@107 (a).

      p    B    S   volume surplus
     106   20   10    10
     107   20   30    20    -10   <- the highest volume
    """
    step = state_change_step(day, "ACME", S.OPEN, "volatility_auction_ended")

    assert step.sender == CLOCK and isinstance(step.command, ClockTick)
    assert clock(step) == "11:05"
    assert one(step.events, AuctionUncrossed) == AuctionUncrossed(step.seq, "ACME", 107, 20, -10, "volume")
    assert trades(step.events) == [(107, 10, "b", "c"), (107, 10, "b", "a")]


def test_continuous_trading_resumes_after_the_volatility_auction(day):
    assert trades(day.step("afternoon buy").events) == [(107, 5, "b", "a")]


def test_a_good_till_date_order_expires_at_its_time(day):
    expiry = [s for s in day.steps if s.sender == CLOCK and clock(s) == "15:20"]

    assert len(expiry) == 1 and isinstance(expiry[0].command, ClockTick)
    cancelled = one(expiry[0].events, OrderCancelled)
    assert (cancelled.account, cancelled.reason, cancelled.cancelled_quantity) == ("d", CancelReason.EXPIRED, 5)


# --- ACME: the closing auction, the close, the end of day --------------------------------------------------


def test_the_closing_auction_collects_orders_without_trading(day):
    closing = state_change_step(day, "ACME", S.CLOSING_AUCTION)

    assert clock(closing) == "17:30"
    assert of_type(day.events_between(at(17, 30), at(17, 34)), Trade) == []


def test_the_close_uncrosses_the_closing_auction(day):
    """Buys: market 10 (c), 10@108 (d), 20@100 (c, since the morning), 5@98 (a); sells: 15@105 (b), 5@107 (a).

      p    B    S   volume surplus
     105   20   15    15     +5
     107   20   20    20      0
     108   20   20    20      0   <- 107 and 108 tie on volume and surplus: the reference price (107) decides
    """
    closing = state_change_step(day, "ACME", S.CLOSED)

    assert clock(closing) == "17:35" and closing.sender == "@schedule"
    assert one(closing.events, AuctionUncrossed) == AuctionUncrossed(closing.seq, "ACME", 107, 20, 0, "reference_price")
    assert trades(closing.events) == [(107, 10, "c", "b"), (107, 5, "d", "b"), (107, 5, "d", "a")]


def test_end_of_day_expires_day_orders_and_keeps_good_till_cancelled_ones(day):
    end = next(s for s in day.steps if isinstance(s.command, EndOfDay))
    expired = [(c.account, c.symbol, c.cancelled_quantity) for c in of_type(end.events, OrderCancelled)]

    assert expired == [("a", "COOP", 5), ("a", "ACME", 5)]
    assert all(c.reason is CancelReason.EXPIRED for c in of_type(end.events, OrderCancelled))
    remaining = sorted((o.account, o.symbol, o.price, o.remaining, o.tif.value) for o in day.engine.orders.values())
    assert remaining == [("c", "ACME", 100, 20, "GTC"), ("d", "COOP", 510, 2, "GTC")]


# --- COOP: the auction-only instrument ---------------------------------------------------------------------


def test_the_auction_only_instrument_is_auctioned_every_hour_of_its_day(day):
    auctions = [clock(s) for s in scheduled(day) if isinstance(s.command, RunAuction)]

    assert auctions == ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]


def test_the_auction_only_instrument_trades_only_in_its_periodic_auctions(day):
    """09:00 buys 30@505, sells 50@495: 30 at 495 (both prices sell-surplus, the lowest); 10:00 buys 10@500 against
    the 20 left: 10 at 495; 12:00 buys 15@510, sells 10@495 and 10@510: 15 at 510 (the highest volume); 17:00 a
    market buy of 3 against 5@510: 3 at 510."""
    coop_trades = [
        (clock(s), type(s.command).__name__, trades(e for e in s.events if e.symbol == "COOP"))
        for s in day.steps
        if any(t.symbol == "COOP" for t in of_type(s.events, Trade))
    ]

    assert coop_trades == [
        ("09:00", "RunAuction", [(495, 30, "b", "a")]),
        ("10:00", "RunAuction", [(495, 10, "c", "a")]),
        ("12:00", "RunAuction", [(510, 10, "b", "a"), (510, 5, "b", "d")]),
        ("17:00", "RunAuction", [(510, 3, "c", "d")]),
    ]


def test_the_auction_only_instrument_never_trades_continuously(day):
    coop_states = {e.state for s in day.steps for e in of_type(s.events, TradingStateChanged) if e.symbol == "COOP"}

    assert coop_states == {S.PRE_OPEN, S.CLOSED}


# --- replay ----------------------------------------------------------------------------------------------


def replay(steps: list[Step]) -> Engine:
    engine = Engine()
    for step in steps:
        command = codec.decode(codec.encode(step.command))  # as the journal stores and returns it
        replayed = [codec.encode(e) for e in engine.apply(step.seq, step.ts_us, command)]
        assert replayed == [codec.encode(e) for e in step.events], f"#{step.seq} {step.label} differs"
    return engine


def balances(engine: Engine) -> list[tuple[tuple[str, str], int, int]]:
    return [(key, b.available, b.held) for key, b in engine.balances.items()]


def test_replaying_the_day_s_commands_gives_byte_identical_events(day):
    replay(day.steps)  # asserts step by step


def test_replaying_the_day_ends_with_the_same_books_balances_and_states(day):
    engine = replay(day.steps)

    for symbol in day.engine.books:
        assert engine.depth(symbol, 100) == day.engine.depth(symbol, 100)
        assert engine.instruments[symbol] == day.engine.instruments[symbol]
    assert balances(engine) == balances(day.engine)
    assert engine.required_holds() == day.engine.required_holds()


def test_running_the_scripted_day_again_gives_the_same_command_stream(day):
    again = run_day()

    assert [(s.ts_us, codec.encode(s.command)) for s in again.steps] == [
        (s.ts_us, codec.encode(s.command)) for s in day.steps
    ]


# --- published worked examples, end to end ---------------------------------------------------------------


def pre_open_market(reference_price: int) -> Market:
    m = Market(equity("XETR", reference_price=reference_price, state=S.PRE_OPEN))
    for account in ("b1", "b2", "b3"):
        m.deposit(account, 1_000_000)
    for account in ("s1", "s2", "s3"):
        m.issue(account, 1_000, "XETR")
    return m


def test_xetra_example_1_uncrosses_through_the_engine_at_the_published_price():
    """Deutsche Börse, Xetra market model, auction price determination, example 1 ("exactly one limit at which the
    highest order volume can be executed"; order book as transcribed in github.com/ratzlow/tinyEXCH
    AuctionMatchTest.java, recomputed in `tests/exchange/test_auction_uncross.py`): price € 200, 700 executed.

    bids 200@202, 200@201, 300@200; asks 100@200, 200@198, 400@197 (prices in ticks; reference 200, band ±10 %).
    Allocation at 200: buys by limit (202, 201, 200) against sells by limit (197, 198, 200), front to front.
    """
    m = pre_open_market(reference_price=200)
    bids = [m.place_id(limit(b, BUY, q, p, "XETR")) for b, q, p in (("b1", 200, 202), ("b2", 200, 201), ("b3", 300, 200))]
    asks = [m.place_id(limit(s, SELL, q, p, "XETR")) for s, q, p in (("s1", 100, 200), ("s2", 200, 198), ("s3", 400, 197))]

    events = m.set_state(S.OPEN, "XETR")

    assert one(events, AuctionUncrossed) == AuctionUncrossed(m.seq, "XETR", 200, 700, 0, "volume")
    assert [(t.buy_order_id, t.sell_order_id, t.price, t.quantity) for t in of_type(events, Trade)] == [
        (bids[0], asks[2], 200, 200),
        (bids[1], asks[2], 200, 200),
        (bids[2], asks[1], 200, 200),
        (bids[2], asks[0], 200, 100),
    ]
    assert m.depth("XETR") == ([], [])
    assert m.holds_match()


def test_xetra_example_4_uncrosses_through_the_engine_at_the_reference_price():
    """Xetra example 4 ("both an ask surplus and a bid surplus": the reference price decides; published: "If the
    reference price is € 199, the auction price will be € 199"), same sources as example 1.

    bids market 100, 100@199; asks market 100, 100@202; reference 199.
      p    B    S   volume surplus
     199  200  100   100   +100
     202  100  200   100   -100
    The two market orders trade with each other at 199; both limits stay in the book, which opens uncrossed.
    """
    m = pre_open_market(reference_price=199)
    market_buy = m.place_id(market("b1", BUY, 100, "XETR"))
    m.place_id(limit("b2", BUY, 100, 199, "XETR"))
    market_sell = m.place_id(market("s1", SELL, 100, "XETR"))
    m.place_id(limit("s2", SELL, 100, 202, "XETR"))

    events = m.set_state(S.OPEN, "XETR")

    assert one(events, AuctionUncrossed) == AuctionUncrossed(m.seq, "XETR", 199, 100, 100, "reference_price")
    assert [(t.buy_order_id, t.sell_order_id, t.price, t.quantity) for t in of_type(events, Trade)] == [
        (market_buy, market_sell, 199, 100)
    ]
    assert m.depth("XETR") == ([(199, 100, 1)], [(202, 100, 1)])
    assert m.holds_match()
