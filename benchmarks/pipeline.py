"""Benchmark: commands through a real `Sequencer` (in process, no HTTP) until committed in PostgreSQL.

Claims (issue 5), each printed PASS or FAIL:
  - at least 20,000 orders/s committed at saturation (10,000 submitters, each waiting for its ack before sending again:
    twice the largest batch tried, so that a full batch is always waiting while another commits. With as many
    submitters as commands in a batch, every submitter waits for the same commit, the inbox is empty while it runs,
    and the run measures one batch's latency, not the pipeline's throughput);
  - p99 submit->ack latency under 10 ms at a steady 2,000 orders/s (an open-loop submitter paced by the clock;
    latency is counted from the moment each command was due, so a late submitter cannot hide a slow exchange).
"Orders" are the commands of the engine benchmark's mix (benchmarks/workload.py: limit and marketable orders,
cancels and amends), after the listing, deposits and issuance (committed first, not timed). The baseline, in the
same run, is the bare engine (`Engine.apply` alone) on the very same commands. Saturation is tried with several
`batch_max` values, and one extra saturation run is profiled with cProfile (top functions, and time per layer).
Also printed: the CPU time of each step the sequencer does per command before touching the database (which bounds
the throughput whatever PostgreSQL does), and the time each statement of the batch writes took.

synchronous_commit is forced ON for the sequencer's sessions (the server default is printed too), so every ack
waits for the WAL to reach the disk. The server is DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
the run creates scratch databases named bench_pipeline_<pid>... (migrated with `upgrade_to_head_async`) and drops
them at the end.

Run: ``python -m benchmarks.pipeline [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import time
from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg

from api.sequencer import Sequencer
from benchmarks._report import json_line, machine, percentile, table, verdict
from benchmarks.engine import engine_run, fresh_engine
from benchmarks.ledger import backend_cpu
from benchmarks.workload import ACCOUNTS, TS0_US, mixed_commands, setup_commands
from exchange import codec
from exchange.commands import Command
from exchange.events import CommandRejected, Trade
from ledger.batch import Batch, BatchStore, event_row, trade_row
from ledger.journal import GENESIS, JournalRecord
from ledger.projection import OrderProjection
from ledger.settlement import entries_for
from ledger.migrate import upgrade_to_head_async
from ledger.postgres import asyncpg_dsn, create_database, database_url_for, drop_database

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 20251129
SENDER = "bench"
TARGET_RATE = 20_000
TARGET_P99_MS = 10.0
PACED_RATE = 2_000


def server_url() -> str:
    return os.environ.get("DATABASE_URL", "").strip() or DEFAULT_SERVER


@contextlib.asynccontextmanager
async def scratch_database(server: str, name: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database (migrated to head, or copied from `template`), dropped on the way out; yields its URL."""
    await drop_database(server, name)
    url = await create_database(server, name, template=template)
    try:
        if template is None:
            await upgrade_to_head_async(url)
        yield url
    finally:
        await drop_database(server, name)


async def open_pool(url: str, size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        asyncpg_dsn(url), min_size=1, max_size=size, server_settings={"synchronous_commit": "on"}
    )


async def durability(pool: asyncpg.Pool, server: str) -> str:
    async with pool.acquire() as conn:
        session = await conn.fetchval("SHOW synchronous_commit")
        fsync = await conn.fetchval("SHOW fsync")
    conn = await asyncpg.connect(asyncpg_dsn(server))
    try:
        default = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    return f"synchronous_commit={session} for the sequencer (server default {default}), fsync={fsync}"


async def commit_floor(pool: asyncpg.Pool, count: int = 200) -> list[float]:
    """Seconds of `count` one-row INSERTs, each its own durable commit: the least any ack can wait (sorted)."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_commit_probe (n int)")
        try:
            latencies = []
            for n in range(count):
                started = time.perf_counter()
                await conn.execute("INSERT INTO bench_commit_probe VALUES ($1)", n)
                latencies.append(time.perf_counter() - started)
        finally:
            await conn.execute("DROP TABLE bench_commit_probe")
    return sorted(latencies)


async def submit_all(sequencer: Sequencer, commands: Iterable[Command], concurrency: int) -> tuple[float, int, int]:
    """Send `commands` from `concurrency` submitters that each wait for their ack; (seconds, committed, rejected).

    A submitter takes the next command and queues it without yielding to the loop in between, so the inbox (and so
    the journal) holds the commands in the order given: the workload's cancels name the orders it expects."""
    pending = iter(commands)
    committed = rejected = 0

    async def submitter() -> None:
        nonlocal committed, rejected
        for command in pending:
            outcome = await sequencer.submit(command, SENDER)
            committed += 1
            for event in outcome.events:
                if type(event) is CommandRejected:
                    rejected += 1

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return time.perf_counter() - started, committed, rejected


async def paced(sequencer: Sequencer, commands: Sequence[Command], rate: float) -> tuple[list[float], float, int]:
    """Send `commands` at `rate` per second whatever the acks do; (latencies in s from each due time, seconds, rejected)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    rejected = 0
    clock = time.perf_counter

    async def one(command: Command, due: float) -> None:
        nonlocal rejected
        outcome = await sequencer.submit(command, SENDER)
        latencies.append(clock() - due)
        rejected += sum(type(e) is CommandRejected for e in outcome.events)

    tasks: list[asyncio.Task[None]] = []
    started = clock()
    sent = 0
    while sent < len(commands):
        now = clock()
        due_count = min(len(commands), int((now - started) * rate) + 1)
        while sent < due_count:
            # Tasks start in creation order, so the commands reach the inbox in the workload's order.
            tasks.append(loop.create_task(one(commands[sent], started + sent / rate)))
            sent += 1
        await asyncio.sleep(min(0.001, max(0.0, started + sent / rate - clock())))
    await asyncio.gather(*tasks)
    return latencies, clock() - started, rejected


async def prepared_template(server: str, name: str, setup: Sequence[Command]) -> None:
    """Create database `name`, migrated, holding the committed setup (listings, deposits, issuance); to copy from."""
    await drop_database(server, name)
    url = await create_database(server, name)
    await upgrade_to_head_async(url)
    pool = await open_pool(url)
    sequencer = Sequencer(pool, batch_max=2_000)
    try:
        await sequencer.start()
        await submit_all(sequencer, setup, 2_000)
    finally:
        await sequencer.stop()
        await pool.close()


class _TimedConnection:
    """Passes everything to the connection, adding up the time each statement of a batch write takes."""

    def __init__(self, conn: asyncpg.Connection, timings: dict[str, float]) -> None:
        self._conn = conn
        self._timings = timings

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    async def _timed(self, label: str, call: object, *args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)  # type: ignore[operator]
        finally:
            self._timings[label] = self._timings.get(label, 0.0) + time.perf_counter() - started

    async def copy_records_to_table(self, table: str, **kwargs: object) -> object:
        return await self._timed(f"COPY {table}", self._conn.copy_records_to_table, table, **kwargs)

    async def execute(self, query: str, *args: object, **kwargs: object) -> object:
        return await self._timed(_statement(query), self._conn.execute, query, *args, **kwargs)

    async def fetch(self, query: str, *args: object, **kwargs: object) -> object:
        return await self._timed(_statement(query), self._conn.fetch, query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: object, **kwargs: object) -> object:
        return await self._timed(_statement(query), self._conn.fetchrow, query, *args, **kwargs)

    async def fetchval(self, query: str, *args: object, **kwargs: object) -> object:
        return await self._timed(_statement(query), self._conn.fetchval, query, *args, **kwargs)


def _statement(query: str) -> str:
    words = query.split()
    if words[:2] == ["INSERT", "INTO"] or words[:1] == ["UPDATE"] or words[:1] == ["WITH"]:
        return " ".join(words[:3])
    return " ".join(words[:4])


class TimedStore(BatchStore):
    """The real `BatchStore`, with the time of each statement it sends recorded in `timings` (seconds, summed)."""

    def __init__(self) -> None:
        super().__init__()
        self.timings: dict[str, float] = {}

    async def write(self, conn: asyncpg.Connection, batch: Batch) -> None:
        started = time.perf_counter()
        await super().write(_TimedConnection(conn, self.timings), batch)  # type: ignore[arg-type]
        self.timings["whole write (statements + Python)"] = (
            self.timings.get("whole write (statements + Python)", 0.0) + time.perf_counter() - started
        )


def statement_table(sequencer: Sequencer, seconds: float) -> list[tuple[str, str]]:
    store = sequencer.store
    assert isinstance(store, TimedStore)
    committing = sum(sequencer.commit_seconds)  # write + COMMIT, per batch (the sequencer keeps the last 500-1,000)
    rows = [(f"  {label}", f"{spent:7.2f} s  {spent / seconds:6.1%}") for label, spent in sorted(store.timings.items(), key=lambda kv: -kv[1])]
    rows.append(("  write + COMMIT (sequencer's commit_seconds)", f"{committing:7.2f} s  {committing / seconds:6.1%}"))
    return rows


@contextlib.asynccontextmanager
async def running_sequencer(server: str, name: str, template: str, batch_max: int) -> AsyncIterator[Sequencer]:
    """A sequencer started (recovered from the setup journal) on a fresh copy of the template database."""
    async with scratch_database(server, name, template) as url:
        pool = await open_pool(url)
        sequencer = Sequencer(pool, batch_max=batch_max, inbox_size=20_000, store=TimedStore())
        try:
            await sequencer.start()
            yield sequencer
        finally:
            await sequencer.stop()
            await pool.close()


def python_side_costs(commands: Sequence[Command], accounts: Sequence[str]) -> list[tuple[str, float]]:
    """CPU seconds of each step the sequencer does per command before any database work, over `commands`.

    The steps of `Sequencer._process`, one by one, each timed with thread_time (other processes do not count)."""
    engine, seq = fresh_engine((), accounts)
    projection = OrderProjection()
    steps = (
        "Engine.apply",
        "codec.encode(command)",
        "JournalRecord.next (sha256 chain)",
        "codec.encode(events) + event_row",
        "trade_row",
        "settlement.entries_for",
        "OrderProjection.apply",
    )
    spent = dict.fromkeys(steps, 0)
    clock = time.thread_time_ns
    prev_hash = GENESIS
    for command in commands:
        ts = TS0_US + seq
        t0 = clock()
        events = engine.apply(seq, ts, command)
        t1 = clock()
        body = codec.encode(command)
        t2 = clock()
        prev_hash = JournalRecord.next(prev_hash, seq, ts, SENDER, body).hash
        t3 = clock()
        rows = [event_row(seq, idx, event, codec.encode(event)) for idx, event in enumerate(events)]
        t4 = clock()
        trades = [trade_row(event, ts) for event in events if type(event) is Trade]
        t5 = clock()
        entries = entries_for(seq, ts, events)
        t6 = clock()
        projection.apply(seq, ts, events)
        t7 = clock()
        for step, (started, ended) in zip(steps, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6), (t6, t7))):
            spent[step] += ended - started
        seq += 1
        del rows, trades, entries
    return [(step, ns / 1e9) for step, ns in spent.items()]


def layer_of(filename: str, function: str) -> str:
    if "/exchange/" in filename:
        return "engine (exchange/)"
    if filename.endswith("ledger/settlement.py") or filename.endswith("ledger/entries.py"):
        return "settlement rules -> ledger entries"
    if filename.endswith("ledger/projection.py"):
        return "order projection"
    if filename.endswith("ledger/journal.py") or "sha256" in function:
        return "journal hash chain"
    if filename.endswith("ledger/writer.py") or filename.endswith("ledger/batch.py"):
        return "batch/ledger writer (Python side)"
    if "asyncpg" in filename or "copy_records" in function:
        return "asyncpg (encoding rows, protocol)"
    if "json" in filename or "encoder" in function or filename.endswith("exchange/codec.py"):
        return "codec (canonical JSON)"
    if "poll" in function or "select" in function:
        return "event loop idle (waiting for PostgreSQL)"
    if "asyncio" in filename or "sequencer.py" in filename:
        return "asyncio, sequencer, submitters"
    return "other"


def profile_summary(profile: cProfile.Profile, wall: float, top: int = 15) -> None:
    stats = pstats.Stats(profile)
    layers: dict[str, float] = {}
    rows = []
    for (filename, _, function), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        layer = "codec (canonical JSON)" if filename.endswith("exchange/codec.py") else layer_of(filename, function)
        layers[layer] = layers.get(layer, 0.0) + tottime
        rows.append((tottime, cumtime, calls, f"{os.path.relpath(filename) if filename.startswith('/') else filename}:{function}"))
    print(f"profile of one saturation run ({wall:.1f} s wall under cProfile): own time per layer")
    for layer, seconds in sorted(layers.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:7.2f} s  {seconds / wall:6.1%}  {layer}")
    print(f"  top {top} functions by own time (own s, cumulative s, calls)")
    for tottime, cumtime, calls, name in sorted(rows, reverse=True)[:top]:
        print(f"  {tottime:7.2f} {cumtime:7.2f} {calls:>9,}  {name[-90:]}")


async def run(args: argparse.Namespace) -> None:
    server = server_url()
    count = args.commands or (20_000 if args.quick else 200_000)
    paced_count = int(PACED_RATE * (args.paced_seconds or (5 if args.quick else 30)))
    batch_maxes = args.batch_max or ([2_000] if args.quick else [500, 2_000, 5_000])
    concurrency = args.concurrency
    accounts = ACCOUNTS[: args.accounts]
    setup = setup_commands(accounts=accounts)
    commands = mixed_commands(max(count, paced_count), seed=SEED, accounts=accounts)
    saturation_commands = commands[:count]
    base = f"bench_pipeline_{os.getpid()}"
    print(f"pipeline benchmark: {count:,} commands at saturation ({concurrency:,} submitters), {paced_count:,} paced at {PACED_RATE:,}/s; {machine()}")

    wall, _, engine = engine_run(saturation_commands, accounts=accounts)
    engine_rate = count / wall
    del engine
    costed = min(count, 50_000)
    costs = python_side_costs(saturation_commands[:costed], accounts)
    per_command = sum(seconds for _, seconds in costs) / costed

    results: list[tuple[str, str]] = [("bare engine, same commands", f"{engine_rate:>10,.0f} commands/s")]
    results.append((
        "sequencer's Python work per command, no database",
        f"{per_command * 1e6:>10.1f} us CPU (so at most {1 / per_command:,.0f} commands/s)",
    ))
    results.extend((f"  {step}", f"{seconds / costed * 1e6:>10.1f} us") for step, seconds in costs)
    saturation: dict[int, float] = {}
    try:
        await prepared_template(server, base, setup)
        for n, batch_max in enumerate(batch_maxes):
            async with running_sequencer(server, f"{base}_{n}", base, batch_max) as sequencer:
                if n == 0:
                    print(f"  {await durability(sequencer.pool, server)}")
                pid = await sequencer._conn.fetchval("SELECT pg_backend_pid()")  # noqa: SLF001 - idle until submit
                server0 = backend_cpu(pid)
                python0 = time.process_time()
                seconds, committed, rejected = await submit_all(sequencer, saturation_commands, concurrency)
                python_s = time.process_time() - python0
                server1 = backend_cpu(pid)
                saturation[batch_max] = committed / seconds
                mean_batch = committed / max(1, sequencer.committed_batches)
                commits = sorted(sequencer.commit_seconds)
                statements = statement_table(sequencer, seconds)
                results.append((
                    f"saturation, batch_max {batch_max:,}",
                    f"{committed / seconds:>10,.0f} commands/s committed ({seconds:.1f} s, mean batch {mean_batch:,.0f}, "
                    f"commit p50 {percentile(commits, 50) * 1000:.1f} ms of the last {len(commits)}, rejected {rejected})",
                ))
                if server0 is not None and server1 is not None:
                    server_us = (server1 - server0) / committed * 1e6
                    python_us = python_s / committed * 1e6
                    results.append((
                        "  PostgreSQL backend CPU per command (independent of other load)", f"{server_us:>10.1f} us"
                    ))
                    # The ceiling of this machine for this work: the two processes, busy all the time on all cores.
                    cores = os.cpu_count() or 1
                    results.append((
                        f"  CPU per command: this process {python_us:.1f} + PostgreSQL {server_us:.1f} us",
                        f"{cores / (python_us + server_us) * 1e6:>10,.0f} commands/s at most on {cores} cores",
                    ))
                results.append(("  where the batch writes spent the run's wall time:", ""))
                results.extend(statements)
        async with running_sequencer(server, f"{base}_paced", base, 1_000) as sequencer:
            floor = await commit_floor(sequencer.pool)
            results.append((
                "baseline: one-row INSERT, own durable commit",
                f"p50 {percentile(floor, 50) * 1000:.2f} ms, p99 {percentile(floor, 99) * 1000:.2f} ms (the floor of any ack)",
            ))
            latencies, seconds, rejected = await paced(sequencer, commands[:paced_count], PACED_RATE)
            latencies.sort()
            p50, p99, p999 = (percentile(latencies, q) * 1000 for q in (50, 99, 99.9))
            results.append((
                f"paced {PACED_RATE:,}/s, batch_max 1,000",
                f"submit->ack p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms, max {latencies[-1] * 1000:.1f} ms "
                f"({len(latencies) / seconds:,.0f}/s achieved, rejected {rejected})",
            ))
        best_batch = max(saturation, key=saturation.__getitem__)
        profile_count = min(count, 5_000 if args.quick else 50_000)
        async with running_sequencer(server, f"{base}_profile", base, best_batch) as sequencer:
            profile = cProfile.Profile()
            profile.enable()
            seconds, _, _ = await submit_all(sequencer, saturation_commands[:profile_count], concurrency)
            profile.disable()
    finally:
        await drop_database(server, base)

    table("results", results)
    profile_summary(profile, seconds)
    best = saturation[best_batch]
    print("targets")
    verdict(f">= {TARGET_RATE:,} orders/s committed at saturation", best >= TARGET_RATE, f"{best:,.0f} (batch_max {best_batch:,})")
    verdict(f"p99 ack < {TARGET_P99_MS:g} ms at {PACED_RATE:,} orders/s", p99 < TARGET_P99_MS, f"{p99:.2f} ms")
    json_line("pipeline", "committed_commands_per_s", best, "commands/s", engine_rate, best / engine_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 commands, one batch_max, 5 s paced, 5,000 profiled")
    parser.add_argument("--commands", type=int, help="commands per saturation run (default 200,000; quick 20,000)")
    parser.add_argument("--batch-max", type=int, action="append", help="batch_max to try (repeatable)")
    parser.add_argument("--concurrency", type=int, default=10_000, help="submitters at saturation")
    parser.add_argument("--paced-seconds", type=float, help="length of the paced run (default 30; quick 5)")
    parser.add_argument("--accounts", type=int, default=len(ACCOUNTS), help="funded accounts (default 1,000)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
