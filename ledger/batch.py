"""Writes one sequencer batch in ONE transaction: journal records, events, trades, order states and ledger entries.

Everything a batch produced becomes durable together or not at all; the caller holds the transaction and answers
nobody until it has committed. Bulk paths only: COPY for the append-only tables and for newly accepted orders, one
`unnest` UPDATE for orders stored by an earlier batch, the ledger writer for entries and legs (the database moves the
balances).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from exchange.events import Event, Trade
from ledger.entries import Entry
from ledger.journal import JournalRecord
from ledger.projection import ORDER_COLUMNS
from ledger.writer import ENTRY_COLUMNS, ENTRY_TYPES, LEG_COLUMNS, LEG_TYPES, LedgerWriter, columns_of

JOURNAL_COLUMNS = ("seq", "ts_us", "sender", "command", "prev_hash", "hash")
_JOURNAL_TYPES = ("bigint", "bigint", "text", "text", "bytea", "bytea")
EVENT_COLUMNS = ("seq", "idx", "kind", "symbol", "account", "order_id", "trade_id", "body")
_EVENT_TYPES = ("bigint", "int", "text", "text", "text", "bigint", "bigint", "text")
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
_TRADE_TYPES = (
    "bigint", "bigint", "bigint", "text", "bigint", "bigint", "text", "bigint", "bigint", "text", "text", "text",
    "bigint", "bigint", "bigint", "bigint", "boolean",
)  # fmt: skip
_ORDER_TYPES = (
    "bigint", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint", "bigint", "bigint", "text",
    "bigint", "boolean", "text", "text", "text", "bigint", "bigint", "bigint", "bigint", "bigint",
)  # fmt: skip
# What a later batch may change in a stored order row (the others are fixed when the order is accepted).
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
_MUTABLE_TYPES = ("bigint", "bigint", "bigint", "bigint", "bigint", "text", "text", "bigint", "bigint", "bigint")
_MUTABLE_POSITIONS = tuple(ORDER_COLUMNS.index(c) for c in _MUTABLE)
_ORDER_ID = ORDER_COLUMNS.index("order_id")
_CREATED_SEQ = ORDER_COLUMNS.index("created_seq")


def _unnest(first: int, types: tuple[str, ...]) -> str:
    return f"unnest({', '.join(f'${first + i}::{t}[]' for i, t in enumerate(types))})"


def _update_orders(first: int) -> str:
    return (
        f"UPDATE orders o SET {', '.join(f'{c} = u.{c}' for c in _MUTABLE)} "
        f"FROM {_unnest(first, ('bigint', *_MUTABLE_TYPES))} AS u(order_id, {', '.join(_MUTABLE)}) "
        "WHERE o.order_id = u.order_id"
    )


UPDATE_ORDERS = _update_orders(1)


def _write_all() -> str:
    """One statement writing a whole batch from column arrays: every table's INSERT (and the orders' UPDATE) as a
    data-modifying CTE. The statement triggers of the ledger fire at its end, when entries and legs are all in."""
    parts: list[str] = []
    n = 1
    for name, table, columns, types in (
        ("w_journal", "journal", JOURNAL_COLUMNS, _JOURNAL_TYPES),
        ("w_events", "events", EVENT_COLUMNS, _EVENT_TYPES),
        ("w_trades", "trades", TRADE_COLUMNS, _TRADE_TYPES),
        ("w_orders", "orders", ORDER_COLUMNS, _ORDER_TYPES),
        ("w_entries", "ledger_entries", ENTRY_COLUMNS, ENTRY_TYPES),
        ("w_legs", "ledger_legs", LEG_COLUMNS, LEG_TYPES),
    ):
        counted = " RETURNING 1" if table == "ledger_legs" else ""  # what is not counted need not be returned
        parts.append(f"{name} AS (INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {_unnest(n, types)}{counted})")
        n += len(types)
    parts.append(f"w_updated AS ({_update_orders(n)} RETURNING 1)")
    return (
        "WITH " + ",\n".join(parts) + "\nSELECT (SELECT count(*) FROM w_legs) AS legs, (SELECT count(*) FROM w_updated) AS updated"
    )


WRITE_ALL = _write_all()
# Up to this many rows a batch goes in one round trip (arrays); beyond, COPY per table is cheaper than building and
# decoding arrays. A batch of a quiet market (a few commands per commit) is far below it, so its acknowledgement waits
# for one statement and the COMMIT, not for a dozen round trips.
ONE_STATEMENT_ROWS = 1_000


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
        journal = [(r.seq, r.ts_us, r.sender, r.command.decode("ascii"), r.prev_hash, r.hash) for r in batch.records]
        if len(batch.events) + 2 * len(batch.entries) <= ONE_STATEMENT_ROWS:
            await self._write_one_statement(conn, batch, journal)
            return
        await conn.copy_records_to_table("journal", records=journal, columns=JOURNAL_COLUMNS)
        if batch.events:
            await conn.copy_records_to_table("events", records=batch.events, columns=EVENT_COLUMNS)
        if batch.trades:
            await conn.copy_records_to_table("trades", records=batch.trades, columns=TRADE_COLUMNS)
        if batch.orders:
            await self._write_orders(conn, batch)
        if batch.entries:
            await self.ledger.write(conn, batch.entries)

    async def _write_one_statement(self, conn: asyncpg.Connection, batch: Batch, journal: list[tuple]) -> None:
        ledger = self.ledger
        prepared = await ledger.prepare(conn, batch.entries)  # a statement of its own only for unknown accounts
        created, changed = _split_orders(batch)
        try:
            row = await conn.fetchrow(
                WRITE_ALL,
                *columns_of(journal, len(JOURNAL_COLUMNS)),
                *columns_of(batch.events, len(EVENT_COLUMNS)),
                *columns_of(batch.trades, len(TRADE_COLUMNS)),
                *columns_of(created, len(ORDER_COLUMNS)),
                *columns_of(prepared.entry_rows, len(ENTRY_COLUMNS)),
                *columns_of(prepared.leg_rows, len(LEG_COLUMNS)),
                [r[_ORDER_ID] for r in changed],
                *([r[i] for r in changed] for i in _MUTABLE_POSITIONS),
            )
        except asyncpg.CheckViolationError as exc:
            rejected = ledger.rejection(exc)
            if rejected is None:
                raise
            raise rejected from exc
        if (row["legs"], row["updated"]) != (len(prepared.leg_rows), len(changed)):
            # An order the projection believes stored is not: memory and database disagree, stop.
            raise RuntimeError(
                f"expected {len(prepared.leg_rows)} legs and {len(changed)} order updates, "
                f"database says {row['legs']} and {row['updated']}"
            )
        ledger.stored(prepared)

    @staticmethod
    async def _write_orders(conn: asyncpg.Connection, batch: Batch) -> None:
        """Orders accepted by this batch's commands go in by COPY; the others, stored by an earlier batch (committed,
        or committing ahead of this one on the same connection), are updated in their mutable columns only.

        Measured against one INSERT ... ON CONFLICT DO UPDATE of every row: no speculative insertion and no
        22 arrays to encode for the orders that are only inserted, 11 instead of 22 for those only updated."""
        created, changed = _split_orders(batch)
        if created:
            await conn.copy_records_to_table("orders", records=created, columns=ORDER_COLUMNS)
        if changed:
            status = await conn.execute(
                UPDATE_ORDERS,
                [row[_ORDER_ID] for row in changed],
                *([row[i] for row in changed] for i in _MUTABLE_POSITIONS),
            )
            if status != f"UPDATE {len(changed)}":
                # An order the projection believes stored is not: memory and database disagree, stop.
                raise RuntimeError(f"expected to update {len(changed)} orders, database says {status}")


def _split_orders(batch: Batch) -> tuple[list[tuple], list[tuple]]:
    """The batch's order rows: those accepted by its own commands, and those stored by an earlier batch."""
    if not batch.orders:
        return [], []
    first_seq = batch.records[0].seq
    created = [row for row in batch.orders if row[_CREATED_SEQ] >= first_seq]
    changed = [row for row in batch.orders if row[_CREATED_SEQ] < first_seq]
    return created, changed


async def write_in_transaction(pool: asyncpg.Pool, store: BatchStore, batch: Batch) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await store.write(conn, batch)
