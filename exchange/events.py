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

from exchange.instrument import TradingState
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
)
