"""Engine snapshots in PostgreSQL: taking them at a committed seq, storing them, and finding one recovery can trust.

A snapshot is the canonical bytes of the engine (`exchange.snapshot`) and of the live rows of the `orders` projection
after journal record S, with the journal hash of record S and `digest = sha256(format || seq || ts || journal hash ||
engine || projection)`. It is a cache of the journal: `load_latest` returns the newest snapshot whose digest is
right, whose journal hash is the stored hash of record S, and whose bytes decode to an engine at S; anything else is
logged and skipped, and with none left recovery replays the whole journal.

`SnapshotTaker` is the sequencer's side. The state must be captured when the engine stands exactly at the end of a
batch (`capture`, called as the batch is built: the next batch changes the engine while this one commits), but it
may only be stored once that batch is committed (`committed`): a snapshot never runs ahead of the journal.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass

import asyncpg

from exchange import snapshot
from exchange.engine import Engine
from ledger.projection import ORDER_COLUMNS, OrderProjection, OrderRow

log = logging.getLogger("exchange.snapshots")

KEEP = 3  # snapshots kept; older ones are deleted when a new one is stored
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    ts_us: int
    journal_hash: bytes
    engine: bytes
    projection: bytes
    format: str = snapshot.FORMAT

    @property
    def digest(self) -> bytes:
        return digest(self.format, self.seq, self.ts_us, self.journal_hash, self.engine, self.projection)


@dataclass(slots=True)
class Loaded:
    """A snapshot checked and decoded: the state after journal record `seq`."""

    seq: int
    ts_us: int
    journal_hash: bytes
    engine: Engine
    projection: OrderProjection


def digest(fmt: str, seq: int, ts_us: int, journal_hash: bytes, engine: bytes, projection: bytes) -> bytes:
    h = hashlib.sha256()
    # Lengths first, so no two different snapshots hash the same bytes.
    h.update(b"%s|%d|%d|%d|%d|" % (fmt.encode("ascii"), seq, ts_us, len(engine), len(projection)))
    h.update(journal_hash)
    h.update(engine)
    h.update(projection)
    return h.digest()


def encode_projection(projection: OrderProjection) -> bytes:
    """The live order rows, in the projection's order, as compact JSON arrays of the `orders` columns."""
    return _dumps([row.as_tuple() for row in projection.live.values()]).encode("ascii")


def decode_projection(data: bytes) -> OrderProjection:
    projection = OrderProjection()
    live = projection.live
    width = len(ORDER_COLUMNS)
    for values in json.loads(data):
        if len(values) != width:
            raise snapshot.SnapshotError("an order row of the projection has the wrong width")
        row = OrderRow(*values)
        live[row.order_id] = row
    return projection


def take(engine: Engine, projection: OrderProjection, journal_hash: bytes) -> Snapshot:
    """The snapshot of an engine and its projection standing at the end of journal record `engine.last_seq`."""
    return Snapshot(
        engine.last_seq, engine.last_ts_us, journal_hash, snapshot.encode(engine), encode_projection(projection)
    )


async def store_snapshot(conn: asyncpg.Connection, taken: Snapshot, keep: int = KEEP) -> None:
    """Store a snapshot of a committed seq (once: a second one at the same seq is the same state) and prune."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO snapshots (seq, ts_us, journal_hash, format, engine, projection, digest) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING",
            taken.seq,
            taken.ts_us,
            taken.journal_hash,
            taken.format,
            taken.engine,
            taken.projection,
            taken.digest,
        )
        await conn.execute(
            "DELETE FROM snapshots WHERE seq < (SELECT min(seq) FROM "
            "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT $1) AS newest)",
            keep,
        )


async def load_latest(conn: asyncpg.Connection, to_seq: int | None = None) -> Loaded | None:
    """The newest usable snapshot at or before `to_seq` (default: any), checked against the journal; else None."""
    limit_seq = to_seq if to_seq is not None else 2**62
    candidates = await conn.fetch(
        "SELECT s.seq, s.ts_us, s.journal_hash, s.format, s.digest, j.hash AS stored_hash, j.ts_us AS stored_ts "
        "FROM snapshots s LEFT JOIN journal j ON j.seq = s.seq WHERE s.seq <= $1 ORDER BY s.seq DESC",
        limit_seq,
    )
    for candidate in candidates:
        seq = candidate["seq"]
        problem = _mismatch(candidate)
        if problem is None:
            row = await conn.fetchrow("SELECT engine, projection FROM snapshots WHERE seq = $1", seq)
            if row is None:
                problem = "deleted while it was being read"
            else:
                loaded, problem = _checked(candidate, row["engine"], row["projection"])
                if loaded is not None:
                    return loaded
        log.warning("snapshot at seq %d not used: %s", seq, problem, extra={"seq": seq, "problem": problem})
    return None


def _mismatch(candidate: asyncpg.Record) -> str | None:
    if candidate["format"] != snapshot.FORMAT:
        return f"format {candidate['format']!r} is not {snapshot.FORMAT!r}"
    if candidate["stored_hash"] is None:
        return "the journal has no such record"
    if bytes(candidate["stored_hash"]) != bytes(candidate["journal_hash"]):
        return "its journal hash is not the journal's"
    if candidate["stored_ts"] != candidate["ts_us"]:
        return "its time is not the journal record's"
    return None


def _checked(candidate: asyncpg.Record, engine_bytes: bytes, projection_bytes: bytes) -> tuple[Loaded | None, str]:
    seq, ts_us = candidate["seq"], candidate["ts_us"]
    journal_hash = bytes(candidate["journal_hash"])
    expected = digest(candidate["format"], seq, ts_us, journal_hash, engine_bytes, projection_bytes)
    if expected != bytes(candidate["digest"]):
        return None, "its digest does not match its bytes"
    try:
        engine = snapshot.decode(engine_bytes)
        projection = decode_projection(projection_bytes)
    except (snapshot.SnapshotError, ValueError, TypeError) as exc:
        return None, f"it does not decode: {exc}"
    if (engine.last_seq, engine.last_ts_us) != (seq, ts_us):
        return None, f"its engine stands at seq {engine.last_seq}, not {seq}"
    if projection.live.keys() != engine.orders.keys():
        return None, "its live order rows are not the engine's live orders"
    return Loaded(seq, ts_us, journal_hash, engine, projection), ""


class SnapshotTaker:
    """Takes a snapshot every `every` journal records (0: never) and stores it once its batch has committed."""

    def __init__(self, pool: asyncpg.Pool, every: int) -> None:
        assert every >= 0
        self.pool = pool
        self.every = every
        self.last_taken_seq = 0
        self.stored = 0
        self.seconds: list[float] = []  # time spent encoding, per snapshot: it pauses the sequencer
        self._pending: list[Snapshot] = []
        self._writing: set[asyncio.Task[None]] = set()

    def reset(self, seq: int) -> None:
        """After recovery: count from `seq`, and forget anything captured by the engine that was thrown away."""
        self.last_taken_seq = seq
        self._pending.clear()

    def capture(self, engine: Engine, projection: OrderProjection, journal_hash: bytes) -> None:
        """Called with the engine at the end of a batch: encode its state if a snapshot is due."""
        if not self.every or engine.last_seq - self.last_taken_seq < self.every:
            return
        started = time.perf_counter()
        self._pending.append(take(engine, projection, journal_hash))
        self.seconds.append(time.perf_counter() - started)
        if len(self.seconds) > 1_000:
            del self.seconds[:500]
        self.last_taken_seq = engine.last_seq

    def committed(self, seq: int) -> None:
        """The journal is committed up to `seq`: store the snapshots captured at or before it, in the background."""
        if not self._pending or self._pending[0].seq > seq:
            return
        ready = [s for s in self._pending if s.seq <= seq]
        self._pending = [s for s in self._pending if s.seq > seq]
        task = asyncio.create_task(self._store(ready[-1]), name="snapshot-store")
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _store(self, taken: Snapshot) -> None:
        try:
            async with self.pool.acquire() as conn:
                await store_snapshot(conn, taken)
            self.stored += 1
        except Exception:  # a snapshot is only a shortcut: failing to store one never stops the exchange
            log.exception("storing the snapshot failed", extra={"seq": taken.seq})

    async def on_stop(self, engine: Engine, projection: OrderProjection, committed_seq: int, journal_hash: bytes) -> None:
        """On a clean stop: finish the stores under way and snapshot the engine if it stands at the committed seq."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
        if not self.every or engine.last_seq != committed_seq or committed_seq <= 0:
            return  # an uncommitted batch was applied and abandoned: this engine is not the journal's
        await self._store(take(engine, projection, journal_hash))
