"""`book_at` rebuilds an instrument's order book as it stood after a seq, or at a moment in time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from exchange.events import OrderAccepted, Trade
from ledger.replay import UnknownInstrument, book_at
from tests.ledger.replay_history import SYMBOL, History, history_database


@pytest.fixture(scope="module")
async def stored(database_server_url: str, migrated_template: str) -> AsyncIterator[tuple[str, History]]:
    async with history_database(database_server_url, migrated_template, rounds=1) as found:
        yield found


@pytest.fixture
def history(stored: tuple[str, History]) -> History:
    return stored[1]


@pytest.fixture
async def pool(stored: tuple[str, History]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(stored[0], min_size=1, max_size=2)
    yield pool
    await pool.close()


def seq_before_first_trade(history: History) -> int:
    return history.seqs_with(Trade)[0] - 1


async def test_the_book_before_the_sweep_holds_both_asks_in_price_order(pool, history):
    book = await book_at(pool, SYMBOL, seq=seq_before_first_trade(history))
    asks = [(level.price, level.quantity, level.order_count) for level in book.asks]
    assert asks == [(1_000, 100, 1), (1_010, 50, 1)]
    assert [(level.price, level.quantity) for level in book.bids] == [(990, 5)]
    assert [o.account for level in book.asks for o in level.orders] == ["bob", "bob"]


async def test_the_book_after_the_sweep_keeps_only_the_rest_of_the_second_ask(pool, history):
    book = await book_at(pool, SYMBOL, seq=history.seqs_with(Trade)[0])
    assert [(level.price, level.quantity) for level in book.asks] == [(1_010, 30)]
    [order] = book.asks[0].orders
    assert (order.quantity, order.remaining) == (50, 30)


async def test_the_book_now_matches_what_the_history_left(pool, history):
    book = await book_at(pool, SYMBOL)
    assert book.seq == history.last_seq
    assert [(level.price, level.quantity) for level in book.bids] == [(990, 5), (985, 15)]  # carol's, alice's amended


async def test_the_book_at_a_time_is_the_book_after_the_last_command_executed_by_then(pool, history):
    accepted = next(o for o in history.outcomes if any(type(e) is OrderAccepted for e in o.events))
    book = await book_at(pool, SYMBOL, at_ts_us=accepted.ts_us)
    assert book.seq >= accepted.seq
    assert all(o.ts_us > accepted.ts_us for o in history.outcomes if o.seq > book.seq)
    assert book.ts_us <= accepted.ts_us


async def test_an_instrument_not_yet_listed_is_unknown(pool, history):
    with pytest.raises(UnknownInstrument):
        await book_at(pool, "NOPE")
    first = history.outcomes[0]
    with pytest.raises(UnknownInstrument):
        await book_at(pool, SYMBOL, at_ts_us=first.ts_us - 1)


async def test_seq_and_time_together_are_refused(pool):
    with pytest.raises(ValueError):
        await book_at(pool, SYMBOL, seq=3, at_ts_us=1)
