"""The edge between decimal numbers and the core's integers: prices, quantities and cash.

Clients send decimals as JSON strings of plain digits with an optional point ("10.05"); anything else (numbers,
exponents, signs, NaN, infinities, too many digits) is refused here with a code that says what was wrong. A value off
the instrument's tick or lot grid is rejected, never rounded. This module is the only place that converts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from exchange.instrument import Instrument, InstrumentKind

DECIMAL_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?$")
MAX_DIGITS = 30


@dataclass(slots=True)
class UnitError(Exception):
    """A decimal that cannot become a core integer; `code` is the API error code."""

    code: str
    message: str
    field: str

    def __str__(self) -> str:
        return self.message


def parse_decimal(text: str, field: str) -> Decimal:
    """A non-negative decimal from its plain string form; refuses numbers that are not strings of digits."""
    if not isinstance(text, str):
        raise UnitError("DECIMAL_MUST_BE_STRING", f"{field} must be a JSON string such as \"10.05\"", field)
    if len(text) > MAX_DIGITS or not DECIMAL_PATTERN.match(text):
        raise UnitError(
            "INVALID_DECIMAL",
            f"{field} must be plain digits with an optional decimal point (at most 18 digits before and 12 after)",
            field,
        )
    return Decimal(text)


def _exact_multiple(value: Decimal, step: Decimal) -> int | None:
    ratio = value / step
    if ratio != ratio.to_integral_value():
        return None
    return int(ratio)


def price_step(instrument: Instrument) -> Decimal:
    return Decimal(instrument.tick_size)


def price_to_ticks(instrument: Instrument, text: str, field: str = "price") -> int:
    value = parse_decimal(text, field)
    if value <= 0:
        raise UnitError("PRICE_NOT_POSITIVE", f"{field} must be greater than zero", field)
    ticks = _exact_multiple(value, price_step(instrument))
    if ticks is None:
        raise UnitError(
            "PRICE_NOT_ON_TICK", f"{field} {text} is not a multiple of the tick size {instrument.tick_size}", field
        )
    if ticks >= 2**53:
        raise UnitError("PRICE_OUT_OF_RANGE", f"{field} is too large", field)
    return ticks


def ticks_to_price(instrument: Instrument, ticks: int) -> str:
    return _plain(Decimal(ticks) * price_step(instrument))


def quantity_to_units(instrument: Instrument, text: str, field: str = "quantity") -> int:
    value = parse_decimal(text, field)
    if value <= 0:
        raise UnitError("QUANTITY_NOT_POSITIVE", f"{field} must be greater than zero", field)
    if value != value.to_integral_value():
        raise UnitError("QUANTITY_NOT_ON_LOT", f"{field} must be a whole number of units", field)
    units = int(value)
    if units % instrument.lot_size:
        raise UnitError(
            "QUANTITY_NOT_ON_LOT", f"{field} must be a multiple of the lot size {instrument.lot_size}", field
        )
    if units >= 2**53:
        raise UnitError("QUANTITY_OUT_OF_RANGE", f"{field} is too large", field)
    return units


def units_to_quantity(units: int) -> str:
    return str(units)


def cash_to_minor(text: str, currency_decimals: int, field: str = "amount") -> int:
    value = parse_decimal(text, field)
    if value <= 0:
        raise UnitError("AMOUNT_NOT_POSITIVE", f"{field} must be greater than zero", field)
    minor = value.scaleb(currency_decimals)
    if minor != minor.to_integral_value():
        raise UnitError(
            "AMOUNT_TOO_PRECISE", f"{field} has more than {currency_decimals} decimals", field
        )
    if minor >= 2**62:
        raise UnitError("AMOUNT_OUT_OF_RANGE", f"{field} is too large", field)
    return int(minor)


def minor_to_cash(minor: int, currency_decimals: int) -> str:
    return _plain(Decimal(minor).scaleb(-currency_decimals))


def _plain(value: Decimal) -> str:
    """Fixed-point text with no exponent and no needless trailing zeros beyond the integer part."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def tick_value(
    kind: InstrumentKind,
    tick_size: Decimal,
    lot_size: int,
    currency_decimals: int,
    nominal: Decimal | None = None,
) -> int:
    """Minor units of cash per one-tick price on one lot; must be whole (a listing rule, see `Instrument`).

    Equities: tick_size x lot x 10^decimals. Bonds (price in percent of par): tick_size / 100 x nominal x lot x 10^decimals.
    """
    if kind is InstrumentKind.EQUITY:
        value = tick_size * lot_size
    else:
        if nominal is None:
            raise UnitError("NOMINAL_REQUIRED", "a bond needs its nominal value per unit", "nominal")
        value = tick_size / 100 * nominal * lot_size
    minor = value.scaleb(currency_decimals)
    if minor != minor.to_integral_value() or minor < 1:
        raise UnitError(
            "TICK_VALUE_NOT_WHOLE",
            "tick size x lot size must be worth a whole number of minor currency units",
            "tick_size",
        )
    return int(minor)
