"""Determinism: the same commands with the same sequence numbers and timestamps give the same events and state.

A seeded stream of 20 000 commands of every kind (continuous trading, call phases, periodic auctions, halts, the
close, a bond, an instrument with volatility interruptions, fees) goes into two fresh engines; everything they say
and everything they hold must be identical, field for field.
"""

from __future__ import annotations

from datetime import date

from exchange.engine import Engine
from exchange.events import AuctionUncrossed, Trade, TradingStateChanged
from exchange.instrument import BondTerms, DayCount, Instrument, InstrumentKind
from tests.exchange.factories import START_US, RandomSession, absolute_expiry, equity

COMMANDS = 20_000


def instruments() -> list[Instrument]:
    green = Instrument(
        symbol="GREEN27",
        kind=InstrumentKind.BOND,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=300,
        reference_price=10_000,
        maker_fee_bps=5,
        taker_fee_bps=15,
        bond=BondTerms(10_000, 40_000, 2, DayCount.ACT_ACT, date(2023, 3, 1), date(2028, 3, 1)),
    )
    jumpy = equity("JUMPY", reference_price=200, band_bps=1_500)
    jumpy.volatility_bps = 200
    jumpy.volatility_auction_us = 5_000_000
    return [
        equity("ACME", reference_price=100, band_bps=1_000),
        equity(
            "IMPX", reference_price=500, band_bps=500, lot_size=10, tick_value=37, maker_fee_bps=7, taker_fee_bps=25
        ),
        green,
        jumpy,
    ]


def run_session(seed: int, engine: Engine, count: int = COMMANDS) -> tuple[list, list]:
    """Feed the seeded stream into `engine`; return the commands sent and the events of each."""
    session = RandomSession(seed, instruments(), call_phases=True, live_orders=lambda: live(engine))
    sent: list = []
    said: list = []
    now = START_US
    for command in session.opening():
        sent.append((len(sent) + 1, now, command))
        said.append(engine.apply(len(sent), now, command))
    for _ in range(count):
        pause, command = session.next()
        now += pause
        command = absolute_expiry(command, now)
        sent.append((len(sent) + 1, now, command))
        said.append(engine.apply(len(sent), now, command))
    return sent, said


def live(engine: Engine) -> list[tuple[int, str, str, int, int]]:
    return [(o.order_id, o.account, o.symbol, o.price, o.quantity) for o in engine.orders.values()]


def state(engine: Engine) -> tuple:
    return (
        {s: engine.depth(s, 10_000) for s in engine.books},
        [(key, b.available, b.held) for key, b in engine.balances.items()],
        [(o.order_id, o.remaining, o.quantity, o.price, o.priority) for o in engine.orders.values()],
        {s: (i.state, i.reference_price) for s, i in engine.instruments.items()},
        engine.next_order_id,
        engine.next_trade_id,
    )


def test_two_engines_fed_the_same_commands_say_and_hold_exactly_the_same():
    first = Engine()
    sent, said = run_session(20240611, first)
    second = Engine()

    replayed = [second.apply(seq, ts, command) for seq, ts, command in sent]

    assert replayed == said
    assert [repr(events) for events in replayed] == [repr(events) for events in said]
    assert state(second) == state(first)
    # The stream is only worth this if it exercised the engine: trades, auctions and interruptions happened.
    flat = [event for events in said for event in events]
    assert sum(isinstance(e, Trade) for e in flat) > 1_000
    assert any(isinstance(e, AuctionUncrossed) and e.volume > 0 for e in flat)
    assert any(isinstance(e, TradingStateChanged) and e.reason == "volatility_interruption" for e in flat)


def test_the_same_seed_gives_the_same_session_and_another_seed_another():
    one_run = run_session(7, Engine(), 2_000)
    same_seed = run_session(7, Engine(), 2_000)
    other_seed = run_session(8, Engine(), 2_000)

    assert one_run == same_seed
    assert one_run[0] != other_seed[0]
