"""The sequencer: gap-free sequence numbers, acknowledgement after commit, fail-stop and recovery, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api.sequencer import Backpressure, CommitFailed, Sequencer, SequencerState
from exchange.commands import Deposit, IssueSecurities, ListInstrument, PlaceOrder
from exchange.instrument import Instrument, InstrumentKind, TradingState
from exchange.orders import OrderType, Side
from ledger.batch import Batch
from ledger.queries import reconcile_balances, trial_balance


def equity(symbol: str = "COOP") -> Instrument:
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.EQUITY,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=2_000,
        reference_price=1_000,
        maker_fee_bps=5,
        taker_fee_bps=10,
        state=TradingState.OPEN,
    )


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def sequencer(pool: asyncpg.Pool) -> AsyncIterator[Sequencer]:
    sequencer = Sequencer(pool)
    await sequencer.start()
    await sequencer.submit(ListInstrument(equity()), "ops")
    await sequencer.submit(Deposit("alice", "EUR", 10_000_000), "ops")
    await sequencer.submit(IssueSecurities("bob", "COOP", 10_000), "ops")
    yield sequencer
    await sequencer.stop()


def buy(price: int, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder("alice", "COOP", Side.BUY, OrderType.LIMIT, quantity, price=price)


def sell(price: int, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder("bob", "COOP", Side.SELL, OrderType.LIMIT, quantity, price=price)


async def test_an_acknowledged_command_is_already_in_the_journal(sequencer, pool):
    outcome = await sequencer.submit(buy(990), "alice")
    stored = await pool.fetchval("SELECT count(*) FROM journal WHERE seq = $1", outcome.seq)
    assert stored == 1


async def test_concurrent_commands_get_gap_free_sequence_numbers_in_submission_order(sequencer, pool):
    outcomes = await asyncio.gather(*(sequencer.submit(buy(900 + i), "alice") for i in range(300)))
    seqs = [o.seq for o in outcomes]
    assert seqs == list(range(seqs[0], seqs[0] + 300))
    stored = [r[0] for r in await pool.fetch("SELECT seq FROM journal ORDER BY seq")]
    assert stored == list(range(1, stored[-1] + 1))


async def test_the_hash_chain_links_each_record_to_the_previous_one(sequencer, pool):
    await asyncio.gather(*(sequencer.submit(sell(1_100 + i), "bob") for i in range(50)))
    rows = await pool.fetch("SELECT seq, prev_hash, hash FROM journal ORDER BY seq")
    assert bytes(rows[0]["prev_hash"]) == bytes(32)
    for previous, record in zip(rows, rows[1:], strict=False):
        assert bytes(record["prev_hash"]) == bytes(previous["hash"])


async def test_exchange_timestamps_never_go_backwards_even_when_the_clock_does(pool):
    readings = iter([5_000_000, 4_000_000, 6_000_000, 1_000_000])
    sequencer = Sequencer(pool, clock=lambda: next(readings))
    await sequencer.start()
    try:
        stamps = [(await sequencer.submit(Deposit("a", "EUR", 1), "ops")).ts_us for _ in range(4)]
    finally:
        await sequencer.stop()
    assert stamps == [5_000_000, 5_000_000, 6_000_000, 6_000_000]


async def test_a_failed_commit_answers_its_callers_with_an_error_and_leaves_no_trace(sequencer, pool):
    before_seq = sequencer.last_seq

    async def fail(batch: Batch) -> None:
        raise ConnectionError("database went away")

    sequencer.before_commit = fail
    with pytest.raises(CommitFailed):
        await sequencer.submit(buy(995), "alice")
    sequencer.before_commit = None
    await sequencer.wait_running()
    assert await pool.fetchval("SELECT max(seq) FROM journal") == before_seq
    # The engine was rebuilt from the journal: the failed order does not exist in memory either.
    assert sequencer.engine.open_orders("alice") == []
    assert sequencer.state is SequencerState.RUNNING


async def test_after_a_failed_commit_the_sequencer_recovers_and_numbers_on_without_a_gap(sequencer, pool):
    calls = 0

    async def fail_once(batch: Batch) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")

    sequencer.before_commit = fail_once
    with pytest.raises(CommitFailed):
        await sequencer.submit(buy(995), "alice")
    await sequencer.wait_running()
    outcome = await sequencer.submit(buy(996), "alice")
    stored = [r[0] for r in await pool.fetch("SELECT seq FROM journal ORDER BY seq")]
    assert stored == list(range(1, outcome.seq + 1))


async def test_a_dropped_database_connection_mid_batch_leads_to_fail_stop_and_no_divergence(sequencer, pool):
    await sequencer.submit(sell(1_000, 10), "bob")

    async def drop_connections(batch: Batch) -> None:
        # Kill every session of the pool: the batch's transaction cannot commit.
        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        sequencer.before_commit = None

    sequencer.before_commit = drop_connections
    results = await asyncio.gather(*(sequencer.submit(buy(1_000), "alice") for _ in range(5)), return_exceptions=True)
    committed = [r for r in results if not isinstance(r, BaseException)]
    await sequencer.wait_running()
    after = await sequencer.submit(buy(1_000), "alice")
    async with pool.acquire() as conn:
        assert await trial_balance(conn) == {"COOP": 0, "EUR": 0}
        assert await reconcile_balances(conn) == []
        traded = await conn.fetchval("SELECT coalesce(sum(quantity), 0) FROM trades")
    # Only what was acknowledged traded, plus the order after recovery.
    assert traded == len(committed) + 1
    assert after.seq == await pool.fetchval("SELECT max(seq) FROM journal")


async def test_a_full_inbox_refuses_with_backpressure(pool):
    sequencer = Sequencer(pool, inbox_size=1, batch_max=1)
    await sequencer.start()
    gate = asyncio.Event()

    async def slow(batch: Batch) -> None:
        await gate.wait()

    sequencer.before_commit = slow
    try:
        waiting = [asyncio.create_task(sequencer.submit(Deposit("a", "EUR", 1), "ops"))]
        await asyncio.sleep(0.05)  # the first is being committed
        # The next batch may be built while the first commits (it then waits for that commit): send until the inbox
        # itself is full. Bounded: the sequencer holds at most one committing and one built batch besides the inbox.
        while sequencer.inbox.qsize() < 1:
            assert len(waiting) < 4, "the sequencer takes in more than two batches besides its inbox"
            waiting.append(asyncio.create_task(sequencer.submit(Deposit("a", "EUR", 1), "ops")))
            await asyncio.sleep(0.01)
        with pytest.raises(Backpressure) as refused:
            await sequencer.submit(Deposit("a", "EUR", 1), "ops")
        assert refused.value.retry_after > 0
        gate.set()
        await asyncio.gather(*waiting)
    finally:
        gate.set()
        await sequencer.stop()


async def test_a_restarted_sequencer_has_the_same_books_and_balances(sequencer, pool):
    await asyncio.gather(*(sequencer.submit(sell(1_000 + i % 7, 3), "bob") for i in range(40)))
    await asyncio.gather(*(sequencer.submit(buy(1_000 + i % 5, 2), "alice") for i in range(40)))
    engine = sequencer.engine
    await sequencer.stop()
    restarted = Sequencer(pool)
    await restarted.start()
    try:
        assert restarted.engine.depth("COOP", 100) == engine.depth("COOP", 100)
        assert restarted.engine.balances.of_account("alice") == engine.balances.of_account("alice")
        assert restarted.engine.balances.of_account("bob") == engine.balances.of_account("bob")
        assert restarted.engine.required_holds() == engine.required_holds()
        assert restarted.last_hash == sequencer.last_hash
    finally:
        await restarted.stop()


async def test_a_batch_built_on_a_failed_commit_fails_with_it_and_nothing_of_either_survives(sequencer, pool):
    before_seq = sequencer.last_seq
    sequencer.batch_max = 1  # two commands, two batches: the second is built while the first commits
    calls = 0

    async def fail_the_first(batch: Batch) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)
            raise ConnectionError("database went away")

    sequencer.before_commit = fail_the_first
    results = await asyncio.gather(
        sequencer.submit(sell(1_000, 5), "bob"), sequencer.submit(buy(1_000, 5), "alice"), return_exceptions=True
    )
    assert [type(r) for r in results] == [CommitFailed, CommitFailed]
    assert calls == 1  # the second batch never reached the database
    sequencer.before_commit = None
    await sequencer.wait_running()
    assert await pool.fetchval("SELECT max(seq) FROM journal") == before_seq
    assert await pool.fetchval("SELECT count(*) FROM trades") == 0
    assert sequencer.engine.open_orders("alice") == [] and sequencer.engine.open_orders("bob") == []
    after = await sequencer.submit(buy(990), "alice")
    assert after.seq == before_seq + 1


async def test_a_connection_the_server_dropped_between_batches_is_replaced_without_failing_anyone(sequencer, pool):
    await sequencer.submit(buy(990), "alice")
    await pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await asyncio.sleep(0.2)  # the pool notices and takes the dead connection back
    outcome = await sequencer.submit(buy(991), "alice")
    assert outcome.seq == sequencer.last_seq
    assert sequencer.failed_batches == 0


async def test_a_second_sequencer_on_the_same_database_refuses_to_start(sequencer, pool):
    from api.sequencer import AnotherWriter

    second = Sequencer(pool)
    with pytest.raises(AnotherWriter):
        await second.start()
    await sequencer.stop()
    third = Sequencer(pool)
    await third.start()  # the first one let go of the lock when it stopped
    try:
        assert third.last_seq == sequencer.last_seq
    finally:
        await third.stop()


async def test_a_committed_batch_stores_its_own_order_states_not_those_of_the_batch_built_after_it(sequencer, pool):
    sequencer.batch_max = 1  # one command per batch: the buy is built while the sell's batch commits
    calls = 0

    async def slow_then_fail(batch: Batch) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)
        else:
            raise ConnectionError("database went away")

    sequencer.before_commit = slow_then_fail
    results = await asyncio.gather(
        sequencer.submit(sell(1_000, 5), "bob"), sequencer.submit(buy(1_000, 5), "alice"), return_exceptions=True
    )
    sequencer.before_commit = None
    await sequencer.wait_running()
    placed = results[0]
    assert not isinstance(placed, BaseException) and isinstance(results[1], CommitFailed)
    row = await pool.fetchrow("SELECT remaining, status, updated_seq FROM orders WHERE account = 'bob'")
    # The buy that would have filled it never committed: the sell is stored as it was in its own batch.
    assert (row["remaining"], row["status"], row["updated_seq"]) == (5, "new", placed.seq)
