"""Long seeded sessions: deep books and thousands of commands, beyond what short hypothesis runs reach.

1. Continuous trading only: every command's events equal the naive reference exchange's, and so do the books, the
   queues and the balances.
2. Everything, call phases and volatility interruptions included (which the reference does not model): after every
   command the book is uncrossed outside call phases, held balances are exactly what open orders require, nothing is
   negative and no cash or security is created or lost.
"""

from __future__ import annotations

from exchange.engine import Engine
from exchange.events import BalanceChanged, BalanceChangeKind, Trade
from exchange.instrument import TradingState
from exchange.orders import Side
from tests.exchange.factories import EUR, START_US, RandomSession, absolute_expiry, equity
from tests.exchange.reference_model import ReferenceExchange, describe
from tests.exchange.test_engine_determinism import instruments as every_kind_of_instrument

CONTINUOUS = [
    equity("ACME", reference_price=1_000, band_bps=1_000),
    equity("IMPX", reference_price=500, band_bps=1_000, lot_size=10, tick_value=37, maker_fee_bps=7, taker_fee_bps=25),
]


def test_a_long_continuous_session_matches_the_reference_exchange_command_by_command():
    engine = Engine()
    reference = ReferenceExchange()
    session = RandomSession(
        99,
        CONTINUOUS,
        spread_ticks=40,
        lean_ticks=30,
        mix={"cancel": 2.0, "amend": 8.0, "cancel_all": 0.1, "end_of_day": 0.1, "tick": 0.5},
        live_orders=lambda: [(o.order_id, o.account, o.symbol, o.price, o.quantity) for o in reference.book],
    )
    now = START_US
    commands = session.opening() + [None] * 6_000
    deepest = trades = 0
    for seq, command in enumerate(commands, start=1):
        if command is None:
            pause, command = session.next()
            now += pause
            command = absolute_expiry(command, now)
        events = engine.apply(seq, now, command)
        assert describe(events) == reference.apply(now, command), (seq, command)
        trades += sum(isinstance(e, Trade) for e in events)
        deepest = max(deepest, len(reference.book))
        if seq % 50 == 0:
            for instrument in CONTINUOUS:
                symbol = instrument.symbol
                assert engine.depth(symbol, 10_000) == reference.depth(symbol)
                for side in Side:
                    for level in engine.books[symbol].side(side).levels.values():
                        queue = [o.order_id for o in level]
                        assert queue == reference.queue(symbol, side, level.price)
            engine_balances = {k: (b.available, b.held) for k, b in engine.balances.items() if b.available or b.held}
            assert engine_balances == reference.balances()
    assert trades > 800 and deepest > 200, (trades, deepest)


def test_a_long_session_with_auctions_keeps_every_invariant_after_every_command():
    engine = Engine()
    session = RandomSession(
        4242,
        every_kind_of_instrument(),
        call_phases=True,
        live_orders=lambda: [(o.order_id, o.account, o.symbol, o.price, o.quantity) for o in engine.orders.values()],
    )
    now = START_US
    cash_in = 0
    issued: dict[str, int] = {}
    commands = session.opening() + [None] * 8_000
    for seq, command in enumerate(commands, start=1):
        if command is None:
            pause, command = session.next()
            now += pause
            command = absolute_expiry(command, now)
        for event in engine.apply(seq, now, command):
            if isinstance(event, BalanceChanged):
                if event.asset == EUR:
                    cash_in += -event.amount if event.kind is BalanceChangeKind.WITHDRAWAL else event.amount
                else:
                    issued[event.asset] = issued.get(event.asset, 0) + event.amount
        for symbol, book in engine.books.items():
            # A halt or suspension may interrupt a call phase: its orders wait, crossed, for the uncrossing.
            if engine.instruments[symbol].state in (TradingState.OPEN, TradingState.CLOSED):
                assert not book.is_crossed(), (seq, command)
                assert not book.market_bids and not book.market_asks, (seq, command)
        held = {key: b.held for key, b in engine.balances.items() if b.held}
        assert held == {key: amount for key, amount in engine.required_holds().items() if amount}, (seq, command)
        assert all(b.available >= 0 and b.held >= 0 for _, b in engine.balances.items())
        totals = engine.balances.totals()
        assert totals.get(EUR, 0) == cash_in
        assert {s: totals.get(s, 0) for s in issued} == issued
