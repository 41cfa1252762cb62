"""Verify recomputes the journal's hash chain and names the first broken link; the head it reports can be published."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from exchange.events import Trade
from ledger.journal import GENESIS, chain_hash
from ledger.replay import replay
from ledger.verify import verify
from tests.ledger.replay_history import History, Insider, build_history, history_database, running_sequencer, trade_some


@pytest.fixture(scope="module")
async def stored(database_server_url: str, migrated_template: str) -> AsyncIterator[tuple[str, History]]:
    async with history_database(database_server_url, migrated_template) as found:
        yield found


@pytest.fixture
def history(stored: tuple[str, History]) -> History:
    return stored[1]


@pytest.fixture
async def insider(stored: tuple[str, History]) -> AsyncIterator[Insider]:
    insider = await Insider.start(stored[0])
    yield insider
    await insider.undo()


@pytest.fixture
async def own_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def head_of(insider: Insider) -> tuple[int, bytes]:
    row = await insider.conn.fetchrow("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
    return row["seq"], bytes(row["hash"])


async def test_an_untouched_history_verifies(insider, history):
    report = await verify(insider.pool)
    assert report.ok, report.problems
    assert report.chain_break is None
    assert report.records == history.last_seq


async def test_the_reported_head_is_the_last_records_seq_and_hash(insider, history):
    report = await verify(insider.pool)
    seq, digest = await head_of(insider)
    assert (report.head_seq, report.head_hash) == (history.last_seq, digest.hex())
    assert seq == history.last_seq


async def test_the_chain_can_be_recomputed_from_the_stored_records_alone(insider):
    rows = await insider.conn.fetch("SELECT seq, ts_us, sender, command, hash FROM journal ORDER BY seq")
    running = GENESIS
    for row in rows:
        record = b"[%d,%d,\"%s\",%s]" % (row["seq"], row["ts_us"], row["sender"].encode(), row["command"].encode())
        running = hashlib.sha256(running + record).digest()
        assert running == bytes(row["hash"])
    assert (await verify(insider.pool)).head_hash == running.hex()


async def test_a_changed_journal_command_breaks_the_chain_at_its_seq(insider, history):
    seq = history.seqs_with(Trade)[0]
    await insider.execute("UPDATE journal SET command = replace(command, ',120,', ',110,') WHERE seq = $1", seq)
    report = await verify(insider.pool)
    assert not report.ok
    assert report.chain_break is not None and report.chain_break.seq == seq
    assert "changed" in report.chain_break.problem


async def test_a_changed_timestamp_breaks_the_chain_at_its_seq(insider):
    await insider.execute("UPDATE journal SET ts_us = ts_us - 1 WHERE seq = 5")
    report = await verify(insider.pool)
    assert report.chain_break is not None and report.chain_break.seq == 5


async def test_a_record_whose_hash_was_recomputed_breaks_the_next_link(insider):
    row = await insider.conn.fetchrow("SELECT * FROM journal WHERE seq = 5")
    forged = chain_hash(bytes(row["prev_hash"]), 5, row["ts_us"], "mallory", row["command"].encode())
    await insider.execute("UPDATE journal SET sender = 'mallory', hash = $1 WHERE seq = 5", forged)
    report = await verify(insider.pool)
    assert report.chain_break is not None and report.chain_break.seq == 6
    assert "prev_hash" in report.chain_break.problem


async def test_a_non_ascii_command_is_reported_at_its_seq(insider):
    await insider.execute("UPDATE journal SET command = replace(command, 'alice', 'alicé') WHERE seq = 2")
    report = await verify(insider.pool)
    assert report.chain_break is not None and report.chain_break.seq == 2
    assert report.head_seq > 2
    divergence = (await replay(insider.pool)).divergence
    assert divergence is not None and (divergence.seq, divergence.table) == (2, "journal")


async def test_a_deleted_journal_record_is_reported_as_a_gap_at_its_seq(insider):
    await insider.execute("DELETE FROM journal WHERE seq = 7")
    report = await verify(insider.pool)
    assert report.chain_break is not None
    assert report.chain_break.seq == 7
    assert "missing" in report.chain_break.problem


async def test_a_deleted_first_record_is_reported_as_a_gap_at_seq_one(insider):
    await insider.execute("DELETE FROM journal WHERE seq = 1")
    report = await verify(insider.pool)
    assert report.chain_break is not None and report.chain_break.seq == 1


async def test_a_cut_off_journal_tail_leaves_rows_after_the_head(insider, history):
    await insider.execute("DELETE FROM journal WHERE seq = $1", history.last_seq)
    report = await verify(insider.pool)
    assert report.chain_break is None
    assert report.head_seq == history.last_seq - 1
    assert report.beyond_head == {"events": 1, "ledger_entries": 1}
    assert not report.ok


async def test_a_rewritten_history_that_still_chains_fails_against_the_published_head(insider):
    published = await head_of(insider)
    # The insider raises alice's deposit and recomputes every later hash, so that the chain is self-consistent again.
    rows = await insider.conn.fetch("SELECT seq, ts_us, sender, command FROM journal ORDER BY seq")
    running = GENESIS
    for row in rows:
        command = row["command"].replace('"alice","EUR",10000000', '"alice","EUR",90000000')
        digest = chain_hash(running, row["seq"], row["ts_us"], row["sender"], command.encode())
        await insider.execute(
            "UPDATE journal SET command = $2, prev_hash = $3, hash = $4 WHERE seq = $1", row["seq"], command, running,
            digest,
        )
        running = digest
    report = await verify(insider.pool, expected_head=published)
    assert report.chain_break is None
    assert report.head_problem is not None and "published" in report.head_problem
    assert not report.ok
    assert await insider.conn.fetchval("SELECT count(*) FROM journal WHERE command LIKE '%90000000%'") == 1
    assert (await verify(insider.pool)).chain_break is None  # without the published head it would pass the chain


async def test_a_published_head_after_the_journals_end_is_reported(insider):
    seq, digest = await head_of(insider)
    report = await verify(insider.pool, expected_head=(seq + 1, digest))
    assert report.head_problem is not None and "not in the journal" in report.head_problem


async def test_the_published_head_passes_while_history_grows(own_pool):
    await build_history(own_pool, rounds=1)
    published = (await verify(own_pool)).head_seq, bytes.fromhex((await verify(own_pool)).head_hash)
    async with running_sequencer(own_pool) as sequencer:
        await trade_some(sequencer, History())
    report = await verify(own_pool, expected_head=published)
    assert report.ok, report.problems
    assert report.head_seq > published[0]


async def test_the_chain_links_across_batches_and_restarts(own_pool):
    first = await build_history(own_pool, rounds=1, batch_max=3)
    async with running_sequencer(own_pool, batch_max=2) as sequencer:
        assert sequencer.last_seq == first.last_seq
        later = History()
        await trade_some(sequencer, later)
    async with own_pool.acquire() as conn:
        before, after = await conn.fetch(
            "SELECT seq, prev_hash, hash FROM journal WHERE seq IN ($1, $2) ORDER BY seq",
            first.last_seq,
            first.last_seq + 1,
        )
        batches = await conn.fetchval("SELECT count(*) FROM ledger_entry_batches")
    assert bytes(after["prev_hash"]) == bytes(before["hash"])
    assert batches > 2
    report = await verify(own_pool)
    assert report.ok, report.problems
    assert report.head_seq == later.last_seq


async def test_an_empty_journal_verifies_with_an_empty_head(own_pool):
    report = await verify(own_pool)
    assert report.ok
    assert (report.records, report.head_seq, report.head_hash) == (0, 0, "")
