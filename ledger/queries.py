"""Reading the ledger: balances (now and as of a sequence number), account statements, and the checks that
prove the books are sound (trial balance, balances cache against the legs, no negative participant).

All functions take a raw asyncpg connection and run read-only SQL; `exchange verify` and the tests use the
checks, the API uses balances and statements. "As of seq N" means after every entry of commands 1..N.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ledger.entries import AccountRef, Bucket, EntryKind

_BALANCE_NOW = """
SELECT b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
 WHERE a.owner = $1 AND a.bucket = $2 AND a.asset = $3
"""

_BALANCE_AS_OF = """
SELECT coalesce((SELECT sum(amount) FROM ledger_legs WHERE credit_account_id = a.id AND seq <= $4), 0)::bigint
     - coalesce((SELECT sum(amount) FROM ledger_legs WHERE debit_account_id = a.id AND seq <= $4), 0)::bigint
  FROM ledger_accounts a
 WHERE a.owner = $1 AND a.bucket = $2 AND a.asset = $3
"""

_BALANCES_OF = """
SELECT a.asset, a.bucket, b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
 WHERE a.owner = $1
"""

# Each of the owner's accounts, on each side, gives its first $5 entries after the cursor straight from an
# index range scan; the first $5 of their union are the page. Never an OFFSET, never a scan of the account's
# whole history.
_STATEMENT_KEYS = """
WITH accounts AS (SELECT id FROM ledger_accounts WHERE owner = $1 AND asset = $2),
candidates AS (
    SELECT k.seq, k.idx FROM accounts a, LATERAL (
        SELECT DISTINCT l.seq, l.idx FROM ledger_legs l
         WHERE l.debit_account_id = a.id AND (l.seq, l.idx) > ($3, $4)
         ORDER BY l.seq, l.idx LIMIT $5) k
    UNION
    SELECT k.seq, k.idx FROM accounts a, LATERAL (
        SELECT DISTINCT l.seq, l.idx FROM ledger_legs l
         WHERE l.credit_account_id = a.id AND (l.seq, l.idx) > ($3, $4)
         ORDER BY l.seq, l.idx LIMIT $5) k
)
SELECT seq, idx FROM candidates ORDER BY seq, idx LIMIT $5
"""

_STATEMENT_LINES = """
WITH keys AS (SELECT * FROM unnest($3::bigint[], $4::int[]) AS k(seq, idx)),
accounts AS (SELECT id, bucket FROM ledger_accounts WHERE owner = $1 AND asset = $2)
SELECT e.seq, e.idx, e.kind, e.ts, e.order_id, e.trade_id, a.bucket,
       sum(CASE WHEN l.credit_account_id = a.id THEN l.amount ELSE -l.amount END)::bigint AS change
  FROM keys k
  JOIN ledger_entries e ON e.seq = k.seq AND e.idx = k.idx
  JOIN ledger_legs l ON l.seq = k.seq AND l.idx = k.idx
  JOIN accounts a ON a.id IN (l.debit_account_id, l.credit_account_id)
 GROUP BY e.seq, e.idx, e.kind, e.ts, e.order_id, e.trade_id, a.bucket
 ORDER BY e.seq, e.idx, a.bucket
"""

_TRIAL_BALANCE = "SELECT asset, sum(balance)::bigint AS total FROM ledger_balances GROUP BY asset ORDER BY asset"

_RECONCILE = """
WITH moved AS (
    SELECT account_id, sum(delta)::bigint AS balance, max(seq) AS last_seq FROM (
        SELECT credit_account_id AS account_id, amount AS delta, seq FROM ledger_legs
        UNION ALL
        SELECT debit_account_id, -amount, seq FROM ledger_legs
    ) postings GROUP BY account_id
)
SELECT a.owner, a.bucket, a.asset, b.balance AS cached, b.last_seq AS cached_last_seq,
       coalesce(m.balance, 0) AS from_legs, m.last_seq AS legs_last_seq
  FROM ledger_accounts a
  LEFT JOIN ledger_balances b ON b.account_id = a.id
  LEFT JOIN moved m ON m.account_id = a.id
 WHERE b.account_id IS NULL
    OR b.asset <> a.asset
    OR b.balance <> coalesce(m.balance, 0)
    OR b.last_seq IS DISTINCT FROM m.last_seq
 ORDER BY a.owner, a.bucket, a.asset
"""

_NEGATIVE_PARTICIPANTS = """
SELECT a.owner, a.bucket, a.asset, b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
 WHERE a.bucket IN ('available', 'held') AND b.balance < 0
 ORDER BY a.owner, a.bucket, a.asset
"""


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One entry as the owner sees it: how it changed each of the owner's buckets in the asset."""

    seq: int
    index: int
    kind: EntryKind
    ts: datetime
    order_id: int | None
    trade_id: int | None
    changes: dict[Bucket, int]  # credits minus debits per bucket; a bucket the entry left untouched is absent


@dataclass(frozen=True, slots=True)
class StatementPage:
    lines: tuple[StatementLine, ...]
    next_after: tuple[int, int] | None  # pass as `after` for the next page; None when this page is the last


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    """An account whose cached balance (or last seq) is not what its legs say."""

    account: AccountRef
    asset: str
    cached: int | None  # None: the balance row is missing
    from_legs: int
    cached_last_seq: int | None
    legs_last_seq: int | None


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: AccountRef
    asset: str
    balance: int


async def balance(
    conn: asyncpg.Connection, owner: str, bucket: Bucket, asset: str, as_of_seq: int | None = None
) -> int:
    """The balance of one account: now from the balances cache, as of a seq from the legs. 0 if unknown."""
    if as_of_seq is None:
        value = await conn.fetchval(_BALANCE_NOW, owner, bucket.value, asset)
    else:
        value = await conn.fetchval(_BALANCE_AS_OF, owner, bucket.value, asset, as_of_seq)
    return int(value or 0)


async def balances_of(conn: asyncpg.Connection, owner: str) -> dict[tuple[str, Bucket], int]:
    """Every balance of `owner`, keyed by (asset, bucket)."""
    rows = await conn.fetch(_BALANCES_OF, owner)
    return {(row["asset"], Bucket(row["bucket"])): row["balance"] for row in rows}


async def statement(
    conn: asyncpg.Connection, owner: str, asset: str, after: tuple[int, int] | None = None, limit: int = 100
) -> StatementPage:
    """The entries that moved `owner`'s `asset`, oldest first, `limit` entries after the cursor `after`."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    after_seq, after_idx = after if after is not None else (-1, -1)
    keys = await conn.fetch(_STATEMENT_KEYS, owner, asset, after_seq, after_idx, limit)
    if not keys:
        return StatementPage((), None)
    rows = await conn.fetch(
        _STATEMENT_LINES, owner, asset, [k["seq"] for k in keys], [k["idx"] for k in keys]
    )
    changes: dict[tuple[int, int], dict[Bucket, int]] = {}
    heads: dict[tuple[int, int], asyncpg.Record] = {}
    for row in rows:
        key = (row["seq"], row["idx"])
        heads.setdefault(key, row)
        changes.setdefault(key, {})[Bucket(row["bucket"])] = row["change"]
    lines = [
        StatementLine(seq, idx, EntryKind(h["kind"]), h["ts"], h["order_id"], h["trade_id"], changes[(seq, idx)])
        for (seq, idx), h in heads.items()
    ]
    last = lines[-1]
    return StatementPage(tuple(lines), (last.seq, last.index) if len(keys) == limit else None)


async def trial_balance(conn: asyncpg.Connection) -> dict[str, int]:
    """Sum of all balances per asset. Double entry makes every total zero; anything else is a defect."""
    return {row["asset"]: row["total"] for row in await conn.fetch(_TRIAL_BALANCE)}


async def reconcile_balances(conn: asyncpg.Connection) -> list[BalanceMismatch]:
    """Accounts whose balances-cache row disagrees with the sum of their legs (empty when sound)."""
    return [
        BalanceMismatch(
            AccountRef(row["owner"], Bucket(row["bucket"])),
            row["asset"],
            row["cached"],
            row["from_legs"],
            row["cached_last_seq"],
            row["legs_last_seq"],
        )
        for row in await conn.fetch(_RECONCILE)
    ]


async def negative_participant_balances(conn: asyncpg.Connection) -> list[AccountBalance]:
    """Participant accounts (available, held) with a negative cached balance (empty when sound)."""
    return [
        AccountBalance(AccountRef(row["owner"], Bucket(row["bucket"])), row["asset"], row["balance"])
        for row in await conn.fetch(_NEGATIVE_PARTICIPANTS)
    ]
