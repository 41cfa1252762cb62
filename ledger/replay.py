"""`exchange replay`: re-run the journal through a fresh engine and compare what it produces with what was stored.

For every journal record, in seq order, the command is decoded and applied to a new `Engine` with the record's seq
and timestamp; the events it returns must equal the stored `events` rows (canonical bytes and every column), the
trades among them the `trades` rows, and the ledger entries that `ledger.settlement.entries_for` makes of them the
stored `ledger_entries` and `ledger_legs` (accounts joined, so owner, bucket and asset are compared, not ids).
When the replay runs to the journal's end, the `orders` projection is compared too: each order's final state, as
`ledger.projection.OrderProjection` folds it from the events. The first divergence stops the run and is reported
with its seq, table, and the expected and stored rows.

Memory stays flat: the journal streams in pages (`ledger.recovery.journal_rows`) and the stored rows are fetched per
window of seqs with keyset conditions, each compared as one list. Only committed data is read, and only up to the
journal's last seq at the start: every row at or below it is append-only and already committed, so a replay can run
beside a live sequencer.

`book_at` rebuilds one instrument's order book as it stood after a given seq (or at a given time).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from exchange import codec
from exchange.engine import Engine
from exchange.events import Trade
from exchange.instrument import Instrument, TradingState
from exchange.orders import Order
from ledger.batch import EVENT_COLUMNS, TRADE_COLUMNS, event_row, trade_row
from ledger.projection import ORDER_COLUMNS, OrderProjection
from ledger.recovery import StoredRecord, journal_rows, recover
from ledger.settlement import entries_for
from ledger.verify import first_non_ascii_command

WINDOW = 2_000  # journal records per comparison window

ENTRY_COLUMNS = ("seq", "idx", "kind", "ts_us", "order_id", "trade_id")
LEG_COLUMNS = (
    "seq",
    "idx",
    "leg",
    "debit_owner",
    "debit_bucket",
    "credit_owner",
    "credit_bucket",
    "asset",
    "amount",
)
# For an order, the seq of its last change: the stored row is the order's latest state.
_SEQ_POSITION = {
    "events": 0,
    "trades": 1,
    "ledger_entries": 0,
    "ledger_legs": 0,
    "orders": ORDER_COLUMNS.index("updated_seq"),
}
# What identifies a row within its seq, to pair produced and stored rows: event and entry index, trade id, leg.
_KEY: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "events": lambda r: r[1],
    "trades": lambda r: r[0],
    "ledger_entries": lambda r: r[1],
    "ledger_legs": lambda r: (r[1], r[2]),
    "orders": lambda r: r[0],
}
_COLUMNS = {
    "events": EVENT_COLUMNS,
    "trades": TRADE_COLUMNS,
    "ledger_entries": ENTRY_COLUMNS,
    "ledger_legs": LEG_COLUMNS,
    "orders": ORDER_COLUMNS,
}

_EVENTS = (
    "SELECT seq, idx, kind, symbol, account, order_id, trade_id, body FROM events "
    "WHERE seq > $1 AND seq <= $2 ORDER BY seq, idx"
)
# trades has no index on seq; trade ids grow with seq, so the window is a range of trade ids.
_TRADES = (
    f"SELECT {', '.join(TRADE_COLUMNS)} FROM trades WHERE trade_id > $1 AND trade_id <= $2 ORDER BY trade_id"
)
_ENTRIES = (
    "SELECT seq, idx, kind, (extract(epoch FROM ts) * 1000000)::bigint, order_id, trade_id FROM ledger_entries "
    "WHERE seq > $1 AND seq <= $2 ORDER BY seq, idx"
)
# Account ids are mapped to (owner, bucket, asset) in Python from one read of `ledger_accounts`: joining them in
# SQL hashed the whole accounts table twice per window, which cost more than the legs themselves.
_LEGS = (
    "SELECT seq, idx, leg, debit_account_id, credit_account_id, asset, amount FROM ledger_legs "
    "WHERE seq > $1 AND seq <= $2 ORDER BY seq, idx, leg"
)
_ACCOUNTS = "SELECT id, owner, bucket, asset FROM ledger_accounts"
_UNKNOWN_ACCOUNT = ("?", "?", "?")

_ORDERS = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id = ANY($1::bigint[]) ORDER BY order_id"
_ORDERS_NOT_PRODUCED = (
    f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id < 1 OR order_id >= $1 ORDER BY updated_seq LIMIT 1"
)

Progress = Callable[[int, int], None]  # (records replayed, records to replay)


@dataclass(frozen=True, slots=True)
class FieldDifference:
    field: str
    expected: Any
    stored: Any


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the stored history first differs from what the journal produces."""

    seq: int
    table: str  # journal, events, trades, ledger_entries or ledger_legs
    message: str
    expected: tuple[dict[str, Any], ...] = ()  # the rows the replay produced for this seq in `table`
    stored: tuple[dict[str, Any], ...] = ()  # the rows stored for this seq in `table`
    fields: tuple[FieldDifference, ...] = ()  # of the first differing row, when both sides have it

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "table": self.table,
            "message": self.message,
            "expected": list(self.expected),
            "stored": list(self.stored),
            "fields": [{"field": f.field, "expected": f.expected, "stored": f.stored} for f in self.fields],
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    to_seq: int  # last seq replayed (the journal's last seq unless a lower one was asked for)
    records: int
    events: int
    trades: int
    entries: int
    legs: int
    divergence: Divergence | None
    seconds: float
    orders: int = 0  # final order states compared (whole-journal replays only)

    @property
    def identical(self) -> bool:
        return self.divergence is None

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "to_seq": self.to_seq,
            "records": self.records,
            "compared": {
                "events": self.events,
                "trades": self.trades,
                "entries": self.entries,
                "legs": self.legs,
                "orders": self.orders,
            },
            "divergence": None if self.divergence is None else self.divergence.as_json(),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second),
        }


class _Window:
    """What the replay produced for one window of seqs, as rows shaped like the stored ones."""

    __slots__ = ("events", "trades", "entries", "legs")

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.trades: list[tuple[Any, ...]] = []
        self.entries: list[tuple[Any, ...]] = []
        self.legs: list[tuple[Any, ...]] = []


class _Replayer:
    def __init__(self, conn: asyncpg.Connection, orders: bool) -> None:
        self.conn = conn
        self.engine = Engine()
        # The `orders` table holds each order's latest state, so it is comparable only when replaying to the end:
        # an order is compared once it is done, the ones still live at the end of the journal last.
        self.projection = OrderProjection() if orders else None
        self.last_seq = 0
        self.last_trade_id = 0  # highest trade id compared so far
        self.counts = [0, 0, 0, 0, 0, 0]  # records, events, trades, entries, legs, orders
        self.accounts: dict[int, tuple[str, str, str]] = {}

    def produce(self, records: Sequence[StoredRecord]) -> tuple[_Window, Divergence | None]:
        """Apply the records to the engine; the rows they must have stored, up to the first one that fails."""
        window = _Window()
        engine = self.engine
        encode = codec.encode
        events_out = window.events
        trades_out = window.trades
        entries_out = window.entries
        legs_out = window.legs
        projection = self.projection
        for record in records:
            seq = record.seq
            if seq != self.last_seq + 1:
                missing = self.last_seq + 1
                return window, Divergence(
                    missing, "journal", f"journal record {missing} is missing (next stored record is {seq})"
                )
            try:
                command = codec.decode(record.command)
            except codec.DecodeError as exc:
                return window, Divergence(seq, "journal", f"the journal command does not decode: {exc}")
            ts = record.ts_us
            try:
                events = engine.apply(seq, ts, command)
            except Exception as exc:  # noqa: BLE001 - an edited journal can make the engine refuse anything
                return window, Divergence(seq, "journal", f"the engine refused the journal record: {exc!r}")
            if projection is not None:
                projection.apply(seq, ts, events)
            for idx, event in enumerate(events):
                events_out.append(event_row(seq, idx, event, encode(event)))
                if type(event) is Trade:
                    trades_out.append(trade_row(event, ts))
            for entry in entries_for(seq, ts, events):
                index = entry.index
                entries_out.append((seq, index, entry.kind, ts, entry.order_id, entry.trade_id))
                for number, leg in enumerate(entry.legs):
                    debit = leg.debit
                    credit = leg.credit
                    legs_out.append(
                        (
                            seq,
                            index,
                            number,
                            debit.owner,
                            debit.bucket,
                            credit.owner,
                            credit.bucket,
                            leg.asset,
                            leg.amount,
                        )
                    )
            self.last_seq = seq
        return window, None

    async def compare(self, after_seq: int, window: _Window) -> Divergence | None:
        """Fetch the stored rows of seqs (after_seq, self.last_seq] and compare them with the window."""
        conn = self.conn
        to_seq = self.last_seq
        first_trade = self.last_trade_id
        last_trade = window.trades[-1][0] if window.trades else first_trade
        stored_events = await conn.fetch(_EVENTS, after_seq, to_seq)
        stored_trades = await conn.fetch(_TRADES, first_trade, last_trade) if last_trade > first_trade else []
        stored_entries = await conn.fetch(_ENTRIES, after_seq, to_seq)
        stored_legs = await self._legs(after_seq, to_seq)
        pairs = (
            ("events", window.events, stored_events),
            ("trades", window.trades, stored_trades),
            ("ledger_entries", window.entries, stored_entries),
            ("ledger_legs", window.legs, stored_legs),
        )
        self.last_trade_id = last_trade
        first: Divergence | None = None
        for table, expected, stored in pairs:
            if expected == stored:  # element-wise in C: asyncpg records compare equal to tuples
                continue
            found = _first_difference(table, expected, stored)
            if first is None or found.seq < first.seq:
                first = found
        if self.projection is not None:
            done = sorted(
                (row.as_tuple() for row in self.projection.take_dirty() if row.order_id not in self.projection.live),
                key=lambda row: row[0],
            )
            found = await self._compare_orders(done)
            if found is not None and (first is None or found.seq < first.seq):
                first = found
        counts = self.counts
        counts[1] += len(window.events)
        counts[2] += len(window.trades)
        counts[3] += len(window.entries)
        counts[4] += len(window.legs)
        return first

    async def _legs(self, after_seq: int, to_seq: int) -> list[tuple[Any, ...]]:
        """Stored legs of the seqs, shaped like the produced ones (owner and bucket of each side, not ids)."""
        rows = await self.conn.fetch(_LEGS, after_seq, to_seq)
        accounts = self.accounts
        if any(row[3] not in accounts or row[4] not in accounts for row in rows):
            accounts.update((row[0], (row[1], row[2], row[3])) for row in await self.conn.fetch(_ACCOUNTS))
        legs = []
        for seq, idx, number, debit_id, credit_id, asset, amount in rows:
            debit = accounts.get(debit_id, _UNKNOWN_ACCOUNT)
            credit = accounts.get(credit_id, _UNKNOWN_ACCOUNT)
            if debit[2] != asset or credit[2] != asset:  # impossible unless the tables were edited
                asset = f"{asset} (accounts hold {debit[2]}/{credit[2]})"
            legs.append((seq, idx, number, debit[0], debit[1], credit[0], credit[1], asset, amount))
        return legs

    async def _compare_orders(self, expected: list[tuple[Any, ...]]) -> Divergence | None:
        if not expected:
            return None
        stored = await self.conn.fetch(_ORDERS, [row[0] for row in expected])
        self.counts[5] += len(expected)
        return None if expected == stored else _first_difference("orders", expected, stored)

    async def leftovers(self, to_seq: int, whole_journal: bool) -> Divergence | None:
        """Stored rows that no journal record produced: trades with unexpected ids, rows after the journal's end;
        and, for a whole-journal replay, the orders still live at its end."""
        conn = self.conn
        if self.projection is not None:
            live = [row.as_tuple() for _, row in sorted(self.projection.live.items())]
            for start in range(0, len(live), 10_000):
                found = await self._compare_orders(live[start : start + 10_000])
                if found is not None:
                    return found
            row = await conn.fetchrow(_ORDERS_NOT_PRODUCED, self.engine.next_order_id)
            if row is not None:
                return Divergence(
                    row["updated_seq"],
                    "orders",
                    f"order {row['order_id']} is stored but the replay accepted no such order",
                    stored=(_as_dict("orders", row),),
                )
        row = await conn.fetchrow(
            f"SELECT {', '.join(TRADE_COLUMNS)} FROM trades WHERE trade_id > $1 AND seq <= $2 ORDER BY seq LIMIT 1",
            self.last_trade_id,
            to_seq,
        )
        if row is not None:
            return Divergence(
                row["seq"],
                "trades",
                f"trade {row['trade_id']} is stored but the replay produced no such trade",
                stored=(_as_dict("trades", row),),
            )
        if not whole_journal:
            return None
        found: Divergence | None = None
        for table in ("events", "trades", "ledger_entries", "ledger_legs"):
            seq = await conn.fetchval(f"SELECT min(seq) FROM {table} WHERE seq > $1", to_seq)
            if seq is not None and (found is None or seq < found.seq):
                found = Divergence(seq, table, f"{table} holds rows for seq {seq}, after the journal's last record")
        return found


def _as_dict(table: str, row: Sequence[Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in zip(_COLUMNS[table], row, strict=True)}


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _first_difference(table: str, expected: Sequence[Any], stored: Sequence[Any]) -> Divergence:
    """The first seq at which two row lists (both in seq order) differ, with the rows of that seq on both sides."""
    at = _SEQ_POSITION[table]
    position = 0
    shortest = min(len(expected), len(stored))
    while position < shortest and expected[position] == stored[position]:
        position += 1
    seq = min(rows[position][at] for rows in (expected, stored) if position < len(rows))
    mine = [tuple(r) for r in expected if r[at] == seq]
    theirs = [tuple(r) for r in stored if r[at] == seq]
    key = _KEY[table]
    produced = {key(r): r for r in mine}
    kept = {key(r): r for r in theirs}
    differing = [k for k in produced.keys() | kept.keys() if produced.get(k) != kept.get(k)]
    first = min(differing) if differing else None
    fields: tuple[FieldDifference, ...] = ()
    if first is None:
        message = f"{table} at seq {seq}: the rows are stored in another order"
    elif first in produced and first in kept:
        fields = tuple(
            FieldDifference(name, _plain(a), _plain(b))
            for name, a, b in zip(_COLUMNS[table], produced[first], kept[first], strict=True)
            if a != b
        )
        message = f"{table} at seq {seq}: row {first} differs in {', '.join(f.field for f in fields)}"
    elif first in produced:
        message = f"{table} at seq {seq}: row {first} produced by the replay is not stored"
    else:
        message = f"{table} at seq {seq}: stored row {first} was not produced by the replay"
    return Divergence(
        seq,
        table,
        message,
        tuple(_as_dict(table, r) for r in mine),
        tuple(_as_dict(table, r) for r in theirs),
        fields,
    )


async def replay(pool: asyncpg.Pool, to_seq: int | None = None, progress: Progress | None = None) -> ReplayReport:
    """Replay the journal up to `to_seq` (default: its last record) and compare; see the module doc."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        head = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM journal")
        target = head if to_seq is None else max(0, min(to_seq, head))
        whole_journal = to_seq is None or to_seq >= head
        replayer = _Replayer(conn, orders=whole_journal)
        divergence: Divergence | None = None
        pending: list[StoredRecord] = []

        async def step() -> Divergence | None:
            after = replayer.last_seq
            window, failed = replayer.produce(pending)
            replayed = replayer.last_seq - after
            replayer.counts[0] += replayed
            found = await replayer.compare(after, window) if replayed else None
            pending.clear()
            if progress is not None:
                progress(replayer.counts[0], target)
            # A broken record stops the run; a stored difference before it is still the first divergence.
            if found is not None and (failed is None or found.seq < failed.seq):
                return found
            return failed

        rows = journal_rows(conn, 0, target)
        try:
            async with contextlib.aclosing(rows):
                async for record in rows:
                    pending.append(record)
                    if len(pending) >= WINDOW:
                        divergence = await step()
                        if divergence is not None:
                            break
        except UnicodeEncodeError:
            # A canonical command is ASCII; this one was edited. What came before it is still compared first.
            bad = await first_non_ascii_command(conn, replayer.last_seq)
            pending[:] = [r for r in pending if r.seq < bad]
            divergence = await step() if pending else None
            if divergence is None:
                divergence = Divergence(bad, "journal", "the journal command is not ASCII, so it was changed")
        if divergence is None and pending:
            divergence = await step()
        if divergence is None and replayer.last_seq < target:
            divergence = Divergence(
                replayer.last_seq + 1, "journal", f"journal record {replayer.last_seq + 1} is missing"
            )
        if divergence is None:
            divergence = await replayer.leftovers(target, whole_journal)
    records, events, trades, entries, legs, orders = replayer.counts
    return ReplayReport(
        target, records, events, trades, entries, legs, divergence, time.perf_counter() - started, orders
    )


# ---------------------------------------------------------------------------------------------------- order books


class UnknownInstrument(LookupError):
    """The instrument was not listed at the seq asked about."""


@dataclass(frozen=True, slots=True)
class RestingOrder:
    order_id: int
    account: str
    side: str
    type: str
    price: int  # ticks; for a market order waiting for an auction, its band limit
    quantity: int
    remaining: int
    priority_seq: int


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: int
    quantity: int
    order_count: int
    orders: tuple[RestingOrder, ...]  # in time priority


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """One instrument's book after command `seq` (executed at `ts_us`): levels best first, orders in queue order."""

    symbol: str
    seq: int
    ts_us: int
    state: TradingState
    instrument: Instrument
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    auction_market_orders: tuple[RestingOrder, ...]  # market orders waiting for a call phase to uncross


def _resting(order: Order) -> RestingOrder:
    return RestingOrder(
        order.order_id,
        order.account,
        order.side.value,
        order.type.value,
        order.price,
        order.quantity,
        order.remaining,
        order.priority,
    )


async def seq_at_time(pool: asyncpg.Pool, at_ts_us: int) -> int:
    """The last seq executed at or before `at_ts_us` (0: nothing had happened yet). Timestamps never go back."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM journal WHERE ts_us <= $1", at_ts_us))


async def book_at(
    pool: asyncpg.Pool, symbol: str, seq: int | None = None, at_ts_us: int | None = None
) -> BookSnapshot:
    """The book of `symbol` as it stood after `seq`, or at time `at_ts_us`, or now (neither given).

    Raises `UnknownInstrument` if the symbol was not listed by then, and `ledger.recovery.JournalCorrupt` if the
    journal does not chain up to there.
    """
    if seq is not None and at_ts_us is not None:
        raise ValueError("give seq or at_ts_us, not both")
    if at_ts_us is not None:
        seq = await seq_at_time(pool, at_ts_us)
    if seq is not None and seq <= 0:
        raise UnknownInstrument(f"nothing was listed before the first journal record: no {symbol}")
    # From genesis, never from a snapshot: the regulator's view depends on nothing but the journal.
    recovered = await recover(pool, to_seq=seq, use_snapshot=False)
    engine = recovered.engine
    instrument = engine.instruments.get(symbol)
    if instrument is None:
        raise UnknownInstrument(f"{symbol} was not listed at seq {recovered.last_seq}")
    book = engine.books[symbol]

    def levels(side: Any) -> tuple[BookLevel, ...]:
        return tuple(
            BookLevel(level.price, level.quantity, level.count, tuple(_resting(o) for o in level))
            for level in side.levels_best_first()
        )

    waiting = [*book.market_bids.values(), *book.market_asks.values()]
    return BookSnapshot(
        symbol,
        recovered.last_seq,
        recovered.last_ts_us,
        instrument.state,
        instrument,
        levels(book.bids),
        levels(book.asks),
        tuple(_resting(o) for o in waiting),
    )
