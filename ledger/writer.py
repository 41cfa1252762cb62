"""The ledger's hot path: write a batch of entries and their legs inside the caller's transaction, with raw asyncpg.

One `write` costs at most three statements whatever the batch size: accounts not yet known are created (or
found) in one statement, then entries and legs go in by COPY (a small batch sends both as arrays in one
statement). Balances are not sent: the database moves them itself, in the statement trigger on `ledger_legs`
(migration 0006_commit_path), which also proves that every leg's accounts hold its asset. The writer keeps two
things in memory between batches, both possibly ahead of the database if a transaction rolls back, which is why
the caller must `reset()` after a rollback:

- account ids, so that steady-state batches need no lookup;
- the high-water mark: the largest (seq, idx) stored. Entries arrive in sequence order, so an entry at or
  below it is already in the ledger and is skipped: writing a batch twice (a retry, a replay after a crash)
  adds nothing and moves no balance. Skipping in Python was chosen over COPY into a temporary table followed
  by INSERT ... ON CONFLICT DO NOTHING because it measured faster (see benchmarks/ledger.py).

The database has the last word on every rule (see migrations 0002_ledger and 0006_commit_path); the writer only
turns the one rejection a healthy engine can meet, a participant balance going negative, into a typed
`LedgerRejected`.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from ledger.entries import AccountRef, Bucket, Entry, InvalidEntry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NEGATIVE_BALANCE = "ledger_balances_participant_non_negative"
_DETAIL = re.compile(r"account_id=(\d+) balance=(-?\d+)")

ENTRY_COLUMNS = ("seq", "idx", "kind", "ts", "order_id", "trade_id")
ENTRY_TYPES = ("bigint", "int", "text", "timestamptz", "bigint", "bigint")
LEG_COLUMNS = ("seq", "idx", "leg", "debit_account_id", "credit_account_id", "asset", "amount")
LEG_TYPES = ("bigint", "int", "int", "bigint", "bigint", "text", "bigint")


# Inserted rows come back from the INSERT, the others from the SELECT: both see the snapshot taken at
# the start of the statement, so each key is returned exactly once.
_RESOLVE_ACCOUNTS = """
WITH wanted AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(owner, bucket, asset)),
created AS (
    INSERT INTO ledger_accounts (owner, bucket, asset) SELECT owner, bucket, asset FROM wanted
    ON CONFLICT DO NOTHING
    RETURNING id, owner, bucket, asset
)
SELECT id, owner, bucket, asset, true AS created FROM created
UNION ALL
SELECT a.id, a.owner, a.bucket, a.asset, false FROM ledger_accounts a JOIN wanted USING (owner, bucket, asset)
"""

# A small batch (a quiet market: one command per commit) goes in one round trip instead of two; COPY wins
# for big ones (multi-row heap inserts, no arrays to build). Measured crossover: a few thousand legs.
_SMALL_BATCH_LEGS = 1_000
_WRITE_SMALL_BATCH = """
WITH entries AS (
    INSERT INTO ledger_entries (seq, idx, kind, ts, order_id, trade_id)
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[])
)
INSERT INTO ledger_legs (seq, idx, leg, debit_account_id, credit_account_id, asset, amount)
SELECT * FROM unnest($7::bigint[], $8::int[], $9::int[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[])
"""

_HIGH_WATER = "SELECT seq, idx FROM ledger_entries ORDER BY seq DESC, idx DESC LIMIT 1"
_ALL_ACCOUNTS = "SELECT id, owner, bucket, asset FROM ledger_accounts"

# (owner, bucket, asset): plain strings hash and compare in C, where AccountRef's dataclass methods are Python.
AccountKey = tuple[str, str, str]


_Rows = tuple[list[tuple[object, ...]], list[tuple[object, ...]], set[int]]
# A leg whose accounts were not all known when its row was built: (position of its row, debit key, credit key,
# (seq, idx, leg number, asset, amount)).
_Unresolved = tuple[int, AccountKey, AccountKey, tuple[int, int, int, str, int]]


class LedgerRejected(Exception):
    """The database refused the batch because `account` would hold a negative `balance` of `asset`.

    The transaction is aborted: roll it back and call `LedgerWriter.reset()`."""

    def __init__(self, account: AccountRef, asset: str, balance: int) -> None:
        super().__init__(f"{account.owner} {account.bucket.value} {asset} would be {balance}")
        self.account = account
        self.asset = asset
        self.balance = balance


class LedgerWriteError(RuntimeError):
    """The database and the writer disagree about what is stored (another writer, or a missed reset())."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    entries: int  # entries written by this call
    legs: int
    skipped: int  # entries at or below the high-water mark, already in the ledger
    accounts_created: int
    balances_moved: int  # accounts whose balance row the database moved
    high_water: tuple[int, int] | None  # largest (seq, idx) stored after this call


@dataclass(frozen=True, slots=True)
class PreparedEntries:
    """What `LedgerWriter.prepare` made of a list of entries: rows for ledger_entries and ledger_legs (columns as
    `ENTRY_COLUMNS` and `LEG_COLUMNS`), the account ids they touch, and the largest (seq, idx) among them."""

    entry_rows: list[tuple[object, ...]]
    leg_rows: list[tuple[object, ...]]
    touched: set[int]
    skipped: int
    accounts_created: int
    last_key: tuple[int, int] | None


def columns_of(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """`rows` as `width` column lists, for `unnest` parameters (empty lists when there are no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


class LedgerWriter:
    """Writes entries through one connection at a time; one instance per sequencer (single writer)."""

    def __init__(self) -> None:
        self._ids: dict[AccountKey, int] = {}
        self._accounts: dict[int, tuple[AccountRef, str]] = {}
        self._high_water: tuple[int, int] | None = None
        self._high_water_known = False

    def reset(self) -> None:
        """Forget what may be ahead of the database: call after any rolled-back transaction."""
        self._ids.clear()
        self._accounts.clear()
        self._high_water = None
        self._high_water_known = False

    @property
    def high_water(self) -> tuple[int, int] | None:
        return self._high_water

    async def write(self, conn: asyncpg.Connection, entries: Sequence[Entry]) -> WriteResult:
        """Write `entries` (in (seq, idx) order) inside the transaction the caller holds on `conn`."""
        prepared = await self.prepare(conn, entries)
        if prepared.entry_rows:
            try:
                if len(prepared.leg_rows) <= _SMALL_BATCH_LEGS:
                    status = await conn.execute(
                        _WRITE_SMALL_BATCH, *columns_of(prepared.entry_rows, 6), *columns_of(prepared.leg_rows, 7)
                    )
                else:
                    await conn.copy_records_to_table(
                        "ledger_entries", records=prepared.entry_rows, columns=ENTRY_COLUMNS
                    )
                    status = await conn.copy_records_to_table(
                        "ledger_legs", records=prepared.leg_rows, columns=LEG_COLUMNS
                    )
            except asyncpg.CheckViolationError as exc:
                rejected = self._rejection(exc)
                if rejected is None:
                    raise
                raise rejected from exc
            stored = int(status.rsplit(" ", 1)[-1])
            if stored != len(prepared.leg_rows):
                raise LedgerWriteError(f"expected to store {len(prepared.leg_rows)} legs, database says {status}")
        return self.stored(prepared)

    async def prepare(self, conn: asyncpg.Connection, entries: Sequence[Entry]) -> PreparedEntries:
        """The rows that `entries` add to the ledger (none for those already stored), every account resolved.

        For a caller that sends the rows itself (in a statement of its own) and then calls `stored`."""
        if not conn.is_in_transaction():
            # Outside a transaction each statement would commit alone: half a batch could be kept.
            raise LedgerWriteError("LedgerWriter.write needs the caller's open transaction")
        if not self._high_water_known:
            row = await conn.fetchrow(_HIGH_WATER)
            self._high_water = (row[0], row[1]) if row else None
            self._high_water_known = True
            # Learn every existing account at once: otherwise, after each start or reset, every batch touching an
            # account for the first time pays a resolving statement (measured: 0.27 ms per batch, averaged over a
            # 10 s run at 2,000 commands/s). A few tens of bytes per account; the exchange has thousands.
            self._learn(await conn.fetch(_ALL_ACCOUNTS))

        fresh = self._fresh(entries)
        if not fresh:
            return PreparedEntries([], [], set(), len(entries), 0, None)
        created = 0
        rows, unresolved = self._rows(fresh)
        entry_rows, leg_rows, touched = rows
        if unresolved:  # some accounts are new (or forgotten by reset): learn them all in one statement
            new_accounts = {key for leg in unresolved for key in leg[1:3] if key not in self._ids}
            created = await self._resolve(conn, new_accounts)
            self._complete(leg_rows, touched, unresolved)
        last = fresh[-1]
        return PreparedEntries(entry_rows, leg_rows, touched, len(entries) - len(fresh), created, (last.seq, last.index))

    def stored(self, prepared: PreparedEntries) -> WriteResult:
        """Record that the rows of `prepared` are in the caller's transaction: the high-water mark moves."""
        if prepared.last_key is not None:
            self._high_water = prepared.last_key
        return WriteResult(
            entries=len(prepared.entry_rows),
            legs=len(prepared.leg_rows),
            skipped=prepared.skipped,
            accounts_created=prepared.accounts_created,
            balances_moved=len(prepared.touched),
            high_water=self._high_water,
        )

    def rejection(self, exc: asyncpg.CheckViolationError) -> LedgerRejected | None:
        """The typed rejection for a negative participant balance refused by the database, else None."""
        return self._rejection(exc)

    # -- steps ----------------------------------------------------------------------------------------

    def _fresh(self, entries: Sequence[Entry]) -> Sequence[Entry]:
        """The entries above the high-water mark, checked to be in strictly increasing (seq, idx) order."""
        previous = self._high_water or (-1, -1)
        first_fresh = len(entries)
        for position, entry in enumerate(entries):
            key = (entry.seq, entry.index)
            if key > previous:
                first_fresh = position
                break
        fresh = entries[first_fresh:]
        for entry in fresh:
            key = (entry.seq, entry.index)
            if key <= previous:
                raise InvalidEntry(f"entry {key} arrives after {previous}: entries must be in (seq, idx) order")
            previous = key
        return fresh

    async def _resolve(self, conn: asyncpg.Connection, keys: set[AccountKey]) -> int:
        """Create the accounts that do not exist yet and learn every id; returns how many were created."""
        ordered = sorted(keys)  # one lock order for every writer
        rows = await conn.fetch(
            _RESOLVE_ACCOUNTS,
            [owner for owner, _, _ in ordered],
            [str(bucket) for _, bucket, _ in ordered],
            [asset for _, _, asset in ordered],
        )
        self._learn(rows)
        created = sum(row["created"] for row in rows)
        if len(rows) != len(ordered):
            # Created by a concurrent transaction after this statement's snapshot: only one writer should exist.
            raise LedgerWriteError(f"resolved {len(rows)} of {len(ordered)} accounts; is another writer running?")
        return created

    def _learn(self, rows: Sequence[asyncpg.Record]) -> None:
        for row in rows:
            bucket = Bucket(row["bucket"])
            self._ids[(row["owner"], bucket, row["asset"])] = row["id"]
            self._accounts[row["id"]] = (AccountRef(row["owner"], bucket), row["asset"])

    def _rows(self, entries: Sequence[Entry]) -> tuple[_Rows, list[_Unresolved]]:
        """The COPY rows of `entries` and the ids of the accounts they touch, and the legs naming accounts whose ids
        are not known yet: their rows are placeholders until `_complete` fills them in."""
        # Tens of thousands of acyclic tuples of ints and strings: a cyclic collection triggered while
        # building them would only walk them in vain (measured: it doubled the time spent here).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._build_rows(entries)
        finally:
            if collecting:
                gc.enable()

    def _build_rows(self, entries: Sequence[Entry]) -> tuple[_Rows, list[_Unresolved]]:
        ids = self._ids
        unresolved: list[_Unresolved] = []
        entry_rows: list[tuple[object, ...]] = []
        leg_rows: list[tuple[object, ...]] = []
        touched: set[int] = set()
        ts_us = None
        ts = _EPOCH
        for entry in entries:
            seq = entry.seq
            idx = entry.index
            if entry.ts_us != ts_us:
                ts_us = entry.ts_us
                ts = _EPOCH + timedelta(microseconds=ts_us)
            entry_rows.append((seq, idx, entry.kind, ts, entry.order_id, entry.trade_id))
            for number, leg in enumerate(entry.legs):
                asset = leg.asset
                debit_key = (leg.debit.owner, leg.debit.bucket, asset)
                credit_key = (leg.credit.owner, leg.credit.bucket, asset)
                debit = ids.get(debit_key)
                credit = ids.get(credit_key)
                if debit is None or credit is None:
                    # A new account: keep the row's place, fill it in once the batch's new accounts are resolved
                    # (building every row again after resolving measured 16 us per fill).
                    unresolved.append((len(leg_rows), debit_key, credit_key, (seq, idx, number, asset, leg.amount)))
                    leg_rows.append(())
                    continue
                leg_rows.append((seq, idx, number, debit, credit, asset, leg.amount))
                touched.add(debit)
                touched.add(credit)
        return (entry_rows, leg_rows, touched), unresolved

    def _complete(self, leg_rows: list[tuple[object, ...]], touched: set[int], unresolved: list[_Unresolved]) -> None:
        """Fill in the placeholder rows of `unresolved` legs, now that their accounts are known."""
        ids = self._ids
        for position, debit_key, credit_key, (seq, idx, number, asset, amount) in unresolved:
            debit = ids.get(debit_key)
            credit = ids.get(credit_key)
            if debit is None or credit is None:
                raise LedgerWriteError(f"accounts {debit_key} / {credit_key} still unknown after resolving them")
            leg_rows[position] = (seq, idx, number, debit, credit, asset, amount)
            touched.add(debit)
            touched.add(credit)

    def _rejection(self, exc: asyncpg.CheckViolationError) -> LedgerRejected | None:
        if exc.constraint_name != _NEGATIVE_BALANCE:
            return None
        match = _DETAIL.search(exc.detail or "")
        key = self._accounts.get(int(match.group(1))) if match else None
        if match is None or key is None:
            return None
        account, asset = key
        return LedgerRejected(account, asset, int(match.group(2)))
