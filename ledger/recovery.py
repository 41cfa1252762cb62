"""Rebuild the engine's state from PostgreSQL by replaying the journal through a fresh engine.

Memory is a cache of the database: after a crash or a failed commit, the books, open orders, holds and balances are
exactly what the committed journal produces. The hash chain is recomputed on the way, so recovery also refuses to
start from a journal that was tampered with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg

from exchange import codec
from exchange.engine import Engine
from exchange.events import Event
from ledger.journal import GENESIS, chain_hash
from ledger.projection import OrderProjection

FETCH_ROWS = 5_000


class JournalCorrupt(Exception):
    """The stored journal does not chain: a record was changed, removed or inserted out of order."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(f"journal record {seq}: {problem}")
        self.seq = seq
        self.problem = problem


@dataclass(slots=True)
class Recovered:
    engine: Engine
    projection: OrderProjection
    last_seq: int
    last_ts_us: int
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class StoredRecord:
    seq: int
    ts_us: int
    sender: str
    command: bytes
    prev_hash: bytes
    hash: bytes


async def journal_rows(
    conn: asyncpg.Connection, after_seq: int = 0, to_seq: int | None = None, *, prefetch: bool = False
) -> AsyncIterator[StoredRecord]:
    """Journal records in sequence order, fetched in pages (keyset on seq) so memory stays flat.

    With `prefetch`, the next page is fetched while the caller works through the current one; the caller must then
    not use `conn` itself while iterating.
    """
    limit_seq = to_seq if to_seq is not None else 2**62
    query = (
        "SELECT seq, ts_us, sender, command, prev_hash, hash FROM journal "
        "WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    )
    rows = await conn.fetch(query, after_seq, limit_seq, FETCH_ROWS)
    while rows:
        last = rows[-1][0]
        following = asyncio.ensure_future(conn.fetch(query, last, limit_seq, FETCH_ROWS)) if prefetch else None
        try:
            for row in rows:
                yield StoredRecord(row[0], row[1], row[2], row[3].encode("ascii"), bytes(row[4]), bytes(row[5]))
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        rows = await following if following is not None else await conn.fetch(query, last, limit_seq, FETCH_ROWS)


async def recover(
    pool: asyncpg.Pool,
    to_seq: int | None = None,
    on_events: Callable[[int, int, list[Event]], None] | None = None,
) -> Recovered:
    """Replay the committed journal (up to `to_seq`) into a fresh engine and order projection."""
    engine = Engine()
    projection = OrderProjection()
    prev_hash = GENESIS
    last_seq = 0
    last_ts = 0
    async with pool.acquire() as conn:
        async for record in journal_rows(conn, 0, to_seq, prefetch=True):
            if record.seq != last_seq + 1:
                raise JournalCorrupt(record.seq, f"gap after {last_seq}")
            if record.prev_hash != prev_hash:
                raise JournalCorrupt(record.seq, "previous hash does not match the chain")
            expected = chain_hash(prev_hash, record.seq, record.ts_us, record.sender, record.command)
            if record.hash != expected:
                raise JournalCorrupt(record.seq, "hash does not match the record")
            command = codec.decode(record.command)
            events = engine.apply(record.seq, record.ts_us, command)
            projection.apply(record.seq, record.ts_us, events)
            projection.dirty.clear()
            if on_events is not None:
                on_events(record.seq, record.ts_us, events)
            prev_hash = record.hash
            last_seq = record.seq
            last_ts = record.ts_us
    return Recovered(engine, projection, last_seq, last_ts, prev_hash)
