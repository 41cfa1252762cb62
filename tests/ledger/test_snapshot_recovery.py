"""Recovery from an engine snapshot plus the journal's tail is a full replay, and a bad snapshot is never used.

A real sequencer on a real PostgreSQL journals a seeded random stream (call phases, halts, auctions, GTD expiries, a
bond, fees) and snapshots every few records. Recovering from the snapshots must give what replaying the whole journal
gives: the same engine bytes, the same live order rows, the same chain head, and, for the same further commands, the
same events. Forged or damaged snapshots (wrong digest, a journal hash that is not the journal's, an engine that
stands at another seq, bytes that do not decode) are skipped, down to a full replay when none is left.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.sequencer import CommitFailed, Sequencer
from exchange import snapshot
from exchange.commands import Command
from ledger.batch import Batch
from ledger.postgres import asyncpg_dsn, create_database, drop_database
from ledger.recovery import Recovered, recover
from ledger.snapshots import digest
from tests.conftest import _RUN_TAG, _test_numbers
from tests.exchange.factories import START_US, RandomSession, absolute_expiry
from tests.exchange.test_engine_determinism import instruments

CHUNK = 40  # commands submitted together: they share a batch (and an exchange time)


def stream(seed: int, count: int) -> list[tuple[int, Command]]:
    """(exchange time, command) of a seeded session: the opening, then `count` commands."""
    session = RandomSession(seed, instruments(), call_phases=True)
    now = START_US
    stamped = [(now, command) for command in session.opening()]
    for _ in range(count):
        pause, command = session.next()
        now += pause
        stamped.append((now, absolute_expiry(command, now)))
    return stamped


async def journal(pool: asyncpg.Pool, stamped: list[tuple[int, Command]], every: int, *, clean_stop: bool) -> int:
    """Send the commands through a sequencer that snapshots every `every` records; the last seq committed."""
    clock = [START_US]
    sequencer = Sequencer(pool, batch_max=CHUNK, snapshot_every=every, clock=lambda: clock[0])
    await sequencer.start()
    for start in range(0, len(stamped), CHUNK):
        chunk = stamped[start : start + CHUNK]
        clock[0] = chunk[0][0]
        await asyncio.gather(*(sequencer.submit(command, "tester") for _, command in chunk))
    if clean_stop:
        await sequencer.stop()
    else:  # as if killed: no snapshot on the way out, only the periodic ones stored by now
        await asyncio.gather(*sequencer.snapshots._writing)
        sequencer.snapshots.every = 0
        await sequencer.stop()
    return sequencer.last_seq


def assert_same(from_snapshot: Recovered, full: Recovered) -> None:
    assert snapshot.encode(from_snapshot.engine) == snapshot.encode(full.engine)
    assert [r.as_tuple() for r in from_snapshot.projection.live.values()] == [
        r.as_tuple() for r in full.projection.live.values()
    ]
    assert (from_snapshot.last_seq, from_snapshot.last_ts_us, from_snapshot.last_hash) == (
        full.last_seq,
        full.last_ts_us,
        full.last_hash,
    )


def assert_same_future(a: Recovered, b: Recovered, later: list[tuple[int, Command]]) -> None:
    seq = a.last_seq
    for ts, command in later:
        seq += 1
        ts = max(ts, a.engine.last_ts_us)
        assert a.engine.apply(seq, ts, command) == b.engine.apply(seq, ts, command)
    assert snapshot.encode(a.engine) == snapshot.encode(b.engine)


async def snapshot_seqs(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        return [r[0] for r in await conn.fetch("SELECT seq FROM snapshots ORDER BY seq")]


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_a_restart_after_a_clean_stop_starts_from_the_last_record_and_equals_a_full_replay(pool):
    stamped = stream(seed=11, count=1_500)
    last = await journal(pool, stamped[:1_200], every=150, clean_stop=True)
    seqs = await snapshot_seqs(pool)
    assert seqs[-1] == last and len(seqs) == 3, "the stop's snapshot, and the newest periodic ones"
    fast = await recover(pool)
    full = await recover(pool, use_snapshot=False)
    assert fast.from_snapshot == last and full.from_snapshot == 0
    assert_same(fast, full)
    assert_same_future(fast, full, stamped[1_200:])


async def test_after_a_crash_recovery_replays_the_tail_after_the_newest_snapshot(pool):
    stamped = stream(seed=12, count=1_200)
    last = await journal(pool, stamped[:1_000], every=90, clean_stop=False)
    seqs = await snapshot_seqs(pool)
    assert seqs and seqs[-1] < last
    fast = await recover(pool)
    assert fast.from_snapshot == seqs[-1]
    full = await recover(pool, use_snapshot=False)
    assert_same(fast, full)
    assert_same_future(fast, full, stamped[1_000:])
    # A restarted sequencer numbers on from there and its journal still chains (and replays) from genesis.
    restarted = Sequencer(pool, snapshot_every=50)
    await restarted.start()
    try:
        for _, command in stamped[1_000:1_100]:
            await restarted.submit(command, "tester")
    finally:
        await restarted.stop()
    again = await recover(pool)
    assert_same(again, await recover(pool, use_snapshot=False))


async def _forge(pool: asyncpg.Pool, seq: int, *, engine: bytes, projection: bytes, journal_hash: bytes | None = None,
                 good_digest: bool = True, fmt: str = snapshot.FORMAT) -> None:  # fmt: skip
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT hash, ts_us FROM journal WHERE seq = $1", seq)
        link = bytes(row["hash"]) if journal_hash is None else journal_hash
        mac = digest(fmt, seq, row["ts_us"], link, engine, projection)
        await conn.execute(
            "INSERT INTO snapshots (seq, ts_us, journal_hash, format, engine, projection, digest) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            seq,
            row["ts_us"],
            link,
            fmt,
            engine,
            projection,
            mac if good_digest else bytes(32),
        )


async def test_damaged_or_forged_snapshots_are_skipped_down_to_a_full_replay(pool):
    stamped = stream(seed=13, count=700)
    last = await journal(pool, stamped, every=300, clean_stop=False)
    seqs = await snapshot_seqs(pool)
    assert len(seqs) == 2
    async with pool.acquire() as conn:
        good = await conn.fetchrow("SELECT engine, projection FROM snapshots WHERE seq = $1", seqs[-1])
    engine, projection = bytes(good["engine"]), bytes(good["projection"])
    full = await recover(pool, use_snapshot=False)
    # Each forgery sits after the good snapshots, where recovery looks first.
    tampered = engine.replace(b'"EUR",', b'"EUX",', 1)
    forgeries = [
        dict(engine=tampered, projection=projection, good_digest=False),  # bytes changed, digest not recomputed
        dict(engine=engine, projection=projection, journal_hash=bytes(32)),  # linked to a record it is not
        dict(engine=engine, projection=projection),  # an engine standing at another seq
        dict(engine=b"[not json", projection=projection),  # does not decode
        dict(engine=engine, projection=projection, fmt="engine-snapshot/0"),  # a format this build does not read
    ]
    for offset, forgery in enumerate(forgeries, start=1):
        await _forge(pool, seqs[-1] + offset, **forgery)
        recovered = await recover(pool)
        assert recovered.from_snapshot == seqs[-1], forgery
        assert_same(recovered, full)
    # With every genuine snapshot damaged too, recovery replays the whole journal.
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM snapshots WHERE seq <= $1", seqs[-1])
    for seq in seqs:
        await _forge(pool, seq, engine=engine, projection=projection, good_digest=False)
    recovered = await recover(pool)
    assert recovered.from_snapshot == 0 and recovered.last_seq == last
    assert_same(recovered, full)


async def test_snapshots_are_never_updated(pool):
    await journal(pool, stream(seed=14, count=100), every=50, clean_stop=True)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE snapshots SET ts_us = ts_us + 1")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 400), every=st.integers(1, 120), clean=st.booleans())
async def test_any_stream_recovers_from_its_snapshots_as_from_a_full_replay(
    database_server_url: str, migrated_template: str, seed: int, count: int, every: int, clean: bool
):
    """A fresh database per example: the journal is append-only and cannot be emptied between examples."""
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    embedded = not os.environ.get("DATABASE_URL", "").strip()
    url = await create_database(database_server_url, name, template=migrated_template, file_copy=embedded)
    try:
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=4)
        try:
            stamped = stream(seed, count + 60)
            await journal(pool, stamped[:-60], every, clean_stop=clean)
            fast = await recover(pool)
            full = await recover(pool, use_snapshot=False)
            assert_same(fast, full)
            assert_same_future(fast, full, stamped[-60:])
        finally:
            await pool.close()
    finally:
        await drop_database(database_server_url, name)


async def test_a_snapshot_captured_with_a_batch_that_failed_to_commit_is_never_stored(pool):
    stamped = stream(seed=15, count=300)
    clock = [START_US]
    sequencer = Sequencer(pool, batch_max=1, snapshot_every=1, clock=lambda: clock[0])
    await sequencer.start()
    try:
        for ts, command in stamped[:200]:
            clock[0] = ts
            await sequencer.submit(command, "tester")
        failing_seq = sequencer.last_seq + 1

        async def fail(batch: Batch) -> None:
            sequencer.before_commit = None
            raise ConnectionError("database went away")

        sequencer.before_commit = fail
        with pytest.raises(CommitFailed):
            await sequencer.submit(stamped[200][1], "tester")
        await sequencer.wait_running()
        for ts, command in stamped[201:]:
            clock[0] = ts
            await sequencer.submit(command, "tester")
        await asyncio.gather(*sequencer.snapshots._writing)
        async with pool.acquire() as conn:
            # The seq of the failed batch was given to the next command: whatever is stored at it is that state.
            row = await conn.fetchrow("SELECT journal_hash FROM snapshots WHERE seq = $1", failing_seq)
            stored_hash = await conn.fetchval("SELECT hash FROM journal WHERE seq = $1", failing_seq)
        assert row is None or bytes(row["journal_hash"]) == bytes(stored_hash)
    finally:
        sequencer.snapshots.every = 0  # as if killed: recovery must use the periodic snapshots
        await sequencer.stop()
    fast = await recover(pool)
    assert fast.from_snapshot > 0
    assert_same(fast, await recover(pool, use_snapshot=False))
