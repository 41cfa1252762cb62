"""When the sequencer cannot take or keep a command, a route that called `submit` answers 429 or 503, never 500:
a full inbox is 429 `BACKPRESSURE` with `Retry-After`; a failed commit 503 `COMMIT_FAILED`; a sequencer that is
recovering 503 `ENGINE_RECOVERING`; one that is stopped 503 `NOT_READY`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request

from api.sequencer import Sequencer, SequencerState
from api.settings import Settings
from exchange.commands import Deposit
from ledger.batch import Batch
from tests.support import running_app

DEPOSIT_PATH = "/test/deposit"


async def _deposit_route(request: Request) -> dict[str, int]:
    # A route that lets the sequencer's exceptions propagate, as every route that submits may.
    outcome = await request.app.state.sequencer.submit(Deposit("alice", "EUR", 100), "alice")
    return {"seq": outcome.seq}


@pytest.fixture
async def exchange(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its sequencer running on an inbox of ONE command, and a route that submits a deposit."""
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var", inbox_size=1)
    async with running_app(settings) as (app, client):
        app.add_api_route(DEPOSIT_PATH, _deposit_route, methods=["POST"])
        yield app, client


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_a_full_inbox_answers_429_backpressure_with_retry_after(
    exchange: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = exchange
    sequencer: Sequencer = app.state.sequencer
    committing_started, release = asyncio.Event(), asyncio.Event()

    async def slow_commit(_: Batch) -> None:
        committing_started.set()
        await release.wait()

    sequencer.before_commit = slow_commit
    committing = asyncio.create_task(sequencer.submit(Deposit("bob", "EUR", 1), "bob"))
    await asyncio.wait_for(committing_started.wait(), 5)  # the first command left the inbox and is being committed
    queued = asyncio.create_task(sequencer.submit(Deposit("bob", "EUR", 2), "bob"))
    await _until(lambda: sequencer.inbox.full())
    refused = await client.post(DEPOSIT_PATH)
    release.set()
    await asyncio.gather(committing, queued)
    assert _error(refused) == (429, "BACKPRESSURE")
    assert int(refused.headers["retry-after"]) >= 1
    assert (await client.post(DEPOSIT_PATH)).status_code == 200  # the inbox drained: accepted again


async def test_a_failed_commit_answers_503_commit_failed(exchange: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = exchange
    sequencer: Sequencer = app.state.sequencer

    async def failing_commit(_: Batch) -> None:
        sequencer.before_commit = None  # fail once; the recovery that follows works
        raise ConnectionResetError("database went away")

    sequencer.before_commit = failing_commit
    response = await client.post(DEPOSIT_PATH)
    assert _error(response) == (503, "COMMIT_FAILED")
    assert response.headers["retry-after"] == "1"


async def test_a_recovering_sequencer_answers_503_engine_recovering(
    exchange: tuple[FastAPI, httpx.AsyncClient], pg_dsn: str
) -> None:
    app, client = exchange
    sequencer: Sequencer = app.state.sequencer
    blocker = await asyncpg.connect(pg_dsn)
    holding = blocker.transaction()

    async def fail_and_hold_the_journal(_: Batch) -> None:
        # Recovery reads the journal: while this lock is held it cannot finish, so the sequencer stays RECOVERING.
        sequencer.before_commit = None
        await holding.start()
        await blocker.execute("LOCK TABLE journal IN ACCESS EXCLUSIVE MODE")
        raise ConnectionResetError("database went away")

    sequencer.before_commit = fail_and_hold_the_journal
    try:
        assert _error(await client.post(DEPOSIT_PATH)) == (503, "COMMIT_FAILED")
        assert sequencer.state is SequencerState.RECOVERING
        response = await client.post(DEPOSIT_PATH)
    finally:
        await holding.rollback()
        await blocker.close()
    assert _error(response) == (503, "ENGINE_RECOVERING")
    assert response.json()["error"]["details"] == {"state": "recovering"}
    await _until(lambda: sequencer.state is SequencerState.RUNNING)
    assert (await client.post(DEPOSIT_PATH)).status_code == 200


async def test_a_stopped_sequencer_answers_503_not_ready(exchange: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = exchange
    await app.state.sequencer.stop()
    response = await client.post(DEPOSIT_PATH)
    assert _error(response) == (503, "NOT_READY")
    assert response.json()["error"]["details"] == {"state": "stopped"}
