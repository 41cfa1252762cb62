"""Writes one sequencer batch in ONE transaction: journal records, events, trades, order states and ledger entries.

Everything a batch produced becomes durable together or not at all; the caller holds the transaction and answers
nobody until it has committed. Bulk paths only: COPY for the append-only tables, one `unnest` upsert for orders, the
ledger writer for entries and balances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from exchange.events import Event, Trade
from ledger.entries import Entry
from ledger.journal import JournalRecord
from ledger.projection import ORDER_COLUMNS
from ledger.writer import LedgerWriter

EVENT_COLUMNS = ("seq", "idx", "kind", "symbol", "account", "order_id", "trade_id", "body")
TRADE_COLUMNS = (
    "trade_id",
    "seq",
    "ts_us",
    "symbol",
    "price",
    "quantity",
    "aggressor",
    "buy_order_id",
    "sell_order_id",
    "buyer",
    "seller",
    "currency",
    "cash",
    "accrued",
    "buyer_fee",
    "seller_fee",
    "auction",
)
_ORDER_TYPES = (
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "text",
    "bigint",
    "boolean",
    "text",
    "text",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "bigint",
)
_MUTABLE = (
    "price",
    "quantity",
    "remaining",
    "filled",
    "notional_traded",
    "status",
    "cancel_reason",
    "priority_seq",
    "updated_seq",
    "updated_ts_us",
)
UPSERT_ORDERS = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'${i + 1}::{t}[]' for i, t in enumerate(_ORDER_TYPES))}) "
    f"ON CONFLICT (order_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _MUTABLE)}"
)


def event_row(seq: int, idx: int, event: Event, body: bytes) -> tuple:
    return (
        seq,
        idx,
        type(event).__name__,
        getattr(event, "symbol", None),
        getattr(event, "account", None),
        getattr(event, "order_id", None),
        getattr(event, "trade_id", None),
        body.decode("ascii"),
    )


def trade_row(trade: Trade, ts_us: int) -> tuple:
    return (
        trade.trade_id,
        trade.seq,
        ts_us,
        trade.symbol,
        trade.price,
        trade.quantity,
        trade.aggressor.value,
        trade.buy_order_id,
        trade.sell_order_id,
        trade.buyer,
        trade.seller,
        trade.currency,
        trade.cash,
        trade.accrued,
        trade.buyer_fee,
        trade.seller_fee,
        trade.auction,
    )


@dataclass(slots=True)
class Batch:
    records: list[JournalRecord] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    trades: list[tuple] = field(default_factory=list)
    # Order states as tuples (`OrderRow.as_tuple()`), taken when the batch was built: the rows themselves keep
    # changing as later batches are built while this one commits.
    orders: list[tuple] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


class BatchStore:
    def __init__(self, ledger: LedgerWriter | None = None) -> None:
        self.ledger = ledger or LedgerWriter()

    def reset(self) -> None:
        """Forget caches that may be ahead of the database (after a failed transaction)."""
        self.ledger.reset()

    async def write(self, conn: asyncpg.Connection, batch: Batch) -> None:
        """Write the batch inside the caller's transaction."""
        await conn.copy_records_to_table(
            "journal",
            records=[(r.seq, r.ts_us, r.sender, r.command.decode("ascii"), r.prev_hash, r.hash) for r in batch.records],
            columns=("seq", "ts_us", "sender", "command", "prev_hash", "hash"),
        )
        if batch.events:
            await conn.copy_records_to_table("events", records=batch.events, columns=EVENT_COLUMNS)
        if batch.trades:
            await conn.copy_records_to_table("trades", records=batch.trades, columns=TRADE_COLUMNS)
        if batch.orders:
            columns = list(zip(*batch.orders, strict=True))
            await conn.execute(UPSERT_ORDERS, *columns)
        if batch.entries:
            await self.ledger.write(conn, batch.entries)


async def write_in_transaction(pool: asyncpg.Pool, store: BatchStore, batch: Batch) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await store.write(conn, batch)
