"""Request and response bodies of the trading API, and their conversion from the core's integers.

Decimals are strings in both directions (`DecimalText`): a JSON number is refused by pydantic's strict string type
before any float can appear, and `api.units` turns the strings into integers on the instrument's grid.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from api.units import minor_to_cash, ticks_to_price, units_to_quantity
from exchange.instrument import Instrument
from exchange.orders import OrderType, SelfTradePrevention, Side, TimeInForce

DecimalText = Annotated[
    StrictStr,
    Field(max_length=40, examples=["10.05"], description="A decimal as a JSON string of digits and one optional point."),
]
ClientOrderId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
Symbol = Annotated[StrictStr, Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9][A-Z0-9._\-]*$")]
AccountId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# The last second formatted, and its text: orders answered together share their second, and strftime costs several
# times the rest of the formatting. A race between tasks at worst formats a second twice (the pair is one tuple).
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def timestamp(ts_us: int | None) -> str | None:
    """RFC 3339 UTC with microseconds."""
    global _last_second
    if ts_us is None:
        return None
    second, micros = divmod(ts_us, 1_000_000)
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micros:06d}Z"


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PlaceOrderRequest(StrictModel):
    symbol: Symbol
    side: Side
    type: OrderType = OrderType.LIMIT
    price: DecimalText | None = None
    quantity: DecimalText
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: datetime | None = Field(default=None, description="RFC 3339; required for GTD, refused otherwise.")
    post_only: StrictBool = False
    client_order_id: ClientOrderId | None = None
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST


class AmendOrderRequest(StrictModel):
    price: DecimalText | None = None
    quantity: DecimalText | None = Field(
        default=None, description="The new TOTAL quantity, including what has already traded."
    )


class FillView(BaseModel):
    trade_id: str
    order_id: str
    symbol: str
    side: Side
    price: str
    quantity: str
    liquidity: str = Field(description="maker or taker (auction trades: both sides are makers)")
    cash: str
    accrued_interest: str
    fee: str
    currency: str
    seq: int
    time: str | None


class OrderView(BaseModel):
    id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    price: str | None
    quantity: str
    filled_quantity: str
    remaining_quantity: str
    average_price: str | None
    status: str
    cancel_reason: str | None = None
    time_in_force: str
    expire_at: str | None
    post_only: bool
    self_trade_prevention: str
    created_at: str | None
    updated_at: str | None
    seq: int
    fills: list[FillView] = Field(default_factory=list)
    account: str | None = Field(default=None, description="Shown to the owner and the regulator only.")


class OrderPage(BaseModel):
    orders: list[OrderView]
    next_cursor: str | None


class FillPage(BaseModel):
    fills: list[FillView]
    next_cursor: str | None


class BalanceView(BaseModel):
    asset: str
    total: str
    available: str
    held: str


class BalancesView(BaseModel):
    account: str
    balances: list[BalanceView]


class CancelAllView(BaseModel):
    cancelled: list[str]
    seq: int


def average_price(instrument: Instrument, notional: int, filled: int) -> str | None:
    """The volume-weighted average price of the fills, exact where it can be, else to 8 decimals (display only)."""
    if filled == 0:
        return None
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 40
        per_lot_ticks = Decimal(notional) / Decimal(instrument.tick_value) / (Decimal(filled) / instrument.lot_size)
        value = per_lot_ticks * Decimal(instrument.tick_size)
        return format(value.quantize(Decimal("0.00000001")).normalize(), "f")


def price_text(instrument: Instrument, ticks: int | None) -> str | None:
    return None if ticks is None else ticks_to_price(instrument, ticks)


def quantity_text(units: int) -> str:
    return units_to_quantity(units)


def cash_text(instrument: Instrument, minor: int) -> str:
    return minor_to_cash(minor, instrument.currency_decimals)
