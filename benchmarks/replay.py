"""Benchmark: rebuilding the exchange from a journal of 1,000,000 records (`--quick`: 20,000, to finish in 30 s).

Claims, each printed PASS or FAIL:
  - recovery (`ledger.recovery.recover`: fetch, check the hash chain, decode, apply to a fresh engine) replays at
    least 100,000 records/s; it is measured as a restart, `Sequencer.start()` (recover, then start two tasks);
  - a restart with 1,000,000 records is ready to trade (`Sequencer.start()` returns, state RUNNING) in under 20 s;
  - the full compare-replay (`ledger.replay.replay`: also re-derives and compares every event, trade, ledger entry
    and leg) replays at least 100,000 records/s, when `ledger/replay.py` is present.
The baseline, in the same run, is reading the same journal rows without applying them (`journal_rows`, the pages
recovery reads). A breakdown shows where recovery spends its time (chain hashes, decoding, the engine, the order
projection), measured on the rows held in memory.

The journal is made by the real sequencer (batch_max 5,000) from the listing, deposits and issuance of
benchmarks/workload.py followed by its mixed command stream, so events, trades, orders and the ledger exist for
the compare-replay too. The server is DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres; the run
creates and drops the scratch database bench_replay_<pid>.

Run: ``python -m benchmarks.replay [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import time
from collections.abc import Sequence

import asyncpg

from api.sequencer import Sequencer
from benchmarks._report import json_line, machine, table, verdict
from benchmarks.pipeline import durability, open_pool, scratch_database, server_url, submit_all
from benchmarks.workload import ACCOUNTS, mixed_commands, setup_commands
from exchange import codec
from exchange.engine import Engine
from ledger.journal import GENESIS, chain_hash
from ledger.projection import OrderProjection
from ledger.recovery import StoredRecord, journal_rows

SEED = 20251130
TARGET_RATE = 100_000
TARGET_READY_S = 20.0
READY_RECORDS = 1_000_000
BUILD_BATCH_MAX = 5_000


async def build_journal(pool: asyncpg.Pool, records: int, accounts: Sequence[str] = ACCOUNTS) -> tuple[float, int]:
    """Commit `records` journal records through a sequencer; (seconds, rejected commands)."""
    setup = setup_commands(accounts=accounts)
    assert records > len(setup), f"the setup alone takes {len(setup):,} records"
    commands = setup + mixed_commands(records - len(setup), seed=SEED, accounts=accounts)
    sequencer = Sequencer(pool, batch_max=BUILD_BATCH_MAX, inbox_size=2 * BUILD_BATCH_MAX)
    await sequencer.start()
    try:
        started = time.perf_counter()
        _, committed, rejected = await submit_all(sequencer, commands, BUILD_BATCH_MAX)
        assert committed == records
        return time.perf_counter() - started, rejected
    finally:
        await sequencer.stop()


async def raw_fetch(pool: asyncpg.Pool) -> tuple[float, list[StoredRecord]]:
    started = time.perf_counter()
    async with pool.acquire() as conn:
        rows = [record async for record in journal_rows(conn)]
    return time.perf_counter() - started, rows


def breakdown(rows: list[StoredRecord]) -> list[tuple[str, float]]:
    """Seconds for each step of recovery, done step by step over rows already in memory."""
    steps: list[tuple[str, float]] = []
    gc.collect()
    started = time.perf_counter()
    prev = GENESIS
    for record in rows:
        prev = chain_hash(prev, record.seq, record.ts_us, record.sender, record.command)
    steps.append(("check the hash chain (sha256 per record)", time.perf_counter() - started))
    assert prev == rows[-1].hash
    gc.collect()
    started = time.perf_counter()
    commands = [codec.decode(record.command) for record in rows]
    steps.append(("decode commands (canonical JSON)", time.perf_counter() - started))
    engine = Engine()
    projection = OrderProjection()
    clock = time.perf_counter
    applying = projecting = 0.0
    gc.collect()
    for record, command in zip(rows, commands, strict=True):
        started = clock()
        events = engine.apply(record.seq, record.ts_us, command)
        applied = clock()
        projection.apply(record.seq, record.ts_us, events)
        projection.dirty.clear()
        projecting += clock() - applied
        applying += applied - started
    steps.append(("apply to a fresh engine", applying))
    steps.append(("order projection", projecting))
    return steps


async def run(args: argparse.Namespace) -> None:
    records = args.records or (20_000 if args.quick else 1_000_000)
    server = server_url()
    name = f"bench_replay_{os.getpid()}"
    print(f"replay benchmark: a journal of {records:,} records; {machine()}")
    results: list[tuple[str, str]] = []
    compare_rate: float | None = None
    async with scratch_database(server, name) as url:
        pool = await open_pool(url)
        try:
            print(f"  {await durability(pool, server)}")
            seconds, rejected = await build_journal(pool, records, ACCOUNTS[: args.accounts])
            results.append(("journal built by the sequencer", f"{records / seconds:>10,.0f} records/s ({seconds:.1f} s, {rejected} rejected)"))
            async with pool.acquire() as conn:
                await conn.execute("VACUUM ANALYZE")  # as a server that has been up a while would be: hint bits set

            fetch_seconds, rows = await raw_fetch(pool)
            fetch_rate = len(rows) / fetch_seconds
            results.append(("baseline: raw fetch of the journal rows", f"{fetch_rate:>10,.0f} records/s ({fetch_seconds:.1f} s)"))
            steps = breakdown(rows)
            del rows
            gc.collect()

            # Recovery is what Sequencer.start() spends its time on: one run measures both.
            sequencer = Sequencer(pool)
            started = time.perf_counter()
            await sequencer.start()
            ready_seconds = time.perf_counter() - started
            assert sequencer.ready and sequencer.last_seq == records
            await sequencer.stop()
            recover_rate = records / ready_seconds
            results.append(("restart: Sequencer.start() = recover(pool) + tasks", f"{recover_rate:>10,.0f} records/s, ready to trade after {ready_seconds:.1f} s"))
            for label, spent in steps:
                results.append((f"  of which, in memory: {label}", f"{spent:6.2f} s ({records / spent:,.0f} records/s)"))
            gc.collect()

            if importlib.util.find_spec("ledger.replay") is not None:
                from ledger.replay import replay

                report = await replay(pool)
                compare_rate = report.records_per_second
                results.append((
                    "compare-replay (ledger.replay.replay)",
                    f"{compare_rate:>10,.0f} records/s ({report.seconds:.1f} s, identical: {report.identical}; "
                    f"{report.events:,} events, {report.trades:,} trades, {report.entries:,} entries, {report.legs:,} legs)",
                ))
            else:
                results.append(("compare-replay", "ledger/replay.py is not there: not measured"))
        finally:
            await pool.close()

    table("results", results)
    ready_for_million = ready_seconds * READY_RECORDS / records
    print("targets")
    verdict(f"recovery >= {TARGET_RATE:,} records/s", recover_rate >= TARGET_RATE, f"{recover_rate:,.0f}")
    if records >= READY_RECORDS:
        verdict(f"ready to trade in < {TARGET_READY_S:g} s with {READY_RECORDS:,} records", ready_seconds < TARGET_READY_S, f"{ready_seconds:.1f} s")
    else:
        verdict(
            f"ready to trade in < {TARGET_READY_S:g} s with {READY_RECORDS:,} records (extrapolated linearly from {records:,})",
            ready_for_million < TARGET_READY_S,
            f"{ready_for_million:.1f} s",
        )
    if compare_rate is not None:
        verdict(f"compare-replay >= {TARGET_RATE:,} records/s", compare_rate >= TARGET_RATE, f"{compare_rate:,.0f}")
    json_line("replay", "recover_records_per_s", recover_rate, "records/s", fetch_rate, recover_rate / fetch_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20,000-record journal (under 30 s)")
    parser.add_argument("--records", type=int, help="journal records (default 1,000,000; quick 20,000)")
    parser.add_argument("--accounts", type=int, default=len(ACCOUNTS), help="funded accounts (default 1,000)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
