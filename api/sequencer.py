"""The sequencer: the ONE task that owns the engine and is the only writer of the exchange's state.

Commands arrive on a bounded inbox. The sequencer takes what is queued (up to `batch_max`), gives each command the
next gap-free sequence number and an exchange timestamp (UTC microseconds, never going backwards), applies it to the
engine, and writes the whole batch — journal records, events, trades, order states, ledger entries — in ONE
PostgreSQL transaction. Only after the commit does it answer the callers and publish market data.

Fail-stop: if the commit fails, the callers of that batch get `CommitFailed` (their commands do not exist), the
sequencer stops taking commands, rebuilds the engine from the committed journal and resumes. Memory never runs ahead
of the database for longer than one uncommitted batch that nobody has been told about.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
from fastapi import FastAPI

from api import collector
from exchange import codec
from exchange.commands import ClockTick, Command
from exchange.engine import Engine
from exchange.events import Event, Trade
from ledger.batch import Batch, BatchStore, event_row, trade_row
from ledger.journal import JournalRecord
from ledger.projection import OrderProjection
from ledger.recovery import recover
from ledger.settlement import entries_for
from ledger.snapshots import SnapshotTaker

log = logging.getLogger("exchange.sequencer")


class SequencerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RECOVERING = "recovering"
    STOPPED = "stopped"


class SequencerUnavailable(Exception):
    """The sequencer is not taking commands (starting, recovering after a failed commit, or stopped)."""


class Backpressure(Exception):
    """The inbox is full; the caller should retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("the exchange is busy")
        self.retry_after = retry_after


class AnotherWriter(Exception):
    """Another sequencer holds this database's writer lock: two writers would fork the journal."""


# The session advisory lock that makes a sequencer the database's only writer ("exch").
WRITER_LOCK = 0x65786368


class CommitFailed(Exception):
    """The batch holding this command could not be committed: the command does not exist."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a committed command did."""

    seq: int
    ts_us: int
    events: list[Event]


Listener = Callable[[int, int, list[Event]], None]
Item = tuple[Command, str, "asyncio.Future[Outcome]"]


@dataclass(slots=True)
class _Prepared:
    """A batch applied to memory and encoded, waiting for its commit."""

    items: list[Item]
    batch: Batch
    outcomes: list[Outcome]
    last_seq: int
    last_ts_us: int
    last_hash: bytes


def _unusable(conn: asyncpg.Connection) -> bool:
    """A pooled connection that the server closed, or that the pool took back when it noticed."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


def _fail_all(items: list[Item], error: Exception) -> None:
    for _, _, future in items:
        if not future.done():
            future.set_exception(error)


# Commands built between two yields to the event loop while a commit is in flight (see Sequencer._prepare).
_PREPARE_SLICE = 128


def now_us() -> int:
    return time.time_ns() // 1_000


class Sequencer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_max: int = 1_000,
        batch_window_s: float = 0.0,
        inbox_size: int = 10_000,
        clock: Callable[[], int] = now_us,
        store: BatchStore | None = None,
        snapshot_every: int = 100_000,
    ) -> None:
        assert batch_max >= 1 and inbox_size >= 1 and batch_window_s >= 0
        self.pool = pool
        self.batch_max = batch_max
        self.batch_window_s = batch_window_s
        self.inbox: asyncio.Queue[tuple[Command, str, asyncio.Future[Outcome]]] = asyncio.Queue(inbox_size)
        self.clock = clock
        self.store = store or BatchStore()
        self.state = SequencerState.STARTING
        self.engine = Engine()
        self.projection = OrderProjection()
        self.last_seq = 0
        self.last_ts_us = 0
        self.last_hash = b""
        self.listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.committed_batches = 0
        self.failed_batches = 0
        self.last_batch_size = 0
        self.commit_seconds: list[float] = []  # recent commit latencies, for metrics
        self.before_commit: Callable[[Batch], Awaitable[None]] | None = None  # test hook: inject failures
        self._running = asyncio.Event()
        # The prepared frontier: where the next batch continues numbering, ahead of the committed one while a batch
        # is in flight.
        self._next_seq = 0
        self._next_ts_us = 0
        self._next_hash = b""
        self._inflight: asyncio.Task[float] | None = None
        self._overlap_from = max(1, batch_max // 4)  # queued commands from which batch N+1 is built during N's commit
        self._filled = asyncio.Event()  # set by `submit` once that many are queued, to wake the loop during a commit
        self._conn: asyncpg.Connection | None = None
        self.snapshots = SnapshotTaker(pool, snapshot_every)  # engine snapshots: a restart replays only the tail

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._recover()
        self._task = asyncio.create_task(self._run(), name="sequencer")
        self._timer = asyncio.create_task(self._clock_loop(), name="sequencer-clock")

    async def stop(self) -> None:
        self.state = SequencerState.STOPPED
        self._running.clear()
        for task in (self._timer, self._task, self._inflight):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        await self.snapshots.on_stop(self.engine, self.projection, self.last_seq, self.last_hash)
        await self._drop_connection()
        while not self.inbox.empty():
            _, _, future = self.inbox.get_nowait()
            if not future.done():
                future.set_exception(SequencerUnavailable("the exchange is shutting down"))

    async def wait_running(self, timeout_s: float = 30.0) -> None:
        """Wait until the sequencer takes commands again (after start or a fail-stop recovery)."""
        await asyncio.wait_for(self._running.wait(), timeout_s)

    @property
    def ready(self) -> bool:
        return self.state is SequencerState.RUNNING

    async def _recover(self) -> None:
        self.state = SequencerState.RECOVERING
        started = time.perf_counter()
        # Become THE writer before reading the journal: nobody may append behind our back.
        await self._drop_connection()
        await self._writer_connection()
        recovered = await recover(self.pool)
        self.engine = recovered.engine
        self.projection = recovered.projection
        self.last_seq = self._next_seq = recovered.last_seq
        self.last_ts_us = self._next_ts_us = recovered.last_ts_us
        self.last_hash = self._next_hash = recovered.last_hash
        self.store.reset()
        self.snapshots.reset(self.last_seq)
        # Everything recovery built lives as long as the process: freeze it, and collect rarely from now on (the
        # engine makes no cyclic garbage; see api/collector.py).
        collector.settle_for_trading()
        self.state = SequencerState.RUNNING
        self._running.set()
        log.info(
            "engine recovered from the journal",
            extra={"last_seq": self.last_seq, "seconds": round(time.perf_counter() - started, 3)},
        )

    # ------------------------------------------------------------------ submitting

    async def submit(self, command: Command, sender: str) -> Outcome:
        """Queue a command and wait until the batch holding it is committed."""
        if self.state is not SequencerState.RUNNING:
            raise SequencerUnavailable(f"the exchange is {self.state.value}")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        try:
            self.inbox.put_nowait((command, sender, future))
        except asyncio.QueueFull:
            raise Backpressure(retry_after=max(0.05, self.inbox.qsize() / 20_000)) from None
        if self.inbox.qsize() >= self._overlap_from:
            self._filled.set()
        return await future

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        """Two stages in one task: build batch N+1 in memory while batch N commits, answer N once it has committed.

        Batches commit strictly in order (N+1's transaction starts only after N's committed). If N fails, N+1 was
        built on memory the database never got: both batches' callers get `CommitFailed` and the engine is rebuilt.
        """
        inbox = self.inbox
        inflight: tuple[_Prepared, asyncio.Task[float]] | None = None
        while True:
            if inflight is None:
                items = [await inbox.get()]
                if self.batch_window_s and inbox.qsize() < self.batch_max:
                    await asyncio.sleep(self.batch_window_s)
            else:
                items = []
                task = inflight[1]
                # Built at once, batch N+1 would hold only what is queued this instant, and whatever arrives during
                # N's commit would wait for N+1's commit too: a third commit of latency at a steady, unsaturated
                # rate. So wait for N's commit, unless a good part of a batch is already waiting (saturation: then
                # building N+1 while N commits is what keeps both the engine and PostgreSQL busy).
                # The inbox may fill while N commits (callers answered by N-1 send again): wake on whichever comes
                # first, or N+1 would be built only after N's commit and the two would never overlap (measured: 29 %
                # of a saturation run had no commit in flight).
                if not task.done() and inbox.qsize() < self._overlap_from:
                    self._filled.clear()
                    filled = asyncio.ensure_future(self._filled.wait())
                    try:
                        await asyncio.wait((task, filled), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        filled.cancel()
            while len(items) < self.batch_max and not inbox.empty():
                items.append(inbox.get_nowait())
            if items and self.state is not SequencerState.RUNNING:
                _fail_all(items, SequencerUnavailable(f"the exchange is {self.state.value}"))
                items = []
            prepared: _Prepared | None = None
            if items:
                try:
                    prepared = await self._prepare(items)
                except Exception as exc:  # noqa: BLE001 - an engine fault: memory can no longer be trusted
                    if inflight is not None:
                        await self._settle(inflight, [])
                        inflight = None
                    if self.state is SequencerState.RUNNING:
                        await self._fail_stop(items, exc)
                    else:
                        _fail_all(items, CommitFailed("the exchange is recovering"))
                    continue
            if inflight is not None:
                committed = await self._settle(inflight, prepared.items if prepared is not None else [])
                inflight = None
                if not committed:
                    continue  # `prepared` was failed with it, and the engine rebuilt from the journal
            if prepared is not None:
                inflight = (prepared, asyncio.create_task(self._commit(prepared.batch), name="sequencer-commit"))
                self._inflight = inflight[1]
                await asyncio.sleep(0)  # let the commit reach PostgreSQL before building the next batch

    async def _prepare(self, items: list[tuple[Command, str, asyncio.Future[Outcome]]]) -> _Prepared:
        """Stamp, apply and encode a batch (memory only); the prepared frontier moves, the committed one does not.

        While the previous batch commits, this yields to the event loop every `_PREPARE_SLICE` commands. The commit
        task shares this thread: each of its statements is sent only when the loop runs it. Building a whole batch of
        2,000 commands in one go (about 40 ms) would leave PostgreSQL idle for that long after each statement it
        finished, and the commit and this step would take turns instead of overlapping (measured: commits went from
        128 to 169 ms when batches were built during them without yielding)."""
        batch = Batch()
        outcomes: list[Outcome] = []
        engine = self.engine
        projection = self.projection
        prev_hash = self._next_hash
        seq = self._next_seq
        last_ts = self._next_ts_us
        inflight = self._inflight
        for position, (command, sender, _) in enumerate(items):
            if inflight is not None and position % _PREPARE_SLICE == _PREPARE_SLICE - 1 and not inflight.done():
                await asyncio.sleep(0)
            seq += 1
            ts = self.clock()
            if ts < last_ts:
                ts = last_ts
            last_ts = ts
            events = engine.apply(seq, ts, command)
            record = JournalRecord.next(prev_hash, seq, ts, sender, codec.encode(command))
            prev_hash = record.hash
            batch.records.append(record)
            for idx, event in enumerate(events):
                batch.events.append(event_row(seq, idx, event, codec.encode(event)))
                if type(event) is Trade:
                    batch.trades.append(trade_row(event, ts))
            batch.entries.extend(entries_for(seq, ts, events))
            projection.apply(seq, ts, events)
            outcomes.append(Outcome(seq, ts, events))
        # Snapshot now: building the next batch while this one commits changes the same rows.
        batch.orders = [row.as_tuple() for row in projection.take_dirty()]
        self._next_seq = seq
        self._next_ts_us = last_ts
        self._next_hash = prev_hash
        self.snapshots.capture(engine, projection, prev_hash)
        return _Prepared(items, batch, outcomes, seq, last_ts, prev_hash)

    async def _commit(self, batch: Batch) -> float:
        """Write one batch in one transaction; return how long the commit took.

        The sequencer keeps one connection of its own (a pool's release would cost a reset round trip per batch);
        after any failure it is dropped and a fresh one is taken.
        """
        started = time.perf_counter()
        if self.before_commit is not None:
            await self.before_commit(batch)
        try:
            conn = await self._writer_connection()
            async with conn.transaction():
                await self.store.write(conn, batch)
        except BaseException:
            await self._drop_connection()
            raise
        return time.perf_counter() - started

    async def _writer_connection(self) -> asyncpg.Connection:
        """The sequencer's own connection, holding the database's writer lock (one sequencer per database).

        The lock is a session advisory lock: it goes when the connection goes (a crash, a release to the pool), so
        a replacement connection must take it again, and fails if another sequencer took it meanwhile.
        """
        conn = self._conn
        if conn is not None and not _unusable(conn):
            return conn
        await self._drop_connection()
        conn = await self.pool.acquire()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK):
                raise AnotherWriter("another sequencer is writing to this database")
            # Every row a batch touches is found by key. On a young or fast-growing table whose statistics are stale,
            # the planner may still prefer a hash join over a full scan (measured: the orders UPDATE read all 14,000
            # orders for each 5-command batch, 2 ms); forbid that for the writer's session.
            # The batch statement is prepared once, but PostgreSQL kept planning it anew on each execution (a custom
            # plan for each batch's arrays): with seven data-modifying CTEs, a quarter of the backend's CPU for a
            # one-command batch (perf). Every plan it could pick looks rows up by key, so one generic plan serves
            # every batch (measured, one-command batches: backend CPU 1.8-2.2 ms -> 1.2-1.6 ms per batch).
            # The pool's reset on release (RESET ALL) takes both back.
            await conn.execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
        except BaseException:
            await self.pool.release(conn)
            raise
        self._conn = conn
        return conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await self.pool.release(conn, timeout=1.0)
        except Exception:  # broken, or already given back by the pool when the server dropped it
            try:
                conn.terminate()
            except Exception:
                log.debug("connection already gone", exc_info=True)

    async def _settle(
        self,
        inflight: tuple[_Prepared, asyncio.Task[float]],
        built_on_it: list[tuple[Command, str, asyncio.Future[Outcome]]],
    ) -> bool:
        """Wait for a batch's commit; answer its callers, or fail-stop (with the batch built on top of it)."""
        prepared, task = inflight
        try:
            elapsed = await task
        except Exception as exc:  # noqa: BLE001 - any failure to commit means fail-stop
            await self._fail_stop(prepared.items + built_on_it, exc)
            return False
        finally:
            self._inflight = None
        self.last_seq = prepared.last_seq
        self.last_ts_us = prepared.last_ts_us
        self.last_hash = prepared.last_hash
        self.snapshots.committed(self.last_seq)
        self.committed_batches += 1
        self.last_batch_size = len(prepared.items)
        self.commit_seconds.append(elapsed)
        if len(self.commit_seconds) > 1_000:
            del self.commit_seconds[:500]
        for (_, _, future), outcome in zip(prepared.items, prepared.outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        for outcome in prepared.outcomes:
            for listener in self.listeners:
                try:
                    listener(outcome.seq, outcome.ts_us, outcome.events)
                except Exception:  # a broken subscriber must never stop the exchange
                    log.exception("market data listener failed")
        return True

    async def _fail_stop(
        self, items: list[tuple[Command, str, asyncio.Future[Outcome]]], exc: BaseException
    ) -> None:
        self.failed_batches += 1
        self.state = SequencerState.RECOVERING
        self._running.clear()
        log.error("batch commit failed; stopping and recovering from the journal", exc_info=exc)
        for _, _, future in items:
            if not future.done():
                future.set_exception(CommitFailed(str(exc) or type(exc).__name__))
        delay = 0.05
        while True:
            try:
                await self._recover()
                return
            except Exception:  # the database may still be away: keep trying, never serve a stale engine
                log.exception("recovery failed; retrying")
                self.state = SequencerState.RECOVERING
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # ------------------------------------------------------------------ time

    async def _clock_loop(self, interval_s: float = 0.1) -> None:
        """Journal the passing of time when an order expires or an auction ends, even with no other traffic."""
        while True:
            await asyncio.sleep(interval_s)
            due = self.engine.next_timer_us()
            if due is not None and due <= self.clock() and self.state is SequencerState.RUNNING:
                try:
                    await self.submit(ClockTick(), "@clock")
                except (Backpressure, SequencerUnavailable, CommitFailed):
                    continue

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)


async def start_sequencer(app: FastAPI) -> None:
    settings = app.state.settings
    sequencer = Sequencer(
        app.state.pg_pool,
        batch_max=settings.batch_max,
        batch_window_s=settings.batch_window_ms / 1000,
        inbox_size=settings.inbox_size,
        snapshot_every=settings.snapshot_every,
    )
    await sequencer.start()
    app.state.sequencer = sequencer


async def stop_sequencer(app: FastAPI) -> None:
    sequencer = getattr(app.state, "sequencer", None)
    if sequencer is not None:
        await sequencer.stop()
