"""One instrument's order book: price levels kept sorted, a FIFO queue of orders in each level.

Each level is an intrusive doubly linked list of `Order`s, so adding at the back, removing any order (cancel, amend,
fill) and reading the head are O(1); finding the best level is O(1) and adding or removing a level O(log n) in a
`SortedList` of prices. The book stores orders and nothing else: matching rules live in `exchange.matching`.
"""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedList

from exchange.orders import Order, Side


class PriceLevel:
    __slots__ = ("price", "head", "tail", "quantity", "count")

    def __init__(self, price: int) -> None:
        self.price = price
        self.head: Order | None = None
        self.tail: Order | None = None
        self.quantity = 0
        self.count = 0

    def append(self, order: Order) -> None:
        order.level = self
        order.prev = self.tail
        order.next = None
        if self.tail is None:
            self.head = order
        else:
            self.tail.next = order
        self.tail = order
        self.quantity += order.remaining
        self.count += 1

    def unlink(self, order: Order) -> None:
        """Remove `order` from the queue; its `remaining` must still be what the level counted."""
        prev, nxt = order.prev, order.next
        if prev is None:
            self.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            self.tail = prev
        else:
            nxt.prev = prev
        order.prev = order.next = None
        order.level = None
        self.quantity -= order.remaining
        self.count -= 1
        assert self.quantity >= 0 and self.count >= 0

    def __iter__(self) -> Iterator[Order]:
        order = self.head
        while order is not None:
            yield order
            order = order.next


class BookSide:
    """Bids or asks. `prices` ascending; the best bid is the last, the best ask the first.

    The best level is cached (`best`): matching reads it on every step, and it changes only when a level at the top
    is added or emptied.
    """

    __slots__ = ("symbol", "side", "levels", "prices", "best", "_is_bid")

    def __init__(self, symbol: str, side: Side) -> None:
        self.symbol = symbol
        self.side = side
        self.levels: dict[int, PriceLevel] = {}
        self.prices: SortedList = SortedList()
        self.best: PriceLevel | None = None
        self._is_bid = side is Side.BUY

    def best_price(self) -> int | None:
        best = self.best
        return None if best is None else best.price

    def best_level(self) -> PriceLevel | None:
        return self.best

    def add(self, order: Order) -> PriceLevel:
        price = order.price
        level = self.levels.get(price)
        if level is None:
            level = PriceLevel(price)
            self.levels[price] = level
            self.prices.add(price)
            best = self.best
            if best is None or (price > best.price if self._is_bid else price < best.price):
                self.best = level
        level.append(order)
        return level

    def remove(self, order: Order) -> PriceLevel:
        level = order.level
        assert level is not None, "order is not resting"
        level.unlink(order)
        if level.count == 0:
            del self.levels[level.price]
            prices = self.prices
            prices.remove(level.price)
            if self.best is level:
                self.best = (self.levels[prices[-1] if self._is_bid else prices[0]]) if prices else None
        return level

    def levels_best_first(self) -> Iterator[PriceLevel]:
        prices = reversed(self.prices) if self.side is Side.BUY else iter(self.prices)
        for price in prices:
            yield self.levels[price]

    def __len__(self) -> int:
        return len(self.levels)


class OrderBook:
    """Bids and asks of one instrument, plus the market orders waiting for an auction (call phases only)."""

    __slots__ = ("symbol", "bids", "asks", "market_bids", "market_asks")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = BookSide(symbol, Side.BUY)
        self.asks = BookSide(symbol, Side.SELL)
        # Market orders rest only during a call phase, in arrival order, until the uncrossing.
        self.market_bids: dict[int, Order] = {}
        self.market_asks: dict[int, Order] = {}

    def side(self, side: Side) -> BookSide:
        return self.bids if side is Side.BUY else self.asks

    def opposite(self, side: Side) -> BookSide:
        return self.asks if side is Side.BUY else self.bids

    def best_bid(self) -> int | None:
        return self.bids.best_price()

    def best_ask(self) -> int | None:
        return self.asks.best_price()

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask

    def depth(self, levels: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Aggregated (price, quantity, order count) levels, best first, at most `levels` per side."""
        bids: list[tuple[int, int, int]] = []
        for level in self.bids.levels_best_first():
            if len(bids) >= levels:
                break
            bids.append((level.price, level.quantity, level.count))
        asks: list[tuple[int, int, int]] = []
        for level in self.asks.levels_best_first():
            if len(asks) >= levels:
                break
            asks.append((level.price, level.quantity, level.count))
        return bids, asks
