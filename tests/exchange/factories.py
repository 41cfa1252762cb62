"""Small builders for engine tests: instruments, commands, and a market that stamps sequence numbers and time.

`Market` wraps an `Engine`, applying each command with the next sequence number and a clock the test moves on
explicitly (`advance`), so a test reads as the list of commands it sends. Prices are integer ticks, quantities integer
units, cash integer minor units, as inside the core.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from typing import TypeVar

from exchange.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    ClockTick,
    Command,
    Deposit,
    EndOfDay,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    RunAuction,
    SetTradingState,
    Withdraw,
)
from exchange.engine import Engine
from exchange.events import (
    CommandRejected,
    Event,
    OrderAccepted,
)
from exchange.instrument import BondTerms, DayCount, Instrument, InstrumentKind, TradingState
from exchange.orders import OrderType, SelfTradePrevention, Side, TimeInForce

BUY = Side.BUY
SELL = Side.SELL
EUR = "EUR"
START_US = 1_700_000_000_000_000  # 2023-11-14, a weekday; any fixed instant would do

E = TypeVar("E")


def equity(
    symbol: str = "ACME",
    *,
    reference_price: int = 100,
    band_bps: int = 1_000,
    lot_size: int = 1,
    tick_value: int = 1,
    min_quantity: int | None = None,
    max_quantity: int = 1_000_000,
    maker_fee_bps: int = 0,
    taker_fee_bps: int = 0,
    issuer: str | None = None,
    state: TradingState = TradingState.OPEN,
    auction_only: bool = False,
) -> Instrument:
    """An equity in EUR; by default one tick is one cent per share, a 10 % band around a price of 100."""
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.EQUITY,
        currency=EUR,
        currency_decimals=2,
        tick_size="0.01",
        tick_value=tick_value,
        lot_size=lot_size,
        min_quantity=lot_size if min_quantity is None else min_quantity,
        max_quantity=max_quantity,
        band_bps=band_bps,
        reference_price=reference_price,
        maker_fee_bps=maker_fee_bps,
        taker_fee_bps=taker_fee_bps,
        state=state,
        issuer=issuer,
        auction_only=auction_only,
    )


def bond(symbol: str = "GREEN27", *, reference_price: int = 10_000, band_bps: int = 500) -> Instrument:
    """A 4 % annual 30E/360 bond of EUR 100 nominal per unit, priced in 0.01 % of par (one tick = 1 cent per unit)."""
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.BOND,
        currency=EUR,
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=band_bps,
        reference_price=reference_price,
        bond=BondTerms(
            nominal_minor=10_000,
            coupon_rate_ppm=40_000,
            coupon_frequency=1,
            day_count=DayCount.THIRTY_360,
            issue_date=date(2023, 1, 15),
            maturity_date=date(2027, 1, 15),
        ),
    )


def limit(
    account: str,
    side: Side,
    quantity: int,
    price: int,
    symbol: str = "ACME",
    *,
    tif: TimeInForce = TimeInForce.GTC,
    expire_at_us: int | None = None,
    post_only: bool = False,
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST,
    client_order_id: str | None = None,
) -> PlaceOrder:
    return PlaceOrder(
        account,
        symbol,
        side,
        OrderType.LIMIT,
        quantity,
        price,
        tif,
        expire_at_us,
        post_only,
        client_order_id,
        stp,
    )


def market(
    account: str,
    side: Side,
    quantity: int,
    symbol: str = "ACME",
    *,
    tif: TimeInForce = TimeInForce.IOC,
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST,
) -> PlaceOrder:
    return PlaceOrder(account, symbol, side, OrderType.MARKET, quantity, None, tif, stp=stp)


def of_type(events: Iterable[object], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def one(events: Iterable[object], kind: type[E]) -> E:
    found = of_type(events, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


class Market:
    """An engine plus the sequencer's job: the next sequence number and the current exchange time."""

    def __init__(self, *instruments: Instrument, engine: Engine | None = None) -> None:
        self.engine = Engine() if engine is None else engine
        self.seq = 0
        self.now_us = START_US
        for instrument in instruments:
            self.apply(ListInstrument(instrument))

    def apply(self, command: Command) -> list[Event]:
        self.seq += 1
        return self.engine.apply(self.seq, self.now_us, command)

    def advance(self, microseconds: int) -> None:
        self.now_us += microseconds

    # Commands read better in tests with these shorthands.

    def deposit(self, account: str, amount: int, asset: str = EUR) -> list[Event]:
        return self.apply(Deposit(account, asset, amount))

    def withdraw(self, account: str, amount: int, asset: str = EUR) -> list[Event]:
        return self.apply(Withdraw(account, asset, amount))

    def issue(self, account: str, quantity: int, symbol: str = "ACME") -> list[Event]:
        return self.apply(IssueSecurities(account, symbol, quantity))

    def place(self, command: PlaceOrder) -> list[Event]:
        return self.apply(command)

    def place_id(self, command: PlaceOrder) -> int:
        """Place an order that must be accepted; return its order id."""
        events = self.apply(command)
        rejected = of_type(events, CommandRejected)
        assert not rejected, rejected
        return one(events, OrderAccepted).order_id

    def cancel(self, account: str, order_id: int) -> list[Event]:
        return self.apply(CancelOrder(account, order_id))

    def cancel_all(self, account: str, symbol: str | None = None) -> list[Event]:
        return self.apply(CancelAll(account, symbol))

    def amend(
        self, account: str, order_id: int, *, price: int | None = None, quantity: int | None = None
    ) -> list[Event]:
        return self.apply(AmendOrder(account, order_id, price, quantity))

    def end_of_day(self, symbol: str | None = None) -> list[Event]:
        return self.apply(EndOfDay(symbol))

    def tick(self, microseconds: int = 0) -> list[Event]:
        self.advance(microseconds)
        return self.apply(ClockTick())

    def set_state(self, state: TradingState, symbol: str = "ACME") -> list[Event]:
        return self.apply(SetTradingState(symbol, state))

    # Queries.

    def balance(self, account: str, asset: str = EUR) -> tuple[int, int]:
        return self.engine.balance(account, asset)

    def bbo(self, symbol: str = "ACME") -> tuple[int | None, int | None]:
        return self.engine.best_bid_offer(symbol)

    def depth(
        self, symbol: str = "ACME", levels: int = 10
    ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        return self.engine.depth(symbol, levels)

    def queue(self, side: Side, price: int, symbol: str = "ACME") -> list[int]:
        """Order ids at one price level, front of the queue first."""
        return [order.order_id for order in self.engine.level_orders(symbol, side, price)]

    def holds_match(self) -> bool:
        """Whether every held balance equals what the open orders require (and nothing else is held)."""
        required = self.engine.required_holds()
        held = {key: balance.held for key, balance in self.engine.balances.items() if balance.held}
        return held == {key: amount for key, amount in required.items() if amount}


def funded_market(*instruments: Instrument, cash: int = 1_000_000, shares: int = 1_000) -> Market:
    """A market where accounts a, b, c and d each hold `cash` EUR and `shares` of every listed instrument."""
    m = Market(*instruments)
    for account in ("a", "b", "c", "d"):
        m.deposit(account, cash)
        for instrument in instruments:
            m.issue(account, shares, instrument.symbol)
    return m


LiveOrder = tuple[int, str, str, int, int]  # order id, account, symbol, price, total quantity


class RandomSession:
    """A seeded stream of commands of every kind, with prices a few ticks around a slowly wandering centre.

    Buys are drawn within `spread_ticks` of `lean_ticks` below the centre, sells within `spread_ticks` of `lean_ticks`
    above it: the more they lean apart, the fewer orders cross and the deeper the books grow.

    `live_orders`, when given, lists the orders open right now, so that most cancels and amends name a live order of
    its owner; without it they name recent order ids at random. With `call_phases` the stream also moves instruments
    through auctions, halts and the close and runs periodic auctions. Same seed, same answers from `live_orders`:
    same stream.
    """

    # How often each kind of command comes, relative to the others; `mix` overrides some.
    MIX = {
        "place": 55.0,
        "cancel": 10.0,
        "amend": 12.0,
        "cancel_all": 2.0,
        "deposit": 3.0,
        "withdraw": 3.0,
        "issue": 2.0,
        "end_of_day": 1.0,
        "tick": 4.0,
        "state": 6.0,
        "auction": 2.0,
    }
    STATES = (
        TradingState.PRE_OPEN,
        TradingState.OPENING_AUCTION,
        TradingState.CLOSING_AUCTION,
        TradingState.VOLATILITY_AUCTION,
        TradingState.HALTED,
        TradingState.CLOSED,
    )

    def __init__(
        self,
        seed: int,
        instruments: list[Instrument],
        accounts: tuple[str, ...] = ("a", "b", "c", "d", "e", "f"),
        *,
        call_phases: bool = False,
        spread_ticks: int = 6,
        lean_ticks: int = 1,
        live_orders: Callable[[], list[LiveOrder]] | None = None,
        mix: dict[str, float] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.instruments = instruments
        self.accounts = accounts
        self.call_phases = call_phases
        self.spread_ticks = spread_ticks
        self.lean_ticks = lean_ticks
        self.live_orders = live_orders
        self.centre = {i.symbol: i.reference_price for i in instruments}
        weights = dict(self.MIX)
        if not call_phases:
            weights["state"] = weights["auction"] = 0
        weights.update(mix or {})
        self.kinds = list(weights)
        self.weights = list(weights.values())
        self.placed = 0
        self.client_ids = 0

    def opening(self) -> list[Command]:
        """List the instruments and fund every account with cash and every security."""
        commands: list[Command] = [ListInstrument(i) for i in self.instruments]
        for account in self.accounts:
            commands.append(Deposit(account, EUR, 50_000_000))
            for instrument in self.instruments:
                commands.append(IssueSecurities(account, instrument.symbol, 2_000 * instrument.lot_size))
        return commands

    def next(self) -> tuple[int, Command]:
        """(microseconds since the previous command, the command)."""
        rng = self.rng
        pause = rng.choice((0, 0, 1, 10, 1_000, 100_000))
        kind = rng.choices(self.kinds, self.weights)[0]
        if kind == "place":
            return pause, self.place()
        if kind == "cancel":
            return pause, self.cancel()
        if kind == "amend":
            return pause, self.amend()
        if kind == "cancel_all":
            return pause, CancelAll(rng.choice(self.accounts), rng.choice([None, self.symbol()]))
        if kind == "deposit":
            return pause, Deposit(rng.choice(self.accounts), EUR, rng.randint(-1, 100_000))
        if kind == "withdraw":
            return pause, Withdraw(rng.choice(self.accounts), EUR, rng.randint(0, 1_000_000))
        if kind == "issue":
            return pause, IssueSecurities(rng.choice(self.accounts), self.symbol(), rng.randint(0, 50))
        if kind == "end_of_day":
            return pause, EndOfDay(rng.choice([None, self.symbol()]))
        if kind == "tick":
            return rng.randint(0, 3_000_000), ClockTick()
        if kind == "state":
            state = TradingState.OPEN if rng.random() < 0.5 else rng.choice(self.STATES)
            return pause, SetTradingState(self.symbol(), state)
        return pause, RunAuction(self.symbol())

    def symbol(self) -> str:
        return self.rng.choice(self.instruments).symbol

    def place(self) -> PlaceOrder:
        rng = self.rng
        instrument = rng.choice(self.instruments)
        symbol = instrument.symbol
        if rng.random() < 0.05:  # the centre wanders, dragging the trading (and the reference price) along
            self.centre[symbol] = max(self.spread_ticks + 1, self.centre[symbol] + rng.choice((-2, -1, 1, 2)))
        self.placed += 1
        side = rng.choice((Side.BUY, Side.SELL))
        lots = rng.choice((1, 1, 2, 3, 5, 8, 13, 21))
        quantity = lots * instrument.lot_size
        if rng.random() < 0.02:
            quantity += rng.choice((-quantity, 1, -1))  # off the lot grid, or zero
        stp = rng.choice(list(SelfTradePrevention))
        account = rng.choice(self.accounts)
        if rng.random() < 0.12:
            tif = rng.choice((TimeInForce.IOC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC))
            return PlaceOrder(account, symbol, side, OrderType.MARKET, quantity, None, tif, stp=stp)
        # Buys centred a little below the centre and sells a little above, with enough overlap to trade often.
        lean = -self.lean_ticks if side is Side.BUY else self.lean_ticks
        price = self.centre[symbol] + lean + rng.randint(-self.spread_ticks, self.spread_ticks)
        tif = rng.choice(
            (TimeInForce.GTC, TimeInForce.GTC, TimeInForce.DAY, TimeInForce.GTD, TimeInForce.IOC, TimeInForce.FOK)
        )
        expire_at = None
        if tif is TimeInForce.GTD:
            expire_at = rng.choice((None, 0, 1, 2_000_000, 30_000_000))  # relative; None and 0 are refused
        client_id = None
        if rng.random() < 0.1:
            self.client_ids += 1
            client_id = f"cl-{self.client_ids % 50}"
        return PlaceOrder(
            account,
            symbol,
            side,
            OrderType.LIMIT,
            quantity,
            price,
            tif,
            expire_at,  # made absolute by the caller, who knows the time: see `absolute_expiry`
            rng.random() < 0.1,
            client_id,
            stp,
        )

    def a_live_order(self) -> LiveOrder | None:
        if self.live_orders is None or self.rng.random() < 0.15:
            return None
        live = self.live_orders()
        return self.rng.choice(live) if live else None

    def cancel(self) -> CancelOrder:
        order = self.a_live_order()
        if order is None:
            return CancelOrder(self.rng.choice(self.accounts), max(1, self.placed - self.rng.randint(0, 40)))
        return CancelOrder(order[1], order[0])

    def amend(self) -> AmendOrder:
        rng = self.rng
        order = self.a_live_order()
        if order is None:
            return AmendOrder(
                rng.choice(self.accounts), max(1, self.placed - rng.randint(0, 40)), quantity=rng.randint(0, 30)
            )
        order_id, account, symbol, price, quantity = order
        lot = next(i.lot_size for i in self.instruments if i.symbol == symbol)
        new_price = new_quantity = None
        change = rng.random()
        if change < 0.4:
            new_quantity = quantity + lot * rng.choice((-3, -2, -1, -1, 1, 2))
        if change > 0.3:
            new_price = price + rng.randint(-4, 4)
        return AmendOrder(account, order_id, new_price, new_quantity)


def absolute_expiry(command: Command, now_us: int) -> Command:
    """A `RandomSession` GTD order carries its expiry relative to its arrival; make it absolute."""
    if isinstance(command, PlaceOrder) and command.expire_at_us is not None:
        return replace(command, expire_at_us=now_us + command.expire_at_us)
    return command
