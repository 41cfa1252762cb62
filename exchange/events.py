"""Events: what the core says happened, in order, for each command.

Events are immutable records (`NamedTuple`: as cheap to build as a tuple, which matters because every command
builds several; a frozen dataclass costs eight times more per field). Every event carries the sequence number of the
command that caused it. Holds, releases and settlement amounts travel
on the order and trade events themselves (`hold_amount`, `release_amount`, `buyer_release`, fees), so that the ledger can
turn each event into balanced postings without recomputing any rule, and a replay can compare them field by field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from exchange.instrument import InvestorCategory, TradingState
from exchange.orders import CancelReason, OrderType, SelfTradePrevention, Side, TimeInForce
from exchange.rejects import RejectReason


class BalanceChangeKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    ISSUANCE = "issuance"


class InstrumentListed(NamedTuple):
    seq: int
    symbol: str


class TradingStateChanged(NamedTuple):
    seq: int
    symbol: str
    previous: TradingState
    state: TradingState
    reason: str


class BalanceChanged(NamedTuple):
    """Money or securities entering or leaving the exchange: deposit, withdrawal, issuance."""

    seq: int
    account: str
    asset: str
    kind: BalanceChangeKind
    amount: int


class CommandRejected(NamedTuple):
    """A command refused with a reason; nothing else changed.

    `order_id` names the order the command was about (a cancel or amend), or, for a duplicate client order id, the
    order that already carries it.
    """

    seq: int
    account: str | None
    reason: RejectReason
    order_id: int | None = None
    client_order_id: str | None = None
    symbol: str | None = None


class OrderAccepted(NamedTuple):
    seq: int
    order_id: int
    account: str
    symbol: str
    side: Side
    type: OrderType
    price: int  # the limit; for a market order the band limit it may trade to
    quantity: int
    tif: TimeInForce
    expire_at_us: int | None
    post_only: bool
    client_order_id: str | None
    stp: SelfTradePrevention
    hold_asset: str
    hold_amount: int  # moved from available to held


class Trade(NamedTuple):
    """One execution between a resting (maker) and an incoming (taker) order, at the maker's price.

    Cash: the buyer pays `cash + accrued + buyer_fee` out of held cash; the seller receives `cash + accrued - seller_fee`;
    the venue's fee account receives both fees. `buyer_release` is the buyer's held cash that this fill frees (the hold
    was taken at the limit price and for the fee and accrued bounds). Securities: `quantity` from the seller's held to the
    buyer's available.
    """

    seq: int
    trade_id: int
    symbol: str
    price: int
    quantity: int
    aggressor: Side
    buy_order_id: int
    sell_order_id: int
    buyer: str
    seller: str
    currency: str
    cash: int
    accrued: int
    buyer_fee: int
    seller_fee: int
    buyer_release: int
    buy_remaining: int
    sell_remaining: int
    auction: bool = False  # an uncrossing: nobody took liquidity, both sides paid the maker rate


class OrderCancelled(NamedTuple):
    """Quantity taken off an order without trading: a cancel, an expiry, a remainder, a self-trade decrement.

    `remaining` is what is left after it (0 unless a self-trade decrement left the order live).
    """

    seq: int
    order_id: int
    account: str
    symbol: str
    reason: CancelReason
    cancelled_quantity: int
    remaining: int
    release_asset: str
    release_amount: int


class OrderAmended(NamedTuple):
    """A resting order's new price and total quantity. `hold_delta` > 0 held more, < 0 released."""

    seq: int
    order_id: int
    account: str
    symbol: str
    price: int
    quantity: int
    remaining: int
    priority_kept: bool
    hold_asset: str
    hold_delta: int


class BookLevelChanged(NamedTuple):
    """The aggregated level-2 view of one price level after the command (quantity 0: the level is gone)."""

    seq: int
    symbol: str
    side: Side
    price: int
    quantity: int
    order_count: int


class IndicativeAuction(NamedTuple):
    """During a call phase: the price and volume the auction would have if it uncrossed now, and the surplus."""

    seq: int
    symbol: str
    price: int | None
    volume: int
    surplus: int


class AuctionUncrossed(NamedTuple):
    """A call phase ended: the single price all its executions got (None: nothing could trade) and the rule that set it."""

    seq: int
    symbol: str
    price: int | None
    volume: int
    surplus: int
    rule: str


# ---------------------------------------------------------------- investors, primary offers, distributions
# Every amount the ledger needs travels on the event (see ledger.corporate): nothing is recomputed downstream.


class DistributionKind(StrEnum):
    COUPON = "coupon"
    DIVIDEND = "dividend"
    REDEMPTION = "redemption"


class InvestorProfileSet(NamedTuple):
    seq: int
    account: str
    category: InvestorCategory
    declared_assets_minor: int | None


class RiskWarningAcknowledged(NamedTuple):
    seq: int
    account: str


class OfferOpened(NamedTuple):
    """A primary offer opened: the issuer's offered securities move from available to held until the close."""

    seq: int
    offer_id: str
    symbol: str
    issuer: str
    currency: str
    price: int
    quantity: int
    min_application: int
    min_subscription: int
    closes_at_us: int


class SubscriptionAccepted(NamedTuple):
    """An application to an offer; its cash (`amount`, quantity at the offer price) moves to held. Its id is `seq`."""

    seq: int
    offer_id: str
    account: str
    symbol: str
    quantity: int
    currency: str
    amount: int


class SubscriptionSettled(NamedTuple):
    """One application at the offer's close: `allocated` units delivered against `paid` (delivery versus payment,
    issuer's held securities to the subscriber, the subscriber's held cash to the issuer), `released` cash freed."""

    seq: int
    offer_id: str
    subscription_seq: int
    account: str
    issuer: str
    symbol: str
    currency: str
    requested: int
    allocated: int
    paid: int
    released: int


class OfferClosed(NamedTuple):
    """The close of an offer: `succeeded` (minimum subscription reached, allocation done) or everything refunded;
    `unsold` securities go back from the issuer's held to its available."""

    seq: int
    offer_id: str
    symbol: str
    issuer: str
    succeeded: bool
    subscribed: int
    allocated: int
    unsold: int


class CouponPaid(NamedTuple):
    """One holder's coupon: `amount` from the issuer's available cash to the holder's."""

    seq: int
    symbol: str
    account: str
    issuer: str
    currency: str
    payment_date: str  # ISO 8601 (events stay flat: ints, strs, bools and str enums)
    units: int
    amount: int


class DividendPaid(NamedTuple):
    """One shareholder's dividend: `amount` from the issuer's available cash to the holder's."""

    seq: int
    symbol: str
    account: str
    issuer: str
    currency: str
    units: int
    amount: int


class BondRedeemed(NamedTuple):
    """One holder's redemption: `units` retired (to the venue's issuance account) and `amount` paid by the issuer."""

    seq: int
    symbol: str
    account: str
    issuer: str
    currency: str
    units: int
    amount: int


class DistributionCompleted(NamedTuple):
    """The summary of a coupon, dividend or redemption: holders at the record seq (= `seq`), units and the total.

    `rate` is the coupon rate in ppm (coupons), the amount per share in millionths of the currency unit (dividends)
    or the redemption price in ppm of nominal (redemptions).
    """

    seq: int
    symbol: str
    kind: DistributionKind
    issuer: str
    currency: str
    payment_date: str | None  # ISO 8601: the coupon date or the maturity date; None for a dividend
    rate: int
    holders: int
    units: int
    total: int


class CouponRateChanged(NamedTuple):
    """An impact-linked bond's coupon rate after an assured impact report (target met: step down; missed: step up)."""

    seq: int
    symbol: str
    target_met: bool
    previous_rate_ppm: int
    rate_ppm: int
    report: str


Event = (
    InstrumentListed
    | TradingStateChanged
    | BalanceChanged
    | CommandRejected
    | OrderAccepted
    | Trade
    | OrderCancelled
    | OrderAmended
    | BookLevelChanged
    | IndicativeAuction
    | AuctionUncrossed
    | InvestorProfileSet
    | RiskWarningAcknowledged
    | OfferOpened
    | SubscriptionAccepted
    | SubscriptionSettled
    | OfferClosed
    | CouponPaid
    | DividendPaid
    | BondRedeemed
    | DistributionCompleted
    | CouponRateChanged
)
