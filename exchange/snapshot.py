"""The engine's whole state as canonical bytes, and back: what a restart loads instead of replaying the journal.

`encode(engine)` writes everything that decides what the engine does next: instruments (with their current state,
reference price and terms), every book (price levels in their dict order, each level's queue in time priority, the
market orders waiting for an auction), the live orders, the per-account open orders, client order ids, balances
(available and held), supply, the live entries of the GTD and volatility-auction timers, investor profiles,
primary offers, paid distributions, and the order, trade, seq and time counters. `decode(data)` builds an engine
that is indistinguishable from the one encoded: the same commands give it the same events, and encoding it again
gives the same bytes.

Canonical: compact ASCII JSON of lists in a fixed layout; every dict is written in its iteration order (which the
engine's behaviour may depend on, so it is kept, not sorted) and every set sorted (a set's order is hash order and
nothing depends on it). Pure: no I/O, no clock. The snapshot table, its hash and the journal link live in
`ledger.snapshots`.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from exchange import codec
from exchange.book import BookSide, OrderBook, PriceLevel
from exchange.engine import Engine
from exchange.instrument import Instrument, InvestorCategory
from exchange.investors import InvestorProfile
from exchange.offers import Offer, OfferStatus, Subscription
from exchange.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce

FORMAT = "engine-snapshot/1"

# The engine attributes this module writes, and the scratch ones it deliberately does not (they are reset at the
# start of every command). A test compares this with a fresh engine's attributes: a new field must be added here.
STATE_FIELDS = frozenset(
    {
        "instruments",
        "books",
        "orders",
        "open_by_account",
        "client_order_ids",
        "balances",
        "_gtd",
        "_auction_ends",
        "supply",
        "investors",
        "offers",
        "distributions",
        "_auction_end_of",
        "next_order_id",
        "next_trade_id",
        "last_seq",
        "last_ts_us",
    }
)
SCRATCH_FIELDS = frozenset({"_seq", "_ts", "_events", "_touched", "_call_books", "_handlers"})

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False).encode
_SIDES = {s.value: s for s in Side}
_TYPES = {t.value: t for t in OrderType}
_TIFS = {t.value: t for t in TimeInForce}
_STPS = {s.value: s for s in SelfTradePrevention}


class SnapshotError(ValueError):
    """The bytes are not a well-formed engine snapshot of this format."""


# ---------------------------------------------------------------------------------------------------- encoding


def _order(o: Order) -> list[Any]:
    return [
        o.order_id,
        o.account,
        o.symbol,
        o.side.value,
        o.type.value,
        o.price,
        o.quantity,
        o.remaining,
        o.tif.value,
        o.expire_at_us,
        o.post_only,
        o.stp.value,
        o.hold_per_lot,
        o.priority,
    ]


def _side(side: BookSide) -> list[Any]:
    # Levels in dict order (the auction reads them in that order), each with its queue of order ids.
    return [[lv.price, lv.quantity, lv.count, [o.order_id for o in lv]] for lv in side.levels.values()]


def _book(book: OrderBook) -> list[Any]:
    return [book.symbol, _side(book.bids), _side(book.asks), list(book.market_bids), list(book.market_asks)]


def _offer(offer: Offer) -> list[Any]:
    return [
        offer.offer_id,
        offer.symbol,
        offer.issuer,
        offer.currency,
        offer.price,
        offer.quantity,
        offer.min_application,
        offer.min_subscription,
        offer.closes_at_us,
        offer.opened_seq,
        offer.status.value,
        [[s.seq, s.account, s.quantity, s.amount, s.allocated, s.paid] for s in offer.subscriptions],
        offer.subscribed,
        offer.allocated,
        offer.closed_seq,
        list(offer.pending_by_account.items()),
    ]


def to_plain(engine: Engine) -> list[Any]:
    """The JSON-ready layout of the engine's state (see `encode`)."""
    orders = engine.orders
    for book in engine.books.values():
        for side in (book.bids, book.asks):
            for level in side.levels.values():
                for o in level:
                    assert orders.get(o.order_id) is o, f"order {o.order_id} rests in a book but is not live"
    dist = engine.distributions
    return [
        FORMAT,
        [engine.last_seq, engine.last_ts_us, engine.next_order_id, engine.next_trade_id],
        [codec.encode(i).decode("ascii") for i in engine.instruments.values()],
        [_order(o) for o in orders.values()],
        [_book(b) for b in engine.books.values()],
        [[account, [o.order_id for o in mine]] for account, mine in engine.open_by_account.items()],
        [[account, client_id, order_id] for (account, client_id), order_id in engine.client_order_ids.items()],
        [[account, asset, b.available, b.held] for account, asset, b in engine.balances.entries()],
        list(engine.supply.items()),
        # Timer heaps hold stale entries (done orders, ended auctions) that are skipped when they come up, and
        # `next_timer_us` prunes some of them as it reads: only the live entries are state. Entries are unique, so
        # the order they pop in depends on their values alone, and a sorted list is a heap.
        sorted(list(e) for e in engine._gtd if e[1] in orders),
        sorted({(end, symbol) for end, symbol in engine._auction_ends if engine._auction_end_of.get(symbol) == end}),
        list(engine._auction_end_of.items()),
        [
            [[a, p.category.value, p.declared_assets_minor] for a, p in engine.investors.profiles.items()],
            sorted(engine.investors.acknowledged),
        ],
        [[_offer(o) for o in engine.offers.offers.values()], list(engine.offers.open_by_symbol.items())],
        [
            [[s, sorted(d.isoformat() for d in dates)] for s, dates in dist.paid_coupons.items()],
            sorted(dist.redeemed),
            list(dist.listed_rate_ppm.items()),
        ],
    ]


def encode(engine: Engine) -> bytes:
    """Canonical bytes of the engine's state: equal engines give equal bytes."""
    return _dumps(to_plain(engine)).encode("ascii")


# ---------------------------------------------------------------------------------------------------- decoding


def _restore_side(side: BookSide, levels: list[Any], orders: dict[int, Order]) -> None:
    for price, quantity, count, queue in levels:
        level = PriceLevel(price)
        for order_id in queue:
            level.append(orders[order_id])
        # Written as stored: equal to the queue's sums in any engine that keeps its invariants, and copied
        # faithfully from one that does not.
        level.quantity = quantity
        level.count = count
        side.levels[price] = level
    prices = side.prices
    prices.update(side.levels)
    if prices:
        side.best = side.levels[prices[-1] if side.side is Side.BUY else prices[0]]


def _restore_offer(plain: list[Any]) -> Offer:
    (offer_id, symbol, issuer, currency, price, quantity, min_app, min_sub, closes, opened, status, subs,
     subscribed, allocated, closed_seq, pending) = plain  # fmt: skip
    return Offer(
        offer_id,
        symbol,
        issuer,
        currency,
        price,
        quantity,
        min_app,
        min_sub,
        closes,
        opened,
        OfferStatus(status),
        [Subscription(*s) for s in subs],
        subscribed,
        allocated,
        closed_seq,
        dict(pending),
    )


def from_plain(plain: list[Any]) -> Engine:
    if not isinstance(plain, list) or len(plain) != 15 or plain[0] != FORMAT:
        raise SnapshotError(f"not a {FORMAT} snapshot")
    (_, counters, instruments, orders_plain, books, open_by_account, client_ids, balances, supply, gtd,
     auction_ends, auction_end_of, investors, offers, distributions) = plain  # fmt: skip
    engine = Engine()
    engine.last_seq, engine.last_ts_us, engine.next_order_id, engine.next_trade_id = counters
    # The scratch fields of a command, as `apply` leaves them (they are reset before they are read).
    engine._seq, engine._ts = engine.last_seq, engine.last_ts_us
    for text in instruments:
        instrument = codec.decode(text.encode("ascii"))
        if not isinstance(instrument, Instrument):
            raise SnapshotError("an instrument entry is not an instrument")
        engine.instruments[instrument.symbol] = instrument
    for account, asset, available, held in balances:
        # In the snapshot's order, which is the order they were first touched: the same structure as before.
        balance = engine.balances.of(account, asset)
        balance.available = available
        balance.held = held
    orders = engine.orders
    sides, types, tifs, stps = _SIDES, _TYPES, _TIFS, _STPS
    for (order_id, account, symbol, side, kind, price, quantity, remaining, tif, expire, post_only, stp, hold,
         priority) in orders_plain:  # fmt: skip
        instrument = engine.instruments.get(symbol)
        hold_asset = None if instrument is None else instrument.currency if side == Side.BUY.value else symbol
        hold_balance = None if hold_asset is None else engine.balances.find(account, hold_asset)
        if hold_balance is None:
            raise SnapshotError(f"order {order_id} holds nothing: no {hold_asset or symbol} balance for {account}")
        order = Order(
            order_id, account, symbol, sides[side], types[kind], price, quantity, tifs[tif], expire, post_only,
            stps[stp], hold, priority, hold_balance,
        )  # fmt: skip
        order.remaining = remaining
        orders[order_id] = order
    for symbol, bids, asks, market_bids, market_asks in books:
        book = OrderBook(symbol)
        _restore_side(book.bids, bids, orders)
        _restore_side(book.asks, asks, orders)
        book.market_bids.update((i, orders[i]) for i in market_bids)
        book.market_asks.update((i, orders[i]) for i in market_asks)
        engine.books[symbol] = book
    engine.open_by_account.update((a, {orders[i]: None for i in ids}) for a, ids in open_by_account)
    engine.client_order_ids.update(((a, c), i) for a, c, i in client_ids)
    engine.supply.update(supply)
    engine._gtd = [(expire, order_id) for expire, order_id in gtd]
    engine._auction_ends = [(end, symbol) for end, symbol in auction_ends]
    assert _is_heap(engine._gtd) and _is_heap(engine._auction_ends), "timer heaps out of order"
    engine._auction_end_of.update(auction_end_of)
    profiles, acknowledged = investors
    engine.investors.profiles.update(
        (a, InvestorProfile(InvestorCategory(c), assets)) for a, c, assets in profiles
    )
    engine.investors.acknowledged.update(acknowledged)
    offer_list, open_by_symbol = offers
    engine.offers.offers.update((o[0], _restore_offer(o)) for o in offer_list)
    engine.offers.open_by_symbol.update(open_by_symbol)
    paid, redeemed, listed = distributions
    engine.distributions.paid_coupons.update((s, {date.fromisoformat(d) for d in ds}) for s, ds in paid)
    engine.distributions.redeemed.update(redeemed)
    engine.distributions.listed_rate_ppm.update(listed)
    return engine


def _is_heap(entries: list[Any]) -> bool:
    return all(entries[(i - 1) // 2] <= entries[i] for i in range(1, len(entries)))


def decode(data: bytes) -> Engine:
    """The engine whose state these bytes are; `SnapshotError` if they are not a snapshot of this format."""
    try:
        plain = json.loads(data)
        return from_plain(plain)
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, AssertionError, codec.DecodeError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from exc

