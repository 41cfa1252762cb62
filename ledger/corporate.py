"""Ledger entries of primary offers and distributions (pure functions, no I/O), in the style of `ledger.settlement`.

- an offer's opening HOLDs the issuer's offered units (available -> held);
- a subscription HOLDs the subscriber's cash (available -> held);
- at the close each application with an allocation is ONE fill entry, delivery versus payment: the issuer's held units
  to the subscriber's available, the subscriber's held cash (the allocation at the offer price) to the issuer's
  available; the application's unallocated cash is RELEASEd in a second entry; the issuer's unsold units are RELEASEd;
- a coupon or a dividend moves each holder's amount from the issuer's available cash to the holder's available
  (one CORPORATE_ACTION entry per holder paid);
- a redemption retires each holder's units (holder's available -> the venue's issuance account, where issuance created
  them) and pays the redemption amount from the issuer's available cash, in one CORPORATE_ACTION entry per holder.

Profiles, risk-warning acknowledgments, summaries and coupon-rate changes move nothing and have no entry. Amounts are
the events' own: nothing is recomputed here. Zero amounts (a holding too small to earn a cent) make no leg.
"""

from __future__ import annotations

from collections.abc import Callable

from exchange.events import (
    BondRedeemed,
    CouponPaid,
    DividendPaid,
    Event,
    OfferClosed,
    OfferOpened,
    SubscriptionAccepted,
    SubscriptionSettled,
)
from ledger.entries import VENUE, AccountRef, Bucket, EntryKind, Leg

# Not imported from ledger.settlement, which imports this module.
ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)

Add = Callable[[EntryKind, tuple[Leg, ...]], None]

CORPORATE_EVENTS: frozenset[type] = frozenset(
    {OfferOpened, SubscriptionAccepted, SubscriptionSettled, OfferClosed, CouponPaid, DividendPaid, BondRedeemed}
)


def corporate_entries(event: Event, add: Add) -> None:
    """Add the entries of one corporate event (a type in `CORPORATE_EVENTS`) through `add(kind, legs)`."""
    kind = type(event)
    if kind is SubscriptionAccepted:
        add(EntryKind.HOLD, (Leg(available(event.account), held(event.account), event.currency, event.amount),))
    elif kind is SubscriptionSettled:
        if event.allocated:
            add(EntryKind.FILL, allocation_legs(event))
        if event.released:
            refund = Leg(held(event.account), available(event.account), event.currency, event.released)
            add(EntryKind.RELEASE, (refund,))
    elif kind is OfferOpened:
        add(EntryKind.HOLD, (Leg(available(event.issuer), held(event.issuer), event.symbol, event.quantity),))
    elif kind is OfferClosed:
        if event.unsold:
            add(EntryKind.RELEASE, (Leg(held(event.issuer), available(event.issuer), event.symbol, event.unsold),))
    elif kind is CouponPaid or kind is DividendPaid:
        if event.amount:
            payment = Leg(available(event.issuer), available(event.account), event.currency, event.amount)
            add(EntryKind.CORPORATE_ACTION, (payment,))
    elif kind is BondRedeemed:
        legs = [Leg(available(event.account), ISSUANCE, event.symbol, event.units)]
        if event.amount:
            legs.append(Leg(available(event.issuer), available(event.account), event.currency, event.amount))
        add(EntryKind.CORPORATE_ACTION, tuple(legs))


def available(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.AVAILABLE)


def held(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.HELD)


def allocation_legs(event: SubscriptionSettled) -> tuple[Leg, ...]:
    """Delivery versus payment of one allocation, in one entry."""
    legs = [Leg(held(event.issuer), available(event.account), event.symbol, event.allocated)]
    if event.paid:
        legs.append(Leg(held(event.account), available(event.issuer), event.currency, event.paid))
    return tuple(legs)
