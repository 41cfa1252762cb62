"""Public market data over REST: instruments, level-2 books, trades, tickers and candles. No key needed.

Books and tickers come from the market-data hub (`app.state.marketdata`), which follows committed commands only; trades
and candles come from the `trades` table. Nothing here names a participant: trades show the aggressor side, never the
buyer, the seller or their orders. (The issuer of an instrument is public: it is the listed company.)
"""

from __future__ import annotations

import re

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.errors import ApiError, ErrorEnvelope
from api.marketdata import Market, MarketData, coupon_rate_percent, now_us, rfc3339
from api.units import minor_to_cash, ticks_to_price, units_to_quantity
from exchange.instrument import Instrument

# ASCII digits only (str.isdigit() admits "²", which int() refuses), at most 18 so it fits a bigint.
_DIGITS = re.compile(r"[0-9]{1,18}")
router = APIRouter(prefix="/v1", tags=["market data"])

MAX_DEPTH = 1_000
MAX_TRADES_PAGE = 1_000
MAX_CANDLES = 1_000
DEFAULT_CANDLES = 300
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


# ---------------------------------------------------------------------------------------------------- response models


class PriceBandView(BaseModel):
    band_bps: int = Field(description="Half-width of the band in basis points of the reference price.")
    lower: str = Field(description="Lowest acceptable price now.")
    upper: str = Field(description="Highest acceptable price now.")


class FeesView(BaseModel):
    maker_bps: int
    taker_bps: int


class BondTermsView(BaseModel):
    nominal: str = Field(description="Face value of one unit, in the instrument's currency.")
    coupon_rate: str = Field(description="Annual coupon rate in percent, e.g. \"3.125\".")
    coupon_frequency: int = Field(description="Coupons per year.")
    day_count: str
    issue_date: str
    maturity_date: str
    first_coupon_date: str | None
    redemption: str = Field(description="Redemption price in percent of nominal.")


class InstrumentView(BaseModel):
    symbol: str
    kind: str = Field(description="equity or bond (a bond is priced in percent of par)")
    currency: str
    tick_size: str
    lot_size: str
    min_quantity: str
    max_quantity: str
    trading_state: str
    reference_price: str
    band: PriceBandView | None = Field(description="None: no price band.")
    fees: FeesView
    auction_only: bool
    bond: BondTermsView | None
    issuer: str | None = Field(description="Participant id of the issuer (the listed company).")


class InstrumentList(BaseModel):
    instruments: list[InstrumentView]


class BookLevelView(BaseModel):
    price: str
    quantity: str
    order_count: int


class BookView(BaseModel):
    symbol: str
    seq: int = Field(description="The book is as it was after this command; nothing changed it since.")
    time: str | None
    bids: list[BookLevelView] = Field(description="Best (highest) first.")
    asks: list[BookLevelView] = Field(description="Best (lowest) first.")


class PublicTradeView(BaseModel):
    trade_id: str
    seq: int
    price: str
    quantity: str
    aggressor: str = Field(description="The side of the incoming order that took liquidity (buy or sell).")
    time: str | None


class PublicTradePage(BaseModel):
    symbol: str
    trades: list[PublicTradeView] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for older trades; None at the first trade.")


class IndicativeAuctionView(BaseModel):
    price: str | None = Field(description="The price the auction would uncross at now (None: nothing would trade).")
    volume: str
    surplus: str


class TickerView(BaseModel):
    symbol: str
    seq: int
    time: str | None
    trading_state: str
    reference_price: str | None
    last_price: str | None
    last_quantity: str | None
    last_trade_time: str | None
    best_bid: str | None
    best_bid_quantity: str | None
    best_ask: str | None
    best_ask_quantity: str | None
    open_24h: str | None = Field(description="Statistics over the current UTC minute and the 1,439 before it.")
    high_24h: str | None
    low_24h: str | None
    volume_24h: str
    trades_24h: int
    indicative_auction: IndicativeAuctionView | None = Field(description="During a call phase only.")


class Interval(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"


INTERVAL_US = {
    Interval.M1: 60 * _US,
    Interval.M5: 300 * _US,
    Interval.M15: 900 * _US,
    Interval.H1: 3_600 * _US,
    Interval.D1: 86_400 * _US,
}


class CandleView(BaseModel):
    start: str = Field(
        description="Start of the bucket (UTC, aligned on the Unix epoch: 1d buckets start at 00:00 UTC)."
    )
    open: str
    high: str
    low: str
    close: str
    volume: str
    trades: int


class CandlesView(BaseModel):
    symbol: str
    interval: Interval
    start: str
    end: str
    candles: list[CandleView] = Field(description="Oldest first; buckets without trades are left out.")


# ---------------------------------------------------------------------------------------------------- helpers


def hub_of(request: Request) -> MarketData:
    hub = getattr(request.app.state, "marketdata", None)
    if hub is None or not hub.running:
        raise ApiError(503, "NOT_READY", "market data is starting")
    return hub


def market_of(request: Request, symbol: str) -> Market:
    market = hub_of(request).market(symbol)
    if market is None:
        raise ApiError(404, "UNKNOWN_INSTRUMENT", f"no instrument {symbol}", {"symbol": symbol})
    return market


def instrument_view(market: Market) -> InstrumentView:
    instrument: Instrument = market.instrument
    band: PriceBandView | None = None
    if instrument.band_bps:
        # The band as the engine computes it, around the committed reference price.
        probe = _with_reference(instrument, market.reference_price)
        lower, upper = probe.band()
        band = PriceBandView(
            band_bps=instrument.band_bps,
            lower=ticks_to_price(instrument, lower),
            upper=ticks_to_price(instrument, upper),
        )
    bond = None
    if instrument.bond is not None:
        terms = instrument.bond
        bond = BondTermsView(
            nominal=minor_to_cash(terms.nominal_minor, instrument.currency_decimals),
            coupon_rate=coupon_rate_percent(terms.coupon_rate_ppm),
            coupon_frequency=terms.coupon_frequency,
            day_count=terms.day_count.value,
            issue_date=terms.issue_date.isoformat(),
            maturity_date=terms.maturity_date.isoformat(),
            first_coupon_date=None if terms.first_coupon_date is None else terms.first_coupon_date.isoformat(),
            redemption=coupon_rate_percent(terms.redemption_ppm),
        )
    return InstrumentView(
        symbol=instrument.symbol,
        kind=instrument.kind.value,
        currency=instrument.currency,
        tick_size=instrument.tick_size,
        lot_size=units_to_quantity(instrument.lot_size),
        min_quantity=units_to_quantity(instrument.min_quantity),
        max_quantity=units_to_quantity(instrument.max_quantity),
        trading_state=market.state.value,
        reference_price=ticks_to_price(instrument, market.reference_price),
        band=band,
        fees=FeesView(maker_bps=instrument.maker_fee_bps, taker_bps=instrument.taker_fee_bps),
        auction_only=instrument.auction_only,
        bond=bond,
        issuer=instrument.issuer,
    )


def _with_reference(instrument: Instrument, reference_price: int) -> Instrument:
    return replace(instrument, reference_price=reference_price, extra={})


_LATEST_US = (datetime(9999, 12, 30, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _us(moment: datetime) -> int:
    """Microseconds since the Unix epoch; a time without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------------------- routes


@router.get("/instruments", response_model=InstrumentList, summary="Every listed instrument")
async def list_instruments(request: Request) -> InstrumentList:
    hub = hub_of(request)
    return InstrumentList(instruments=[instrument_view(hub.markets[symbol]) for symbol in hub.symbols()])


@router.get(
    "/instruments/{symbol}", response_model=InstrumentView, responses=_errors(404, 503), summary="One instrument"
)
async def get_instrument(request: Request, symbol: str) -> InstrumentView:
    return instrument_view(market_of(request, symbol))


@router.get(
    "/markets/{symbol}/book",
    response_model=BookView,
    responses=_errors(404, 422, 503),
    summary="Aggregated level-2 book and the sequence number it reflects",
)
async def get_book(
    request: Request,
    symbol: str,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH, description="Levels per side.")] = 50,
) -> BookView:
    market = market_of(request, symbol)
    return BookView.model_validate(market.book_view(depth))


@router.get(
    "/markets/{symbol}/trades",
    response_model=PublicTradePage,
    responses=_errors(404, 422, 503),
    summary="Public trades, newest first",
)
async def get_trades(
    request: Request,
    symbol: str,
    cursor: Annotated[str | None, Query(max_length=20, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TRADES_PAGE)] = 100,
) -> PublicTradePage:
    market = market_of(request, symbol)
    before: int | None = None
    if cursor is not None:
        if not _DIGITS.fullmatch(cursor):
            raise ApiError(
                422, "INVALID_CURSOR", "cursor must be the next_cursor of a previous page", {"cursor": cursor}
            )
        before = int(cursor)
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT trade_id, seq, ts_us, price, quantity, aggressor FROM trades "
            "WHERE symbol = $1 AND ($2::bigint IS NULL OR trade_id < $2) ORDER BY trade_id DESC LIMIT $3",
            symbol,
            before,
            limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    instrument = market.instrument
    return PublicTradePage(
        symbol=symbol,
        trades=[
            PublicTradeView(
                trade_id=str(row["trade_id"]),
                seq=row["seq"],
                price=ticks_to_price(instrument, row["price"]),
                quantity=units_to_quantity(row["quantity"]),
                aggressor=row["aggressor"],
                time=rfc3339(row["ts_us"]),
            )
            for row in rows
        ],
        next_cursor=str(rows[-1]["trade_id"]) if more else None,
    )


@router.get(
    "/markets/{symbol}/ticker",
    response_model=TickerView,
    responses=_errors(404, 503),
    summary="Last trade, best bid and offer, 24-hour statistics, trading state, indicative auction",
)
async def get_ticker(request: Request, symbol: str) -> TickerView:
    hub = hub_of(request)
    market = market_of(request, symbol)
    ticker = market.ticker_view(max(now_us(), hub.last_ts_us))
    return TickerView.model_validate({"seq": hub.last_seq, "time": rfc3339(hub.last_ts_us), **ticker})


@router.get(
    "/markets/{symbol}/candles",
    response_model=CandlesView,
    responses=_errors(404, 422, 503),
    summary="OHLCV candles from the trades",
    description=(
        "Buckets are aligned on the Unix epoch in UTC (a 1h candle starts on the hour, a 1d candle at 00:00 UTC). "
        "`start` is rounded down to its bucket; `end` (exclusive, default now) bounds the trades. By default the "
        f"last {DEFAULT_CANDLES} buckets; at most {MAX_CANDLES} buckets per request. Buckets without trades are "
        "left out."
    ),
)
async def get_candles(
    request: Request,
    symbol: str,
    interval: Interval = Interval.M1,
    start: Annotated[datetime | None, Query(description="RFC 3339; default: end minus 300 buckets.")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339, exclusive; default: now.")] = None,
) -> CandlesView:
    market = market_of(request, symbol)
    width = INTERVAL_US[interval]
    end_us = now_us() if end is None else _us(end)
    start_us = end_us - DEFAULT_CANDLES * width if start is None else _us(start)
    start_us -= start_us % width  # the bucket that holds `start`
    if start_us < 0 or end_us > _LATEST_US:
        # No trade is older than the Unix epoch, and times past year 9999 cannot even be written in RFC 3339.
        raise ApiError(
            422, "INVALID_RANGE", "start and end must lie between 1970-01-01 and 9999-12-30 UTC", {}
        )
    if end_us <= start_us:
        raise ApiError(
            422, "INVALID_RANGE", "end must be after start", {"start": rfc3339(start_us), "end": rfc3339(end_us)}
        )
    if (end_us - start_us + width - 1) // width > MAX_CANDLES:
        raise ApiError(
            422,
            "TOO_MANY_CANDLES",
            f"at most {MAX_CANDLES} candles per request: narrow the range or widen the interval",
            {"max": MAX_CANDLES},
        )
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT ts_us - ts_us % $2 AS bucket, "
            "(array_agg(price ORDER BY trade_id))[1] AS open, max(price) AS high, min(price) AS low, "
            "(array_agg(price ORDER BY trade_id DESC))[1] AS close, sum(quantity)::bigint AS volume, "
            "count(*) AS trades "
            "FROM trades WHERE symbol = $1 AND ts_us >= $3 AND ts_us < $4 GROUP BY bucket ORDER BY bucket",
            symbol,
            width,
            start_us,
            end_us,
        )
    instrument = market.instrument
    return CandlesView(
        symbol=symbol,
        interval=interval,
        start=rfc3339(start_us) or "",
        end=rfc3339(end_us) or "",
        candles=[
            CandleView(
                start=rfc3339(row["bucket"]) or "",
                open=ticks_to_price(instrument, row["open"]),
                high=ticks_to_price(instrument, row["high"]),
                low=ticks_to_price(instrument, row["low"]),
                close=ticks_to_price(instrument, row["close"]),
                volume=units_to_quantity(row["volume"]),
                trades=row["trades"],
            )
            for row in rows
        ],
    )
