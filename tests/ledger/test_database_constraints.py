"""The database itself refuses bad ledger data, whoever sends it: raw SQL bypassing the Python writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command

from ledger.migrate import alembic_config

LEDGER_TABLES = ("ledger_accounts", "ledger_entries", "ledger_legs", "ledger_entry_batches")


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh ledger holding one deposit of 100 EUR to alice (seq 1); the database itself moved
    the balances when the leg went in."""
    connection = await asyncpg.connect(pg_dsn)
    await connection.execute(
        """
        INSERT INTO ledger_accounts (id, owner, bucket, asset) VALUES
            (1, 'alice', 'available', 'EUR'), (2, 'alice', 'held', 'EUR'),
            (3, '@venue', 'external', 'EUR'), (4, 'alice', 'available', 'ACME');
        SELECT setval('ledger_accounts_id_seq', 4);
        BEGIN;
        INSERT INTO ledger_entries VALUES (1, 0, 'deposit', now(), NULL, NULL);
        INSERT INTO ledger_legs VALUES (1, 0, 0, 3, 1, 'EUR', 100);
        COMMIT;
        """
    )
    yield connection
    await connection.close()


async def commit(conn: asyncpg.Connection, sql: str) -> None:
    """Run `sql` in its own transaction (so that deferred checks run at its commit)."""
    async with conn.transaction():
        await conn.execute(sql)


async def test_a_leg_between_accounts_of_another_asset_is_rejected(conn):
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not hold it"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 4, 'EUR', 10)")


async def test_a_leg_naming_an_unknown_account_is_rejected(conn):
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 999, 'EUR', 10)")


async def test_a_leg_of_an_asset_neither_account_holds_is_rejected(conn):
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'USD', 10)")


@pytest.mark.parametrize("amount", [0, -10])
async def test_a_leg_amount_must_be_positive(conn, amount):
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_legs_amount_positive"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           f"INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', {amount})")


async def test_a_leg_cannot_debit_and_credit_the_same_account(conn):
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_legs_two_accounts"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 1, 'EUR', 10)")


async def test_a_leg_without_its_entry_is_rejected(conn):
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="belongs to no entry"):
        await commit(conn, "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', 10)")


async def test_an_entry_without_legs_is_rejected_at_commit(conn):
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match=r"entry \(2, 0\) has no legs"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now())")
    assert await conn.fetchval("SELECT count(*) FROM ledger_entries") == 1


async def test_an_entry_without_legs_is_rejected_even_beside_entries_with_legs(conn):
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match=r"entry \(2, 1\) has no legs"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()), (2, 1, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', 10)")


async def test_an_entry_of_an_unknown_kind_is_rejected(conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'gift', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', 10)")


async def test_a_participant_cannot_own_a_venue_bucket_nor_the_venue_a_participant_bucket(conn):
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_accounts_venue_bucket_check"):
        await conn.execute("INSERT INTO ledger_accounts (owner, bucket, asset) VALUES ('alice', 'fees', 'EUR')")
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_accounts_venue_bucket_check"):
        await conn.execute("INSERT INTO ledger_accounts (owner, bucket, asset) VALUES ('@venue', 'held', 'EUR')")
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_accounts_bucket_check"):
        await conn.execute("INSERT INTO ledger_accounts (owner, bucket, asset) VALUES ('alice', 'savings', 'EUR')")


async def test_every_account_is_born_with_a_zero_balance_row(conn):
    account_id = await conn.fetchval(
        "INSERT INTO ledger_accounts (owner, bucket, asset) VALUES ('bob', 'held', 'ACME') RETURNING id"
    )
    row = await conn.fetchrow("SELECT asset, balance, last_seq FROM ledger_balances WHERE account_id = $1", account_id)
    assert tuple(row) == ("ACME", 0, None)


async def test_a_negative_participant_balance_is_rejected(conn):
    with pytest.raises(asyncpg.CheckViolationError, match="alice available EUR would be -1"):
        await conn.execute("UPDATE ledger_balances SET balance = -1 WHERE account_id = 1")


async def balances(conn: asyncpg.Connection) -> dict[int, tuple[int, int | None]]:
    return {r["account_id"]: (r["balance"], r["last_seq"]) for r in await conn.fetch("SELECT * FROM ledger_balances")}


async def test_inserting_legs_moves_the_balances_by_their_sum(conn):
    assert await balances(conn) == {1: (100, 1), 2: (0, None), 3: (-100, 1), 4: (0, None)}
    await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()), (2, 1, 'hold', now()); "
                       "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', 30), (2, 1, 0, 1, 2, 'EUR', 5), "
                       "(2, 1, 1, 2, 1, 'EUR', 1)")
    assert await balances(conn) == {1: (66, 2), 2: (34, 2), 3: (-100, 1), 4: (0, None)}
    reconciled = await conn.fetch(
        "SELECT b.account_id FROM ledger_balances b WHERE b.balance <> "
        "coalesce((SELECT sum(amount) FROM ledger_legs WHERE credit_account_id = b.account_id), 0) "
        "- coalesce((SELECT sum(amount) FROM ledger_legs WHERE debit_account_id = b.account_id), 0)"
    )
    assert reconciled == []


async def test_a_leg_of_an_older_seq_keeps_the_latest_seq_of_the_balance(conn):
    await commit(conn, "INSERT INTO ledger_entries VALUES (5, 0, 'hold', now()); "
                       "INSERT INTO ledger_legs VALUES (5, 0, 0, 1, 2, 'EUR', 10)")
    await commit(conn, "INSERT INTO ledger_entries VALUES (4, 0, 'hold', now()); "
                       "INSERT INTO ledger_legs VALUES (4, 0, 0, 1, 2, 'EUR', 10)")
    assert (await balances(conn))[1] == (80, 5)


async def test_legs_overdrawing_a_participant_are_rejected_and_move_nothing(conn):
    with pytest.raises(asyncpg.CheckViolationError, match="alice available EUR would be -1"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2, 0, 0, 1, 2, 'EUR', 101)")
    assert await balances(conn) == {1: (100, 1), 2: (0, None), 3: (-100, 1), 4: (0, None)}
    assert await conn.fetchval("SELECT count(*) FROM ledger_legs") == 1


def alternating_legs(first: int, last: int) -> str:
    """Entries first..last, each with one leg of 1 EUR, alternately from alice's available to held and back."""
    return (f"INSERT INTO ledger_entries SELECT s, 0, 'hold', now() FROM generate_series({first}, {last}) s; "
            "INSERT INTO ledger_legs SELECT s, 0, 0, CASE WHEN s % 2 = 0 THEN 1 ELSE 2 END, "
            f"CASE WHEN s % 2 = 0 THEN 2 ELSE 1 END, 'EUR', 1 FROM generate_series({first}, {last}) s")


async def test_the_balance_trigger_moves_and_checks_small_and_bulk_statements_alike(conn):
    # Up to 1,000 legs the trigger runs plans kept for the session, above it plans for the statement (migration
    # 0008): both must move the balances and refuse bad legs, in either order within one session.
    await commit(conn, alternating_legs(2, 2001))
    assert await balances(conn) == {1: (100, 2001), 2: (0, 2001), 3: (-100, 1), 4: (0, None)}
    await commit(conn, "INSERT INTO ledger_entries VALUES (2002, 0, 'hold', now()); "
                       "INSERT INTO ledger_legs VALUES (2002, 0, 0, 1, 2, 'EUR', 10)")
    assert await balances(conn) == {1: (90, 2002), 2: (10, 2002), 3: (-100, 1), 4: (0, None)}
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not hold it"):
        await commit(conn, "INSERT INTO ledger_entries VALUES (2003, 0, 'hold', now()); "
                           "INSERT INTO ledger_legs VALUES (2003, 0, 0, 1, 4, 'EUR', 10)")
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="belongs to no entry"):
        await commit(conn, "INSERT INTO ledger_legs VALUES (2004, 0, 0, 1, 2, 'EUR', 10)")
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not hold it"):
        await commit(conn, alternating_legs(3000, 4999) + " UNION ALL VALUES (4999, 0, 1, 1, 4, 'EUR', 1)")
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="belongs to no entry"):
        await commit(conn, alternating_legs(5000, 6999) + " UNION ALL VALUES (7000, 0, 0, 1, 2, 'EUR', 1)")
    assert await balances(conn) == {1: (90, 2002), 2: (10, 2002), 3: (-100, 1), 4: (0, None)}
    await commit(conn, alternating_legs(8000, 8001))
    assert await balances(conn) == {1: (90, 8001), 2: (10, 8001), 3: (-100, 1), 4: (0, None)}


async def test_a_venue_balance_may_be_negative(conn):
    assert await conn.fetchval("SELECT balance FROM ledger_balances WHERE account_id = 3") == -100


async def test_a_balance_row_keeps_its_account_and_asset(conn):
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_balances SET account_id = 2 WHERE account_id = 1")
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_balances SET asset = 'ACME' WHERE account_id = 1")


@pytest.mark.parametrize("table", LEDGER_TABLES)
async def test_ledger_rows_cannot_be_updated(conn, table):
    column = {"ledger_accounts": "owner", "ledger_entry_batches": "entries"}.get(table, "seq")
    with pytest.raises(asyncpg.RestrictViolationError, match=f"{table} is append-only: UPDATE rejected"):
        await conn.execute(f"UPDATE {table} SET {column} = {column}")


@pytest.mark.parametrize("table", [*LEDGER_TABLES, "ledger_balances"])
async def test_ledger_rows_cannot_be_deleted(conn, table):
    with pytest.raises(asyncpg.RestrictViolationError, match=f"{table} is append-only: DELETE rejected"):
        await conn.execute(f"DELETE FROM {table}")


@pytest.mark.parametrize("table", [*LEDGER_TABLES, "ledger_balances"])
async def test_ledger_tables_cannot_be_truncated(conn, table):
    with pytest.raises(asyncpg.RestrictViolationError, match="TRUNCATE rejected"):
        await conn.execute(f"TRUNCATE {table} CASCADE")
    assert await conn.fetchval("SELECT count(*) FROM ledger_legs") == 1


async def test_the_app_role_may_read_and_append_but_only_update_balances(conn):
    privileges = {
        (row["table_name"], row["privilege_type"])
        for row in await conn.fetch(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = 'exchange_app' AND table_name LIKE 'ledger%'"
        )
    }
    assert privileges == {
        *((table, p) for table in LEDGER_TABLES for p in ("SELECT", "INSERT")),
        ("ledger_balances", "SELECT"),
        ("ledger_balances", "INSERT"),
        ("ledger_balances", "UPDATE"),
    }
    assert await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'exchange_app'") is False


async def test_downgrade_removes_the_ledger_and_upgrade_restores_it(db_url, pg_dsn):
    config = alembic_config(db_url)
    await asyncio.to_thread(command.downgrade, config, "0001_foundation")
    connection = await asyncpg.connect(pg_dsn)
    try:
        leftovers = await connection.fetch(
            "SELECT relname FROM pg_class WHERE relname LIKE 'ledger%' "
            "UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE 'ledger%'"
        )
        assert leftovers == []
        await asyncio.to_thread(command.upgrade, config, "head")
        assert await connection.fetchval("SELECT count(*) FROM ledger_balances") == 0
    finally:
        await connection.close()


async def test_downgrade_to_0007_restores_the_trigger_that_plans_every_statement(db_url, pg_dsn):
    config = alembic_config(db_url)
    query = "SELECT proconfig, prosrc LIKE '%IF legs <=%' FROM pg_proc WHERE proname = 'ledger_legs_apply'"
    connection = await asyncpg.connect(pg_dsn)
    try:
        settings, sized = await connection.fetchrow(query)
        assert "enable_hashjoin=off" in settings and sized
        await asyncio.to_thread(command.downgrade, config, "0007_snapshots")
        assert tuple(await connection.fetchrow(query)) == (None, False)
        await asyncio.to_thread(command.upgrade, config, "head")
        settings, sized = await connection.fetchrow(query)
        assert "enable_hashjoin=off" in settings and sized
    finally:
        await connection.close()
