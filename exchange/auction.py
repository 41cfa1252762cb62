"""Call-auction uncrossing: the single auction price, and who trades with whom at it.

An auction collects orders without matching them, then executes everything it can at ONE price. This module
decides that price from the book (``determine_price``, or ``determine_price_from_levels`` when the book is
already aggregated per price level) and splits the executable volume among the orders (``allocate``). It is
pure integer code: prices in ticks, quantities in units, no clock, no I/O.

Price determination (the rule of Deutsche Börse Xetra; Euronext's uncrossing applies the same four criteria)
--------------------------------------------------------------------------------------------------------------
For a price p, the executable volume is ``min(B(p), S(p))`` where ``B(p)`` is the quantity of all market buys
plus limit buys with limit >= p, and ``S(p)`` all market sells plus limit sells with limit <= p. The surplus
is ``B(p) - S(p)`` (> 0: surplus on the buy side, < 0: on the sell side). Candidate prices are the limit
prices in the book; the reference price joins only in step 4.

1. VOLUME: the candidates with the highest executable volume. If that volume is 0, nothing executes and the
   price is ``None``. (Between two limits the volume can only fall, so no price off the limit grid ever
   executes more: the limits are enough.)
2. SURPLUS: among those, the candidates with the smallest absolute surplus.
3. MARKET_PRESSURE: if every remaining candidate has a surplus on the buy side, the HIGHEST of them; if every
   one has it on the sell side, the LOWEST.
4. REFERENCE_PRICE: otherwise (surpluses on both sides, or none at all) the reference price decides: if it
   lies between the lowest and the highest remaining candidate, it IS the auction price; if it is at or
   above the highest candidate, the highest; at or below the lowest, the lowest. The reference price
   either is chosen itself or lies outside the candidates' range, so two candidates can never be "equally
   close" to it and no further tie-break exists. A reference price strictly inside the range executes the
   same maximum volume (the cumulative curves are monotone) with a surplus no larger than the candidates'.
   If only market orders are in the book on both sides, there is no candidate at all and the reference
   price is the auction price.

The reported ``surplus`` is the signed surplus at the chosen price. No indicative best-bid/best-ask figures
are produced for a book that does not cross: ``Uncrossing(None, 0, 0, PriceRule.VOLUME)``.

Sources
-------
- Deutsche Börse AG, "Xetra Release 7.1 Market Model Equities" (10.09.2004) and "T7 Release 7.1 Market Model
  for the Trading Venue Xetra" (27.05.2019), auction price determination and its six worked examples (one
  limit with the highest volume; several limits with surplus on the buy side; on the sell side; surplus on
  both sides; no surplus; only market orders). Our stored copies of these PDFs held only their opening
  pages; the examples' order books are taken from the transcription, with the Xetra captions, in
  github.com/ratzlow/tinyEXCH ``src/test/java/net/tinyexch/ob/match/AuctionMatchTest.java``, and each is
  recomputed by hand in ``tests/exchange/test_auction_uncross.py``.
- Euronext, "Trading Manual for the Optiq Trading Platform" (Notice 4-01), sections 1.3.2/1.3.5 opening and
  closing uncrossing. Only its contents page was readable here; the criteria above are the Xetra ones.
- BNB Beacon Chain documentation, "Match Steps and Examples" (bnb-chain.github.io,
  docs/beaconchain/match-examples.md): the same steps 1, 2 and 4 (step 3 there adds a band around the
  reference price, which we do not use), with worked examples 1-4 reused as tests.

Allocation
----------
At the auction price each side's eligible orders (market orders, buys with limit >= price, sells with limit
<= price) queue in priority order: market orders first, then by limit (best first: highest buy, lowest
sell), then by time priority (lower ``priority`` first). The side without surplus fills completely; the side
with the surplus fills ``volume`` units in queue order, so at most one of its orders is filled partly.
Executions pair the two queues front to front like two FIFO streams, so the result is deterministic for a
given book whatever order the sequences arrive in (priorities are unique within a side).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter

__all__ = [
    "AuctionOrder",
    "Execution",
    "PriceRule",
    "Uncrossing",
    "allocate",
    "determine_price",
    "determine_price_from_levels",
]


class PriceRule(StrEnum):
    """The criterion that settled the auction price (steps 1-4 of the module docstring)."""

    VOLUME = "volume"
    SURPLUS = "surplus"
    MARKET_PRESSURE = "market_pressure"
    REFERENCE_PRICE = "reference_price"


@dataclass(frozen=True, slots=True)
class AuctionOrder:
    """One order's part in an auction. ``quantity`` must be > 0 (the caller's invariant, not re-checked here).

    ``price`` is the limit in ticks, or ``None`` for a market order. ``priority`` is the order's time priority:
    the sequence number of its last priority-resetting event, lower meaning earlier.
    """

    order_id: int
    price: int | None
    quantity: int
    priority: int


@dataclass(frozen=True, slots=True)
class Uncrossing:
    """The outcome of price determination. ``price`` is ``None`` when nothing can execute (then volume 0)."""

    price: int | None
    volume: int
    surplus: int  # buy volume minus sell volume at ``price``: > 0 buy surplus, < 0 sell surplus
    rule: PriceRule


@dataclass(frozen=True, slots=True)
class Execution:
    """``quantity`` units traded between one buy and one sell at the uncrossing price."""

    buy_order_id: int
    sell_order_id: int
    quantity: int


_NO_CROSS = Uncrossing(None, 0, 0, PriceRule.VOLUME)

_by_priority = attrgetter("priority")
_by_price = attrgetter("price")
_price_and_quantity = attrgetter("price", "quantity")
_new_execution = object.__new__
_set_buy_order_id = Execution.buy_order_id.__set__  # type: ignore[attr-defined,misc]
_set_sell_order_id = Execution.sell_order_id.__set__  # type: ignore[attr-defined,misc]
_set_quantity = Execution.quantity.__set__  # type: ignore[attr-defined,misc]


def determine_price(
    bids: Sequence[AuctionOrder], asks: Sequence[AuctionOrder], reference_price: int
) -> Uncrossing:
    """The auction price of a book given as orders (any order within each side)."""
    buy_at, market_buy = _aggregate(bids)
    sell_at, market_sell = _aggregate(asks)
    return _determine(buy_at, sell_at, market_buy, market_sell, reference_price)


def determine_price_from_levels(
    buy_levels: Sequence[tuple[int, int]],
    sell_levels: Sequence[tuple[int, int]],
    market_buy: int,
    market_sell: int,
    reference_price: int,
) -> Uncrossing:
    """The auction price of a book given as aggregated ``(limit price, total quantity)`` levels, in any order.

    ``market_buy``/``market_sell`` are the total quantities of market orders. Repeated prices are summed.
    """
    if market_buy < 0 or market_sell < 0:
        raise ValueError("market order quantities must not be negative")
    return _determine(_merge(buy_levels), _merge(sell_levels), market_buy, market_sell, reference_price)


def allocate(
    bids: Sequence[AuctionOrder], asks: Sequence[AuctionOrder], uncrossing: Uncrossing
) -> list[Execution]:
    """The executions of ``uncrossing`` among ``bids`` and ``asks`` (the book it was determined from).

    Raises ``ValueError`` if a side's eligible orders cannot supply ``uncrossing.volume``, i.e. the uncrossing
    does not belong to this book.
    """
    price = uncrossing.price
    volume = uncrossing.volume
    if price is None or volume <= 0:
        return []
    buys = _queue(bids, price, is_buy=True, volume=volume)
    sells = _queue(asks, price, is_buy=False, volume=volume)

    executions: list[Execution] = []
    append = executions.append
    buy_iter = iter(buys)
    sell_iter = iter(sells)
    buy = next(buy_iter)
    sell = next(sell_iter)
    buy_id, buy_left = buy.order_id, buy.quantity
    sell_id, sell_left = sell.order_id, sell.quantity
    remaining = volume
    while True:
        quantity = buy_left if buy_left < sell_left else sell_left
        if quantity > remaining:
            quantity = remaining
        # Execution(buy_id, sell_id, quantity), built through its slot descriptors: a frozen dataclass's
        # __init__ pays an object.__setattr__ call per field, a fifth of the whole allocation at 50k fills.
        execution = _new_execution(Execution)
        _set_buy_order_id(execution, buy_id)
        _set_sell_order_id(execution, sell_id)
        _set_quantity(execution, quantity)
        append(execution)
        remaining -= quantity
        if not remaining:
            return executions
        buy_left -= quantity
        sell_left -= quantity
        if not buy_left:
            buy = next(buy_iter)
            buy_id, buy_left = buy.order_id, buy.quantity
        if not sell_left:
            sell = next(sell_iter)
            sell_id, sell_left = sell.order_id, sell.quantity


def _aggregate(orders: Iterable[AuctionOrder]) -> tuple[dict[int, int], int]:
    levels: dict[int, int] = {}
    get = levels.get
    market = 0
    for price, quantity in map(_price_and_quantity, orders):
        if price is None:
            market += quantity
        else:
            levels[price] = get(price, 0) + quantity
    return levels, market


def _merge(levels: Iterable[tuple[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    get = merged.get
    for price, quantity in levels:
        if quantity <= 0:
            raise ValueError(f"level quantity must be positive, got {quantity} at {price}")
        merged[price] = get(price, 0) + quantity
    return merged


def _determine(
    buy_at: Mapping[int, int], sell_at: Mapping[int, int], market_buy: int, market_sell: int, reference: int
) -> Uncrossing:
    prices = sorted(buy_at.keys() | sell_at.keys())
    if not prices:
        # Only market orders: they trade against each other at the reference price, if both sides have some.
        if market_buy and market_sell:
            return Uncrossing(
                reference, min(market_buy, market_sell), market_buy - market_sell, PriceRule.REFERENCE_PRICE
            )
        return _NO_CROSS

    # sells_up_to[i]: everything selling at prices[i] or lower; buys_from[i]: everything buying at prices[i]
    # or higher. Market orders sit in both sums at every price.
    sells_up_to = list(accumulate((sell_at.get(p, 0) for p in prices), initial=market_sell))[1:]
    buys_from = list(accumulate((buy_at.get(p, 0) for p in reversed(prices)), initial=market_buy))[:0:-1]

    # Steps 1 and 2 in one pass: highest volume, then smallest absolute surplus.
    best_volume = 0
    best_surplus = 0
    candidates: list[int] = []
    for i, (bought, sold) in enumerate(zip(buys_from, sells_up_to)):
        volume = bought if bought < sold else sold
        if volume < best_volume:
            continue
        surplus = abs(bought - sold)
        if volume > best_volume or surplus < best_surplus:
            best_volume = volume
            best_surplus = surplus
            candidates = [i]
        elif surplus == best_surplus:
            candidates.append(i)
    if best_volume == 0:
        return _NO_CROSS

    def at(i: int, rule: PriceRule) -> Uncrossing:
        return Uncrossing(prices[i], best_volume, buys_from[i] - sells_up_to[i], rule)

    if len(candidates) == 1:
        # Decided by volume alone unless another price had the same volume (then the surplus decided).
        volume_ties = sum(1 for b, s in zip(buys_from, sells_up_to) if (b if b < s else s) == best_volume)
        return at(candidates[0], PriceRule.VOLUME if volume_ties == 1 else PriceRule.SURPLUS)

    lowest, highest = candidates[0], candidates[-1]
    if best_surplus:
        # The surplus falls as the price rises, so its sign at the two ends tells the sign of all of them.
        if buys_from[lowest] - sells_up_to[lowest] < 0:
            return at(lowest, PriceRule.MARKET_PRESSURE)
        if buys_from[highest] - sells_up_to[highest] > 0:
            return at(highest, PriceRule.MARKET_PRESSURE)

    if reference >= prices[highest]:
        return at(highest, PriceRule.REFERENCE_PRICE)
    if reference <= prices[lowest]:
        return at(lowest, PriceRule.REFERENCE_PRICE)
    bought = buys_from[bisect_left(prices, reference)]
    sold = sells_up_to[bisect_right(prices, reference) - 1]
    return Uncrossing(reference, min(bought, sold), bought - sold, PriceRule.REFERENCE_PRICE)


def _queue(orders: Sequence[AuctionOrder], price: int, *, is_buy: bool, volume: int) -> list[AuctionOrder]:
    """The side's eligible orders at ``price`` in execution priority, checked to cover ``volume``."""
    market = [o for o in orders if o.price is None]
    if is_buy:
        limits = [o for o in orders if o.price is not None and o.price >= price]
    else:
        limits = [o for o in orders if o.price is not None and o.price <= price]
    market.sort(key=_by_priority)
    # Two stable sorts instead of one composite key: both keys stay C-level attribute lookups, and a
    # reverse sort keeps equal elements in their existing (time) order.
    limits.sort(key=_by_priority)
    limits.sort(key=_by_price, reverse=is_buy)
    market.extend(limits)
    if sum(o.quantity for o in market) < volume:
        side = "buy" if is_buy else "sell"
        raise ValueError(f"the {side} side cannot supply volume {volume} at price {price}")
    return market
