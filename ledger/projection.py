"""The `orders` table as a projection of engine events: the current state of every order, kept by a pure fold.

The sequencer feeds each command's events in; after each batch it writes the rows that changed and forgets the
orders that are done. Live orders stay in memory (they are the engine's open orders), so no read of the database is
ever needed on the hot path; after a restart, replaying the journal rebuilds the same live rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.events import Event, OrderAccepted, OrderAmended, OrderCancelled, Trade
from exchange.orders import CancelReason, OrderStatus

# The stored texts of the order states. Enum members' `.value` is a Python-level property, read several times per
# order on the sequencer's hot path; `str()` of a StrEnum member is its value too, in C.
_NEW, _EXPIRED, _CANCELLED, _FILLED, _PARTIALLY_FILLED = (
    str(s)
    for s in (
        OrderStatus.NEW,
        OrderStatus.EXPIRED,
        OrderStatus.CANCELLED,
        OrderStatus.FILLED,
        OrderStatus.PARTIALLY_FILLED,
    )
)


@dataclass(slots=True)
class OrderRow:
    order_id: int
    account: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    price: int
    quantity: int
    remaining: int
    filled: int
    notional_traded: int
    time_in_force: str
    expire_at_us: int | None
    post_only: bool
    stp: str
    status: str
    cancel_reason: str | None
    priority_seq: int
    created_seq: int
    created_ts_us: int
    updated_seq: int
    updated_ts_us: int

    def as_tuple(self) -> tuple:
        return (
            self.order_id,
            self.account,
            self.client_order_id,
            self.symbol,
            self.side,
            self.type,
            self.price,
            self.quantity,
            self.remaining,
            self.filled,
            self.notional_traded,
            self.time_in_force,
            self.expire_at_us,
            self.post_only,
            self.stp,
            self.status,
            self.cancel_reason,
            self.priority_seq,
            self.created_seq,
            self.created_ts_us,
            self.updated_seq,
            self.updated_ts_us,
        )


ORDER_COLUMNS = tuple(OrderRow.__dataclass_fields__)


class OrderProjection:
    """`strict=False` folds a partial stream (one command's events) and skips orders it has not seen accepted."""

    def __init__(self, strict: bool = True) -> None:
        self.live: dict[int, OrderRow] = {}
        self.dirty: dict[int, OrderRow] = {}
        self.strict = strict

    def apply(self, seq: int, ts_us: int, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is OrderAccepted:
                row = OrderRow(
                    event.order_id,
                    event.account,
                    event.client_order_id,
                    event.symbol,
                    str(event.side),
                    str(event.type),
                    event.price,
                    event.quantity,
                    event.quantity,
                    0,
                    0,
                    str(event.tif),
                    event.expire_at_us,
                    event.post_only,
                    str(event.stp),
                    _NEW,
                    None,
                    seq,
                    seq,
                    ts_us,
                    seq,
                    ts_us,
                )
                self.live[event.order_id] = row
                self.dirty[event.order_id] = row
            elif kind is Trade:
                self._fill(event.buy_order_id, event.quantity, event.cash, event.buy_remaining, seq, ts_us)
                self._fill(event.sell_order_id, event.quantity, event.cash, event.sell_remaining, seq, ts_us)
            elif kind is OrderCancelled:
                row = self._touch(event.order_id, seq, ts_us)
                if row is None:
                    continue
                row.remaining = event.remaining
                if event.remaining == 0:
                    row.status = (
                        _EXPIRED
                        if event.reason is CancelReason.EXPIRED
                        else _CANCELLED
                    )
                    row.cancel_reason = str(event.reason)
                    del self.live[event.order_id]
                else:
                    row.quantity -= event.cancelled_quantity
            elif kind is OrderAmended:
                row = self._touch(event.order_id, seq, ts_us)
                if row is None:
                    continue
                row.price = event.price
                row.quantity = event.quantity
                row.remaining = event.remaining
                if not event.priority_kept:
                    row.priority_seq = seq

    def _touch(self, order_id: int, seq: int, ts_us: int) -> OrderRow | None:
        row = self.live.get(order_id)
        if row is None:
            assert not self.strict, f"order {order_id} changed before it was accepted"
            return None
        row.updated_seq = seq
        row.updated_ts_us = ts_us
        self.dirty[order_id] = row
        return row

    def _fill(self, order_id: int, quantity: int, cash: int, remaining: int, seq: int, ts_us: int) -> None:
        row = self._touch(order_id, seq, ts_us)
        if row is None:
            return
        row.filled += quantity
        row.notional_traded += cash
        row.remaining = remaining
        if remaining == 0:
            row.status = _FILLED
            del self.live[order_id]
        else:
            row.status = _PARTIALLY_FILLED

    def take_dirty(self) -> list[OrderRow]:
        rows = list(self.dirty.values())
        self.dirty = {}
        return rows
