"""Small builders for engine tests: instruments, commands, and a market that stamps sequence numbers and time.

`Market` wraps an `Engine`, applying each command with the next sequence number and a clock the test moves on
explicitly (`advance`), so a test reads as the list of commands it sends. Prices are integer ticks, quantities integer
units, cash integer minor units, as inside the core.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def amend(self, account: str, order_id: int, *, price: int | None = None, quantity: int | None = None) -> list[Event]:
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

    def depth(self, symbol: str = "ACME", levels: int = 10) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
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
