"""Benchmark: rebuilding the exchange from a journal of 1,000,000 records (`--quick`: 20,000, to finish in 30 s).

Claims, each printed PASS or FAIL:
  - a restart with 1,000,000 records is ready to trade (`Sequencer.start()` returns, state RUNNING) in under 20 s.
    Measured in the worst case of a crash: the newest engine snapshot (taken every `--snapshot-every` records, default
    100,000) is a whole interval old, so recovery loads it and replays that tail. The restart after a clean stop
    (snapshot at the last record) and the restart with no snapshot at all (a full replay, as before snapshots) are
    printed beside it;
  - a full replay from genesis (`ledger.recovery.recover` without a snapshot: fetch, check the hash chain, decode,
    apply to a fresh engine) runs at least 100,000 records/s;
  - the full compare-replay (`ledger.replay.replay`: also re-derives and compares every event, trade, ledger entry
    and leg) replays at least 100,000 records/s.
The baselines, in the same run, are reading the same journal rows without applying them (`journal_rows`, the pages
recovery reads) and the restart without a snapshot. A breakdown shows where a full replay spends its time (chain
hashes, decoding, the engine, the order projection), measured on the rows held in memory, and what a snapshot costs
(encoding it pauses the sequencer; its size; decoding it).

The journal is made by the real sequencer (batch_max 5,000, snapshotting) from the listing, deposits and issuance of
benchmarks/workload.py followed by its mixed command stream, so events, trades, orders and the ledger exist for
the compare-replay too. The server is DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres; the run
creates and drops the scratch database bench_replay_<pid>.

Run: ``python -m benchmarks.replay [--quick] [--records N] [--snapshot-every N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Sequence

import asyncpg

from api.sequencer import Sequencer
from benchmarks._report import json_line, machine, table, verdict
from benchmarks.pipeline import durability, open_pool, scratch_database, server_url, submit_all
from benchmarks.workload import ACCOUNTS, mixed_commands, setup_commands
from exchange import codec, snapshot
from exchange.engine import Engine
from ledger.journal import GENESIS, chain_hash
from ledger.projection import OrderProjection
from ledger.recovery import StoredRecord, journal_rows
from ledger.snapshots import decode_projection, take

SEED = 20251130
TARGET_RATE = 100_000
TARGET_READY_S = 20.0
READY_RECORDS = 1_000_000
BUILD_BATCH_MAX = 5_000
DEFAULT_SNAPSHOT_EVERY = 100_000


async def build_journal(
    pool: asyncpg.Pool, records: int, accounts: Sequence[str] = ACCOUNTS, snapshot_every: int = 0
) -> tuple[float, int, list[float]]:
    """Commit `records` journal records through a sequencer; (seconds, rejected commands, seconds per snapshot)."""
    setup = setup_commands(accounts=accounts)
    assert records > len(setup), f"the setup alone takes {len(setup):,} records"
    commands = setup + mixed_commands(records - len(setup), seed=SEED, accounts=accounts)
    sequencer = Sequencer(
        pool, batch_max=BUILD_BATCH_MAX, inbox_size=2 * BUILD_BATCH_MAX, snapshot_every=snapshot_every
    )
    await sequencer.start()
    try:
        started = time.perf_counter()
        _, committed, rejected = await submit_all(sequencer, commands, BUILD_BATCH_MAX)
        assert committed == records
        return time.perf_counter() - started, rejected, sequencer.snapshots.seconds
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


async def restart(pool: asyncpg.Pool) -> tuple[float, Sequencer, int]:
    """Time `Sequencer.start()` until it is ready to trade; (seconds, the stopped sequencer, seq of its snapshot)."""
    gc.collect()
    sequencer = Sequencer(pool, snapshot_every=0)  # its stop must not store a snapshot of its own
    started = time.perf_counter()
    await sequencer.start()
    ready = time.perf_counter() - started
    assert sequencer.ready
    last_seq = sequencer.last_seq
    await sequencer.stop()
    async with pool.acquire() as conn:
        # The snapshot recovery started from: the newest one at or below the journal's end (all of them checked).
        used = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM snapshots WHERE seq <= $1", last_seq)
    return ready, sequencer, used


def snapshot_costs(sequencer: Sequencer) -> tuple[float, int, float]:
    """(seconds to encode the sequencer's final state, its bytes, seconds to decode it)."""
    gc.collect()
    started = time.perf_counter()
    taken = take(sequencer.engine, sequencer.projection, sequencer.last_hash)
    encode_s = time.perf_counter() - started
    size = len(taken.engine) + len(taken.projection)
    gc.collect()
    started = time.perf_counter()
    snapshot.decode(taken.engine)
    decode_projection(taken.projection)
    return encode_s, size, time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    records = args.records or (20_000 if args.quick else 1_000_000)
    every = args.snapshot_every or min(DEFAULT_SNAPSHOT_EVERY, max(1, records // 4))
    server = server_url()
    name = f"bench_replay_{os.getpid()}"
    print(f"replay benchmark: a journal of {records:,} records, a snapshot every {every:,}; {machine()}")
    results: list[tuple[str, str]] = []
    compare_rate: float | None = None
    async with scratch_database(server, name) as url:
        pool = await open_pool(url)
        try:
            print(f"  {await durability(pool, server)}")
            seconds, rejected, pauses = await build_journal(pool, records, ACCOUNTS[: args.accounts], every)
            results.append(("journal built by the sequencer", f"{records / seconds:>10,.0f} records/s ({seconds:.1f} s, {rejected} rejected)"))
            async with pool.acquire() as conn:
                await conn.execute("VACUUM ANALYZE")  # as a server that has been up a while would be: hint bits set

            fetch_seconds, rows = await raw_fetch(pool)
            fetch_rate = len(rows) / fetch_seconds
            results.append(("baseline: raw fetch of the journal rows", f"{fetch_rate:>10,.0f} records/s ({fetch_seconds:.1f} s)"))
            steps = breakdown(rows)
            del rows
            gc.collect()

            # Restarts, from the cheapest to the dearest: each removes the snapshots the previous one used.
            clean_s, restarted, clean_from = await restart(pool)
            assert restarted.last_seq == records
            encode_s, size, decode_s = snapshot_costs(restarted)
            del restarted
            results.append((
                "restart after a clean stop (snapshot at the last record)",
                f"ready to trade after {clean_s:.1f} s (from the snapshot at {clean_from:,}, tail {records - clean_from:,})",
            ))
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM snapshots WHERE seq > $1", records - every)
            crash_s, _, crash_from = await restart(pool)
            crash_rate = records / crash_s
            results.append((
                "restart after a crash, worst case (newest snapshot a whole interval old)",
                f"ready to trade after {crash_s:.1f} s (from the snapshot at {crash_from:,}, tail {records - crash_from:,};"
                f" {crash_rate:,.0f} records/s overall)",
            ))
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM snapshots")
            full_s, _, _ = await restart(pool)
            full_rate = records / full_s
            results.append((
                "baseline: restart with no snapshot (full replay from genesis)",
                f"ready to trade after {full_s:.1f} s ({full_rate:,.0f} records/s)",
            ))
            for label, spent in steps:
                results.append((f"  of which, in memory: {label}", f"{spent:6.2f} s ({records / spent:,.0f} records/s)"))
            pause = max(pauses, default=0.0)
            results.append((
                "snapshot of the final state",
                f"{size / 1e6:.1f} MB; encode {encode_s * 1000:.0f} ms (sequencer pause, worst while building:"
                f" {pause * 1000:.0f} ms over {len(pauses)} snapshots); decode {decode_s * 1000:.0f} ms",
            ))
            gc.collect()

            from ledger.replay import replay

            report = await replay(pool)
            compare_rate = report.records_per_second
            results.append((
                "compare-replay from genesis (ledger.replay.replay)",
                f"{compare_rate:>10,.0f} records/s ({report.seconds:.1f} s, identical: {report.identical}; "
                f"{report.events:,} events, {report.trades:,} trades, {report.entries:,} entries, {report.legs:,} legs)",
            ))
        finally:
            await pool.close()

    table("results", results)
    print("targets")
    if records >= READY_RECORDS:
        verdict(
            f"ready to trade in < {TARGET_READY_S:g} s with {READY_RECORDS:,} records after a crash (snapshot every {every:,})",
            crash_s < TARGET_READY_S,
            f"{crash_s:.1f} s",
        )
    else:
        print(f"  (ready to trade with {READY_RECORDS:,} records: judged only on a journal that long; run without --quick)")
    verdict(f"full replay from genesis >= {TARGET_RATE:,} records/s", full_rate >= TARGET_RATE, f"{full_rate:,.0f}")
    verdict(f"compare-replay >= {TARGET_RATE:,} records/s", compare_rate >= TARGET_RATE, f"{compare_rate:,.0f}")
    json_line("replay", "recover_records_per_s", crash_rate, "records/s", full_rate, crash_rate / full_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20,000-record journal (under 30 s)")
    parser.add_argument("--records", type=int, help="journal records (default 1,000,000; quick 20,000)")
    parser.add_argument(
        "--snapshot-every", type=int, help="records between engine snapshots (default 100,000, at most records/4)"
    )
    parser.add_argument("--accounts", type=int, default=len(ACCOUNTS), help="funded accounts (default 1,000)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
