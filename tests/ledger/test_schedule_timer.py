"""The calendar timer in the shell: it submits what is due to a real sequencer, catches up after a restart, retries
after a failed commit, and runs as an app component unless `EXCHANGE_SCHEDULE=off`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI

from api.schedule import SENDER, ScheduleError, ScheduleTimer, SessionSchedule, start_schedule, stop_schedule
from api.sequencer import CommitFailed, Sequencer
from exchange import codec
from exchange.commands import ListInstrument, SetTradingState
from exchange.instrument import TradingState
from ledger.batch import Batch
from tests.exchange.factories import equity
from tests.exchange.trading_day import SCHEDULE, at

SECOND = 1_000_000


@dataclass(slots=True)
class ManualClock:
    now_us: int

    def __call__(self) -> int:
        return self.now_us


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at(7, 59))


@pytest.fixture
async def sequencer(pool: asyncpg.Pool, clock: ManualClock) -> AsyncIterator[Sequencer]:
    """A running sequencer with ACME listed, closed, at 07:59 on a Tuesday."""
    sequencer = Sequencer(pool, clock=clock)
    await sequencer.start()
    await sequencer.submit(ListInstrument(equity(state=TradingState.CLOSED)), "ops")
    yield sequencer
    await sequencer.stop()


async def schedule_journal(pool: asyncpg.Pool) -> list[tuple[int, object]]:
    rows = await pool.fetch("SELECT ts_us, command FROM journal WHERE sender = $1 ORDER BY seq", SENDER)
    return [(r["ts_us"], codec.decode(r["command"].encode("ascii"))) for r in rows]


async def test_the_running_timer_sends_a_transition_once_its_time_has_come(sequencer, pool, clock):
    timer = ScheduleTimer(sequencer, SCHEDULE, interval_s=0.01)
    timer.start()
    try:
        await asyncio.sleep(0.05)
        assert await schedule_journal(pool) == []
        clock.now_us = at(8) + SECOND
        # Wait for the commit, not for memory: the engine applies a batch before the batch has committed.
        for _ in range(200):
            if await schedule_journal(pool):
                break
            await asyncio.sleep(0.01)
    finally:
        await timer.stop()

    assert await schedule_journal(pool) == [
        (at(8) + SECOND, SetTradingState("ACME", TradingState.PRE_OPEN, "schedule_pre_open"))
    ]


async def test_after_a_restart_the_timer_catches_up_on_the_boundaries_it_missed(sequencer, pool, clock):
    await sequencer.stop()
    clock.now_us = at(10)
    restarted = Sequencer(pool, clock=clock)
    await restarted.start()
    try:
        sent = await ScheduleTimer(restarted, SCHEDULE).run_once()
    finally:
        await restarted.stop()

    assert [(c.symbol, c.state) for c in sent] == [("ACME", TradingState.PRE_OPEN), ("ACME", TradingState.OPEN)]
    assert [ts for ts, _ in await schedule_journal(pool)] == [at(10), at(10)]  # stamped when sent


async def test_the_catch_up_reaches_back_no_further_than_its_limit(sequencer, pool, clock):
    clock.now_us = at(10)

    sent = await ScheduleTimer(sequencer, SCHEDULE, catch_up_us=30 * 60 * SECOND).run_once()

    assert sent == []  # 09:30-10:00 holds no boundary, and the 09:00 open would not move a closed instrument
    assert sequencer.engine.instruments["ACME"].state is TradingState.CLOSED


async def test_after_a_failed_commit_the_next_run_sends_the_transition_again(sequencer, pool, clock):
    timer = ScheduleTimer(sequencer, SCHEDULE)
    clock.now_us = at(8)

    async def fail(batch: Batch) -> None:
        raise ConnectionError("database went away")

    sequencer.before_commit = fail
    with pytest.raises(CommitFailed):
        await timer.run_once()
    sequencer.before_commit = None
    await sequencer.wait_running()
    clock.now_us = at(8) + SECOND
    await timer.run_once()
    await timer.run_once()

    assert [c for _, c in await schedule_journal(pool)] == [
        SetTradingState("ACME", TradingState.PRE_OPEN, "schedule_pre_open")
    ]


async def test_an_instrument_the_operator_halted_is_left_halted_by_the_timer(sequencer, pool, clock):
    await sequencer.submit(SetTradingState("ACME", TradingState.HALTED), "ops")
    clock.now_us = at(9, 30)

    sent = await ScheduleTimer(sequencer, SCHEDULE).run_once()

    assert sent == []
    assert sequencer.engine.instruments["ACME"].state is TradingState.HALTED


# --- the app component ------------------------------------------------------------------------------------


def app_with(sequencer: Sequencer) -> FastAPI:
    app = FastAPI()
    app.state.sequencer = sequencer
    return app


async def test_the_component_does_not_run_the_timer_when_the_schedule_is_off(sequencer, monkeypatch):
    monkeypatch.setenv("EXCHANGE_SCHEDULE", "off")
    app = app_with(sequencer)

    await start_schedule(app)

    assert app.state.schedule_timer is None
    await stop_schedule(app)


async def test_the_component_runs_the_timer_on_the_schedule_file_it_is_given(sequencer, monkeypatch, tmp_path: Path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"open": "09:05", "periodic_auction_minutes": 30}))
    monkeypatch.setenv("EXCHANGE_SCHEDULE", "on")
    monkeypatch.setenv("EXCHANGE_SCHEDULE_FILE", str(path))
    app = app_with(sequencer)

    await start_schedule(app)
    try:
        timer = app.state.schedule_timer
        assert timer.schedule == SessionSchedule(open=time(9, 5), periodic_auction_minutes=30)
        assert timer._task is not None and not timer._task.done()
    finally:
        await stop_schedule(app)
    assert timer._task is None


async def test_a_bad_schedule_file_stops_the_component_with_its_reason(sequencer, monkeypatch, tmp_path: Path):
    path = tmp_path / "schedule.json"
    path.write_text('{"close": "08:00"}')
    monkeypatch.setenv("EXCHANGE_SCHEDULE", "on")
    monkeypatch.setenv("EXCHANGE_SCHEDULE_FILE", str(path))

    with pytest.raises(ScheduleError, match="pre_open < open < closing_auction < close"):
        await start_schedule(app_with(sequencer))
