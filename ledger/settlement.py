"""Settlement rules: the ledger entries that each engine event stands for (pure functions, no I/O).

- a deposit moves cash from the venue's `external` account to the participant's `available`; a withdrawal back;
- an issuance moves new securities from the venue's `issuance` account to the issuer's `available`;
- an accepted order HOLDs (available -> held) cash for a buy (limit notional + fee bound [+ accrued bound]) or the
  securities for a sell; an amend holds more or RELEASEs the difference; a cancel, expiry or remainder RELEASEs;
- a trade is ONE fill entry, delivery versus payment: the seller's held securities go to the buyer's available, the
  buyer's held cash (clean consideration + accrued interest) goes to the seller's available, and each side's fee goes
  to the venue's `fees` account (the buyer's from its held cash, the seller's from the proceeds). What the buyer's
  hold covered beyond that (price improvement, unused fee and accrued bounds) is RELEASEd in a second entry.

Amounts come from the events, where the engine computed them under its documented rounding (fees half-even to the
minor unit, accrued interest half-even on the whole fill); here nothing is recomputed, so the ledger is a faithful
record of what the engine decided and a replay can compare both.
"""

from __future__ import annotations

from collections.abc import Iterable

from exchange.events import (
    BalanceChanged,
    BalanceChangeKind,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    Trade,
)
from ledger.corporate import CORPORATE_EVENTS, corporate_entries
from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, Leg

EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)
ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)
FEES = AccountRef(VENUE, Bucket.FEES)


_AVAILABLE: dict[str, AccountRef] = {}
_HELD: dict[str, AccountRef] = {}


def available(owner: str) -> AccountRef:
    # Account references are immutable and validated once: reuse them (settlement builds several per command).
    ref = _AVAILABLE.get(owner)
    if ref is None:
        ref = _AVAILABLE[owner] = AccountRef(owner, Bucket.AVAILABLE)
    return ref


def held(owner: str) -> AccountRef:
    ref = _HELD.get(owner)
    if ref is None:
        ref = _HELD[owner] = AccountRef(owner, Bucket.HELD)
    return ref


def hold_legs(owner: str, asset: str, amount: int) -> tuple[Leg, ...]:
    return (Leg(available(owner), held(owner), asset, amount),)


def release_legs(owner: str, asset: str, amount: int) -> tuple[Leg, ...]:
    return (Leg(held(owner), available(owner), asset, amount),)


def fill_legs(trade: Trade) -> tuple[Leg, ...]:
    """Delivery versus payment of one trade, in one entry."""
    legs = [
        Leg(held(trade.seller), available(trade.buyer), trade.symbol, trade.quantity),
        Leg(held(trade.buyer), available(trade.seller), trade.currency, trade.cash + trade.accrued),
    ]
    if trade.buyer_fee:
        legs.append(Leg(held(trade.buyer), FEES, trade.currency, trade.buyer_fee))
    if trade.seller_fee:
        legs.append(Leg(available(trade.seller), FEES, trade.currency, trade.seller_fee))
    return tuple(legs)


def entries_for(seq: int, ts_us: int, events: Iterable[Event]) -> list[Entry]:
    """Every ledger entry caused by one command's events, indexed in event order."""
    entries: list[Entry] = []

    def add(kind: EntryKind, legs: tuple[Leg, ...], order_id: int | None = None, trade_id: int | None = None) -> None:
        entries.append(Entry(seq, len(entries), kind, ts_us, legs, order_id, trade_id))

    for event in events:
        kind = type(event)
        if kind is Trade:
            add(EntryKind.FILL, fill_legs(event), event.buy_order_id, event.trade_id)
            if event.buyer_release:
                add(
                    EntryKind.RELEASE,
                    release_legs(event.buyer, event.currency, event.buyer_release),
                    event.buy_order_id,
                    event.trade_id,
                )
        elif kind is OrderAccepted:
            if event.hold_amount:
                add(EntryKind.HOLD, hold_legs(event.account, event.hold_asset, event.hold_amount), event.order_id)
        elif kind is OrderCancelled:
            if event.release_amount:
                add(
                    EntryKind.RELEASE,
                    release_legs(event.account, event.release_asset, event.release_amount),
                    event.order_id,
                )
        elif kind is OrderAmended:
            if event.hold_delta > 0:
                add(EntryKind.HOLD, hold_legs(event.account, event.hold_asset, event.hold_delta), event.order_id)
            elif event.hold_delta < 0:
                add(
                    EntryKind.RELEASE,
                    release_legs(event.account, event.hold_asset, -event.hold_delta),
                    event.order_id,
                )
        elif kind is BalanceChanged:
            if event.kind is BalanceChangeKind.DEPOSIT:
                add(EntryKind.DEPOSIT, (Leg(EXTERNAL, available(event.account), event.asset, event.amount),))
            elif event.kind is BalanceChangeKind.WITHDRAWAL:
                add(EntryKind.WITHDRAWAL, (Leg(available(event.account), EXTERNAL, event.asset, event.amount),))
            else:
                add(EntryKind.ISSUANCE, (Leg(ISSUANCE, available(event.account), event.asset, event.amount),))
        elif kind in CORPORATE_EVENTS:
            corporate_entries(event, add)
    return entries
