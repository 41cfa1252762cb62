"""Commands: everything that can change the exchange's state, as plain immutable values.

The sequencer stamps each command with a sequence number and an exchange timestamp and hands it to
`Engine.apply`; the journal stores exactly these values, so replaying them rebuilds the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.instrument import Instrument, TradingState
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
)
