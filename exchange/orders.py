"""Orders as they live in the book: sides, types, validity, self-trade prevention and the mutable resting order."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from exchange.accounts import Balance

if TYPE_CHECKING:
    from exchange.book import PriceLevel


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "GTC"  # good till cancelled
    DAY = "DAY"  # expired by the end-of-day command
    IOC = "IOC"  # immediate or cancel: the remainder never rests
    FOK = "FOK"  # fill or kill: fills completely at once or does nothing
    GTD = "GTD"  # good till date: expired by a clock command at or after expire_at


class SelfTradePrevention(StrEnum):
    """What happens when an incoming order would trade with a resting order of the same account.

    The incoming (taker) order's instruction decides, as on Coinbase and Binance.
    """

    CANCEL_NEWEST = "cancel_newest"
    CANCEL_OLDEST = "cancel_oldest"
    CANCEL_BOTH = "cancel_both"
    DECREMENT = "decrement"


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class CancelReason(StrEnum):
    USER = "user"
    IOC_REMAINDER = "ioc_remainder"
    MARKET_REMAINDER = "market_remainder"
    SELF_TRADE = "self_trade"
    EXPIRED = "expired"
    DELISTED = "delisted"
    OPERATOR = "operator"


class Order:
    """A live order. Mutable, and linked into its price level's FIFO queue (prev/next) for O(1) removal.

    `remaining` is what can still trade; `quantity` the current total, what has traded plus `remaining` (a self-trade
    decrement or an amend lowers it). What the order traded, its client order id and its average price live in the
    order's events and the `orders` projection, not here: a resting order is kept as small as it can be. `hold_per_lot` is the cash a buy keeps held per
    remaining lot (limit notional, the fee bound and, for bonds, the accrued-interest bound), so the held cash of a buy
    is always exactly `remaining // lot_size * hold_per_lot`; for a sell the held securities are `remaining`.
    """

    __slots__ = (
        "order_id",
        "account",
        "symbol",
        "side",
        "type",
        "price",
        "quantity",
        "remaining",
        "tif",
        "expire_at_us",
        "post_only",
        "stp",
        "hold_per_lot",
        "hold_balance",
        "priority",
        "level",
        "prev",
        "next",
    )

    def __init__(
        self,
        order_id: int,
        account: str,
        symbol: str,
        side: Side,
        type: OrderType,
        price: int,
        quantity: int,
        tif: TimeInForce,
        expire_at_us: int | None,
        post_only: bool,
        stp: SelfTradePrevention,
        hold_per_lot: int,
        priority: int,
        hold_balance: Balance,
    ) -> None:
        self.order_id = order_id
        self.account = account
        self.symbol = symbol
        self.side = side
        self.type = type
        # For a market order this is the band limit it may trade up (buy) or down (sell) to.
        self.price = price
        self.quantity = quantity
        self.remaining = quantity
        self.tif = tif
        self.expire_at_us = expire_at_us
        self.post_only = post_only
        self.stp = stp
        self.hold_per_lot = hold_per_lot
        # The balance this order's hold sits in (the account's cash for a buy, its securities for a sell): fills and
        # cancels move it without looking it up again by account and asset. One pointer; balances are never removed.
        self.hold_balance = hold_balance
        self.priority = priority
        self.level: PriceLevel | None = None
        self.prev: Order | None = None
        self.next: Order | None = None

    def __repr__(self) -> str:
        return (
            f"Order(id={self.order_id}, {self.account}, {self.side} {self.remaining}/{self.quantity}"
            f" {self.symbol} @ {self.price})"
        )
