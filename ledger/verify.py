"""`exchange verify`: prove from the database alone that the journal is intact and the ledger balances.

Checks, in order, on committed data only:

1. the hash chain: seqs gap-free from 1, each record's `prev_hash` is the previous record's hash and its `hash` is
   `sha256(prev_hash || record bytes)` (see `ledger.journal`); the FIRST broken link is reported with its seq;
2. nothing outlives the journal: no event, trade or ledger entry carries a seq beyond the last journal record (a
   journal whose tail was cut off would otherwise still chain);
3. the ledger: the trial balance is zero for every asset, every cached balance equals the sum of its legs, and no
   participant bucket is negative (`ledger.queries`);
4. optionally, that the chain still contains a head published earlier (`expected_head`): a rewrite of history that
   recomputed every later hash cannot keep a published (seq, hash) pair.

The report names the chain head (last seq and its hash in hex) so that it can be published outside the operator's
reach. Everything is read in pages; memory stays flat whatever the journal's length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ledger.journal import GENESIS, chain_hash
from ledger.queries import (
    AccountBalance,
    BalanceMismatch,
    negative_participant_balances,
    reconcile_balances,
    trial_balance,
)
from ledger.recovery import journal_rows

# Tables whose rows belong to a journal record, and the column that names it.
_DEPENDENT_TABLES = ("events", "trades", "ledger_entries")


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first journal record that does not chain: `seq` is the record (or the first missing seq of a gap)."""

    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    records: int  # journal records read
    head_seq: int  # last seq of the journal (0: empty)
    head_hash: str  # its hash, hex ("" for an empty journal)
    chain_break: ChainBreak | None
    beyond_head: dict[str, int]  # table -> rows whose seq is after the journal's last record
    imbalances: dict[str, int]  # asset -> non-zero trial balance
    mismatches: tuple[BalanceMismatch, ...]
    negatives: tuple[AccountBalance, ...]
    head_problem: str | None  # the published head (expected_head) is not in the chain
    seconds: float
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "chain_break": None
            if self.chain_break is None
            else {"seq": self.chain_break.seq, "problem": self.chain_break.problem},
            "beyond_head": dict(self.beyond_head),
            "trial_balance_imbalances": {asset: str(total) for asset, total in self.imbalances.items()},
            "balance_mismatches": [
                {
                    "owner": m.account.owner,
                    "bucket": m.account.bucket.value,
                    "asset": m.asset,
                    "cached": None if m.cached is None else str(m.cached),
                    "from_legs": str(m.from_legs),
                    "cached_last_seq": m.cached_last_seq,
                    "legs_last_seq": m.legs_last_seq,
                }
                for m in self.mismatches
            ],
            "negative_balances": [
                {
                    "owner": n.account.owner,
                    "bucket": n.account.bucket.value,
                    "asset": n.asset,
                    "balance": str(n.balance),
                }
                for n in self.negatives
            ],
            "published_head_problem": self.head_problem,
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class ChainResult:
    records: int
    head_seq: int
    head_hash: bytes
    chain_break: ChainBreak | None
    head_problem: str | None


async def check_chain(
    conn: asyncpg.Connection, expected_head: tuple[int, bytes] | None = None
) -> ChainResult:
    """Walk the whole journal recomputing the hash chain; stops judging at the first broken link."""
    prev_hash = GENESIS
    last_seq = 0
    records = 0
    chain_break: ChainBreak | None = None
    published_seen = expected_head is None
    head_problem: str | None = None
    last_hash = b""
    rows = journal_rows(conn)
    try:
        async for record in rows:
            records += 1
            last_hash = record.hash
            if chain_break is None:
                if record.seq != last_seq + 1:
                    missing = last_seq + 1
                    chain_break = ChainBreak(
                        missing,
                        f"record {missing} is missing: the journal jumps from {last_seq} to {record.seq}"
                        if record.seq > missing
                        else f"record {record.seq} is out of order after {last_seq}",
                    )
                elif record.prev_hash != prev_hash:
                    chain_break = ChainBreak(record.seq, "prev_hash is not the hash of the previous record")
                elif record.hash != chain_hash(prev_hash, record.seq, record.ts_us, record.sender, record.command):
                    chain_break = ChainBreak(record.seq, "hash does not match the record (its contents were changed)")
            if expected_head is not None and record.seq == expected_head[0]:
                published_seen = True
                if record.hash != expected_head[1]:
                    head_problem = (
                        f"record {record.seq} has hash {record.hash.hex()}, not the published {expected_head[1].hex()}"
                    )
            prev_hash = record.hash
            last_seq = record.seq
    except UnicodeEncodeError:
        # A canonical command is ASCII; an edited one may not be (and then cannot even be hashed as stored).
        seq = await first_non_ascii_command(conn, last_seq)
        if chain_break is None:
            chain_break = ChainBreak(seq, "the command is not ASCII, so not a canonical encoding (it was changed)")
        row = await conn.fetchrow("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
        records = int(await conn.fetchval("SELECT count(*) FROM journal"))
        last_seq, last_hash = row["seq"], bytes(row["hash"])
        if not published_seen:
            assert expected_head is not None
            stored = await conn.fetchval("SELECT hash FROM journal WHERE seq = $1", expected_head[0])
            published_seen = stored is not None
            if stored is not None and bytes(stored) != expected_head[1]:
                head_problem = f"record {expected_head[0]} has hash {bytes(stored).hex()}, not the published one"
    if not published_seen:
        assert expected_head is not None
        head_problem = f"the published head {expected_head[0]} is not in the journal (last seq {last_seq})"
    return ChainResult(records, last_seq, last_hash, chain_break, head_problem)


async def first_non_ascii_command(conn: asyncpg.Connection, after_seq: int) -> int:
    """The first journal record after `after_seq` whose command holds a non-ASCII character."""
    return int(
        await conn.fetchval(
            "SELECT min(seq) FROM journal WHERE seq > $1 AND octet_length(command) <> char_length(command)", after_seq
        )
    )


async def rows_beyond(conn: asyncpg.Connection, head_seq: int) -> dict[str, int]:
    """Rows of the tables that hang off the journal whose seq is after its last record (a cut-off tail)."""
    found: dict[str, int] = {}
    for table in _DEPENDENT_TABLES:
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE seq > $1", head_seq)
        if count:
            found[table] = int(count)
    return found


async def verify(pool: asyncpg.Pool, expected_head: tuple[int, bytes] | None = None) -> VerifyReport:
    """Check the hash chain and the ledger; the report says what is wrong, if anything (see the module doc)."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        chain = await check_chain(conn, expected_head)
        beyond = await rows_beyond(conn, chain.head_seq)
        # One statement each: the balances cache and the legs are read in one snapshot per check, so a batch
        # committing meanwhile cannot make a sound ledger look unsound.
        imbalances = {asset: total for asset, total in (await trial_balance(conn)).items() if total != 0}
        mismatches = tuple(await reconcile_balances(conn))
        negatives = tuple(await negative_participant_balances(conn))
    problems: list[str] = []
    if chain.chain_break is not None:
        problems.append(f"journal record {chain.chain_break.seq}: {chain.chain_break.problem}")
    if chain.head_problem is not None:
        problems.append(chain.head_problem)
    for table, count in beyond.items():
        problems.append(f"{table}: {count} rows after the journal's last record {chain.head_seq}")
    for asset, total in imbalances.items():
        problems.append(f"trial balance of {asset} is {total}, not 0")
    for m in mismatches:
        problems.append(
            f"balance of {m.account.owner} {m.account.bucket.value} {m.asset} is {m.cached} in the cache, "
            f"{m.from_legs} from its legs"
        )
    for n in negatives:
        problems.append(f"balance of {n.account.owner} {n.account.bucket.value} {n.asset} is negative: {n.balance}")
    return VerifyReport(
        records=chain.records,
        head_seq=chain.head_seq,
        head_hash=chain.head_hash.hex(),
        chain_break=chain.chain_break,
        beyond_head=beyond,
        imbalances=imbalances,
        mismatches=mismatches,
        negatives=negatives,
        head_problem=chain.head_problem,
        seconds=time.perf_counter() - started,
        problems=tuple(problems),
    )
