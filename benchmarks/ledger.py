"""Benchmark: write fills to the PostgreSQL ledger through `LedgerWriter.write`, batched, synchronous_commit on.

Claim: at least 25,000 fills/s in batches of 1,000 fills per transaction, and at least 0.6 of the raw ceiling
measured in the same run: the very same entry and leg rows sent by two bare `copy_records_to_table` calls (no
Python logic, no balances, no integrity triggers) into tables with ledger_entries' and ledger_legs' columns,
primary keys, indexes and checks, one transaction per batch. The two are interleaved batch by batch so that
checkpoints fall on both alike. The writer's figure includes what the database does for it: the statement trigger
on ledger_legs moving every touched balance and checking the legs' accounts and entries, and the deferred check at
commit that every entry has legs (migration 0006_commit_path). Also measured: every fill committed on its own, and
the rejected alternative for idempotency (COPY into temporary tables, INSERT ... ON CONFLICT DO NOTHING), in a
second database, interleaved too.

Each fill is shaped as the settlement rules make it (ledger/settlement.py), three commands:
  seq A: the seller's order (for twice the quantity) is accepted: HOLD of securities          1 entry, 1 leg
  seq B: the buyer's order is accepted and trades: HOLD of cash (limit notional + fee bound),
         FILL (securities held->available, cash held->available, buyer fee, seller fee),
         RELEASE of the buyer's price improvement and unused fee bound                          3 entries, 6 legs
  seq C: the seller cancels the rest: RELEASE of securities                                   1 entry, 1 leg
so 5 entries and 8 legs per fill, among 1,000 funded participants and 10 instruments. Entries are built
(untimed) just before each batch, as fresh objects like the sequencer would hand over.

Run: ``python -m benchmarks.ledger [--quick]``; the server is DATABASE_URL, else 127.0.0.1:5432/test; the
run creates and drops its own scratch databases.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, Leg
from ledger.migrate import upgrade_to_head_async
from ledger.postgres import asyncpg_dsn, create_database, drop_database
from ledger.queries import reconcile_balances, trial_balance
from ledger.writer import LedgerWriter

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
PARTICIPANTS = 1_000
SYMBOLS = tuple(f"SIA{n}" for n in range(10))
CASH = "EUR"
SEED = 20251129
TS0 = 1_764_374_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FEES = AccountRef(VENUE, Bucket.FEES)
EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)
ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)


def available(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.AVAILABLE)


def held(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.HELD)


def funding(first_seq: int) -> list[Entry]:
    """Every participant gets cash and every security, plenty for the whole run."""
    entries = []
    seq = first_seq
    for n in range(PARTICIPANTS):
        owner = f"inv{n:05d}"
        legs = [Leg(EXTERNAL, available(owner), CASH, 10**13)]
        legs += [Leg(ISSUANCE, available(owner), symbol, 10**9) for symbol in SYMBOLS]
        entries.append(Entry(seq, 0, EntryKind.DEPOSIT, TS0, tuple(legs)))
        seq += 1
    return entries


def fills(rng: random.Random, count: int, first_seq: int) -> Iterator[list[Entry]]:
    """The entries of `count` fills, one list per fill (three commands each)."""
    seq = first_seq
    for trade_id in range(1, count + 1):
        buyer, seller = (f"inv{n:05d}" for n in rng.sample(range(PARTICIPANTS), 2))
        symbol = rng.choice(SYMBOLS)
        quantity = rng.randint(1, 500)
        price = rng.randint(900, 1_100)  # cents
        limit = price + rng.randint(1, 20)
        cash = price * quantity
        buyer_fee = max(1, cash * 3 // 10_000)
        seller_fee = max(1, cash * 3 // 10_000)
        fee_bound = max(1, limit * quantity * 3 // 10_000) + 1
        buyer_hold = limit * quantity + fee_bound
        ts = TS0 + seq * 10
        sell_order, buy_order = 2 * trade_id, 2 * trade_id + 1
        yield [
            Entry(seq, 0, EntryKind.HOLD, ts, (Leg(available(seller), held(seller), symbol, 2 * quantity),), sell_order),
            Entry(seq + 1, 0, EntryKind.HOLD, ts + 1, (Leg(available(buyer), held(buyer), CASH, buyer_hold),), buy_order),
            Entry(
                seq + 1, 1, EntryKind.FILL, ts + 1,
                (
                    Leg(held(seller), available(buyer), symbol, quantity),
                    Leg(held(buyer), available(seller), CASH, cash),
                    Leg(held(buyer), FEES, CASH, buyer_fee),
                    Leg(available(seller), FEES, CASH, seller_fee),
                ),
                buy_order, trade_id,
            ),
            Entry(
                seq + 1, 2, EntryKind.RELEASE, ts + 1,
                (Leg(held(buyer), available(buyer), CASH, buyer_hold - cash - buyer_fee),), buy_order, trade_id,
            ),
            Entry(seq + 2, 0, EntryKind.RELEASE, ts + 2, (Leg(held(seller), available(seller), symbol, quantity),), sell_order),
        ]
        seq += 3


def batches(rng: random.Random, count: int, per_batch: int, first_seq: int) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    in_batch = 0
    for fill in fills(rng, count, first_seq):
        batch.extend(fill)
        in_batch += 1
        if in_batch == per_batch:
            yield batch
            batch, in_batch = [], 0
    if batch:
        yield batch


# -- the raw ceiling and the rejected alternative ------------------------------------------------------

def raw_rows(writer: LedgerWriter, entries: list[Entry]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The entry and leg rows LedgerWriter sent for these entries (ids from its cache), built before the clock starts."""
    (entry_rows, leg_rows, _), unresolved = writer._rows(entries)  # noqa: SLF001 - the writer's own rows, on purpose
    assert not unresolved, "the writer resolved every account of the batch it just wrote"
    return entry_rows, leg_rows


ALT_SETUP = """
CREATE TEMP TABLE IF NOT EXISTS incoming_entries (LIKE ledger_entries) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_legs (LIKE ledger_legs) ON COMMIT DELETE ROWS;
"""
# Balances move in the database's trigger on ledger_legs, for this path as for the writer's.
ALT_APPLY = """
WITH new_entries AS (
    INSERT INTO ledger_entries SELECT * FROM incoming_entries ON CONFLICT DO NOTHING RETURNING seq, idx
)
INSERT INTO ledger_legs SELECT l.* FROM incoming_legs l JOIN new_entries USING (seq, idx)
"""


async def write_on_conflict(conn: asyncpg.Connection, writer: LedgerWriter, entries: list[Entry]) -> None:
    """Idempotency the other way: stage everything, let ON CONFLICT drop what is stored."""
    await writer.prepare(conn, entries)  # creates the accounts the batch needs and learns their ids
    ids = writer._ids  # noqa: SLF001
    entry_rows, legs = [], []
    ts_us, ts = None, _EPOCH
    for e in entries:
        if e.ts_us != ts_us:
            ts_us, ts = e.ts_us, _EPOCH + timedelta(microseconds=e.ts_us)
        entry_rows.append((e.seq, e.index, e.kind, ts, e.order_id, e.trade_id))
        for n, leg in enumerate(e.legs):
            legs.append((e.seq, e.index, n, ids[(leg.debit.owner, leg.debit.bucket, leg.asset)], ids[(leg.credit.owner, leg.credit.bucket, leg.asset)], leg.asset, leg.amount))
    await conn.copy_records_to_table("incoming_entries", records=entry_rows)
    await conn.copy_records_to_table("incoming_legs", records=legs)
    await conn.execute(ALT_APPLY)


# -- measurement --------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def backend_cpu(pid: int) -> float | None:
    """CPU seconds a local PostgreSQL backend has used (user + system), or None when it is not readable here.

    On a shared 2-core machine wall times swing with whatever else runs; the server's own CPU per row does not,
    so the benchmarks print it beside the rates (resolution: one clock tick per reading)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


async def backend_pid(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT pg_backend_pid()")

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fund(conn: asyncpg.Connection, writer: LedgerWriter) -> int:
    entries = funding(1)
    async with conn.transaction():
        await writer.write(conn, entries)
    return entries[-1].seq + 1


async def run(server: str, fill_count: int, per_batch: int, single_count: int) -> dict[str, float]:
    tag = f"ledger_bench_{os.getpid()}"
    main_url = await create_database(server, tag)
    alt_url = await create_database(server, tag + "_alt")
    try:
        await upgrade_to_head_async(main_url)
        await upgrade_to_head_async(alt_url)
        conn = await asyncpg.connect(asyncpg_dsn(main_url))
        alt = await asyncpg.connect(asyncpg_dsn(alt_url))
        try:
            return await measure(conn, alt, fill_count, per_batch, single_count)
        finally:
            await conn.close()
            await alt.close()
    finally:
        await drop_database(server, tag)
        await drop_database(server, tag + "_alt")


async def measure(
    conn: asyncpg.Connection, alt: asyncpg.Connection, fill_count: int, per_batch: int, single_count: int
) -> dict[str, float]:
    for c in (conn, alt):
        assert await c.fetchval("SHOW synchronous_commit") == "on"
    await conn.execute("CREATE TABLE raw_entries (LIKE ledger_entries INCLUDING ALL)")
    await conn.execute("CREATE TABLE raw_legs (LIKE ledger_legs INCLUDING ALL)")
    await alt.execute(ALT_SETUP)
    writer, alt_writer = LedgerWriter(), LedgerWriter()
    first_seq = await fund(conn, writer)
    await fund(alt, alt_writer)
    # As a long-running server should after start-up: what is loaded by now (SQLAlchemy, Alembic, asyncpg)
    # lives forever, and the cyclic collector need not walk it again and again.
    gc.collect()
    gc.freeze()

    rng = random.Random(SEED)
    pid = await backend_pid(conn)
    server = {"writer": 0.0, "raw": 0.0}
    writer_s = raw_s = alt_s = writer_cpu_s = 0.0
    latencies: list[float] = []
    legs_total = entries_total = 0
    for batch in batches(rng, fill_count, per_batch, first_seq):
        cpu0 = time.process_time()
        server0 = backend_cpu(pid)
        t0 = time.perf_counter()
        async with conn.transaction():
            result = await writer.write(conn, batch)
        t1 = time.perf_counter()
        writer_cpu_s += time.process_time() - cpu0
        server1 = backend_cpu(pid)
        if server0 is not None and server1 is not None:
            server["writer"] += server1 - server0
        writer_s += t1 - t0
        latencies.append(t1 - t0)
        legs_total += result.legs
        entries_total += result.entries
        raw_entries, raw_legs = raw_rows(writer, batch)  # untimed: the ceiling gets its rows ready-made
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("raw_entries", records=raw_entries)
            await conn.copy_records_to_table("raw_legs", records=raw_legs)
        raw_s += time.perf_counter() - t0
        server2 = backend_cpu(pid)
        if server1 is not None and server2 is not None:
            server["raw"] += server2 - server1
        t0 = time.perf_counter()
        async with alt.transaction():
            await write_on_conflict(alt, alt_writer, batch)
        alt_s += time.perf_counter() - t0

    next_seq = first_seq + 3 * fill_count
    single = [fill for fill in fills(rng, single_count, next_seq)]
    t0 = time.perf_counter()
    for fill in single:
        async with conn.transaction():
            await writer.write(conn, fill)
    single_s = time.perf_counter() - t0

    # The books must still be sound after all that, or the figures mean nothing.
    assert set((await trial_balance(conn)).values()) == {0}
    assert await reconcile_balances(conn) == []
    assert await alt.fetchval("SELECT count(*) FROM ledger_legs") == await conn.fetchval(
        "SELECT count(*) FROM ledger_legs WHERE seq < $1", next_seq
    )
    return {
        "fills": fill_count,
        "entries": entries_total,
        "legs": legs_total,
        "writer_fills_per_s": fill_count / writer_s,
        "writer_legs_per_s": legs_total / writer_s,
        "raw_fills_per_s": fill_count / raw_s,
        "raw_legs_per_s": legs_total / raw_s,
        "alt_fills_per_s": fill_count / alt_s,
        "writer_python_us_per_fill": writer_cpu_s / fill_count * 1e6,
        "writer_server_us_per_fill": server["writer"] / fill_count * 1e6,
        "raw_server_us_per_fill": server["raw"] / fill_count * 1e6,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "single_fills": single_count,
        "single_fills_per_s": single_count / single_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 fills and 300 single commits (< 30 s)")
    parser.add_argument("--fills", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1_000, help="fills per transaction")
    parser.add_argument("--single", type=int, default=None, help="fills committed one by one")
    args = parser.parse_args()
    fill_count = args.fills or (20_000 if args.quick else 200_000)
    single_count = args.single or (300 if args.quick else 2_000)
    server = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    r = asyncio.run(run(server, fill_count, args.batch, single_count))

    ratio = r["writer_fills_per_s"] / r["raw_fills_per_s"]
    print(f"ledger write: {r['fills']:,} fills = {r['entries']:,} entries, {r['legs']:,} legs; "
          f"{args.batch:,} fills per transaction; synchronous_commit on")
    print(f"{'path':<56}{'fills/s':>12}{'legs/s':>12}")
    print(f"{'LedgerWriter.write (entries, legs, balances, checks)':<56}"
          f"{r['writer_fills_per_s']:>12,.0f}{r['writer_legs_per_s']:>12,.0f}")
    print(f"{'raw ceiling: bare COPY of the same entry and leg rows':<56}"
          f"{r['raw_fills_per_s']:>12,.0f}{r['raw_legs_per_s']:>12,.0f}")
    print(f"{'alternative: temp table + ON CONFLICT DO NOTHING':<56}{r['alt_fills_per_s']:>12,.0f}")
    print(f"{'one transaction per fill (' + format(r['single_fills'], ',') + ' fills)':<56}"
          f"{r['single_fills_per_s']:>12,.0f}")
    print(f"batch commit latency: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; "
          f"writer's own Python CPU {r['writer_python_us_per_fill']:.1f} us/fill; writer / raw ceiling = {ratio:.2f}")
    if r["writer_server_us_per_fill"] > 0:
        print(f"PostgreSQL backend CPU per fill (independent of other load): writer {r['writer_server_us_per_fill']:.1f} us, "
              f"raw ceiling {r['raw_server_us_per_fill']:.1f} us; ratio {r['raw_server_us_per_fill'] / r['writer_server_us_per_fill']:.2f}")
    print(json.dumps({
        "benchmark": "ledger",
        "metric": "fills_per_s",
        "value": round(r["writer_fills_per_s"]),
        "unit": "fills/s",
        "baseline": round(r["raw_fills_per_s"]),
        "ratio": round(ratio, 3),
    }))


if __name__ == "__main__":
    main()
