"""`exchange verify` and `exchange replay` on the command line: reports, chain head, exit codes, order books."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from api.cli import app
from exchange.events import Trade
from ledger.postgres import create_database, drop_database
from tests.conftest import _RUN_TAG, _test_numbers
from tests.ledger.replay_history import SYMBOL, History, history_database


@pytest.fixture(scope="module")
async def stored(database_server_url: str, migrated_template: str) -> AsyncIterator[tuple[str, History]]:
    async with history_database(database_server_url, migrated_template) as found:
        yield found


@pytest.fixture
def history(stored: tuple[str, History]) -> History:
    return stored[1]


@pytest.fixture
def dsn(stored: tuple[str, History]) -> str:
    return stored[0]


async def exchange(dsn: str, *arguments: str) -> Result:
    """Run `exchange ARGUMENTS` against the database `dsn` (in a thread: the command runs its own event loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(arguments), env={"DATABASE_URL": dsn})


@asynccontextmanager
async def committed_edit(dsn: str, edit: str, undo: str, *args: object) -> AsyncIterator[None]:
    """An edit committed with triggers off (so a separate process sees it), undone the same way afterwards."""

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    await run(edit)
    try:
        yield
    finally:
        await run(undo)


async def journal_head(dsn: str) -> tuple[int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
    finally:
        await conn.close()
    return row["seq"], bytes(row["hash"]).hex()


async def test_verify_prints_the_chain_head_and_exits_0(dsn):
    result = await exchange(dsn, "verify")
    seq, digest = await journal_head(dsn)
    assert result.exit_code == 0, result.output
    assert f"chain head: seq {seq} hash {digest}" in result.stdout
    assert result.stdout.strip().endswith("OK")


async def test_verify_exits_1_naming_the_broken_record(dsn):
    edit, undo = (f"UPDATE journal SET sender = '{who}' WHERE seq = 4" for who in ("mallory", "test"))
    async with committed_edit(dsn, edit, undo):
        result = await exchange(dsn, "verify")
    assert result.exit_code == 1
    assert "BROKEN at seq 4" in result.stdout


async def test_verify_json_is_the_report(dsn):
    result = await exchange(dsn, "verify", "--json")
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["head"] == dict(zip(("seq", "hash"), await journal_head(dsn), strict=True))


async def test_verify_against_a_different_published_head_exits_1(dsn):
    seq, _ = await journal_head(dsn)
    result = await exchange(dsn, "verify", "--expect-head", f"{seq}:{'0' * 64}")
    assert result.exit_code == 1
    assert "published" in result.stdout


async def test_verify_refuses_a_malformed_published_head(dsn):
    result = await exchange(dsn, "verify", "--expect-head", "12:xyz")
    assert result.exit_code == 2


async def test_replay_says_identical_and_exits_0(dsn, history):
    result = await exchange(dsn, "replay")
    assert result.exit_code == 0, result.output
    assert f"replayed {history.last_seq} records" in result.stdout
    assert result.stdout.strip().endswith("identical")


async def test_replay_exits_1_at_the_first_divergence(dsn, history):
    trade = history.first_trade()
    async with committed_edit(
        dsn,
        "UPDATE trades SET price = price + 1 WHERE trade_id = $1",
        "UPDATE trades SET price = price - 1 WHERE trade_id = $1",
        trade.trade_id,
    ):
        result = await exchange(dsn, "replay")
    assert result.exit_code == 1
    assert f"DIVERGENCE at seq {trade.seq} in trades" in result.stdout
    assert f"price: expected {trade.price}, stored {trade.price + 1}" in result.stdout


async def test_replay_json_to_a_seq(dsn):
    result = await exchange(dsn, "replay", "--to-seq", "5", "--json")
    document = json.loads(result.stdout)
    assert (document["identical"], document["to_seq"], document["records"]) == (True, 5, 5)


async def test_replay_prints_a_book_at_a_seq(dsn, history):
    before = history.seqs_with(Trade)[0] - 1
    result = await exchange(dsn, "replay", "--book", SYMBOL, "--at-seq", str(before), "--json")
    assert result.exit_code == 0, result.output
    book = json.loads(result.stdout)
    assert book["seq"] == before
    assert [(level["price"], level["quantity"]) for level in book["asks"]] == [("10", "100"), ("10.1", "50")]


async def test_replay_prints_a_book_at_a_time_as_a_table(dsn, history):
    result = await exchange(dsn, "replay", "--book", SYMBOL, "--at-time", "2100-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert f"after seq {history.last_seq}" in result.stdout
    assert "bid" in result.stdout


async def test_replay_of_an_unknown_book_exits_2(dsn):
    assert (await exchange(dsn, "replay", "--book", "NOPE")).exit_code == 2


async def test_a_book_time_without_its_offset_is_refused(dsn):
    assert (await exchange(dsn, "replay", "--book", SYMBOL, "--at-time", "2026-01-01T00:00:00")).exit_code == 2


async def test_a_book_position_without_a_book_is_refused(dsn):
    assert (await exchange(dsn, "replay", "--at-seq", "3")).exit_code == 2


async def test_an_unmigrated_database_asks_for_migrate(database_server_url):
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    url = await create_database(database_server_url, name)
    try:
        result = await exchange(url, "verify")
    finally:
        await drop_database(database_server_url, name)
    assert result.exit_code == 2
    assert "exchange migrate" in result.output
