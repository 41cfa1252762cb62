"""Market data: the public picture of the market, kept from committed events only, and its fan-out to WebSockets.

The `MarketData` hub starts from the engine as the sequencer recovered it and then follows the sequencer: its listener
runs after each commit with that command's events. Because it never looks at the engine again, what it shows never runs
ahead of PostgreSQL, even while the sequencer holds a batch that is still being written. Per instrument it keeps the
level-2 book (price -> quantity and order count) and the sequence number it reflects, the recent public trades, the
rolling 24-hour statistics, the last indicative auction of a call phase, the trading state and the reference price.

Public messages never name a participant: trades show their id, price, quantity, aggressor side and time only. The
private `orders` feed goes only to the account concerned (and to regulators, who see everything).

Fan-out is through a bounded queue per WebSocket client, filled synchronously by the listener. A client whose queue is
full is dropped (closed with a reason) rather than allowed to slow the sequencer or to miss messages silently.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
from sortedcontainers import SortedDict

from api.auth import Principal, Role
from api.units import minor_to_cash, ticks_to_price, units_to_quantity
from exchange.engine import Engine
from exchange.events import (
    AuctionUncrossed,
    BookLevelChanged,
    CommandRejected,
    Event,
    IndicativeAuction,
    InstrumentListed,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    Trade,
    TradingStateChanged,
)
from exchange.instrument import CALL_STATES, Instrument, TradingState
from exchange.orders import OrderType, Side
from exchange.rejects import RejectReason

log = logging.getLogger("exchange.marketdata")

RECENT_TRADES = 200  # public trades kept per instrument for the `trades` channel snapshot
TRADES_SNAPSHOT = 50  # of which a new `trades` subscriber is sent this many, newest first
DEFAULT_QUEUE_SIZE = 10_000  # messages waiting for one WebSocket client before it is dropped
MINUTE_US = 60_000_000
DAY_MINUTES = 1_440
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_START_WAIT_SECONDS = 30.0
_PRICE_TEXTS = 4_096  # decimal texts of prices cached per instrument

# Close codes a dropped client sees (RFC 6455: 1001 going away, 1008 policy violation).
CLOSE_GOING_AWAY = 1001
CLOSE_SLOW_CONSUMER = 1008


class Channel(StrEnum):
    BOOK = "book"
    TRADES = "trades"
    TICKER = "ticker"
    ORDERS = "orders"


PUBLIC_CHANNELS = frozenset({Channel.BOOK, Channel.TRADES, Channel.TICKER})


def now_us() -> int:
    return time.time_ns() // 1_000


_last_time: tuple[int, str] = (-1, "")  # the last timestamp formatted: one command's messages share it


def rfc3339(ts_us: int | None) -> str | None:
    """RFC 3339 UTC with microseconds, as every timestamp of the API."""
    global _last_time
    if ts_us is None:
        return None
    if _last_time[0] == ts_us:
        return _last_time[1]
    text = (_EPOCH + timedelta(microseconds=ts_us)).isoformat(timespec="microseconds").replace("+00:00", "Z")
    _last_time = (ts_us, text)
    return text


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------- the book


class Level2Book:
    """Aggregated levels of one instrument: price in ticks -> (quantity, order count), both sides sorted."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def side(self, side: Side) -> SortedDict:
        return self.bids if side is Side.BUY else self.asks

    def set_level(self, side: Side, price: int, quantity: int, order_count: int) -> None:
        """The level as the engine reported it after a command; quantity 0 means the level is gone."""
        levels = self.side(side)
        if quantity == 0:
            levels.pop(price, None)
        else:
            levels[price] = (quantity, order_count)

    def levels(self, side: Side, depth: int | None = None) -> list[tuple[int, int, int]]:
        """(price, quantity, order count), best first: highest bid, lowest ask."""
        levels = self.side(side)
        prices = levels.irange(reverse=side is Side.BUY)
        chosen = prices if depth is None else itertools.islice(prices, depth)
        return [(price, *levels[price]) for price in chosen]

    def best(self, side: Side) -> tuple[int, int, int] | None:
        levels = self.side(side)
        if not levels:
            return None
        price, (quantity, count) = levels.peekitem(-1 if side is Side.BUY else 0)
        return price, quantity, count


# ---------------------------------------------------------------------------------------------------- 24 hours


@dataclass(slots=True)
class MinuteBar:
    minute: int  # minutes since the Unix epoch (UTC)
    open: int
    high: int
    low: int
    close: int
    volume: int
    count: int

    def add(self, price: int, quantity: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += quantity
        self.count += 1


@dataclass(frozen=True, slots=True)
class DayStats:
    open: int
    high: int
    low: int
    close: int
    volume: int
    count: int


def _combine(bars: Iterable[MinuteBar | DayStats]) -> DayStats | None:
    result: DayStats | None = None
    for bar in bars:
        if result is None:
            result = DayStats(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.count)
        else:
            result = DayStats(
                result.open,
                max(result.high, bar.high),
                min(result.low, bar.low),
                bar.close,
                result.volume + bar.volume,
                result.count + bar.count,
            )
    return result


class RollingDay:
    """The last 24 hours of trades of one instrument, in one-minute bars.

    The window is minute-aligned: the current UTC minute and the 1,439 before it. The bars before the current minute
    are folded once per minute, so asking for the statistics costs O(1) between minute boundaries.
    """

    __slots__ = ("bars", "_settled", "_settled_minute")

    def __init__(self) -> None:
        self.bars: deque[MinuteBar] = deque()
        self._settled: DayStats | None = None
        self._settled_minute: int | None = None

    def add(self, ts_us: int, price: int, quantity: int) -> None:
        minute = ts_us // MINUTE_US
        bars = self.bars
        # Exchange time never goes backwards, so a trade belongs to the newest bar or to a new one.
        if bars and bars[-1].minute >= minute:
            bars[-1].add(price, quantity)
            minute = bars[-1].minute
        else:
            bars.append(MinuteBar(minute, price, price, price, price, quantity, 1))
        if self._settled_minute is not None and minute < self._settled_minute:
            self._settled_minute = None  # a late trade changed a bar already folded

    def load(self, bars: Iterable[MinuteBar]) -> None:
        """Bars read back from the trades table at start-up, oldest first, all older than any live trade."""
        self.bars.extendleft(reversed(list(bars)))
        self._settled_minute = None

    def stats(self, at_us: int) -> DayStats | None:
        bars = self.bars
        if bars:
            at_us = max(at_us, bars[-1].minute * MINUTE_US)
        minute = at_us // MINUTE_US
        first = minute - DAY_MINUTES + 1
        while bars and bars[0].minute < first:
            bars.popleft()
            self._settled_minute = None
        if self._settled_minute != minute:
            self._settled = _combine(bar for bar in bars if bar.minute < minute)
            self._settled_minute = minute
        current = [bar for bar in itertools.takewhile(lambda b: b.minute >= minute, reversed(bars))]
        parts: list[MinuteBar | DayStats] = [] if self._settled is None else [self._settled]
        parts.extend(reversed(current))
        return _combine(parts)


# ---------------------------------------------------------------------------------------------------- per instrument


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """A trade as the public sees it: no order ids, no participants."""

    trade_id: int
    seq: int
    ts_us: int
    price: int
    quantity: int
    aggressor: Side


@dataclass(slots=True)
class Market:
    """The public state of one instrument as of `book_seq` (the last command that changed its book)."""

    instrument: Instrument  # static terms (grid, currency, bond terms); state and reference price are kept below
    state: TradingState
    reference_price: int
    book_seq: int
    book_ts_us: int
    book: Level2Book = field(default_factory=Level2Book)
    trades: deque[PublicTrade] = field(default_factory=lambda: deque(maxlen=RECENT_TRADES))
    day: RollingDay = field(default_factory=RollingDay)
    indicative: IndicativeAuction | None = None
    last_ticker: dict[str, Any] | None = None  # the last ticker sent on the WebSocket, to send only changes
    last_top: tuple[Any, Any] | None = None  # best bid and ask when the ticker was last considered
    price_texts: dict[int, str] = field(default_factory=dict)  # ticks -> decimal text, for the prices in use

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    def price(self, ticks: int | None) -> str | None:
        if ticks is None:
            return None
        text = self.price_texts.get(ticks)
        if text is None:
            if len(self.price_texts) >= _PRICE_TEXTS:
                self.price_texts.clear()
            text = self.price_texts[ticks] = ticks_to_price(self.instrument, ticks)
        return text

    def top(self) -> tuple[Any, Any]:
        return self.book.best(Side.BUY), self.book.best(Side.SELL)

    def record_trade(self, trade: PublicTrade) -> None:
        self.trades.append(trade)
        self.day.add(trade.ts_us, trade.price, trade.quantity)
        self.reference_price = trade.price

    # ------------------------------------------------------------------ views (JSON-ready dicts, decimals as text)

    def level_view(self, price: int, quantity: int, order_count: int) -> dict[str, Any]:
        return {"price": self.price(price), "quantity": units_to_quantity(quantity), "order_count": order_count}

    def book_view(self, depth: int | None = None) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "seq": self.book_seq,
            "time": rfc3339(self.book_ts_us),
            "bids": [self.level_view(*level) for level in self.book.levels(Side.BUY, depth)],
            "asks": [self.level_view(*level) for level in self.book.levels(Side.SELL, depth)],
        }

    def trade_view(self, trade: PublicTrade) -> dict[str, Any]:
        return {
            "trade_id": str(trade.trade_id),
            "seq": trade.seq,
            "price": self.price(trade.price),
            "quantity": units_to_quantity(trade.quantity),
            "aggressor": trade.aggressor.value,
            "time": rfc3339(trade.ts_us),
        }

    def ticker_view(self, at_us: int) -> dict[str, Any]:
        """Last trade, best bid and offer, 24-hour statistics (minute-aligned window), state and indicative auction."""
        last = self.trades[-1] if self.trades else None
        bid = self.book.best(Side.BUY)
        ask = self.book.best(Side.SELL)
        day = self.day.stats(at_us)
        indicative = self.indicative
        return {
            "symbol": self.symbol,
            "trading_state": self.state.value,
            "reference_price": self.price(self.reference_price),
            "last_price": None if last is None else self.price(last.price),
            "last_quantity": None if last is None else units_to_quantity(last.quantity),
            "last_trade_time": None if last is None else rfc3339(last.ts_us),
            "best_bid": None if bid is None else self.price(bid[0]),
            "best_bid_quantity": None if bid is None else units_to_quantity(bid[1]),
            "best_ask": None if ask is None else self.price(ask[0]),
            "best_ask_quantity": None if ask is None else units_to_quantity(ask[1]),
            "open_24h": None if day is None else self.price(day.open),
            "high_24h": None if day is None else self.price(day.high),
            "low_24h": None if day is None else self.price(day.low),
            "volume_24h": units_to_quantity(0 if day is None else day.volume),
            "trades_24h": 0 if day is None else day.count,
            "indicative_auction": None
            if indicative is None
            else {
                "price": self.price(indicative.price),
                "volume": units_to_quantity(indicative.volume),
                "surplus": units_to_quantity(indicative.surplus),
            },
        }


# ---------------------------------------------------------------------------------------------------- private events


def _cash(instrument: Instrument, minor: int) -> str:
    return minor_to_cash(minor, instrument.currency_decimals)


def private_event_views(event: Event, instruments: dict[str, Instrument]) -> list[tuple[str | None, dict[str, Any]]]:
    """(account, message body) for each participant an order event concerns; a trade concerns its buyer and seller."""
    kind = type(event)
    if kind is CommandRejected:
        reason = event.reason
        return [
            (
                event.account,
                {
                    "type": "rejected",
                    "account": event.account,
                    # Never confirm that someone else's order exists (as the REST API answers).
                    "reason": "UNKNOWN_ORDER" if reason is RejectReason.NOT_YOUR_ORDER else reason.value,
                    "order_id": None if event.order_id is None else str(event.order_id),
                    "client_order_id": event.client_order_id,
                    "symbol": event.symbol,
                },
            )
        ]
    instrument = instruments.get(getattr(event, "symbol", ""))
    if instrument is None:
        return []
    if kind is Trade:
        views = []
        for side in (Side.BUY, Side.SELL):
            is_buy = side is Side.BUY
            account = event.buyer if is_buy else event.seller
            views.append(
                (
                    account,
                    {
                        "type": "fill",
                        "account": account,
                        "trade_id": str(event.trade_id),
                        "order_id": str(event.buy_order_id if is_buy else event.sell_order_id),
                        "symbol": event.symbol,
                        "side": side.value,
                        "price": ticks_to_price(instrument, event.price),
                        "quantity": units_to_quantity(event.quantity),
                        "remaining_quantity": units_to_quantity(
                            event.buy_remaining if is_buy else event.sell_remaining
                        ),
                        "liquidity": "taker" if event.aggressor is side and not event.auction else "maker",
                        "cash": _cash(instrument, event.cash),
                        "accrued_interest": _cash(instrument, event.accrued),
                        "fee": _cash(instrument, event.buyer_fee if is_buy else event.seller_fee),
                        "currency": event.currency,
                    },
                )
            )
        return views
    if kind is OrderAccepted:
        return [
            (
                event.account,
                {
                    "type": "accepted",
                    "account": event.account,
                    "order_id": str(event.order_id),
                    "client_order_id": event.client_order_id,
                    "symbol": event.symbol,
                    "side": event.side.value,
                    "order_type": event.type.value,
                    "price": None if event.type is OrderType.MARKET else ticks_to_price(instrument, event.price),
                    "quantity": units_to_quantity(event.quantity),
                    "time_in_force": event.tif.value,
                    "expire_at": rfc3339(event.expire_at_us),
                    "post_only": event.post_only,
                    "self_trade_prevention": event.stp.value,
                },
            )
        ]
    if kind is OrderCancelled:
        return [
            (
                event.account,
                {
                    "type": "cancelled",
                    "account": event.account,
                    "order_id": str(event.order_id),
                    "symbol": event.symbol,
                    "reason": event.reason.value,
                    "cancelled_quantity": units_to_quantity(event.cancelled_quantity),
                    "remaining_quantity": units_to_quantity(event.remaining),
                },
            )
        ]
    if kind is OrderAmended:
        return [
            (
                event.account,
                {
                    "type": "amended",
                    "account": event.account,
                    "order_id": str(event.order_id),
                    "symbol": event.symbol,
                    "price": ticks_to_price(instrument, event.price),
                    "quantity": units_to_quantity(event.quantity),
                    "remaining_quantity": units_to_quantity(event.remaining),
                    "priority_kept": event.priority_kept,
                },
            )
        ]
    return []


_PRIVATE_KINDS = frozenset({CommandRejected, OrderAccepted, Trade, OrderCancelled, OrderAmended})


# ---------------------------------------------------------------------------------------------------- subscribers


class Subscriber:
    """One WebSocket client: its bounded outbox, its subscriptions and, once authenticated, who it is."""

    def __init__(self, client_id: int, queue_size: int) -> None:
        self.client_id = client_id
        self.outbox: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.principal: Principal | None = None
        self.subscriptions: set[tuple[Channel, str | None]] = set()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, text: str) -> bool:
        """Queue one encoded message; a full outbox drops the client (False) instead of waiting or skipping."""
        if self.close_code is not None:
            return False
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.drop(CLOSE_SLOW_CONSUMER, f"slow consumer: more than {self.outbox.maxsize} messages waiting")
            return False
        return True

    def send_message(self, message: dict[str, Any]) -> bool:
        return self.send(_encode(message))

    def drop(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.closed.set()


class SubscriptionError(Exception):
    """A subscription request the hub refuses; `code` is the error code sent to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------------- the hub


class MarketData:
    """The public market picture and its WebSocket fan-out; one per process, fed by the sequencer's listener."""

    def __init__(self, sequencer: Any, pool: asyncpg.Pool | None, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        assert queue_size >= 1
        self.sequencer = sequencer
        self.pool = pool
        self.queue_size = queue_size
        self.markets: dict[str, Market] = {}
        self.instruments: dict[str, Instrument] = {}  # static terms by symbol, for the private messages
        self.last_seq = 0
        self.last_ts_us = 0
        self.running = False
        self.dropped_clients = 0  # clients closed because their outbox was full
        self.clients: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._public: dict[tuple[Channel, str], dict[int, Subscriber]] = {}
        self._orders_by_account: dict[str, dict[int, Subscriber]] = {}
        self._orders_all: dict[int, Subscriber] = {}  # regulators
        self._pending: list[tuple[int, int, list[Event]]] | None = None

    @property
    def ws_clients(self) -> int:
        """Connected WebSocket clients (for /metrics)."""
        return len(self.clients)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the committed picture from the engine, follow the sequencer, then read recent trades back."""
        sequencer = self.sequencer
        waited = 0.0
        # The engine may hold a batch that is applied but not yet committed: wait until memory equals the database.
        while sequencer.engine.last_seq != sequencer.last_seq:
            if waited > _START_WAIT_SECONDS:
                raise TimeoutError("the sequencer did not settle on a committed sequence number")
            await asyncio.sleep(0.005)
            waited += 0.005
        start_seq = sequencer.last_seq
        self._take_engine(sequencer.engine, start_seq, sequencer.last_ts_us)
        self._pending = []  # commits that happen while the trades are read back are applied afterwards, in order
        sequencer.subscribe(self.on_commit)
        try:
            if self.pool is not None:
                await self._load_trades(start_seq)
        except BaseException:
            self._unsubscribe()
            raise
        pending, self._pending = self._pending, None
        for seq, ts_us, events in pending:
            self._apply(seq, ts_us, events)
        self.running = True
        log.info("market data started", extra={"seq": start_seq, "instruments": len(self.markets)})

    async def stop(self) -> None:
        self.running = False
        self._unsubscribe()
        for client in list(self.clients.values()):
            client.drop(CLOSE_GOING_AWAY, "the exchange is shutting down")

    def _unsubscribe(self) -> None:
        listeners = self.sequencer.listeners
        if self.on_commit in listeners:
            listeners.remove(self.on_commit)

    def _take_engine(self, engine: Engine, seq: int, ts_us: int) -> None:
        self.last_seq = seq
        self.last_ts_us = ts_us
        for symbol in sorted(engine.instruments):
            instrument = engine.instruments[symbol]
            market = Market(instrument, instrument.state, instrument.reference_price, seq, ts_us)
            bids, asks = engine.books[symbol].depth(2**62)
            for price, quantity, count in bids:
                market.book.set_level(Side.BUY, price, quantity, count)
            for price, quantity, count in asks:
                market.book.set_level(Side.SELL, price, quantity, count)
            if instrument.state in CALL_STATES:
                # The engine publishes the indicative auction as an event only when the book changes; recompute it.
                result = engine.indicative(symbol)
                market.indicative = IndicativeAuction(seq, symbol, result.price, result.volume, result.surplus)
            self.markets[symbol] = market
            self.instruments[symbol] = instrument

    async def _load_trades(self, upto_seq: int) -> None:
        symbols = list(self.markets)
        if not symbols:
            return
        first_minute = now_us() // MINUTE_US - DAY_MINUTES + 1
        async with self.pool.acquire() as conn:
            recent = await conn.fetch(
                "SELECT t.symbol, t.trade_id, t.seq, t.ts_us, t.price, t.quantity, t.aggressor "
                "FROM unnest($1::text[]) AS s(symbol) CROSS JOIN LATERAL ("
                "  SELECT * FROM trades WHERE trades.symbol = s.symbol AND trades.seq <= $2"
                "  ORDER BY trade_id DESC LIMIT $3) AS t "
                "ORDER BY t.symbol, t.trade_id",
                symbols,
                upto_seq,
                RECENT_TRADES,
            )
            bars = await conn.fetch(
                "SELECT symbol, ts_us / $1 AS minute, "
                "(array_agg(price ORDER BY trade_id))[1] AS open, max(price) AS high, min(price) AS low, "
                "(array_agg(price ORDER BY trade_id DESC))[1] AS close, sum(quantity)::bigint AS volume, "
                "count(*) AS count "
                "FROM trades WHERE ts_us >= $2 AND seq <= $3 GROUP BY symbol, minute ORDER BY symbol, minute",
                MINUTE_US,
                first_minute * MINUTE_US,
                upto_seq,
            )
        for row in recent:
            market = self.markets.get(row["symbol"])
            if market is not None:
                market.trades.append(
                    PublicTrade(
                        row["trade_id"], row["seq"], row["ts_us"], row["price"], row["quantity"], Side(row["aggressor"])
                    )
                )
        by_symbol: dict[str, list[MinuteBar]] = {}
        for row in bars:
            by_symbol.setdefault(row["symbol"], []).append(
                MinuteBar(
                    row["minute"], row["open"], row["high"], row["low"], row["close"], row["volume"], row["count"]
                )
            )
        for symbol, symbol_bars in by_symbol.items():
            market = self.markets.get(symbol)
            if market is not None:
                market.day.load(symbol_bars)

    # ------------------------------------------------------------------ following the sequencer

    def on_commit(self, seq: int, ts_us: int, events: list[Event]) -> None:
        """The sequencer's listener: called after each committed command; fast, and never raises."""
        if self._pending is not None:
            self._pending.append((seq, ts_us, events))
            return
        try:
            self._apply(seq, ts_us, events)
        except Exception:  # the sequencer must go on; the failure is a bug to be seen in the log
            log.exception("market data could not apply seq %s", seq)

    def _apply(self, seq: int, ts_us: int, events: list[Event]) -> None:
        self.last_seq = seq
        self.last_ts_us = ts_us
        markets = self.markets
        private = bool(self._orders_all or self._orders_by_account)
        changes: dict[str, list[BookLevelChanged]] = {}
        trades: dict[str, list[PublicTrade]] = {}
        touched: dict[str, None] = {}  # instruments whose ticker may have changed, in order
        for event in events:
            kind = type(event)
            if kind is BookLevelChanged:
                market = markets.get(event.symbol)
                if market is not None:
                    market.book.set_level(event.side, event.price, event.quantity, event.order_count)
                    changes.setdefault(event.symbol, []).append(event)
            elif kind is Trade:
                market = markets.get(event.symbol)
                if market is not None:
                    public = PublicTrade(event.trade_id, seq, ts_us, event.price, event.quantity, event.aggressor)
                    market.record_trade(public)
                    trades.setdefault(event.symbol, []).append(public)
            elif kind is TradingStateChanged:
                market = markets.get(event.symbol)
                if market is not None:
                    market.state = event.state
                    if event.state not in CALL_STATES:
                        market.indicative = None
                    touched[event.symbol] = None
            elif kind is IndicativeAuction:
                market = markets.get(event.symbol)
                if market is not None:
                    market.indicative = event
                    touched[event.symbol] = None
            elif kind is AuctionUncrossed:
                market = markets.get(event.symbol)
                if market is not None:
                    market.indicative = None
                    touched[event.symbol] = None
            elif kind is InstrumentListed:
                self._list(event.symbol, seq, ts_us)
            if private and kind in _PRIVATE_KINDS:
                self._publish_private(seq, ts_us, event)
        for symbol, levels in changes.items():
            market = markets[symbol]
            prev_seq = market.book_seq
            market.book_seq = seq
            market.book_ts_us = ts_us
            if (Channel.TICKER, symbol) in self._public:
                top = market.top()
                if top != market.last_top:  # the ticker shows the best prices only, not the depth
                    market.last_top = top
                    touched[symbol] = None
            subscribers = self._public.get((Channel.BOOK, symbol))
            if subscribers:
                self._fan_out(
                    subscribers,
                    {
                        "channel": Channel.BOOK.value,
                        "type": "update",
                        "symbol": symbol,
                        "seq": seq,
                        "prev_seq": prev_seq,
                        "time": rfc3339(ts_us),
                        "changes": [
                            {"side": c.side.value, **market.level_view(c.price, c.quantity, c.order_count)}
                            for c in levels
                        ],
                    },
                )
        for symbol, symbol_trades in trades.items():
            touched[symbol] = None
            subscribers = self._public.get((Channel.TRADES, symbol))
            if subscribers:
                market = markets[symbol]
                self._fan_out(
                    subscribers,
                    {
                        "channel": Channel.TRADES.value,
                        "type": "update",
                        "symbol": symbol,
                        "seq": seq,
                        "trades": [market.trade_view(t) for t in symbol_trades],
                    },
                )
        for symbol in touched:
            subscribers = self._public.get((Channel.TICKER, symbol))
            if subscribers:
                market = markets[symbol]
                ticker = market.ticker_view(ts_us)
                if ticker != market.last_ticker:
                    market.last_ticker = ticker
                    self._fan_out(
                        subscribers,
                        {
                            "channel": Channel.TICKER.value,
                            "type": "update",
                            "seq": seq,
                            "time": rfc3339(ts_us),
                            **ticker,
                        },
                    )

    def _list(self, symbol: str, seq: int, ts_us: int) -> None:
        instrument = self.sequencer.engine.instruments.get(symbol)
        if instrument is None or symbol in self.markets:
            return
        self.markets[symbol] = Market(instrument, instrument.state, instrument.reference_price, seq, ts_us)
        self.instruments[symbol] = instrument

    @staticmethod
    def _fan_out(subscribers: dict[int, Subscriber], message: dict[str, Any]) -> None:
        text = _encode(message)  # encoded once, shared by every subscriber
        for subscriber in list(subscribers.values()):
            subscriber.send(text)

    def _publish_private(self, seq: int, ts_us: int, event: Event) -> None:
        for account, body in private_event_views(event, self.instruments):
            recipients: dict[int, Subscriber] = dict(self._orders_all)
            if account is not None:
                recipients.update(self._orders_by_account.get(account, {}))
            if recipients:
                message = {"channel": Channel.ORDERS.value, "seq": seq, "time": rfc3339(ts_us), **body}
                self._fan_out(recipients, message)

    # ------------------------------------------------------------------ clients

    def connect(self) -> Subscriber:
        client = Subscriber(next(self._ids), self.queue_size)
        self.clients[client.client_id] = client
        return client

    def disconnect(self, client: Subscriber) -> None:
        self.clients.pop(client.client_id, None)
        for channel, symbol in list(client.subscriptions):
            self._remove(client, channel, symbol)
        if client.close_code == CLOSE_SLOW_CONSUMER:
            self.dropped_clients += 1

    def subscribe(self, client: Subscriber, channel: Channel, symbol: str | None, reply: dict[str, Any]) -> None:
        """Register `client` and queue `reply` then the channel's snapshot, before any later update can be queued."""
        if channel is Channel.ORDERS:
            principal = client.principal
            if principal is None:
                raise SubscriptionError(
                    "UNAUTHENTICATED", 'send {"op": "auth", "key": ...} before subscribing to orders'
                )
            if principal.role is Role.REGULATOR:
                self._orders_all[client.client_id] = client
            else:
                self._orders_by_account.setdefault(principal.participant_id, {})[client.client_id] = client
            client.subscriptions.add((channel, None))
            client.send_message(reply)
            return
        market = self.markets.get(symbol or "")
        if market is None:
            raise SubscriptionError("UNKNOWN_INSTRUMENT", f"no instrument {symbol}")
        self._public.setdefault((channel, market.symbol), {})[client.client_id] = client
        client.subscriptions.add((channel, market.symbol))
        client.send_message(reply)
        # A repeated subscription sends a fresh snapshot: that is how a client that saw a gap starts over.
        client.send_message(self.snapshot(channel, market))

    def unsubscribe(self, client: Subscriber, channel: Channel, symbol: str | None) -> bool:
        key = (channel, None if channel is Channel.ORDERS else symbol)
        if key not in client.subscriptions:
            return False
        self._remove(client, *key)
        return True

    def _remove(self, client: Subscriber, channel: Channel, symbol: str | None) -> None:
        client.subscriptions.discard((channel, symbol))
        if channel is Channel.ORDERS:
            self._orders_all.pop(client.client_id, None)
            for account in list(self._orders_by_account):
                subscribers = self._orders_by_account[account]
                subscribers.pop(client.client_id, None)
                if not subscribers:
                    del self._orders_by_account[account]
            return
        assert symbol is not None
        subscribers = self._public.get((channel, symbol))
        if subscribers is not None:
            subscribers.pop(client.client_id, None)
            if not subscribers:
                del self._public[(channel, symbol)]
                market = self.markets.get(symbol)
                if channel is Channel.TICKER and market is not None:
                    market.last_ticker = market.last_top = None  # the next subscriber starts from its own snapshot

    def snapshot(self, channel: Channel, market: Market) -> dict[str, Any]:
        if channel is Channel.BOOK:
            return {"channel": channel.value, "type": "snapshot", **market.book_view()}
        if channel is Channel.TRADES:
            newest = list(itertools.islice(reversed(market.trades), TRADES_SNAPSHOT))
            return {
                "channel": channel.value,
                "type": "snapshot",
                "symbol": market.symbol,
                "trades": [market.trade_view(t) for t in newest],
            }
        ticker = market.ticker_view(max(now_us(), self.last_ts_us))
        return {
            "channel": channel.value,
            "type": "snapshot",
            "seq": self.last_seq,
            "time": rfc3339(self.last_ts_us),
            **ticker,
        }

    # ------------------------------------------------------------------ reads for the REST routes

    def market(self, symbol: str) -> Market | None:
        return self.markets.get(symbol)

    def symbols(self) -> Iterator[str]:
        return iter(sorted(self.markets))


def coupon_rate_percent(coupon_rate_ppm: int) -> str:
    """The annual coupon rate in percent as a decimal string (31250 ppm -> "3.125")."""
    text = format(Decimal(coupon_rate_ppm).scaleb(-4), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


async def start_marketdata(app: Any) -> None:
    settings = app.state.settings
    hub = MarketData(
        app.state.sequencer,
        app.state.pg_pool,
        queue_size=settings.ws_queue_size,
    )
    await hub.start()
    app.state.marketdata = hub


async def stop_marketdata(app: Any) -> None:
    hub = getattr(app.state, "marketdata", None)
    if hub is not None:
        await hub.stop()

