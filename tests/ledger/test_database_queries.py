"""Reading the ledger: balances now and as of a seq, statements by cursor, and the soundness checks."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, Leg
from ledger.queries import (
    AccountBalance,
    BalanceMismatch,
    balance,
    balances_of,
    negative_participant_balances,
    reconcile_balances,
    statement,
    trial_balance,
)
from ledger.writer import LedgerRejected, LedgerWriter

EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)
ALICE = AccountRef("alice", Bucket.AVAILABLE)
ALICE_HELD = AccountRef("alice", Bucket.HELD)
BOB = AccountRef("bob", Bucket.AVAILABLE)


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    yield connection
    await connection.close()


async def write(conn: asyncpg.Connection, entries: list[Entry], writer: LedgerWriter | None = None) -> None:
    async with conn.transaction():
        await (writer or LedgerWriter()).write(conn, entries)


def deposit(seq: int, amount: int, to: AccountRef = ALICE) -> Entry:
    return Entry(seq, 0, EntryKind.DEPOSIT, seq, (Leg(EXTERNAL, to, "EUR", amount),))


def hold(seq: int, amount: int, index: int = 0) -> Entry:
    return Entry(seq, index, EntryKind.HOLD, seq, (Leg(ALICE, ALICE_HELD, "EUR", amount),), order_id=seq)


async def test_balance_as_of_a_seq_counts_only_the_entries_up_to_it(conn):
    await write(conn, [deposit(1, 100), deposit(2, 50), hold(3, 30), deposit(4, 7)])
    assert [await balance(conn, "alice", Bucket.AVAILABLE, "EUR", as_of_seq=s) for s in range(5)] == [
        0, 100, 150, 120, 127,
    ]
    assert await balance(conn, "alice", Bucket.HELD, "EUR", as_of_seq=2) == 0
    assert await balance(conn, "alice", Bucket.HELD, "EUR", as_of_seq=3) == 30


async def test_balance_now_comes_from_the_cache_and_matches_the_latest_seq(conn):
    await write(conn, [deposit(1, 100), hold(2, 30)])
    assert await balance(conn, "alice", Bucket.AVAILABLE, "EUR") == 70
    assert await balance(conn, "alice", Bucket.AVAILABLE, "EUR", as_of_seq=2) == 70


async def test_an_unknown_account_has_a_zero_balance(conn):
    assert await balance(conn, "nobody", Bucket.AVAILABLE, "EUR") == 0
    assert await balance(conn, "nobody", Bucket.AVAILABLE, "EUR", as_of_seq=10) == 0
    assert await balances_of(conn, "nobody") == {}


async def test_a_statement_pages_through_entries_by_cursor(conn):
    await write(conn, [deposit(s, 10 * s) for s in range(1, 8)] + [deposit(8, 1, to=BOB)])
    first = await statement(conn, "alice", "EUR", after=None, limit=3)
    second = await statement(conn, "alice", "EUR", after=first.next_after, limit=3)
    third = await statement(conn, "alice", "EUR", after=second.next_after, limit=3)
    assert [line.seq for line in first.lines] == [1, 2, 3]
    assert [line.seq for line in second.lines] == [4, 5, 6]
    assert [line.seq for line in third.lines] == [7]
    assert (first.next_after, second.next_after, third.next_after) == ((3, 0), (6, 0), None)
    assert first.lines[1].changes == {Bucket.AVAILABLE: 20}


async def test_a_statement_shows_each_entry_once_with_its_net_change_per_bucket(conn):
    fill = Entry(
        3, 1, EntryKind.FILL, 3,
        (Leg(ALICE_HELD, BOB, "EUR", 40), Leg(ALICE_HELD, AccountRef(VENUE, Bucket.FEES), "EUR", 2)),
        order_id=9, trade_id=4,
    )
    await write(conn, [deposit(1, 100), hold(3, 50), fill])
    page = await statement(conn, "alice", "EUR", after=(1, 0), limit=10)
    assert [(line.seq, line.index, line.kind) for line in page.lines] == [(3, 0, EntryKind.HOLD), (3, 1, EntryKind.FILL)]
    assert page.lines[0].changes == {Bucket.AVAILABLE: -50, Bucket.HELD: 50}
    assert page.lines[1].changes == {Bucket.HELD: -42}
    assert (page.lines[1].order_id, page.lines[1].trade_id) == (9, 4)
    assert page.next_after is None


async def test_a_statement_page_never_splits_an_entry_touching_both_buckets(conn):
    await write(conn, [deposit(1, 100)] + [hold(2, 1, index=i) for i in range(5)])
    seen: list[tuple[int, int]] = []
    after = None
    for _ in range(10):
        page = await statement(conn, "alice", "EUR", after=after, limit=2)
        seen.extend((line.seq, line.index) for line in page.lines)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [(1, 0), *((2, i) for i in range(5))]


async def test_the_trial_balance_is_zero_for_every_asset(conn):
    await write(conn, [deposit(1, 100), hold(2, 30), Entry(3, 0, EntryKind.ISSUANCE, 3, (
        Leg(AccountRef(VENUE, Bucket.ISSUANCE), BOB, "ACME", 1_000),))])
    assert await trial_balance(conn) == {"ACME": 0, "EUR": 0}


async def test_reconcile_finds_a_tampered_balance(conn):
    await write(conn, [deposit(1, 100), hold(2, 30)])
    assert await reconcile_balances(conn) == []
    await conn.execute(
        "UPDATE ledger_balances SET balance = balance + 1 WHERE account_id = "
        "(SELECT id FROM ledger_accounts WHERE owner = 'alice' AND bucket = 'held')"
    )
    assert await reconcile_balances(conn) == [BalanceMismatch(ALICE_HELD, "EUR", 31, 30, 2, 2)]
    assert await trial_balance(conn) == {"EUR": 1}


async def test_reconcile_finds_a_tampered_last_seq(conn):
    await write(conn, [deposit(1, 100)])
    await conn.execute("UPDATE ledger_balances SET last_seq = 7 WHERE balance = 100")
    assert await reconcile_balances(conn) == [BalanceMismatch(ALICE, "EUR", 100, 100, 7, 1)]


async def test_negative_participant_balances_are_reported_if_the_guard_was_bypassed(conn):
    await write(conn, [deposit(1, 100)])
    # Only the table owner can do this; the check exists to catch exactly such a bypass.
    await conn.execute("ALTER TABLE ledger_balances DISABLE TRIGGER ledger_balances_non_negative")
    await conn.execute("UPDATE ledger_balances SET balance = -5 WHERE balance = 100")
    assert await negative_participant_balances(conn) == [AccountBalance(ALICE, "EUR", -5)]


async def test_a_sound_ledger_has_no_negative_participant_balance(conn):
    await write(conn, [deposit(1, 100), hold(2, 100)])
    assert await negative_participant_balances(conn) == []


OWNERS = ("alice", "bob", "carol")
ASSETS = ("EUR", "ACME")
movements = st.lists(
    st.tuples(st.sampled_from(OWNERS), st.sampled_from(OWNERS), st.sampled_from(ASSETS), st.integers(1, 50)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(movements, min_size=1, max_size=4))
async def test_any_accepted_history_reconciles_and_balances(conn, batches):
    """Deposits and transfers between participants in random batches, some overdrawing (and so rejected):
    the kept ledger always reconciles, balances to zero and matches a model of the accepted batches."""
    start = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM ledger_entries")) + 1
    model = await _participant_balances(conn)
    writer = LedgerWriter()
    seqs = itertools.count(start)
    for batch in batches:
        entries = []
        for source, target, asset, amount in batch:
            seq = next(seqs)
            if source == target:
                leg = Leg(EXTERNAL, AccountRef(target, Bucket.AVAILABLE), asset, amount)
            else:
                leg = Leg(AccountRef(source, Bucket.AVAILABLE), AccountRef(target, Bucket.AVAILABLE), asset, amount)
            entries.append(Entry(seq, 0, EntryKind.CORRECTION, seq, (leg,)))
        proposed = dict(model)
        for e in entries:
            for (account, asset), change in e.net_by_account().items():
                if account.is_participant:
                    proposed[(account.owner, asset)] = proposed.get((account.owner, asset), 0) + change
        try:
            async with conn.transaction():
                await writer.write(conn, entries)
            model = proposed
        except LedgerRejected:
            writer.reset()
            assert min(proposed.values()) < 0
    stored = await _participant_balances(conn)
    assert {k: v for k, v in stored.items() if v} == {k: v for k, v in model.items() if v}
    assert set((await trial_balance(conn)).values()) <= {0}
    assert await reconcile_balances(conn) == []


async def _participant_balances(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch(
        "SELECT a.owner, a.asset, b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id "
        "WHERE a.bucket = 'available'"
    )
    return {(row["owner"], row["asset"]): row["balance"] for row in rows}
