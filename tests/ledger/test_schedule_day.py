"""The scripted trading day through a real `Sequencer` on PostgreSQL, its calendar sent by the `ScheduleTimer`.

The day of `tests/exchange/trading_day.py` runs with a clock the test moves: at each calendar boundary the timer's
`run_once` submits what is due (sender `@schedule`), the engine's timers get their `ClockTick`s, the participants'
commands go in at their times. Afterwards the journal is recovered into a fresh engine and compared with the live one,
and the ledger must balance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from api.schedule import SENDER, ScheduleTimer, session_events
from api.sequencer import Sequencer
from exchange import codec
from exchange.commands import ClockTick, EndOfDay, RunAuction, SetTradingState
from exchange.engine import Engine
from exchange.instrument import TradingState
from ledger.queries import reconcile_balances, trial_balance
from ledger.recovery import recover
from tests.exchange.trading_day import CLIENT, CLOCK, END_OF_DAY, SCHEDULE, at, run_day, script


@dataclass(slots=True)
class ManualClock:
    now_us: int

    def __call__(self) -> int:
        return self.now_us


@dataclass(slots=True)
class SequencedDay:
    sequencer: Sequencer
    clock: ManualClock
    timer: ScheduleTimer

    async def advance_to(self, ts_us: int) -> None:
        """Move the clock to `ts_us`, stopping at each boundary and engine timer on the way, as live time would."""
        while True:
            boundaries = session_events(SCHEDULE, self.timer.last_run_us, ts_us)
            boundary = boundaries[0].at_us if boundaries else None
            due = self.sequencer.engine.next_timer_us()
            if due is not None and due <= ts_us and (boundary is None or due < boundary):
                self.clock.now_us = max(self.clock.now_us, due)
                await self.sequencer.submit(ClockTick(), CLOCK)
                continue
            if boundary is None:
                break
            self.clock.now_us = boundary
            await self.timer.run_once()
        self.clock.now_us = ts_us
        await self.timer.run_once()


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def sequenced_day(pool: asyncpg.Pool) -> AsyncIterator[Sequencer]:
    commands = script()
    clock = ManualClock(commands[0][0])
    sequencer = Sequencer(pool, clock=clock)
    await sequencer.start()
    day = SequencedDay(sequencer, clock, ScheduleTimer(sequencer, SCHEDULE, last_run_us=clock.now_us))
    try:
        for ts_us, _, command in commands:
            await day.advance_to(ts_us)
            await sequencer.submit(command, CLIENT)
        await day.advance_to(END_OF_DAY)
        yield sequencer
    finally:
        await sequencer.stop()


def balances(engine: Engine) -> list[tuple[tuple[str, str], int, int]]:
    return [(key, b.available, b.held) for key, b in engine.balances.items()]


def books(engine: Engine) -> dict[str, object]:
    return {symbol: engine.depth(symbol, 1_000) for symbol in sorted(engine.books)}


def open_orders(engine: Engine) -> list[tuple]:
    return [
        (o.order_id, o.account, o.symbol, o.side, o.price, o.remaining, o.tif, o.priority, o.hold_per_lot)
        for o in engine.orders.values()
    ]


async def test_recovery_after_the_day_rebuilds_the_same_books_balances_and_orders(sequenced_day, pool):
    live = sequenced_day.engine

    recovered = await recover(pool)

    assert recovered.last_seq == sequenced_day.last_seq
    assert books(recovered.engine) == books(live)
    assert balances(recovered.engine) == balances(live)
    assert open_orders(recovered.engine) == open_orders(live)
    assert recovered.engine.instruments == live.instruments
    assert recovered.engine.required_holds() == live.required_holds()


async def test_replaying_the_journal_gives_the_stored_events_byte_for_byte(sequenced_day, pool):
    replayed: list[tuple[int, int, str]] = []

    def collect(seq: int, ts_us: int, events: list) -> None:
        replayed.extend((seq, idx, codec.encode(e).decode("ascii")) for idx, e in enumerate(events))

    await recover(pool, on_events=collect)

    stored = [tuple(r) for r in await pool.fetch("SELECT seq, idx, body FROM events ORDER BY seq, idx")]
    assert len(stored) > 100
    assert replayed == stored


async def test_the_ledger_of_the_day_balances_to_zero_in_every_asset(sequenced_day, pool):
    async with pool.acquire() as conn:
        assert await trial_balance(conn) == {"ACME": 0, "COOP": 0, "EUR": 0}
        assert await reconcile_balances(conn) == []


async def test_the_calendar_s_commands_are_journalled_as_sent_by_the_schedule(sequenced_day, pool):
    rows = await pool.fetch("SELECT ts_us, command FROM journal WHERE sender = $1 ORDER BY seq", SENDER)
    sent = [(r["ts_us"], codec.decode(r["command"].encode("ascii"))) for r in rows]

    assert [(ts, c.symbol, c.state) for ts, c in sent if isinstance(c, SetTradingState)] == [
        (at(8), "ACME", TradingState.PRE_OPEN),
        (at(8), "COOP", TradingState.PRE_OPEN),
        (at(9), "ACME", TradingState.OPEN),
        (at(17, 30), "ACME", TradingState.CLOSING_AUCTION),
        (at(17, 35), "ACME", TradingState.CLOSED),
        (at(17, 35), "COOP", TradingState.CLOSED),
    ]
    assert sent[-1] == (at(17, 35), EndOfDay(None))
    assert sum(1 for _, c in sent if isinstance(c, RunAuction)) == 9


async def test_the_day_through_the_sequencer_ends_where_the_engine_alone_ends(sequenced_day):
    alone = run_day().engine

    assert books(sequenced_day.engine) == books(alone)
    assert balances(sequenced_day.engine) == balances(alone)
    assert open_orders(sequenced_day.engine) == open_orders(alone)
