"""Primary offers: a subscription window at a fixed price, all or nothing, pro-rata allocation when oversubscribed.

Life of an offer, each step a journalled command:
- `OpenOffer`: the issuer's offered units move from available to held (it must already own them, by
  `IssueSecurities`). One open offer per instrument at a time; offer ids are unique forever. The price is in ticks of
  the instrument, like an order's (a bond's in percent of par), so an application of q units costs exactly
  `instrument.notional(price, q)`: no accrued interest (an offer settles at its issue price), no fees.
- `Subscribe`: an application of whole lots, at least `min_application` units, before `closes_at_us`; its cash moves
  from available to held. The investor protections of `exchange.investors` apply as to a buy order. The issuer may
  not subscribe to its own offer. Applications are irrevocable until the close.
- `CloseOffer`: only at or after `closes_at_us` (an offer never closes as a side effect of some other command: the
  operator's scheduler sends the close, and the journal shows when it happened). Subscriptions arriving at or after
  `closes_at_us` are refused (OFFER_NOT_OPEN) even while the close has not been sent yet.
  * If fewer than `min_subscription` units were applied for (or the instrument was delisted meanwhile), the offer
    fails: every application's cash is released in full and the issuer's units go back to its available balance.
  * Otherwise every application gets `allocate(...)` below; each allocation settles delivery versus payment in one
    ledger entry (subscriber's held cash -> issuer's available, issuer's held units -> subscriber's available), the
    unallocated cash of each application is released, and the unsold units go back to the issuer.

Allocation rule (`allocate`), with S units applied for and Q offered:
- S <= Q: everybody gets what they applied for.
- S > Q (oversubscribed): application i first gets floor(q_i * Q / S) rounded DOWN to the lot. The lots left over
  (always fewer than the number of applications) go one lot each to the applications with the largest remainder
  q_i * Q / S - allocation_i, ties to the earlier application (lower seq). Nobody gets more than applied for, every
  allocation is whole lots, and the allocations add up to exactly Q: no unit and no cent is created or lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from exchange import engine as core
from exchange import investors
from exchange.accounts import VENUE
from exchange.commands import CloseOffer, OpenOffer, Subscribe
from exchange.events import OfferClosed, OfferOpened, SubscriptionAccepted, SubscriptionSettled
from exchange.instrument import TradingState
from exchange.rejects import RejectReason

if TYPE_CHECKING:
    from exchange.engine import Engine


class OfferStatus(StrEnum):
    OPEN = "open"
    ALLOCATED = "allocated"
    REFUNDED = "refunded"


@dataclass(slots=True)
class Subscription:
    seq: int  # the Subscribe command's sequence number: its id and its priority
    account: str
    quantity: int
    amount: int  # cash held: quantity at the offer price
    allocated: int = 0
    paid: int = 0


@dataclass(slots=True)
class Offer:
    offer_id: str
    symbol: str
    issuer: str
    currency: str
    price: int
    quantity: int
    min_application: int
    min_subscription: int
    closes_at_us: int
    opened_seq: int
    status: OfferStatus = OfferStatus.OPEN
    subscriptions: list[Subscription] = field(default_factory=list)
    subscribed: int = 0
    allocated: int = 0
    closed_seq: int | None = None
    pending_by_account: dict[str, int] = field(default_factory=dict)  # cash held per subscriber while open


class OfferBook:
    """Every offer ever opened, by id, and the open one of each instrument."""

    __slots__ = ("offers", "open_by_symbol")

    def __init__(self) -> None:
        self.offers: dict[str, Offer] = {}
        self.open_by_symbol: dict[str, str] = {}

    def get(self, offer_id: str) -> Offer | None:
        return self.offers.get(offer_id)

    def pending_amount(self, account: str, symbols: Iterable[str]) -> int:
        """Cash `account` holds in applications to the open offers of these instruments."""
        total = 0
        for symbol in symbols:
            offer_id = self.open_by_symbol.get(symbol)
            if offer_id is not None:
                total += self.offers[offer_id].pending_by_account.get(account, 0)
        return total


def allocate(requested: Sequence[int], offered: int, lot: int) -> list[int]:
    """Units allocated to each application (in priority order) when `offered` units meet `requested` ones.

    `offered` and every request must be whole lots. See the module docstring for the rule.
    """
    assert lot >= 1 and offered >= 0 and offered % lot == 0
    assert all(q > 0 and q % lot == 0 for q in requested)
    total = sum(requested)
    if total <= offered:
        return list(requested)
    shares = [q * offered // (total * lot) * lot for q in requested]
    left_lots = (offered - sum(shares)) // lot
    if left_lots:
        # remainder_i = q_i * Q / S - share_i; comparing the numerators over the common S is exact.
        by_remainder = sorted(range(len(requested)), key=lambda i: (shares[i] * total - requested[i] * offered, i))
        for i in by_remainder[:left_lots]:
            shares[i] += lot
    return shares


# ---------------------------------------------------------------- handlers


def open_offer(engine: Engine, cmd: OpenOffer) -> None:
    instrument = engine._instrument(cmd.symbol)
    if instrument.state is TradingState.DELISTED:
        raise core.Rejected(RejectReason.INSTRUMENT_DELISTED)
    book = engine.offers
    if cmd.offer_id in book.offers:
        raise core.Rejected(RejectReason.OFFER_EXISTS)
    if instrument.issuer is not None and cmd.issuer != instrument.issuer:
        raise core.Rejected(RejectReason.NOT_ISSUER)
    if cmd.symbol in book.open_by_symbol:
        raise core.Rejected(RejectReason.OFFER_IN_PROGRESS)
    lot = instrument.lot_size
    if (
        not cmd.offer_id
        or not cmd.issuer
        or cmd.issuer == VENUE
        or not 0 < cmd.price < core.MAX_PRICE_TICKS
        or not 0 < cmd.quantity <= core.MAX_AMOUNT
        or cmd.quantity % lot
        or not 0 < cmd.min_application <= cmd.quantity
        or cmd.min_application % lot
        or not 0 < cmd.min_subscription <= cmd.quantity
        or cmd.closes_at_us <= engine._ts
        or instrument.notional(cmd.price, cmd.quantity) > core.MAX_AMOUNT
    ):
        raise core.Rejected(RejectReason.INVALID_OFFER_TERMS)
    if engine.balances.peek(cmd.issuer, cmd.symbol)[0] < cmd.quantity:
        raise core.Rejected(RejectReason.INSUFFICIENT_HOLDINGS)
    engine.balances.hold(cmd.issuer, cmd.symbol, cmd.quantity)
    book.offers[cmd.offer_id] = Offer(
        cmd.offer_id,
        cmd.symbol,
        cmd.issuer,
        instrument.currency,
        cmd.price,
        cmd.quantity,
        cmd.min_application,
        cmd.min_subscription,
        cmd.closes_at_us,
        engine._seq,
    )
    book.open_by_symbol[cmd.symbol] = cmd.offer_id
    engine._events.append(
        OfferOpened(
            engine._seq,
            cmd.offer_id,
            cmd.symbol,
            cmd.issuer,
            instrument.currency,
            cmd.price,
            cmd.quantity,
            cmd.min_application,
            cmd.min_subscription,
            cmd.closes_at_us,
        )
    )


def subscribe(engine: Engine, cmd: Subscribe) -> None:
    offer = engine.offers.get(cmd.offer_id)
    if offer is None:
        raise core.Rejected(RejectReason.UNKNOWN_OFFER)
    if offer.status is not OfferStatus.OPEN or engine._ts >= offer.closes_at_us:
        raise core.Rejected(RejectReason.OFFER_NOT_OPEN)
    instrument = engine.instruments[offer.symbol]
    if instrument.state is TradingState.DELISTED:
        raise core.Rejected(RejectReason.INSTRUMENT_DELISTED)
    if cmd.account == VENUE or not cmd.account:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    if cmd.account == offer.issuer:
        raise core.Rejected(RejectReason.ISSUER_CANNOT_SUBSCRIBE)
    quantity = cmd.quantity
    if quantity <= 0 or quantity % instrument.lot_size:
        raise core.Rejected(
            RejectReason.QUANTITY_NOT_ON_LOT if quantity > 0 else RejectReason.QUANTITY_OUT_OF_RANGE
        )
    if quantity < offer.min_application:
        raise core.Rejected(RejectReason.BELOW_MINIMUM_APPLICATION)
    amount = instrument.notional(offer.price, quantity)
    if quantity > core.MAX_AMOUNT or offer.subscribed + quantity > core.MAX_AMOUNT or amount > core.MAX_AMOUNT:
        raise core.Rejected(RejectReason.QUANTITY_OUT_OF_RANGE)
    investors.check_subscription(engine, cmd.account, instrument, amount)
    if engine.balances.peek(cmd.account, offer.currency)[0] < amount:
        raise core.Rejected(RejectReason.INSUFFICIENT_FUNDS)
    engine.balances.hold(cmd.account, offer.currency, amount)
    offer.subscriptions.append(Subscription(engine._seq, cmd.account, quantity, amount))
    offer.subscribed += quantity
    offer.pending_by_account[cmd.account] = offer.pending_by_account.get(cmd.account, 0) + amount
    engine._events.append(
        SubscriptionAccepted(engine._seq, offer.offer_id, cmd.account, offer.symbol, quantity, offer.currency, amount)
    )


def close_offer(engine: Engine, cmd: CloseOffer) -> None:
    offer = engine.offers.get(cmd.offer_id)
    if offer is None:
        raise core.Rejected(RejectReason.UNKNOWN_OFFER)
    if offer.status is not OfferStatus.OPEN:
        raise core.Rejected(RejectReason.OFFER_NOT_OPEN)
    if engine._ts < offer.closes_at_us:
        raise core.Rejected(RejectReason.OFFER_STILL_OPEN)
    instrument = engine.instruments[offer.symbol]
    succeeded = offer.subscribed >= offer.min_subscription and instrument.state is not TradingState.DELISTED
    subscriptions = offer.subscriptions  # already in seq order: the priority of the allocation rule
    if succeeded:
        allocations = allocate([s.quantity for s in subscriptions], offer.quantity, instrument.lot_size)
    else:
        allocations = [0] * len(subscriptions)
    balances = engine.balances
    issuer_cash = balances.of(offer.issuer, offer.currency)
    issuer_units = balances.of(offer.issuer, offer.symbol)
    seq = engine._seq
    events = engine._events
    for subscription, allocated in zip(subscriptions, allocations, strict=True):
        paid = instrument.notional(offer.price, allocated)
        released = subscription.amount - paid
        cash = balances.of(subscription.account, offer.currency)
        cash.held -= subscription.amount
        cash.available += released
        issuer_cash.available += paid
        if allocated:
            issuer_units.held -= allocated
            balances.of(subscription.account, offer.symbol).available += allocated
        assert cash.held >= 0 and issuer_units.held >= 0
        subscription.allocated = allocated
        subscription.paid = paid
        offer.allocated += allocated
        events.append(
            SubscriptionSettled(
                seq,
                offer.offer_id,
                subscription.seq,
                subscription.account,
                offer.issuer,
                offer.symbol,
                offer.currency,
                subscription.quantity,
                allocated,
                paid,
                released,
            )
        )
    unsold = offer.quantity - offer.allocated
    balances.release(offer.issuer, offer.symbol, unsold)
    offer.status = OfferStatus.ALLOCATED if succeeded else OfferStatus.REFUNDED
    offer.closed_seq = seq
    offer.pending_by_account = {}
    del engine.offers.open_by_symbol[offer.symbol]
    events.append(
        OfferClosed(
            seq, offer.offer_id, offer.symbol, offer.issuer, succeeded, offer.subscribed, offer.allocated, unsold
        )
    )
