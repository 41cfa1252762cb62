"""Commands: everything that can change the exchange's state, as plain immutable values.

The sequencer stamps each command with a sequence number and an exchange timestamp and hands it to
`Engine.apply`; the journal stores exactly these values, so replaying them rebuilds the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from exchange.instrument import Instrument, InvestorCategory, TradingState
from exchange.orders import OrderType, SelfTradePrevention, Side, TimeInForce


@dataclass(frozen=True, slots=True)
class ListInstrument:
    instrument: Instrument


@dataclass(frozen=True, slots=True)
class SetTradingState:
    symbol: str
    state: TradingState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Deposit:
    """Cash entering the exchange from outside (a bank transfer credited by an operator)."""

    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class Withdraw:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class IssueSecurities:
    """Securities created for their issuer (primary issuance): from the venue's issuance account to the issuer."""

    account: str
    symbol: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    account: str
    symbol: str
    side: Side
    type: OrderType
    quantity: int
    price: int | None = None
    tif: TimeInForce = TimeInForce.GTC
    expire_at_us: int | None = None
    post_only: bool = False
    client_order_id: str | None = None
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST


@dataclass(frozen=True, slots=True)
class CancelOrder:
    account: str
    order_id: int


@dataclass(frozen=True, slots=True)
class CancelAll:
    account: str
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Change a resting order's price and/or total quantity (`quantity` includes what has already traded)."""

    account: str
    order_id: int
    price: int | None = None
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class EndOfDay:
    """Expire every DAY order (of one instrument, or of all when `symbol` is None)."""

    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class RunAuction:
    """Uncross a call phase now and stay in it (the periodic auctions of an auction-only instrument)."""

    symbol: str


@dataclass(frozen=True, slots=True)
class ClockTick:
    """The exchange clock moved: expire GTD orders whose time has come (the command's timestamp is 'now')."""


# ---------------------------------------------------------------- investors, primary offers, distributions


@dataclass(frozen=True, slots=True)
class SetInvestorProfile:
    """Classify an account (at onboarding): its category and, for retail caps in % of assets, its declared assets."""

    account: str
    category: InvestorCategory
    declared_assets_minor: int | None = None


@dataclass(frozen=True, slots=True)
class AcknowledgeRiskWarning:
    """A retail investor read and accepted the risk warning (once, before its first order or subscription)."""

    account: str


@dataclass(frozen=True, slots=True)
class OpenOffer:
    """A primary offer: `quantity` units of `symbol` sold by `issuer` at a fixed `price` (ticks, as orders).

    Applications are whole lots of at least `min_application` units until `closes_at_us`; the offer succeeds only if
    at least `min_subscription` units are applied for (all or nothing).
    """

    offer_id: str
    symbol: str
    issuer: str
    price: int
    quantity: int
    min_application: int
    min_subscription: int
    closes_at_us: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    account: str
    offer_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class CloseOffer:
    """Close an offer at or after its closing time: allocate (pro rata if oversubscribed) or refund everything."""

    offer_id: str


@dataclass(frozen=True, slots=True)
class PayCoupon:
    """Pay the coupon due on `payment_date` to every holder at this command's sequence number (the record seq)."""

    symbol: str
    payment_date: date


@dataclass(frozen=True, slots=True)
class PayDividend:
    """Pay `amount_per_share_micro` millionths of the currency unit (EUR 0.125 -> 125_000) per share held."""

    symbol: str
    amount_per_share_micro: int


@dataclass(frozen=True, slots=True)
class Redeem:
    """Repay a bond at or after maturity: holders' units are retired and the redemption amount paid."""

    symbol: str


@dataclass(frozen=True, slots=True)
class RecordImpactOutcome:
    """The latest assured impact report of an impact-linked bond met (or missed) its target: the coupon steps."""

    symbol: str
    target_met: bool
    report: str = ""


Command = (
    ListInstrument
    | SetTradingState
    | Deposit
    | Withdraw
    | IssueSecurities
    | PlaceOrder
    | CancelOrder
    | CancelAll
    | AmendOrder
    | EndOfDay
    | ClockTick
    | RunAuction
    | SetInvestorProfile
    | AcknowledgeRiskWarning
    | OpenOffer
    | Subscribe
    | CloseOffer
    | PayCoupon
    | PayDividend
    | Redeem
    | RecordImpactOutcome
)
