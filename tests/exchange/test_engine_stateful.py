"""The engine against the naive reference exchange, over random command sequences (hypothesis stateful testing).

Two instruments (an equity without fees; one with a lot of 10, a tick worth 37 cents per lot and unequal maker and
taker fees, so that fee rounding and the fee bound of holds matter), four accounts funded by deposits and issuance,
and rules for every command the continuous market knows. Prices are drawn a few ticks around the current reference
price, so orders cross often and some fall outside the band. After every command the engine's events must equal the
reference model's, and the books and balances must keep their invariants.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exchange.accounts import VENUE
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
from exchange.engine import Engine
from exchange.events import BalanceChanged, BalanceChangeKind, BookLevelChanged, Trade
from exchange.instrument import TradingState
from exchange.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from tests.exchange.factories import EUR, START_US, equity
from tests.exchange.reference_model import ReferenceExchange, describe

ACCOUNTS = ("a", "b", "c", "d")
PLAIN = equity("ACME", reference_price=100, band_bps=500)
WITH_FEES = equity(
    "IMPX", reference_price=500, band_bps=200, lot_size=10, tick_value=37, maker_fee_bps=7, taker_fee_bps=25
)
INSTRUMENTS = {i.symbol: i for i in (PLAIN, WITH_FEES)}
TICKS_PER_STEP = {PLAIN.symbol: 1, WITH_FEES.symbol: 2}  # about a fifth of the band per step either way

accounts = st.sampled_from(ACCOUNTS)
symbols = st.sampled_from(sorted(INSTRUMENTS))
sides = st.sampled_from(list(Side))
stps = st.sampled_from(list(SelfTradePrevention))
tifs = st.sampled_from(list(TimeInForce))
pauses = st.integers(0, 300_000)  # microseconds between two commands


class EngineAgainstReference(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.reference = ReferenceExchange()
        self.seq = 0
        self.now = START_US
        self.cash_in = 0  # deposits minus withdrawals, EUR
        self.issued = {symbol: 0 for symbol in INSTRUMENTS}
        self.client_ids = 0

    # ---------------------------------------------------------------- applying a command to both

    def send(self, command: object, pause: int = 0) -> None:
        self.now += pause
        self.seq += 1
        before = {symbol: self.reference.depth(symbol) for symbol in INSTRUMENTS}
        events = self.engine.apply(self.seq, self.now, command)
        expected = self.reference.apply(self.now, command)
        assert describe(events) == expected, (command, events)
        for event in events:
            if isinstance(event, Trade):
                assert event.buyer != event.seller, "an account traded with itself"
            if isinstance(event, BalanceChanged):
                sign = -1 if event.kind is BalanceChangeKind.WITHDRAWAL else 1
                if event.asset == EUR:
                    self.cash_in += sign * event.amount
                else:
                    self.issued[event.asset] += event.amount
        self.check_level_events(events, before)

    def check_level_events(self, events: list[object], before: dict) -> None:
        """Every level the command changed is reported once, with its quantity and order count after the command."""
        reported = [
            (e.symbol, e.side, e.price, e.quantity, e.order_count) for e in events if isinstance(e, BookLevelChanged)
        ]
        assert len({r[:3] for r in reported}) == len(reported), "a level reported twice"
        for symbol in INSTRUMENTS:
            for side in Side:
                after_levels = self.reference.levels(symbol, side)
                old = before[symbol][0 if side is Side.BUY else 1]
                before_levels = {price: (quantity, count) for price, quantity, count in old}
                changed = {
                    price
                    for price in set(before_levels) | set(after_levels)
                    if before_levels.get(price) != after_levels.get(price)
                }
                mine = {r[2]: r[3:] for r in reported if r[0] == symbol and r[1] is side}
                assert changed <= set(mine), (symbol, side, changed, mine)
                for price, quantity_and_count in mine.items():
                    assert quantity_and_count == after_levels.get(price, (0, 0))

    def price_near(self, symbol: str, offset: int) -> int:
        return max(1, self.reference.listings[symbol].last_price + offset)

    def known_order_id(self, data: st.DataObject) -> int:
        """Mostly a live order; now and then one that is gone or never was."""
        live = sorted(o.order_id for o in self.reference.book)
        if live and data.draw(st.integers(0, 4)):
            return data.draw(st.sampled_from(live))
        return data.draw(st.integers(1, self.reference.order_ids + 1))

    # ---------------------------------------------------------------- rules

    @initialize()
    def open_the_market(self) -> None:
        for instrument in INSTRUMENTS.values():
            self.send(ListInstrument(instrument))
        for account in ACCOUNTS:
            self.send(Deposit(account, EUR, 2_000_000))
            self.send(IssueSecurities(account, PLAIN.symbol, 200))
            self.send(IssueSecurities(account, WITH_FEES.symbol, 500))

    def limit_order(self, draft: dict, pause: int) -> PlaceOrder:
        instrument = INSTRUMENTS[draft["symbol"]]
        expire_at = None
        if draft["tif"] is TimeInForce.GTD and draft["expiry"] is not None:
            expire_at = self.now + pause + draft["expiry"]  # 0: already due, refused
        client_id = None
        if draft["with_client_id"]:
            self.client_ids += 1
            client_id = f"c{self.client_ids % 7}"  # repeats now and then: duplicates
        return PlaceOrder(
            draft["account"],
            instrument.symbol,
            draft["side"],
            OrderType.LIMIT,
            draft["lots"] * instrument.lot_size,
            self.price_near(instrument.symbol, draft["offset"] * TICKS_PER_STEP[instrument.symbol]),
            draft["tif"],
            expire_at,
            draft["post_only"],
            client_id,
            draft["stp"],
        )

    @rule(
        drafts=st.lists(
            st.fixed_dictionaries(
                {
                    "account": accounts,
                    "symbol": symbols,
                    "side": sides,
                    "lots": st.integers(1, 12),
                    "offset": st.integers(-3, 3),
                    "tif": st.sampled_from([TimeInForce.GTC, TimeInForce.DAY, TimeInForce.GTD]),
                    "post_only": st.just(False),
                    "stp": stps,
                    "expiry": st.sampled_from([500_000, 2_000_000, 10_000_000]),
                    "with_client_id": st.just(False),
                }
            ),
            min_size=1,
            max_size=4,
        ),
        pause=pauses,
    )
    def place_resting_orders(self, drafts, pause):
        for draft in drafts:
            self.send(self.limit_order(draft, pause), pause)

    @rule(
        account=accounts,
        symbol=symbols,
        side=sides,
        lots=st.integers(1, 12),
        offset=st.integers(-6, 6),
        tif=tifs,
        post_only=st.booleans(),
        stp=stps,
        expiry=st.sampled_from([None, 0, 1, 500_000, 2_000_000]),
        with_client_id=st.booleans(),
        pause=pauses,
    )
    def place_limit(self, pause, **draft):
        self.send(self.limit_order(draft, pause), pause)

    @rule(
        account=accounts,
        symbol=symbols,
        side=sides,
        lots=st.integers(1, 15),
        tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC, TimeInForce.DAY]),
        stp=stps,
        pause=pauses,
    )
    def place_market(self, account, symbol, side, lots, tif, stp, pause):
        instrument = INSTRUMENTS[symbol]
        self.send(
            PlaceOrder(account, symbol, side, OrderType.MARKET, lots * instrument.lot_size, None, tif, stp=stp), pause
        )

    @rule(
        account=accounts,
        symbol=symbols,
        side=sides,
        quantity=st.integers(-1, 2_000_001),
        price=st.sampled_from([None, 0, -5, 2**53, 1]),
        pause=pauses,
    )
    def place_malformed(self, account, symbol, side, quantity, price, pause):
        self.send(PlaceOrder(account, symbol, side, OrderType.LIMIT, quantity, price), pause)

    @rule(data=st.data(), account=accounts, pause=pauses)
    def cancel(self, data, account, pause):
        self.send(CancelOrder(account, self.known_order_id(data)), pause)

    @rule(account=accounts, symbol=st.sampled_from([None, "ACME", "IMPX", "NOPE"]), pause=pauses)
    def cancel_all(self, account, symbol, pause):
        self.send(CancelAll(account, symbol), pause)

    @rule(
        data=st.data(),
        account=accounts,
        offset=st.none() | st.integers(-3, 3),
        lots=st.none() | st.integers(0, 13),
        off_lot=st.integers(0, 9).map(lambda n: 0 if n else 3),
        pause=pauses,
    )
    def amend(self, data, account, offset, lots, off_lot, pause):
        order_id = self.known_order_id(data)
        # Mostly amend an order of the account that owns it, so that amends get through.
        owner = next((o.account for o in self.reference.book if o.order_id == order_id), account)
        account = data.draw(st.sampled_from([owner, owner, account]))
        symbol = next((o.symbol for o in self.reference.book if o.order_id == order_id), PLAIN.symbol)
        price = None if offset is None else self.price_near(symbol, offset * TICKS_PER_STEP[symbol])
        quantity = None if lots is None else lots * INSTRUMENTS[symbol].lot_size + off_lot
        self.send(AmendOrder(account, order_id, price, quantity), pause)

    @precondition(lambda self: self.reference.book)
    @rule(data=st.data(), change=st.sampled_from(["smaller", "larger", "price", "both"]), pause=pauses)
    def amend_own_order(self, data, change, pause):
        order = data.draw(st.sampled_from(sorted(self.reference.book, key=lambda o: o.order_id)))
        lot = INSTRUMENTS[order.symbol].lot_size
        price = quantity = None
        if change in ("smaller", "both"):
            quantity = order.quantity - lot * data.draw(st.integers(1, 3))
        if change == "larger":
            quantity = order.quantity + lot * data.draw(st.integers(1, 3))
        if change in ("price", "both"):
            price = self.price_near(order.symbol, data.draw(st.integers(-3, 3)) * TICKS_PER_STEP[order.symbol])
        self.send(AmendOrder(order.account, order.order_id, price, quantity), pause)

    @rule(account=accounts, amount=st.integers(-10, 300_000), pause=pauses)
    def deposit(self, account, amount, pause):
        self.send(Deposit(account, EUR, amount), pause)

    @rule(account=st.sampled_from(ACCOUNTS + (VENUE,)), amount=st.integers(0, 3_000_000), pause=pauses)
    def withdraw(self, account, amount, pause):
        self.send(Withdraw(account, EUR, amount), pause)

    @rule(account=accounts, symbol=symbols, quantity=st.integers(0, 100), pause=pauses)
    def issue(self, account, symbol, quantity, pause):
        self.send(IssueSecurities(account, symbol, quantity), pause)

    @rule(symbol=st.sampled_from([None, "ACME", "IMPX"]), pause=pauses)
    def end_of_day(self, symbol, pause):
        self.send(EndOfDay(symbol), pause)

    @rule(pause=st.integers(0, 3_000_000))
    def clock_tick(self, pause):
        self.send(ClockTick(), pause)

    @rule(data=st.data(), symbol=symbols, account=accounts, pause=pauses)
    def halt_then_resume(self, data, symbol, account, pause):
        """While halted, orders and amends are refused and cancels still work."""
        self.send(SetTradingState(symbol, TradingState.HALTED), pause)
        self.send(
            PlaceOrder(
                account, symbol, Side.BUY, OrderType.LIMIT, INSTRUMENTS[symbol].lot_size, self.price_near(symbol, 0)
            )
        )
        self.send(AmendOrder(account, self.known_order_id(data), quantity=INSTRUMENTS[symbol].lot_size))
        self.send(CancelOrder(account, self.known_order_id(data)))
        self.send(
            SetTradingState(
                symbol, data.draw(st.sampled_from([TradingState.OPEN, TradingState.OPEN, TradingState.HALTED]))
            )
        )
        if self.reference.listings[symbol].state is not TradingState.OPEN:
            self.send(SetTradingState(symbol, TradingState.OPEN))

    # ---------------------------------------------------------------- invariants

    @invariant()
    def books_agree_and_never_cross(self):
        for symbol in INSTRUMENTS:
            bids, asks = self.engine.depth(symbol, 1_000)
            assert (bids, asks) == self.reference.depth(symbol)
            if bids and asks:
                assert bids[0][0] < asks[0][0], "a crossed book at rest"
            for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
                for price, _, _ in levels:
                    queue = [o.order_id for o in self.engine.level_orders(symbol, side, price)]
                    assert queue == self.reference.queue(symbol, side, price)

    @invariant()
    def balances_agree_and_are_never_negative(self):
        engine_balances = {
            key: (b.available, b.held) for key, b in self.engine.balances.items() if b.available or b.held
        }
        assert engine_balances == self.reference.balances()
        for available, held in engine_balances.values():
            assert available >= 0 and held >= 0

    @invariant()
    def nothing_is_created_or_lost(self):
        totals = self.engine.balances.totals()
        assert totals.get(EUR, 0) == self.cash_in
        for symbol, issued in self.issued.items():
            assert totals.get(symbol, 0) == issued

    @invariant()
    def held_is_exactly_what_open_orders_require(self):
        held = {key: b.held for key, b in self.engine.balances.items() if b.held}
        required = {key: amount for key, amount in self.engine.required_holds().items() if amount}
        assert held == required == self.reference.held_by_orders()

    @invariant()
    def open_orders_agree(self):
        for account in ACCOUNTS:
            mine = {o.order_id: (o.symbol, o.side, o.price, o.remaining) for o in self.engine.open_orders(account)}
            assert mine == self.reference.open_orders(account)


EngineAgainstReference.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_engine_matches_the_reference_exchange = EngineAgainstReference.TestCase
