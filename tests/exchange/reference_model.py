"""A naive reference exchange for continuous trading, written to be obviously right rather than fast.

It shares no code with `exchange.engine` beyond the command and enum types: resting orders are one flat list, every
match is a linear scan for the best counter order by (price, arrival), balances are a dict of two-element lists,
fees are rounded with `fractions.Fraction` and Python's own half-even `round`, and a fill-or-kill order is tried on a
deep copy of the whole exchange and kept only if it filled completely. It covers what the engine does outside call
phases: listing, deposits, withdrawals, issuance, limit and market orders with every time in force, post-only,
self-trade prevention, holds and fees, cancel, cancel-all, amend, end of day, GTD expiry and the non-auction states
(open, halted, suspended, closed, delisted). Bonds and call phases are out of its scope.

`ReferenceExchange.apply(ts_us, command)` returns what happened as plain tuples; `describe(engine_events)` turns the
engine's events into the same tuples, so a test compares the two lists. Book-level events are not part of that
comparison (the engine reports every level it touched); `levels()` gives the book to check them against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from fractions import Fraction

from exchange.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    ClockTick,
    Deposit,
    EndOfDay,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    SetTradingState,
    Withdraw,
)
from exchange.events import (
    BalanceChanged,
    CommandRejected,
    InstrumentListed,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    Trade,
    TradingStateChanged,
)
from exchange.instrument import TradingState
from exchange.orders import CancelReason, OrderType, SelfTradePrevention, Side, TimeInForce
from exchange.rejects import RejectReason

VENUE = "@venue"
LARGEST_PRICE = 2**53  # exclusive
LARGEST_AMOUNT = 2**62  # inclusive

Outcome = tuple


class Refused(Exception):
    def __init__(self, reason: RejectReason, order_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.order_id = order_id


@dataclass
class Listing:
    symbol: str
    currency: str
    lot_size: int
    tick_value: int
    min_quantity: int
    max_quantity: int
    band_bps: int
    last_price: int
    maker_bps: int
    taker_bps: int
    issuer: str | None
    state: TradingState


@dataclass
class RestingOrder:
    order_id: int
    account: str
    symbol: str
    side: Side
    price: int
    filled: int
    remaining: int
    tif: TimeInForce
    expire_at_us: int | None
    post_only: bool
    stp: SelfTradePrevention
    hold_per_lot: int
    arrival: int

    @property
    def quantity(self) -> int:
        return self.filled + self.remaining


def half_even(value: Fraction) -> int:
    return round(value)  # Python rounds a Fraction half to even


def ceiling(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def floor(value: Fraction) -> int:
    return value.numerator // value.denominator


class ReferenceExchange:
    def __init__(self) -> None:
        self.listings: dict[str, Listing] = {}
        self.book: list[RestingOrder] = []
        self.money: dict[tuple[str, str], list[int]] = {}  # (account, asset) -> [available, held]
        self.client_ids: dict[tuple[str, str], int] = {}
        self.order_ids = 0
        self.trade_ids = 0
        self.arrivals = 0
        self.now = 0
        self.out: list[Outcome] = []

    # -------------------------------------------------------------- the one entry point

    def apply(self, ts_us: int, command: object) -> list[Outcome]:
        self.now = ts_us
        self.out = []
        due = [o for o in self.book if o.tif is TimeInForce.GTD and o.expire_at_us <= ts_us]
        for order in sorted(due, key=lambda o: (o.expire_at_us, o.order_id)):
            self.take_off(order, CancelReason.EXPIRED)
        handler = {
            ListInstrument: self.list_instrument,
            SetTradingState: self.set_state,
            Deposit: self.deposit,
            Withdraw: self.withdraw,
            IssueSecurities: self.issue,
            PlaceOrder: self.place,
            CancelOrder: self.cancel,
            CancelAll: self.cancel_all,
            AmendOrder: self.amend,
            EndOfDay: self.end_of_day,
            ClockTick: lambda command: None,
        }[type(command)]
        try:
            handler(command)
        except Refused as refused:
            self.out.append(("rejected", refused.reason, refused.order_id))
        return self.out

    # -------------------------------------------------------------- queries

    def balance(self, account: str, asset: str) -> tuple[int, int]:
        available, held = self.money.get((account, asset), [0, 0])
        return available, held

    def balances(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {key: (a, h) for key, (a, h) in self.money.items() if a or h}

    def levels(self, symbol: str, side: Side) -> dict[int, tuple[int, int]]:
        """price -> (total remaining, number of orders) of the resting orders on one side."""
        result: dict[int, tuple[int, int]] = {}
        for order in self.book:
            if order.symbol == symbol and order.side is side:
                quantity, count = result.get(order.price, (0, 0))
                result[order.price] = (quantity + order.remaining, count + 1)
        return result

    def depth(self, symbol: str) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        bids = self.levels(symbol, Side.BUY)
        asks = self.levels(symbol, Side.SELL)
        return (
            [(p, *bids[p]) for p in sorted(bids, reverse=True)],
            [(p, *asks[p]) for p in sorted(asks)],
        )

    def queue(self, symbol: str, side: Side, price: int) -> list[int]:
        at_price = [o for o in self.book if o.symbol == symbol and o.side is side and o.price == price]
        return [o.order_id for o in sorted(at_price, key=lambda o: o.arrival)]

    def open_orders(self, account: str) -> dict[int, tuple[str, Side, int, int]]:
        return {o.order_id: (o.symbol, o.side, o.price, o.remaining) for o in self.book if o.account == account}

    def held_by_orders(self) -> dict[tuple[str, str], int]:
        needed: dict[tuple[str, str], int] = {}
        for o in self.book:
            listing = self.listings[o.symbol]
            if o.side is Side.BUY:
                key, amount = (o.account, listing.currency), o.remaining // listing.lot_size * o.hold_per_lot
            else:
                key, amount = (o.account, o.symbol), o.remaining
            needed[key] = needed.get(key, 0) + amount
        return {key: amount for key, amount in needed.items() if amount}

    # -------------------------------------------------------------- balances

    def wallet(self, account: str, asset: str) -> list[int]:
        return self.money.setdefault((account, asset), [0, 0])

    def move_to_held(self, account: str, asset: str, amount: int) -> None:
        wallet = self.wallet(account, asset)
        assert 0 <= amount <= wallet[0]
        wallet[0] -= amount
        wallet[1] += amount

    def move_to_available(self, account: str, asset: str, amount: int) -> None:
        wallet = self.wallet(account, asset)
        assert 0 <= amount <= wallet[1]
        wallet[1] -= amount
        wallet[0] += amount

    # -------------------------------------------------------------- listing, states, money in and out

    def listing(self, symbol: str) -> Listing:
        if symbol not in self.listings:
            raise Refused(RejectReason.UNKNOWN_INSTRUMENT)
        return self.listings[symbol]

    def list_instrument(self, command: ListInstrument) -> None:
        i = command.instrument
        if i.symbol in self.listings:
            raise Refused(RejectReason.INSTRUMENT_EXISTS)
        assert i.bond is None, "the reference model has no bonds"
        self.listings[i.symbol] = Listing(
            i.symbol,
            i.currency,
            i.lot_size,
            i.tick_value,
            i.min_quantity,
            i.max_quantity,
            i.band_bps,
            i.reference_price,
            i.maker_fee_bps,
            i.taker_fee_bps,
            i.issuer,
            i.state,
        )
        self.out.append(("listed", i.symbol))

    def set_state(self, command: SetTradingState) -> None:
        listing = self.listing(command.symbol)
        before = listing.state
        if before is TradingState.DELISTED or before is command.state:
            raise Refused(RejectReason.INVALID_STATE_CHANGE)
        assert command.state in (
            TradingState.OPEN,
            TradingState.HALTED,
            TradingState.SUSPENDED,
            TradingState.CLOSED,
            TradingState.DELISTED,
        ), "the reference model has no call phases"
        listing.state = command.state
        self.out.append(("state", command.symbol, before, command.state))
        if command.state is TradingState.DELISTED:
            for order in sorted((o for o in self.book if o.symbol == command.symbol), key=lambda o: o.order_id):
                self.take_off(order, CancelReason.DELISTED)

    def deposit(self, command: Deposit) -> None:
        if command.amount <= 0 or command.amount > LARGEST_AMOUNT:
            raise Refused(RejectReason.INVALID_AMOUNT)
        if command.account == VENUE or command.asset in self.listings:
            raise Refused(RejectReason.INVALID_AMOUNT)
        self.wallet(command.account, command.asset)[0] += command.amount
        self.out.append(("balance", command.account, command.asset, "deposit", command.amount))

    def withdraw(self, command: Withdraw) -> None:
        if command.amount <= 0 or command.amount > LARGEST_AMOUNT:
            raise Refused(RejectReason.INVALID_AMOUNT)
        if command.account == VENUE or command.asset in self.listings:
            raise Refused(RejectReason.INVALID_AMOUNT)
        if self.balance(command.account, command.asset)[0] < command.amount:
            raise Refused(RejectReason.INSUFFICIENT_FUNDS)
        self.wallet(command.account, command.asset)[0] -= command.amount
        self.out.append(("balance", command.account, command.asset, "withdrawal", command.amount))

    def issue(self, command: IssueSecurities) -> None:
        listing = self.listing(command.symbol)
        if listing.issuer is not None and listing.issuer != command.account:
            raise Refused(RejectReason.NOT_ISSUER)
        if command.quantity <= 0 or command.quantity > LARGEST_AMOUNT or command.account == VENUE:
            raise Refused(RejectReason.INVALID_AMOUNT)
        self.wallet(command.account, command.symbol)[0] += command.quantity
        self.out.append(("balance", command.account, command.symbol, "issuance", command.quantity))

    # -------------------------------------------------------------- prices and holds

    def band(self, listing: Listing) -> tuple[int, int]:
        if listing.band_bps == 0:
            return 1, 2**62
        low = ceiling(Fraction(listing.last_price * (10_000 - listing.band_bps), 10_000))
        high = floor(Fraction(listing.last_price * (10_000 + listing.band_bps), 10_000))
        return max(low, 1), max(high, 1)

    def buy_hold_per_lot(self, listing: Listing, price: int) -> int:
        per_lot = price * listing.tick_value
        worst_fee = ceiling(Fraction(per_lot * max(listing.maker_bps, listing.taker_bps), 10_000))
        return per_lot + worst_fee

    def order_hold(self, listing: Listing, side: Side, price: int, quantity: int) -> tuple[str, int, int]:
        """(asset, amount, hold per lot) an order of `quantity` at `price` keeps held."""
        if side is Side.BUY:
            per_lot = self.buy_hold_per_lot(listing, price)
            return listing.currency, quantity // listing.lot_size * per_lot, per_lot
        return listing.symbol, quantity, 0

    def refuse_unless_trading(self, listing: Listing, order_id: int | None = None) -> None:
        if listing.state is TradingState.OPEN:
            return
        reason = {
            TradingState.HALTED: RejectReason.INSTRUMENT_HALTED,
            TradingState.SUSPENDED: RejectReason.INSTRUMENT_SUSPENDED,
            TradingState.DELISTED: RejectReason.INSTRUMENT_DELISTED,
        }.get(listing.state, RejectReason.INSTRUMENT_NOT_OPEN)
        raise Refused(reason, order_id)

    def would_cross(self, symbol: str, side: Side, price: int) -> bool:
        """Whether any resting counter order could trade with `price` (whoever owns it)."""
        for o in self.book:
            if o.symbol == symbol and o.side is not side:
                if (o.price <= price) if side is Side.BUY else (o.price >= price):
                    return True
        return False

    # -------------------------------------------------------------- new orders

    def place(self, c: PlaceOrder) -> None:
        listing = self.listing(c.symbol)
        self.refuse_unless_trading(listing)
        if c.account == VENUE:
            raise Refused(RejectReason.INVALID_AMOUNT)
        if c.quantity <= 0:
            raise Refused(RejectReason.QUANTITY_OUT_OF_RANGE)
        if c.quantity % listing.lot_size != 0:
            raise Refused(RejectReason.QUANTITY_NOT_ON_LOT)
        if c.quantity < listing.min_quantity or c.quantity > listing.max_quantity:
            raise Refused(RejectReason.QUANTITY_OUT_OF_RANGE)
        low, high = self.band(listing)
        tif = c.tif
        if c.type is OrderType.LIMIT:
            if c.price is None:
                raise Refused(RejectReason.PRICE_REQUIRED)
            if c.price <= 0 or c.price >= LARGEST_PRICE:
                raise Refused(RejectReason.PRICE_OUT_OF_RANGE)
            if c.price < low or c.price > high:
                raise Refused(RejectReason.PRICE_OUTSIDE_BAND)
            price = c.price
        else:
            if c.price is not None:
                raise Refused(RejectReason.PRICE_NOT_ALLOWED)
            if c.post_only:
                raise Refused(RejectReason.WOULD_TAKE_LIQUIDITY)
            price = high if c.side is Side.BUY else low
            tif = TimeInForce.FOK if tif is TimeInForce.FOK else TimeInForce.IOC
        if tif is TimeInForce.GTD:
            if c.expire_at_us is None or c.expire_at_us <= self.now:
                raise Refused(RejectReason.INVALID_EXPIRY)
        elif c.expire_at_us is not None:
            raise Refused(RejectReason.INVALID_EXPIRY)
        if c.post_only and tif in (TimeInForce.IOC, TimeInForce.FOK):
            raise Refused(RejectReason.INVALID_TIME_IN_FORCE)
        if c.client_order_id is not None and (c.account, c.client_order_id) in self.client_ids:
            raise Refused(RejectReason.DUPLICATE_CLIENT_ORDER_ID, self.client_ids[(c.account, c.client_order_id)])
        if c.post_only and self.would_cross(c.symbol, c.side, price):
            raise Refused(RejectReason.WOULD_TAKE_LIQUIDITY)
        asset, amount, per_lot = self.order_hold(listing, c.side, price, c.quantity)
        if self.balance(c.account, asset)[0] < amount:
            raise Refused(RejectReason.INSUFFICIENT_FUNDS if c.side is Side.BUY else RejectReason.INSUFFICIENT_HOLDINGS)
        if tif is TimeInForce.FOK:
            trial = copy.deepcopy(self)
            trial_order = trial.enter(c, listing.symbol, price, tif, asset, amount, per_lot)
            trial.match(trial_order)
            if trial_order.filled != c.quantity:
                raise Refused(RejectReason.FOK_NOT_FILLABLE)
        order = self.enter(c, listing.symbol, price, tif, asset, amount, per_lot)
        self.match(order)
        if order.remaining == 0:
            return
        if c.type is OrderType.MARKET:
            self.shrink(order, order.remaining, CancelReason.MARKET_REMAINDER)
        elif tif is TimeInForce.IOC:
            self.shrink(order, order.remaining, CancelReason.IOC_REMAINDER)
        else:
            assert tif is not TimeInForce.FOK
            self.rest(order)

    def enter(
        self, c: PlaceOrder, symbol: str, price: int, tif: TimeInForce, asset: str, amount: int, per_lot: int
    ) -> RestingOrder:
        """Accept a new order: give it an id, take its hold. It is not in the book yet."""
        self.order_ids += 1
        order = RestingOrder(
            self.order_ids,
            c.account,
            symbol,
            c.side,
            price,
            0,
            c.quantity,
            tif,
            c.expire_at_us,
            c.post_only,
            c.stp,
            per_lot,
            0,
        )
        if c.client_order_id is not None:
            self.client_ids[(c.account, c.client_order_id)] = order.order_id
        self.move_to_held(c.account, asset, amount)
        self.out.append(("accepted", order.order_id, c.account, c.side, c.type, price, c.quantity, tif, asset, amount))
        return order

    def rest(self, order: RestingOrder) -> None:
        self.arrivals += 1
        order.arrival = self.arrivals
        self.book.append(order)

    # -------------------------------------------------------------- matching

    def best_counter_order(self, taker: RestingOrder) -> RestingOrder | None:
        candidates = []
        for o in self.book:
            if o.symbol != taker.symbol or o.side is taker.side:
                continue
            if taker.side is Side.BUY and o.price <= taker.price:
                candidates.append(((o.price, o.arrival), o))
            elif taker.side is Side.SELL and o.price >= taker.price:
                candidates.append(((-o.price, o.arrival), o))
        if not candidates:
            return None
        return min(candidates, key=lambda pair: pair[0])[1]

    def match(self, taker: RestingOrder) -> None:
        while taker.remaining > 0:
            maker = self.best_counter_order(taker)
            if maker is None:
                return
            if maker.account != taker.account:
                self.trade(taker, maker)
                continue
            mode = taker.stp
            if mode is SelfTradePrevention.CANCEL_OLDEST:
                self.take_off(maker, CancelReason.SELF_TRADE)
            elif mode is SelfTradePrevention.CANCEL_NEWEST:
                self.shrink(taker, taker.remaining, CancelReason.SELF_TRADE)
            elif mode is SelfTradePrevention.CANCEL_BOTH:
                self.take_off(maker, CancelReason.SELF_TRADE)
                self.shrink(taker, taker.remaining, CancelReason.SELF_TRADE)
            else:
                both_lose = min(taker.remaining, maker.remaining)
                if both_lose == maker.remaining:
                    self.take_off(maker, CancelReason.SELF_TRADE)
                else:
                    self.shrink(maker, both_lose, CancelReason.SELF_TRADE)
                self.shrink(taker, both_lose, CancelReason.SELF_TRADE)

    def trade(self, taker: RestingOrder, maker: RestingOrder) -> None:
        listing = self.listings[taker.symbol]
        quantity = min(taker.remaining, maker.remaining)
        price = maker.price
        buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
        buyer_bps = listing.taker_bps if buy is taker else listing.maker_bps
        seller_bps = listing.taker_bps if sell is taker else listing.maker_bps
        lots = quantity // listing.lot_size
        cash = price * listing.tick_value * lots
        buyer_fee = half_even(Fraction(cash * buyer_bps, 10_000))
        seller_fee = half_even(Fraction(cash * seller_bps, 10_000))
        held_for_these_lots = lots * buy.hold_per_lot
        buyer_release = held_for_these_lots - cash - buyer_fee
        assert buyer_release >= 0
        buyer_cash = self.wallet(buy.account, listing.currency)
        buyer_cash[1] -= held_for_these_lots
        buyer_cash[0] += buyer_release
        self.wallet(buy.account, listing.symbol)[0] += quantity
        self.wallet(sell.account, listing.symbol)[1] -= quantity
        self.wallet(sell.account, listing.currency)[0] += cash - seller_fee
        if buyer_fee + seller_fee:
            self.wallet(VENUE, listing.currency)[0] += buyer_fee + seller_fee
        for order in (buy, sell):
            order.remaining -= quantity
            order.filled += quantity
        if maker.remaining == 0:
            self.book.remove(maker)
        listing.last_price = price
        self.trade_ids += 1
        self.out.append(
            (
                "trade",
                self.trade_ids,
                price,
                quantity,
                taker.side,
                buy.order_id,
                sell.order_id,
                buy.account,
                sell.account,
                cash,
                buyer_fee,
                seller_fee,
                buyer_release,
                buy.remaining,
                sell.remaining,
            )
        )

    # -------------------------------------------------------------- taking quantity off orders

    def release(self, order: RestingOrder, quantity: int) -> tuple[str, int]:
        listing = self.listings[order.symbol]
        if order.side is Side.BUY:
            asset, amount = listing.currency, quantity // listing.lot_size * order.hold_per_lot
        else:
            asset, amount = order.symbol, quantity
        self.move_to_available(order.account, asset, amount)
        return asset, amount

    def shrink(self, order: RestingOrder, quantity: int, reason: CancelReason) -> None:
        """Take `quantity` off an order without trading it, whether it rests or is still arriving."""
        order.remaining -= quantity
        asset, amount = self.release(order, quantity)
        if order.remaining == 0 and order in self.book:
            self.book.remove(order)
        self.out.append(("cancelled", order.order_id, reason, quantity, order.remaining, asset, amount))

    def take_off(self, order: RestingOrder, reason: CancelReason) -> None:
        self.shrink(order, order.remaining, reason)

    # -------------------------------------------------------------- cancel, amend, expiry

    def my_order(self, account: str, order_id: int) -> RestingOrder:
        for o in self.book:
            if o.order_id == order_id:
                if o.account != account:
                    raise Refused(RejectReason.NOT_YOUR_ORDER, order_id)
                return o
        raise Refused(RejectReason.UNKNOWN_ORDER, order_id)

    def cancel(self, c: CancelOrder) -> None:
        self.take_off(self.my_order(c.account, c.order_id), CancelReason.USER)

    def cancel_all(self, c: CancelAll) -> None:
        if c.symbol is not None:
            self.listing(c.symbol)
        mine = [o for o in self.book if o.account == c.account and c.symbol in (None, o.symbol)]
        for order in sorted(mine, key=lambda o: o.order_id):
            self.take_off(order, CancelReason.USER)

    def end_of_day(self, c: EndOfDay) -> None:
        if c.symbol is not None:
            self.listing(c.symbol)
        due = [o for o in self.book if o.tif is TimeInForce.DAY and c.symbol in (None, o.symbol)]
        for order in sorted(due, key=lambda o: o.order_id):
            self.take_off(order, CancelReason.EXPIRED)

    def amend(self, c: AmendOrder) -> None:
        order = self.my_order(c.account, c.order_id)
        listing = self.listings[order.symbol]
        self.refuse_unless_trading(listing, order.order_id)
        price = order.price if c.price is None else c.price
        quantity = order.quantity if c.quantity is None else c.quantity
        if quantity <= order.filled:
            raise Refused(RejectReason.QUANTITY_OUT_OF_RANGE, order.order_id)
        if quantity % listing.lot_size:
            raise Refused(RejectReason.QUANTITY_NOT_ON_LOT, order.order_id)
        if quantity > listing.max_quantity:
            raise Refused(RejectReason.QUANTITY_OUT_OF_RANGE, order.order_id)
        if price != order.price:
            if price <= 0 or price >= LARGEST_PRICE:
                raise Refused(RejectReason.PRICE_OUT_OF_RANGE, order.order_id)
            low, high = self.band(listing)
            if price < low or price > high:
                raise Refused(RejectReason.PRICE_OUTSIDE_BAND, order.order_id)
        if price == order.price and quantity == order.quantity:
            raise Refused(RejectReason.NO_CHANGE, order.order_id)
        if order.post_only and price != order.price and self.would_cross(order.symbol, order.side, price):
            raise Refused(RejectReason.WOULD_TAKE_LIQUIDITY, order.order_id)
        remaining = quantity - order.filled
        asset, old_hold, _ = self.order_hold_of(order)
        asset, new_hold, per_lot = self.order_hold(listing, order.side, price, remaining)
        delta = new_hold - old_hold
        if delta > self.balance(order.account, asset)[0]:
            raise Refused(
                RejectReason.INSUFFICIENT_FUNDS if order.side is Side.BUY else RejectReason.INSUFFICIENT_HOLDINGS,
                order.order_id,
            )
        if delta >= 0:
            self.move_to_held(order.account, asset, delta)
        else:
            self.move_to_available(order.account, asset, -delta)
        keeps_place = price == order.price and remaining <= order.remaining
        order.remaining = remaining
        order.hold_per_lot = per_lot
        self.out.append(("amended", order.order_id, price, quantity, remaining, keeps_place, asset, delta))
        if keeps_place:
            return
        # Anything else is a new arrival at the new price: off the book, matched, and what is left rests at the back.
        self.book.remove(order)
        order.price = price
        self.match(order)
        if order.remaining:
            self.rest(order)

    def order_hold_of(self, order: RestingOrder) -> tuple[str, int, int]:
        listing = self.listings[order.symbol]
        if order.side is Side.BUY:
            return listing.currency, order.remaining // listing.lot_size * order.hold_per_lot, order.hold_per_lot
        return order.symbol, order.remaining, 0


def describe(events: list[object]) -> list[Outcome]:
    """The engine's events as the reference model's tuples (book-level and auction events left out)."""
    described: list[Outcome] = []
    for e in events:
        if isinstance(e, InstrumentListed):
            described.append(("listed", e.symbol))
        elif isinstance(e, TradingStateChanged):
            described.append(("state", e.symbol, e.previous, e.state))
        elif isinstance(e, BalanceChanged):
            described.append(("balance", e.account, e.asset, e.kind.value, e.amount))
        elif isinstance(e, CommandRejected):
            described.append(("rejected", e.reason, e.order_id))
        elif isinstance(e, OrderAccepted):
            described.append(
                (
                    "accepted",
                    e.order_id,
                    e.account,
                    e.side,
                    e.type,
                    e.price,
                    e.quantity,
                    e.tif,
                    e.hold_asset,
                    e.hold_amount,
                )
            )
        elif isinstance(e, Trade):
            assert e.accrued == 0
            described.append(
                (
                    "trade",
                    e.trade_id,
                    e.price,
                    e.quantity,
                    e.aggressor,
                    e.buy_order_id,
                    e.sell_order_id,
                    e.buyer,
                    e.seller,
                    e.cash,
                    e.buyer_fee,
                    e.seller_fee,
                    e.buyer_release,
                    e.buy_remaining,
                    e.sell_remaining,
                )
            )
        elif isinstance(e, OrderCancelled):
            described.append(
                (
                    "cancelled",
                    e.order_id,
                    e.reason,
                    e.cancelled_quantity,
                    e.remaining,
                    e.release_asset,
                    e.release_amount,
                )
            )
        elif isinstance(e, OrderAmended):
            described.append(
                ("amended", e.order_id, e.price, e.quantity, e.remaining, e.priority_kept, e.hold_asset, e.hold_delta)
            )
    return described
