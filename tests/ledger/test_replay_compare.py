"""Replay re-runs the journal through a fresh engine and finds the first stored event, trade or posting that differs.

One history serves the module; each tampering happens inside an `Insider` transaction that is rolled back after the
test, and the replay reads through that same session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from exchange.events import BalanceChanged, OrderCancelled, Trade
from ledger.replay import replay
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
def pool(insider: Insider):
    """Reads through the insider's session, so that its uncommitted edits are what the replay sees."""
    return insider.pool


@pytest.fixture
def tamper(insider: Insider) -> Insider:
    return insider


@pytest.fixture
async def own_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of the test's own, for tests that write history themselves."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_an_untouched_history_replays_identically(pool, history):
    report = await replay(pool)
    assert report.identical, report.divergence
    assert report.records == report.to_seq == history.last_seq


async def test_replay_compares_every_stored_event_trade_entry_and_leg(pool, history):
    report = await replay(pool)
    async with pool.acquire() as conn:
        stored = [
            await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("events", "trades", "ledger_entries", "ledger_legs")
        ]
    assert [report.events, report.trades, report.entries, report.legs] == stored
    assert report.trades > 0 and report.legs > report.entries > 0


async def test_a_changed_trade_price_is_reported_at_the_trades_seq(pool, history, tamper):
    trade = history.first_trade()
    await tamper.execute("UPDATE trades SET price = price + 1 WHERE trade_id = $1", trade.trade_id)
    report = await replay(pool)
    divergence = report.divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (trade.seq, "trades")
    assert [(f.field, f.expected, f.stored) for f in divergence.fields] == [("price", trade.price, trade.price + 1)]


async def test_a_changed_event_body_is_reported_at_the_events_seq(pool, history, tamper):
    seq = history.seqs_with(OrderCancelled)[0]
    await tamper.execute(
        "UPDATE events SET body = replace(body, '\"user\"', '\"operator\"') WHERE seq = $1 AND kind = 'OrderCancelled'",
        seq,
    )
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "events")
    assert [f.field for f in divergence.fields] == ["body"]


async def test_a_deleted_event_is_reported_as_a_stored_row_missing(pool, history, tamper):
    seq = history.seqs_with(Trade)[0]
    await tamper.execute("DELETE FROM events WHERE seq = $1 AND kind = 'Trade'", seq)
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "events")
    assert "not stored" in divergence.message


async def test_a_changed_leg_amount_is_reported_at_the_entrys_seq(pool, history, tamper):
    seq = history.seqs_with(BalanceChanged)[-1]  # the withdrawal
    await tamper.execute("UPDATE ledger_legs SET amount = amount * 2 WHERE seq = $1", seq)
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "ledger_legs")
    assert [(f.field, f.expected, f.stored) for f in divergence.fields] == [("amount", 1_000, 2_000)]


async def test_a_leg_moved_to_another_owners_account_is_reported(pool, history, tamper):
    seq = history.seqs_with(BalanceChanged)[-1]
    await tamper.execute(
        "UPDATE ledger_legs SET debit_account_id = (SELECT id FROM ledger_accounts "
        "WHERE owner = 'carol' AND bucket = 'available' AND asset = 'EUR') WHERE seq = $1",
        seq,
    )
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "ledger_legs")
    assert [(f.field, f.expected, f.stored) for f in divergence.fields] == [("debit_owner", "alice", "carol")]


async def test_a_leg_pointing_at_an_account_of_another_asset_is_reported(pool, history, tamper):
    seq = history.seqs_with(BalanceChanged)[-1]  # alice's EUR withdrawal
    await tamper.execute(
        "UPDATE ledger_legs SET debit_account_id = (SELECT id FROM ledger_accounts "
        "WHERE owner = 'alice' AND bucket = 'available' AND asset = 'COOP') WHERE seq = $1",
        seq,
    )
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "ledger_legs")
    assert [(f.field, f.stored) for f in divergence.fields] == [("asset", "EUR (accounts hold COOP/EUR)")]


async def test_a_changed_entry_kind_is_reported(pool, history, tamper):
    seq = history.seqs_with(Trade)[0]
    await tamper.execute("UPDATE ledger_entries SET kind = 'correction' WHERE seq = $1 AND kind = 'fill'", seq)
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (seq, "ledger_entries")
    assert [f.field for f in divergence.fields] == ["kind"]


async def test_a_changed_order_state_is_reported_at_its_last_change(pool, history, tamper):
    trade = history.first_trade()
    await tamper.execute("UPDATE orders SET status = 'cancelled' WHERE order_id = $1", trade.sell_order_id)
    report = await replay(pool)
    divergence = report.divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (trade.seq, "orders")
    assert [(f.field, f.expected, f.stored) for f in divergence.fields] == [("status", "filled", "cancelled")]


async def test_a_changed_live_order_is_reported(pool, history, tamper):
    live = await tamper.conn.fetchrow(
        "SELECT order_id, updated_seq FROM orders WHERE remaining > 0 ORDER BY order_id LIMIT 1"
    )
    await tamper.execute("UPDATE orders SET price = price - 1 WHERE order_id = $1", live["order_id"])
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (live["updated_seq"], "orders")


async def test_an_order_row_no_command_produced_is_reported(pool, history, tamper):
    await tamper.execute(
        "INSERT INTO orders SELECT order_id + 1000, account, 'forged', symbol, side, type, price, quantity, remaining, "
        "filled, notional_traded, time_in_force, expire_at_us, post_only, stp, status, cancel_reason, priority_seq, "
        "created_seq, created_ts_us, updated_seq, updated_ts_us FROM orders WHERE order_id = 1"
    )
    divergence = (await replay(pool)).divergence
    assert divergence is not None and divergence.table == "orders" and "no such order" in divergence.message


async def test_orders_are_compared_only_when_replaying_to_the_end(pool, history):
    assert (await replay(pool)).orders == await pool.conn.fetchval("SELECT count(*) FROM orders")
    assert (await replay(pool, to_seq=history.last_seq - 1)).orders == 0


async def test_a_changed_journal_command_makes_the_replay_diverge_at_its_seq(pool, history, tamper):
    seq = history.seqs_with(Trade)[0]
    await tamper.execute("UPDATE journal SET command = replace(command, ',120,', ',110,') WHERE seq = $1", seq)
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert divergence.seq == seq
    assert divergence.table in ("events", "trades", "ledger_entries", "ledger_legs")


async def test_a_journal_command_that_no_longer_decodes_is_reported(pool, history, tamper):
    await tamper.execute("UPDATE journal SET command = '[\"NoSuchCommand\"]' WHERE seq = 3")
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (3, "journal")


async def test_a_deleted_journal_record_is_reported_as_missing(pool, history, tamper):
    await tamper.execute("DELETE FROM journal WHERE seq = 4")
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (4, "journal")
    assert "missing" in divergence.message


async def test_rows_left_after_a_cut_off_journal_are_reported(pool, history, tamper):
    last = history.last_seq
    await tamper.execute("DELETE FROM journal WHERE seq = $1", last)
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert divergence.seq == last
    assert "after the journal's last record" in divergence.message


async def test_a_forged_trade_is_reported(pool, history, tamper):
    trade = history.first_trade()
    await tamper.execute(
        "INSERT INTO trades SELECT trade_id + 1000, seq, ts_us, symbol, price, quantity, aggressor, buy_order_id, "
        "sell_order_id, buyer, seller, currency, cash, accrued, buyer_fee, seller_fee FROM trades WHERE trade_id = $1",
        trade.trade_id,
    )
    divergence = (await replay(pool)).divergence
    assert divergence is not None
    assert (divergence.seq, divergence.table) == (trade.seq, "trades")


async def test_replay_to_a_seq_stops_there(pool, history, tamper):
    later = history.seqs_with(Trade)[-1]
    await tamper.execute("UPDATE trades SET quantity = quantity + 1 WHERE seq = $1", later)
    report = await replay(pool, to_seq=later - 1)
    assert report.identical, report.divergence
    assert report.records == report.to_seq == later - 1


async def test_replay_reports_its_progress_up_to_the_total(pool, history, monkeypatch):
    monkeypatch.setattr("ledger.replay.WINDOW", 5)
    calls: list[tuple[int, int]] = []
    report = await replay(pool, progress=lambda done, total: calls.append((done, total)))
    assert report.identical
    assert calls[-1] == (history.last_seq, history.last_seq)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})


async def test_small_windows_compare_the_same_history_identically(pool, history, monkeypatch):
    monkeypatch.setattr("ledger.replay.WINDOW", 1)
    assert (await replay(pool)).identical


async def test_a_divergence_found_with_small_windows_is_at_the_same_seq(pool, history, tamper, monkeypatch):
    trade = history.first_trade()
    await tamper.execute("UPDATE trades SET seller_fee = seller_fee + 1 WHERE trade_id = $1", trade.trade_id)
    monkeypatch.setattr("ledger.replay.WINDOW", 3)
    divergence = (await replay(pool)).divergence
    assert divergence is not None and divergence.seq == trade.seq


async def test_history_written_across_restarts_and_small_batches_replays_identically(own_pool):
    first = await build_history(own_pool, rounds=1)
    async with running_sequencer(own_pool, batch_max=2) as sequencer:
        await trade_some(sequencer, History())
    report = await replay(own_pool)
    assert report.identical, report.divergence
    assert report.records > first.last_seq


async def test_an_empty_journal_replays_identically(own_pool):
    report = await replay(own_pool)
    assert report.identical and report.records == 0 and report.to_seq == 0
