"""LedgerWriter: writes entries, legs and balances in the caller's transaction, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, InvalidEntry, Leg
from ledger.queries import balance, balances_of, reconcile_balances, trial_balance
from ledger.writer import LedgerRejected, LedgerWriteError, LedgerWriter

EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)
ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)
FEES = AccountRef(VENUE, Bucket.FEES)
TS = 1_764_374_400_000_000  # 2025-11-29T00:00:00Z


def available(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.AVAILABLE)


def held(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.HELD)


def entry(seq: int, kind: EntryKind, *legs: Leg, index: int = 0, order_id: int | None = None) -> Entry:
    return Entry(seq, index, kind, TS + seq, legs, order_id=order_id)


def funding() -> list[Entry]:
    """Alice deposits 10,000 EUR; ACME issues 500 shares to bob."""
    return [
        entry(1, EntryKind.DEPOSIT, Leg(EXTERNAL, available("alice"), "EUR", 10_000)),
        entry(2, EntryKind.ISSUANCE, Leg(ISSUANCE, available("bob"), "ACME", 500)),
    ]


def trade() -> list[Entry]:
    """Alice buys 10 ACME from bob at 95 (limit 100, fee 3 each side)."""
    return [
        entry(3, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", 1_003), order_id=1),
        entry(4, EntryKind.HOLD, Leg(available("bob"), held("bob"), "ACME", 10), order_id=2),
        entry(
            5,
            EntryKind.FILL,
            Leg(held("bob"), available("alice"), "ACME", 10),
            Leg(held("alice"), available("bob"), "EUR", 950),
            Leg(held("alice"), FEES, "EUR", 3),
            Leg(available("bob"), FEES, "EUR", 3),
            order_id=2,
        ),
        entry(5, EntryKind.RELEASE, Leg(held("alice"), available("alice"), "EUR", 50), index=1, order_id=1),
    ]


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    yield connection
    await connection.close()


async def write(conn: asyncpg.Connection, writer: LedgerWriter, entries: list[Entry]):
    async with conn.transaction():
        return await writer.write(conn, entries)


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return tuple(
        await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ledger_accounts), (SELECT count(*) FROM ledger_entries), "
            "(SELECT count(*) FROM ledger_legs)"
        )
    )


async def all_balances(conn: asyncpg.Connection) -> list[tuple[int, int, int | None]]:
    return [tuple(r) for r in await conn.fetch("SELECT account_id, balance, last_seq FROM ledger_balances ORDER BY 1")]


async def test_a_batch_lands_as_entries_legs_and_balances(conn):
    result = await write(conn, LedgerWriter(), funding() + trade())
    assert (result.entries, result.legs, result.skipped) == (6, 9, 0)
    assert result.high_water == (5, 1)
    assert await balances_of(conn, "alice") == {
        ("EUR", Bucket.AVAILABLE): 10_000 - 1_003 + 50,
        ("EUR", Bucket.HELD): 0,
        ("ACME", Bucket.AVAILABLE): 10,
    }
    assert await balances_of(conn, "bob") == {
        ("ACME", Bucket.AVAILABLE): 490,
        ("ACME", Bucket.HELD): 0,
        ("EUR", Bucket.AVAILABLE): 947,
    }
    assert await balance(conn, VENUE, Bucket.FEES, "EUR") == 6
    assert await trial_balance(conn) == {"ACME": 0, "EUR": 0}
    assert await reconcile_balances(conn) == []


async def test_entries_keep_their_kind_time_and_order(conn):
    await write(conn, LedgerWriter(), funding() + trade())
    row = await conn.fetchrow(
        "SELECT kind, extract(epoch FROM ts) * 1000000 AS us, order_id FROM ledger_entries WHERE seq = 5 AND idx = 1"
    )
    assert (row["kind"], int(row["us"]), row["order_id"]) == ("release", TS + 5, 1)


async def test_a_balance_records_the_last_seq_that_moved_it(conn):
    await write(conn, LedgerWriter(), funding() + trade())
    last_seqs = {
        (row["owner"], row["bucket"], row["asset"]): row["last_seq"]
        for row in await conn.fetch(
            "SELECT a.owner, a.bucket, a.asset, b.last_seq FROM ledger_balances b "
            "JOIN ledger_accounts a ON a.id = b.account_id"
        )
    }
    assert last_seqs[("bob", "available", "ACME")] == 4  # the hold; the fill took from bob's held
    assert last_seqs[("bob", "held", "ACME")] == 5
    assert last_seqs[("@venue", "external", "EUR")] == 1


async def test_accounts_are_created_once_and_then_known(conn):
    writer = LedgerWriter()
    first = await write(conn, writer, funding())
    second = await write(conn, writer, trade())
    assert first.accounts_created == 4
    assert second.accounts_created == 5  # alice held, bob held, alice ACME, bob EUR, fees
    assert (await counts(conn))[0] == 9


async def test_legs_naming_new_accounts_keep_their_place_among_legs_of_known_ones(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding())
    batch = [
        entry(3, EntryKind.DEPOSIT, Leg(EXTERNAL, available("alice"), "EUR", 5)),
        entry(4, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", 100), order_id=1),
        entry(
            5,
            EntryKind.DEPOSIT,
            Leg(EXTERNAL, available("alice"), "EUR", 7),
            Leg(ISSUANCE, available("carol"), "ACME", 2),
            Leg(EXTERNAL, available("bob"), "EUR", 1),
        ),
    ]
    result = await write(conn, writer, batch)
    assert (result.legs, result.accounts_created) == (5, 3)  # alice held EUR, carol ACME, bob EUR are new
    stored = await conn.fetch(
        "SELECT l.seq, l.leg, d.owner || ' ' || d.bucket AS debit, c.owner || ' ' || c.bucket AS credit, l.amount "
        "FROM ledger_legs l JOIN ledger_accounts d ON d.id = l.debit_account_id "
        "JOIN ledger_accounts c ON c.id = l.credit_account_id WHERE l.seq >= 3 ORDER BY l.seq, l.idx, l.leg"
    )
    assert [tuple(row) for row in stored] == [
        (3, 0, "@venue external", "alice available", 5),
        (4, 0, "alice available", "alice held", 100),
        (5, 0, "@venue external", "alice available", 7),
        (5, 1, "@venue issuance", "carol available", 2),
        (5, 2, "@venue external", "bob available", 1),
    ]
    assert await reconcile_balances(conn) == []


async def test_writing_the_same_batch_twice_changes_nothing(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding() + trade())
    before = (await counts(conn), await all_balances(conn))
    again = await write(conn, writer, funding() + trade())
    assert (again.entries, again.skipped) == (0, 6)
    assert (await counts(conn), await all_balances(conn)) == before


async def test_a_new_writer_learns_what_is_stored_and_skips_it(conn):
    await write(conn, LedgerWriter(), funding() + trade())
    before = (await counts(conn), await all_balances(conn))
    again = await write(conn, LedgerWriter(), funding() + trade())
    assert again.skipped == 6
    assert (await counts(conn), await all_balances(conn)) == before


async def test_a_batch_overlapping_what_is_stored_writes_only_the_new_entries(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding() + trade()[:2])
    result = await write(conn, writer, funding() + trade())
    assert (result.entries, result.skipped) == (2, 4)
    assert await reconcile_balances(conn) == []
    assert await balance(conn, "alice", Bucket.HELD, "EUR") == 0


async def test_a_negative_participant_balance_rejects_the_whole_batch(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding())
    before = (await counts(conn), await all_balances(conn))
    overdraw = [
        entry(3, EntryKind.HOLD, Leg(available("bob"), held("bob"), "ACME", 10)),
        entry(4, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", 10_001)),
    ]
    with pytest.raises(LedgerRejected) as rejected:
        await write(conn, writer, overdraw)
    assert (rejected.value.account, rejected.value.asset, rejected.value.balance) == (available("alice"), "EUR", -1)
    writer.reset()
    assert (await counts(conn), await all_balances(conn)) == before


async def test_after_a_rejection_and_reset_the_writer_carries_on(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding())
    with pytest.raises(LedgerRejected):
        await write(conn, writer, [entry(3, EntryKind.WITHDRAWAL, Leg(available("alice"), EXTERNAL, "EUR", 20_000))])
    writer.reset()
    result = await write(conn, writer, trade())
    assert (result.entries, result.skipped, result.accounts_created) == (4, 0, 5)
    assert await reconcile_balances(conn) == []


async def test_a_reset_forgets_accounts_created_by_a_rolled_back_batch(conn):
    writer = LedgerWriter()
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await writer.write(conn, funding())
            raise RuntimeError("the journal insert failed")
    writer.reset()
    result = await write(conn, writer, funding())
    assert (result.entries, result.accounts_created) == (2, 4)


async def test_a_venue_balance_may_go_negative(conn):
    await write(conn, LedgerWriter(), funding())
    assert await balance(conn, VENUE, Bucket.EXTERNAL, "EUR") == -10_000
    assert await balance(conn, VENUE, Bucket.ISSUANCE, "ACME") == -500


async def test_entries_out_of_order_are_refused_before_touching_the_database(conn):
    with pytest.raises(InvalidEntry, match="order"):
        await write(conn, LedgerWriter(), [funding()[1], funding()[0], *trade()])
    assert await counts(conn) == (0, 0, 0)


async def test_the_same_key_twice_in_one_batch_is_refused(conn):
    with pytest.raises(InvalidEntry):
        await write(conn, LedgerWriter(), [funding()[0], funding()[0]])


async def test_writing_outside_a_transaction_is_refused(conn):
    with pytest.raises(LedgerWriteError, match="transaction"):
        await LedgerWriter().write(conn, funding())
    assert await counts(conn) == (0, 0, 0)


async def test_an_empty_batch_writes_nothing(conn):
    result = await write(conn, LedgerWriter(), [])
    assert (result.entries, result.legs, result.high_water) == (0, 0, None)
    assert await counts(conn) == (0, 0, 0)


def round_trips(first_seq: int, count: int, amount: int) -> list[Entry]:
    """`count` holds and releases of `amount` EUR by alice, two entries per seq."""
    entries = []
    for seq in range(first_seq, first_seq + count):
        entries.append(entry(seq, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", amount)))
        entries.append(
            entry(seq, EntryKind.RELEASE, Leg(held("alice"), available("alice"), "EUR", amount), index=1)
        )
    return entries


async def test_a_big_batch_lands_like_small_ones(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding())
    big = round_trips(3, 700, 10) + [entry(703, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", 7))]
    result = await write(conn, writer, big)
    assert (result.entries, result.legs) == (1_401, 1_401)
    assert await balances_of(conn, "alice") == {("EUR", Bucket.AVAILABLE): 9_993, ("EUR", Bucket.HELD): 7}
    assert await reconcile_balances(conn) == []


async def test_a_big_batch_overdrawing_is_rejected_whole(conn):
    writer = LedgerWriter()
    await write(conn, writer, funding())
    before = (await counts(conn), await all_balances(conn))
    big = round_trips(3, 700, 10) + [entry(703, EntryKind.HOLD, Leg(available("alice"), held("alice"), "EUR", 10_001))]
    with pytest.raises(LedgerRejected) as rejected:
        await write(conn, writer, big)
    assert (rejected.value.account, rejected.value.balance) == (available("alice"), -1)
    writer.reset()
    assert (await counts(conn), await all_balances(conn)) == before
