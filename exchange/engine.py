"""The matching engine: applies one command at a time to books and balances and returns the events.

Pure and deterministic: the same commands with the same sequence numbers and timestamps give the same events, byte for
byte. It reads no clock (timestamps come with each command), does no I/O and keeps no randomness. Iteration order over
orders is always by order id or by queue position, never by hash order.

Rules it enforces, in the order it checks them for a new order:
  instrument known and accepting orders -> quantity on the lot grid and within limits -> price given for a limit
  (not for a market order), within the band -> validity consistent -> client order id unused -> post-only would not
  take liquidity -> funds or holdings sufficient for the hold -> a FOK can fill completely.
Then the order is accepted (its hold taken), matched against the opposite side at the makers' prices in price-time
priority, and its remainder rests (limit GTC/DAY/GTD) or is cancelled (IOC, market).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from functools import partial
from typing import Any, Final

from exchange import auction as call_auction
from exchange import distributions, investors, offers
from exchange.accounts import VENUE, Balances
from exchange.book import BookSide, OrderBook, PriceLevel
from exchange.commands import (
    AcknowledgeRiskWarning,
    AmendOrder,
    CancelAll,
    CancelOrder,
    ClockTick,
    CloseOffer,
    Command,
    Deposit,
    EndOfDay,
    IssueSecurities,
    ListInstrument,
    OpenOffer,
    PayCoupon,
    PayDividend,
    PlaceOrder,
    RecordImpactOutcome,
    Redeem,
    RunAuction,
    SetInvestorProfile,
    SetTradingState,
    Subscribe,
    Withdraw,
)
from exchange.daycount import accrued_interest, max_accrued_per_unit
from exchange.events import (
    AuctionUncrossed,
    BalanceChanged,
    BalanceChangeKind,
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
from exchange.fees import fee, fee_bound_per_lot
from exchange.instrument import (
    CALL_STATES,
    ORDER_ENTRY_STATES,
    Instrument,
    InstrumentKind,
    TradingState,
)
from exchange.orders import (
    CancelReason,
    Order,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from exchange.rejects import RejectReason

MAX_PRICE_TICKS = 2**53
MAX_AMOUNT = 2**62
_EPOCH = date(1970, 1, 1)
_US_PER_DAY = 86_400_000_000

# Enum members read on every command, bound once as module constants. Compiled (mypyc), a Final module name is a C
# static; `Side.BUY` would be a dictionary lookup of the class and then an attribute lookup on it, at every use.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_DAY: Final = TimeInForce.DAY
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_GTD: Final = TimeInForce.GTD
_CANCEL_NEWEST: Final = SelfTradePrevention.CANCEL_NEWEST
_CANCEL_OLDEST: Final = SelfTradePrevention.CANCEL_OLDEST
_CANCEL_BOTH: Final = SelfTradePrevention.CANCEL_BOTH
_BY_USER: Final = CancelReason.USER
_SELF_TRADE: Final = CancelReason.SELF_TRADE
_IOC_REMAINDER: Final = CancelReason.IOC_REMAINDER
_MARKET_REMAINDER: Final = CancelReason.MARKET_REMAINDER
_EXPIRED: Final = CancelReason.EXPIRED
# Builds an event (a NamedTuple) from the tuple of ALL its fields. Calling the class runs the Python-level `__new__`
# that namedtuple generates, an interpreter frame per event; the events of every command are built this way instead.
_build: Final = tuple.__new__

_STATE_REJECT = {
    TradingState.HALTED: RejectReason.INSTRUMENT_HALTED,
    TradingState.SUSPENDED: RejectReason.INSTRUMENT_SUSPENDED,
    TradingState.DELISTED: RejectReason.INSTRUMENT_DELISTED,
}


class Rejected(Exception):
    """Raised inside a handler to refuse the command; nothing has changed yet when it is raised."""

    def __init__(self, reason: RejectReason, order_id: int | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.order_id = order_id


def trade_date(ts_us: int) -> date:
    """The UTC calendar date of an exchange timestamp (microseconds since the Unix epoch)."""
    return _EPOCH + timedelta(days=ts_us // _US_PER_DAY)


class Engine:
    def __init__(self) -> None:
        self.instruments: dict[str, Instrument] = {}
        self.books: dict[str, OrderBook] = {}
        self.orders: dict[int, Order] = {}  # live orders, in order id order
        # Each account's live orders in arrival order: an ordered set (dict keys), keyed by the order itself so that a
        # resting order costs no second boxed id.
        self.open_by_account: dict[str, dict[Order, None]] = {}
        self.client_order_ids: dict[tuple[str, str], int] = {}
        self.balances = Balances()
        self._gtd: list[tuple[int, int]] = []  # (expire_at_us, order_id) min-heap, stale entries skipped
        self._auction_ends: list[tuple[int, str]] = []  # (end_us, symbol) of volatility auctions, min-heap
        # Everything that ever entered the exchange, per asset (deposits less withdrawals, issuance less
        # redemptions): every balance is bounded by it, so capping it keeps every balance storable in the ledger.
        self.supply: dict[str, int] = {}
        self.investors = investors.InvestorProfiles()
        self.offers = offers.OfferBook()
        self.distributions = distributions.DistributionBook()
        self._auction_end_of: dict[str, int] = {}  # the live volatility auction's end per symbol (heap entries may be stale)
        self.next_order_id = 1
        self.next_trade_id = 1
        self.last_seq = 0
        self.last_ts_us = 0
        # Scratch state of the command being applied.
        self._seq = 0
        self._ts = 0
        self._events: list[Event] = []
        # The price levels the command changed, as (book side, price), for the level-2 events published after it.
        self._touched: dict[tuple[BookSide, int], None] = {}
        self._call_books: dict[str, None] = {}  # books in a call phase whose indicative auction must be republished
        # Every other command's handler; `apply` calls those of PlaceOrder, CancelOrder and AmendOrder directly.
        self._handlers: dict[type, Callable[[Any], None]] = {
            ListInstrument: self._list_instrument,
            SetTradingState: self._set_trading_state,
            Deposit: self._deposit,
            Withdraw: self._withdraw,
            IssueSecurities: self._issue,
            CancelAll: self._cancel_all,
            EndOfDay: self._end_of_day,
            ClockTick: self._clock_tick,
            RunAuction: self._run_auction,
            # Investors, primary offers and distributions: their rules live in their own modules.
            SetInvestorProfile: partial(investors.set_profile, self),
            AcknowledgeRiskWarning: partial(investors.acknowledge_risk_warning, self),
            OpenOffer: partial(offers.open_offer, self),
            Subscribe: partial(offers.subscribe, self),
            CloseOffer: partial(offers.close_offer, self),
            PayCoupon: partial(distributions.pay_coupon, self),
            PayDividend: partial(distributions.pay_dividend, self),
            Redeem: partial(distributions.redeem, self),
            RecordImpactOutcome: partial(distributions.record_impact_outcome, self),
        }

    # ------------------------------------------------------------------ entry point

    def apply(self, seq: int, ts_us: int, command: Command) -> list[Event]:
        """Apply one command stamped with its sequence number and exchange time; return what happened."""
        assert seq > self.last_seq, f"sequence went backwards: {seq} after {self.last_seq}"
        assert ts_us >= self.last_ts_us, "exchange time went backwards"
        self.last_seq = seq
        self.last_ts_us = ts_us
        self._seq = seq
        self._ts = ts_us
        events: list[Event] = []
        self._events = events
        # Emptied, not replaced: a command's scratch dicts are reused by the next (two allocations fewer each).
        self._touched.clear()
        self._call_books.clear()
        # Orders whose time has come never trade again, whatever the command: expire them first.
        if self._gtd and self._gtd[0][0] <= ts_us:
            self._expire_due()
        if self._auction_ends and self._auction_ends[0][0] <= ts_us:
            self._end_volatility_auctions()
        try:
            # The commands of continuous trading are called directly (a native call once compiled), the rest
            # through the table.
            if type(command) is PlaceOrder:
                self._place(command)
            elif type(command) is CancelOrder:
                self._cancel(command)
            elif type(command) is AmendOrder:
                self._amend(command)
            else:
                self._handlers[type(command)](command)
        except Rejected as rejected:
            events.append(
                CommandRejected(
                    seq,
                    getattr(command, "account", None),
                    rejected.reason,
                    rejected.order_id,
                    getattr(command, "client_order_id", None),
                    getattr(command, "symbol", None),
                )
            )
        if self._touched or self._call_books:
            self._publish_book_changes()
        return events

    # ------------------------------------------------------------------ listing and states

    def _list_instrument(self, cmd: ListInstrument) -> None:
        instrument = cmd.instrument
        # A symbol that already names cash (or a currency that names a listed symbol) would mix money and securities.
        if (
            instrument.symbol in self.instruments
            or instrument.symbol in self.supply
            or instrument.currency in self.instruments
        ):
            raise Rejected(RejectReason.INSTRUMENT_EXISTS)
        # The command is journalled as given: the engine keeps its own copy to mutate (state, reference price).
        instrument = replace(instrument, extra=dict(instrument.extra))
        self.instruments[instrument.symbol] = instrument
        self.books[instrument.symbol] = OrderBook(instrument.symbol)
        self._events.append(InstrumentListed(self._seq, instrument.symbol))

    def _set_trading_state(self, cmd: SetTradingState) -> None:
        instrument = self._instrument(cmd.symbol)
        previous = instrument.state
        if previous is TradingState.DELISTED or previous is cmd.state:
            raise Rejected(RejectReason.INVALID_STATE_CHANGE)
        if cmd.state is TradingState.OPEN and instrument.auction_only:
            raise Rejected(RejectReason.INVALID_STATE_CHANGE)
        self._change_state(instrument, cmd.state, cmd.reason)

    def _change_state(self, instrument: Instrument, state: TradingState, reason: str) -> None:
        previous = instrument.state
        instrument.state = state
        self._events.append(TradingStateChanged(self._seq, instrument.symbol, previous, state, reason))
        book = self.books[instrument.symbol]
        if state is TradingState.DELISTED:
            for order in [o for o in self.orders.values() if o.symbol == instrument.symbol]:
                self._cancel_order(order, CancelReason.DELISTED)
            return
        if state in CALL_STATES:
            self._call_books[instrument.symbol] = None
            return
        if state in (TradingState.OPEN, TradingState.CLOSED):
            # Orders collected in a call phase (perhaps interrupted by a halt) are matched at one price before
            # anything else happens, so the book is never crossed outside a call phase.
            self._uncross_and_clear_market_orders(instrument, book)

    def _uncross_and_clear_market_orders(self, instrument: Instrument, book: OrderBook) -> None:
        if book.is_crossed() or book.market_bids or book.market_asks:
            self._uncross(instrument, book)
        # Market orders never outlive their auction.
        for order in list(book.market_bids.values()) + list(book.market_asks.values()):
            self._cancel_order(order, _MARKET_REMAINDER)

    def _run_auction(self, cmd: RunAuction) -> None:
        """A periodic call auction: uncross now and stay in the call phase, collecting orders for the next one."""
        instrument = self._instrument(cmd.symbol)
        if instrument.state not in CALL_STATES:
            raise Rejected(RejectReason.INVALID_STATE_CHANGE)
        book = self.books[cmd.symbol]
        self._uncross_and_clear_market_orders(instrument, book)
        self._call_books[cmd.symbol] = None

    def _interrupt(self, instrument: Instrument) -> None:
        """Volatility interruption: stop continuous trading and collect orders in an auction for a while.

        The indicative auction price is published by the caller, once the triggering order has joined the book.
        """
        previous = instrument.state
        instrument.state = TradingState.VOLATILITY_AUCTION
        self._events.append(
            TradingStateChanged(
                self._seq, instrument.symbol, previous, TradingState.VOLATILITY_AUCTION, "volatility_interruption"
            )
        )
        end_us = self._ts + instrument.volatility_auction_us
        self._auction_end_of[instrument.symbol] = end_us
        heapq.heappush(self._auction_ends, (end_us, instrument.symbol))

    def _end_volatility_auctions(self) -> None:
        heap = self._auction_ends
        while heap and heap[0][0] <= self._ts:
            end_us, symbol = heapq.heappop(heap)
            if self._auction_end_of.get(symbol) != end_us:
                continue  # the timer of an earlier interruption that ended some other way
            del self._auction_end_of[symbol]
            instrument = self.instruments[symbol]
            # A halt, suspension or close in the meantime ends the interruption some other way.
            if instrument.state is TradingState.VOLATILITY_AUCTION:
                self._change_state(instrument, TradingState.OPEN, "volatility_auction_ended")

    def _volatility_range(self, instrument: Instrument) -> tuple[int, int]:
        """Prices an incoming order may trade at before trading is interrupted, around the reference at its arrival."""
        if instrument.volatility_bps == 0:
            return 0, MAX_PRICE_TICKS
        ref = instrument.reference_price
        lower = -((-ref * (10_000 - instrument.volatility_bps)) // 10_000)
        upper = (ref * (10_000 + instrument.volatility_bps)) // 10_000
        return lower, upper

    # ------------------------------------------------------------------ cash and securities in and out

    def _deposit(self, cmd: Deposit) -> None:
        if not 0 < cmd.amount <= MAX_AMOUNT:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        if cmd.asset in self.instruments or cmd.account == VENUE:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        self._grow_supply(cmd.asset, cmd.amount)
        self.balances.of(cmd.account, cmd.asset).available += cmd.amount
        self._events.append(
            BalanceChanged(self._seq, cmd.account, cmd.asset, BalanceChangeKind.DEPOSIT, cmd.amount)
        )

    def _withdraw(self, cmd: Withdraw) -> None:
        if not 0 < cmd.amount <= MAX_AMOUNT or cmd.account == VENUE:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        if cmd.asset in self.instruments:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        balance = self.balances.of(cmd.account, cmd.asset)
        if balance.available < cmd.amount:
            raise Rejected(RejectReason.INSUFFICIENT_FUNDS)
        balance.available -= cmd.amount
        self.supply[cmd.asset] -= cmd.amount
        self._events.append(
            BalanceChanged(
                self._seq, cmd.account, cmd.asset, BalanceChangeKind.WITHDRAWAL, cmd.amount
            )
        )

    def _issue(self, cmd: IssueSecurities) -> None:
        instrument = self._instrument(cmd.symbol)
        if instrument.issuer is not None and cmd.account != instrument.issuer:
            raise Rejected(RejectReason.NOT_ISSUER)
        if not 0 < cmd.quantity <= MAX_AMOUNT or cmd.account == VENUE:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        self._grow_supply(cmd.symbol, cmd.quantity)
        self.balances.of(cmd.account, cmd.symbol).available += cmd.quantity
        self._events.append(
            BalanceChanged(
                self._seq, cmd.account, cmd.symbol, BalanceChangeKind.ISSUANCE, cmd.quantity
            )
        )

    def _grow_supply(self, asset: str, amount: int) -> None:
        total = self.supply.get(asset, 0) + amount
        if total > MAX_AMOUNT:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        self.supply[asset] = total

    # ------------------------------------------------------------------ order entry

    def _place(self, cmd: PlaceOrder) -> None:
        instrument = self._instrument(cmd.symbol)
        state = instrument.state
        if state not in ORDER_ENTRY_STATES:
            raise Rejected(_STATE_REJECT.get(state, RejectReason.INSTRUMENT_NOT_OPEN))
        if cmd.account == VENUE:
            raise Rejected(RejectReason.INVALID_AMOUNT)
        quantity = cmd.quantity
        if quantity <= 0 or quantity % instrument.lot_size:
            raise Rejected(
                RejectReason.QUANTITY_NOT_ON_LOT if quantity > 0 else RejectReason.QUANTITY_OUT_OF_RANGE
            )
        if not instrument.min_quantity <= quantity <= instrument.max_quantity:
            raise Rejected(RejectReason.QUANTITY_OUT_OF_RANGE)
        lower, upper = instrument.band()
        is_buy = cmd.side is _BUY
        calling = state in CALL_STATES
        tif = cmd.tif
        if cmd.type is _LIMIT:
            if cmd.price is None:
                raise Rejected(RejectReason.PRICE_REQUIRED)
            price = cmd.price
            if not 0 < price < MAX_PRICE_TICKS:
                raise Rejected(RejectReason.PRICE_OUT_OF_RANGE)
            if not lower <= price <= upper:
                raise Rejected(RejectReason.PRICE_OUTSIDE_BAND)
        else:
            if cmd.price is not None:
                raise Rejected(RejectReason.PRICE_NOT_ALLOWED)
            if cmd.post_only:
                raise Rejected(RejectReason.WOULD_TAKE_LIQUIDITY)
            # A market order may trade up (down) to the band's edge, never beyond; it never rests in continuous
            # trading, so GTC/DAY/GTD mean IOC for it.
            price = upper if is_buy else lower
            if tif is not _FOK:
                tif = _IOC
        if tif is _GTD:
            if cmd.expire_at_us is None or cmd.expire_at_us <= self._ts:
                raise Rejected(RejectReason.INVALID_EXPIRY)
        elif cmd.expire_at_us is not None:
            raise Rejected(RejectReason.INVALID_EXPIRY)
        if calling and (tif is _IOC or tif is _FOK) and cmd.type is _LIMIT:
            # Nothing executes immediately in a call phase.
            raise Rejected(RejectReason.INVALID_TIME_IN_FORCE)
        if calling and cmd.type is _MARKET and tif is _FOK:
            raise Rejected(RejectReason.INVALID_TIME_IN_FORCE)
        if cmd.post_only and (tif is _IOC or tif is _FOK):
            raise Rejected(RejectReason.INVALID_TIME_IN_FORCE)
        if cmd.client_order_id is not None:
            existing = self.client_order_ids.get((cmd.account, cmd.client_order_id))
            if existing is not None:
                raise Rejected(RejectReason.DUPLICATE_CLIENT_ORDER_ID, existing)
        book = self.books[cmd.symbol]
        if cmd.post_only and not calling:
            best = book.best_ask() if is_buy else book.best_bid()
            if best is not None and (best <= price if is_buy else best >= price):
                raise Rejected(RejectReason.WOULD_TAKE_LIQUIDITY)
        lots = quantity // instrument.lot_size
        if is_buy:
            hold_asset = instrument.currency
            hold_per_lot = self._buy_hold_per_lot(instrument, price)
            hold_amount = lots * hold_per_lot
            hold_balance = self.balances.find(cmd.account, hold_asset)
            if hold_balance is None or hold_balance.available < hold_amount:
                raise Rejected(RejectReason.INSUFFICIENT_FUNDS)
        else:
            hold_asset = instrument.symbol
            hold_per_lot = 0
            hold_amount = quantity
            hold_balance = self.balances.find(cmd.account, hold_asset)
            if hold_balance is None or hold_balance.available < hold_amount:
                raise Rejected(RejectReason.INSUFFICIENT_HOLDINGS)
        if tif is _FOK and not self._fok_fillable(book, cmd.account, cmd.side, price, quantity, cmd.stp):
            raise Rejected(RejectReason.FOK_NOT_FILLABLE)
        if cmd.account in self.investors.profiles:
            investors.check_order(self, cmd, instrument, price)  # retail protection and eligibility

        order_id = self.next_order_id
        self.next_order_id += 1
        order = Order(
            order_id,
            cmd.account,
            cmd.symbol,
            cmd.side,
            cmd.type,
            price,
            quantity,
            tif,
            cmd.expire_at_us,
            cmd.post_only,
            cmd.stp,
            hold_per_lot,
            self._seq,
            hold_balance,
        )
        if cmd.client_order_id is not None:
            self.client_order_ids[(cmd.account, cmd.client_order_id)] = order_id
        hold_balance.hold(hold_amount)
        self._events.append(
            _build(OrderAccepted, (
                self._seq,
                order_id,
                cmd.account,
                cmd.symbol,
                cmd.side,
                cmd.type,
                price,
                quantity,
                tif,
                cmd.expire_at_us,
                cmd.post_only,
                cmd.client_order_id,
                cmd.stp,
                hold_asset,
                hold_amount,
            ))
        )
        if calling:
            self._rest(order, book)
            return
        self._match(instrument, book, order)
        if order.remaining == 0:
            return
        if instrument.state in CALL_STATES:
            # The order triggered a volatility interruption: what can rest joins the auction.
            if cmd.type is _MARKET or tif is _IOC:
                self._finish_unrested(
                    order, _MARKET_REMAINDER if cmd.type is _MARKET else _IOC_REMAINDER
                )
            else:
                self._rest(order, book)
            self._call_books[order.symbol] = None
            return
        if cmd.type is _MARKET:
            self._finish_unrested(order, _MARKET_REMAINDER)
        elif tif is _IOC:
            self._finish_unrested(order, _IOC_REMAINDER)
        else:
            assert tif is not _FOK, "a FOK order passed the fill check but did not fill"
            self._rest(order, book)

    def _buy_hold_per_lot(self, instrument: Instrument, price: int) -> int:
        notional_per_lot = price * instrument.tick_value
        fee_bps = max(instrument.maker_fee_bps, instrument.taker_fee_bps)
        hold = notional_per_lot + fee_bound_per_lot(notional_per_lot, fee_bps)
        if instrument.bond is not None:
            hold += instrument.lot_size * max_accrued_per_unit(instrument.bond)
        return hold

    def _fok_fillable(
        self, book: OrderBook, account: str, side: Side, limit: int, quantity: int, stp: SelfTradePrevention
    ) -> bool:
        """Whether matching would fill `quantity` completely, walking the book as `_match` would.

        A FOK order never triggers a volatility interruption: liquidity beyond the calm range does not count.
        """
        is_buy = side is _BUY
        calm_low, calm_high = self._volatility_range(self.instruments[book.symbol])
        limit = min(limit, calm_high) if is_buy else max(limit, calm_low)
        available = 0
        for level in book.opposite(side).levels_best_first():
            if (level.price > limit) if is_buy else (level.price < limit):
                return False
            for maker in level:
                if maker.account == account:
                    if stp is _CANCEL_OLDEST:
                        continue
                    return False  # matching stops (or shrinks the order) at the first own order
                available += maker.remaining
                if available >= quantity:
                    return True
        return False

    def _rest(self, order: Order, book: OrderBook) -> None:
        if order.type is _MARKET:
            queue = book.market_bids if order.side is _BUY else book.market_asks
            queue[order.order_id] = order
            self._call_books[order.symbol] = None
        else:
            side = book.side(order.side)
            side.add(order)
            self._touched[(side, order.price)] = None
        self.orders[order.order_id] = order
        self.open_by_account.setdefault(order.account, {})[order] = None
        if order.tif is _GTD:
            assert order.expire_at_us is not None
            heapq.heappush(self._gtd, (order.expire_at_us, order.order_id))

    # ------------------------------------------------------------------ continuous matching

    def _match(self, instrument: Instrument, book: OrderBook, taker: Order) -> None:
        is_buy = taker.side is _BUY
        opposite: BookSide = book.asks if is_buy else book.bids
        limit = taker.price
        touched = self._touched
        calm_low, calm_high = self._volatility_range(instrument)
        while taker.remaining > 0:
            level = opposite.best_level()
            if level is None or ((level.price > limit) if is_buy else (level.price < limit)):
                break
            if not calm_low <= level.price <= calm_high:
                self._interrupt(instrument)
                break
            touched[(opposite, level.price)] = None
            maker = level.head
            while maker is not None and taker.remaining > 0:
                following = maker.next
                if maker.account == taker.account:
                    if not self._prevent_self_trade(opposite, taker, maker):
                        return
                else:
                    self._execute(instrument, opposite, level, taker, maker)
                maker = following

    def _execute(
        self, instrument: Instrument, opposite: BookSide, level: PriceLevel, taker: Order, maker: Order
    ) -> None:
        quantity = taker.remaining if taker.remaining < maker.remaining else maker.remaining
        price = maker.price
        if taker.side is _BUY:
            buy, sell = taker, maker
            buyer_bps, seller_bps = instrument.taker_fee_bps, instrument.maker_fee_bps
        else:
            buy, sell = maker, taker
            buyer_bps, seller_bps = instrument.maker_fee_bps, instrument.taker_fee_bps
        level.quantity -= quantity
        maker.remaining -= quantity
        taker.remaining -= quantity
        self._settle(instrument, buy, sell, price, quantity, taker.side, buyer_bps, seller_bps)
        if maker.remaining == 0:
            opposite.remove(maker)
            self._forget(maker)

    def _settle(
        self,
        instrument: Instrument,
        buy: Order,
        sell: Order,
        price: int,
        quantity: int,
        aggressor: Side,
        buyer_bps: int,
        seller_bps: int,
        auction: bool = False,
    ) -> None:
        """Book one execution whose quantities were already taken off both orders: cash, fees, securities, events."""
        lots = quantity // instrument.lot_size
        cash = price * lots * instrument.tick_value
        accrued = 0
        if instrument.bond is not None:
            accrued = accrued_interest(instrument.bond, trade_date(self._ts), quantity)
        buyer_fee = fee(cash, buyer_bps)
        seller_fee = fee(cash, seller_bps)
        consumed_hold = lots * buy.hold_per_lot
        buyer_release = consumed_hold - cash - accrued - buyer_fee
        assert buyer_release >= 0, "a buy's hold must cover every fill at or below its limit"
        currency = instrument.currency
        balances = self.balances
        buyer_cash = buy.hold_balance
        buyer_cash.held -= consumed_hold
        buyer_cash.available += buyer_release
        balances.of(buy.account, instrument.symbol).available += quantity
        seller_securities = sell.hold_balance
        seller_securities.held -= quantity
        balances.of(sell.account, currency).available += cash + accrued - seller_fee
        if buyer_fee or seller_fee:
            balances.of(VENUE, currency).available += buyer_fee + seller_fee
        assert buyer_cash.held >= 0 and seller_securities.held >= 0
        instrument.reference_price = price
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        self._events.append(
            _build(Trade, (
                self._seq,
                trade_id,
                instrument.symbol,
                price,
                quantity,
                aggressor,
                buy.order_id,
                sell.order_id,
                buy.account,
                sell.account,
                currency,
                cash,
                accrued,
                buyer_fee,
                seller_fee,
                buyer_release,
                buy.remaining,
                sell.remaining,
                auction,
            ))
        )

    def _prevent_self_trade(self, opposite: BookSide, taker: Order, maker: Order) -> bool:
        """Apply the taker's self-trade prevention against `maker`; return whether matching goes on."""
        stp = taker.stp
        if stp is _CANCEL_OLDEST:
            self._cancel_order(maker, _SELF_TRADE)
            return True
        if stp is _CANCEL_NEWEST:
            self._reduce_unrested(taker, taker.remaining, _SELF_TRADE)
            return False
        if stp is _CANCEL_BOTH:
            self._cancel_order(maker, _SELF_TRADE)
            self._reduce_unrested(taker, taker.remaining, _SELF_TRADE)
            return False
        # DECREMENT: both lose the smaller quantity; the one left at zero is gone.
        quantity = min(taker.remaining, maker.remaining)
        if quantity == maker.remaining:
            self._cancel_order(maker, _SELF_TRADE)
        else:
            self._reduce_resting(maker, quantity, _SELF_TRADE)
        self._reduce_unrested(taker, quantity, _SELF_TRADE)
        return taker.remaining > 0

    # ------------------------------------------------------------------ cancels, reductions, expiry

    def _hold_for(self, order: Order, quantity: int) -> tuple[str, int]:
        """The asset and amount `order` holds for `quantity` of its remaining quantity."""
        if order.side is _BUY:
            instrument = self.instruments[order.symbol]
            return instrument.currency, quantity // instrument.lot_size * order.hold_per_lot
        return order.symbol, quantity

    def _release_for(self, order: Order, quantity: int) -> tuple[str, int]:
        asset, amount = self._hold_for(order, quantity)
        order.hold_balance.release(amount)
        return asset, amount

    def _cancel_order(self, order: Order, reason: CancelReason) -> None:
        """Take a resting order off the book entirely and release what it holds."""
        quantity = order.remaining
        if order.type is _MARKET:
            book = self.books[order.symbol]
            queue = book.market_bids if order.side is _BUY else book.market_asks
            del queue[order.order_id]
            self._call_books[order.symbol] = None
        else:
            side = self.books[order.symbol].side(order.side)
            side.remove(order)
            self._touched[(side, order.price)] = None
        order.remaining = 0
        self._forget(order)
        self._record_reduction(order, quantity, reason)

    def _reduce_resting(self, order: Order, quantity: int, reason: CancelReason) -> None:
        """Take `quantity` (less than all) off a resting order; it keeps its place in the queue."""
        assert 0 < quantity < order.remaining
        self._take_in_place(order, quantity)
        self._record_reduction(order, quantity, reason)

    def _take_in_place(self, order: Order, quantity: int) -> None:
        """Take `quantity` off a resting limit order where it stands (its place in the queue kept); its level changed."""
        level = order.level
        assert level is not None
        level.quantity -= quantity
        order.remaining -= quantity
        self._touched[(self.books[order.symbol].side(order.side), order.price)] = None

    def _reduce_unrested(self, order: Order, quantity: int, reason: CancelReason) -> None:
        """Take `quantity` off the incoming order (not in the book)."""
        assert 0 < quantity <= order.remaining
        order.remaining -= quantity
        self._record_reduction(order, quantity, reason)

    def _record_reduction(self, order: Order, quantity: int, reason: CancelReason) -> None:
        """`quantity` was just taken off `order.remaining` without trading: a live order's total shrinks with it,
        its hold for that quantity is released, and an `OrderCancelled` says so."""
        if order.remaining:
            order.quantity -= quantity
        asset, amount = self._release_for(order, quantity)
        self._events.append(
            _build(OrderCancelled, (
                self._seq,
                order.order_id,
                order.account,
                order.symbol,
                reason,
                quantity,
                order.remaining,
                asset,
                amount,
            ))
        )

    def _finish_unrested(self, order: Order, reason: CancelReason) -> None:
        self._reduce_unrested(order, order.remaining, reason)

    def _forget(self, order: Order) -> None:
        self.orders.pop(order.order_id, None)
        mine = self.open_by_account.get(order.account)
        if mine is not None:
            mine.pop(order, None)
            if not mine:
                del self.open_by_account[order.account]

    def _owned_order(self, account: str, order_id: int) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise Rejected(RejectReason.UNKNOWN_ORDER, order_id)
        if order.account != account:
            raise Rejected(RejectReason.NOT_YOUR_ORDER, order_id)
        return order

    def _cancel(self, cmd: CancelOrder) -> None:
        order = self._owned_order(cmd.account, cmd.order_id)
        self._cancel_order(order, _BY_USER)

    def _cancel_all(self, cmd: CancelAll) -> None:
        if cmd.symbol is not None:
            self._instrument(cmd.symbol)
        mine = self.open_by_account.get(cmd.account, {})
        for order in [o for o in mine if cmd.symbol is None or o.symbol == cmd.symbol]:
            self._cancel_order(order, _BY_USER)

    def _end_of_day(self, cmd: EndOfDay) -> None:
        if cmd.symbol is not None:
            self._instrument(cmd.symbol)
        # DAY orders end with the day, and so do market orders still waiting for an auction that did not happen.
        due = [
            o
            for o in self.orders.values()
            if (o.tif is _DAY or o.type is _MARKET)
            and (cmd.symbol is None or o.symbol == cmd.symbol)
        ]
        for order in due:
            self._cancel_order(order, _EXPIRED)

    def _clock_tick(self, cmd: ClockTick) -> None:
        # Due GTD orders were already expired on entry to `apply`; the tick exists so that time passing is journalled.
        return None

    def _expire_due(self) -> None:
        heap = self._gtd
        while heap and heap[0][0] <= self._ts:
            _, order_id = heapq.heappop(heap)
            order = self.orders.get(order_id)
            if order is not None:
                self._cancel_order(order, _EXPIRED)

    # ------------------------------------------------------------------ amend

    def _amend(self, cmd: AmendOrder) -> None:
        order = self._owned_order(cmd.account, cmd.order_id)
        instrument = self.instruments[order.symbol]
        if order.type is _MARKET:
            raise Rejected(RejectReason.PRICE_NOT_ALLOWED, order.order_id)
        state = instrument.state
        if state not in ORDER_ENTRY_STATES:
            raise Rejected(_STATE_REJECT.get(state, RejectReason.INSTRUMENT_NOT_OPEN), order.order_id)
        price = order.price if cmd.price is None else cmd.price
        already_done = order.quantity - order.remaining
        quantity = order.quantity if cmd.quantity is None else cmd.quantity
        if quantity <= already_done or quantity % instrument.lot_size:
            raise Rejected(
                RejectReason.QUANTITY_NOT_ON_LOT
                if quantity > already_done
                else RejectReason.QUANTITY_OUT_OF_RANGE,
                order.order_id,
            )
        if quantity > instrument.max_quantity:
            raise Rejected(RejectReason.QUANTITY_OUT_OF_RANGE, order.order_id)
        remaining = quantity - already_done
        if price != order.price:
            if not 0 < price < MAX_PRICE_TICKS:
                raise Rejected(RejectReason.PRICE_OUT_OF_RANGE, order.order_id)
            lower, upper = instrument.band()
            if not lower <= price <= upper:
                raise Rejected(RejectReason.PRICE_OUTSIDE_BAND, order.order_id)
        if price == order.price and quantity == order.quantity:
            raise Rejected(RejectReason.NO_CHANGE, order.order_id)
        book = self.books[order.symbol]
        is_buy = order.side is _BUY
        calling = state in CALL_STATES
        if order.post_only and not calling and price != order.price:
            best = book.best_ask() if is_buy else book.best_bid()
            if best is not None and (best <= price if is_buy else best >= price):
                raise Rejected(RejectReason.WOULD_TAKE_LIQUIDITY, order.order_id)
        if is_buy:
            hold_asset = instrument.currency
            hold_per_lot = self._buy_hold_per_lot(instrument, price)
            old_hold = order.remaining // instrument.lot_size * order.hold_per_lot
            delta = remaining // instrument.lot_size * hold_per_lot - old_hold
        else:
            hold_asset = order.symbol
            hold_per_lot = 0
            delta = remaining - order.remaining
        if order.account in self.investors.profiles:
            investors.check_amend(self, order, instrument, price, quantity)  # raising a buy is new retail exposure
        if delta > 0 and order.hold_balance.available < delta:
            raise Rejected(
                RejectReason.INSUFFICIENT_FUNDS if is_buy else RejectReason.INSUFFICIENT_HOLDINGS,
                order.order_id,
            )
        # Only a smaller quantity at the same price keeps the order's place in the queue.
        keeps_priority = price == order.price and remaining <= order.remaining
        if delta > 0:
            order.hold_balance.hold(delta)
        elif delta < 0:
            order.hold_balance.release(-delta)
        side = book.side(order.side)
        self._touched[(side, order.price)] = None
        if keeps_priority:
            level = order.level
            assert level is not None
            level.quantity -= order.remaining - remaining
            order.remaining = remaining
            order.quantity = quantity
            order.hold_per_lot = hold_per_lot
        else:
            side.remove(order)
            order.remaining = remaining
            order.quantity = quantity
            order.price = price
            order.hold_per_lot = hold_per_lot
            order.priority = self._seq
        self._events.append(
            OrderAmended(
                self._seq,
                order.order_id,
                order.account,
                order.symbol,
                price,
                quantity,
                remaining,
                keeps_priority,
                hold_asset,
                delta,
            )
        )
        if keeps_priority:
            return
        if calling:
            side.add(order)
            self._touched[(side, order.price)] = None
            return
        # A re-priced order is a new arrival at its new price: it may trade before it rests.
        self._match(instrument, book, order)
        if order.remaining == 0:
            self._forget(order)
            return
        side.add(order)
        self._touched[(side, order.price)] = None

    # ------------------------------------------------------------------ call auctions

    def _auction_orders(self, book: OrderBook) -> tuple[list[call_auction.AuctionOrder], list[call_auction.AuctionOrder]]:
        bids = [
            call_auction.AuctionOrder(o.order_id, None, o.remaining, o.priority)
            for o in book.market_bids.values()
        ]
        asks = [
            call_auction.AuctionOrder(o.order_id, None, o.remaining, o.priority)
            for o in book.market_asks.values()
        ]
        for level in book.bids.levels_best_first():
            bids.extend(call_auction.AuctionOrder(o.order_id, o.price, o.remaining, o.priority) for o in level)
        for level in book.asks.levels_best_first():
            asks.extend(call_auction.AuctionOrder(o.order_id, o.price, o.remaining, o.priority) for o in level)
        return bids, asks

    def _indicative(self, instrument: Instrument, book: OrderBook) -> call_auction.Uncrossing:
        """The auction price if the book uncrossed now, always inside the price band.

        A buy limit above the band counts as the band's upper edge (it would buy there too) and a sell limit below it as
        the lower edge; a sell above the band or a buy below it cannot trade inside the band and does not count. Every
        candidate price, and the reference price, then lies inside the band, so a market order — whose hold and limit
        are the band's edge, fixed for the whole call phase since nothing trades in it — never trades beyond its limit.
        """
        lower, upper = instrument.band()
        buy_levels: dict[int, int] = {}
        for level in book.bids.levels.values():
            if level.price < lower:
                continue
            price = min(level.price, upper)
            buy_levels[price] = buy_levels.get(price, 0) + level.quantity
        sell_levels: dict[int, int] = {}
        for level in book.asks.levels.values():
            if level.price > upper:
                continue
            price = max(level.price, lower)
            sell_levels[price] = sell_levels.get(price, 0) + level.quantity
        market_buy = sum(o.remaining for o in book.market_bids.values())
        market_sell = sum(o.remaining for o in book.market_asks.values())
        return call_auction.determine_price_from_levels(
            list(buy_levels.items()),
            list(sell_levels.items()),
            market_buy,
            market_sell,
            instrument.reference_price,
        )

    def _publish_indicative(self, instrument: Instrument, book: OrderBook) -> None:
        result = self._indicative(instrument, book)
        self._events.append(
            IndicativeAuction(self._seq, instrument.symbol, result.price, result.volume, result.surplus)
        )

    def _uncross(self, instrument: Instrument, book: OrderBook) -> None:
        """Execute every order that can trade at the single auction price, in price-time priority."""
        bids, asks = self._auction_orders(book)
        result = self._indicative(instrument, book)
        self._events.append(
            AuctionUncrossed(
                self._seq, instrument.symbol, result.price, result.volume, result.surplus, result.rule.value
            )
        )
        if result.price is None or result.volume == 0:
            return
        price = result.price
        fee_bps = instrument.maker_fee_bps  # nobody takes liquidity in an auction: both sides pay the maker rate
        for execution in call_auction.allocate(bids, asks, result):
            buy = self.orders[execution.buy_order_id]
            sell = self.orders[execution.sell_order_id]
            quantity = execution.quantity
            for order in (buy, sell):
                if order.type is _MARKET:
                    order.remaining -= quantity
                else:
                    self._take_in_place(order, quantity)
            if buy.account == sell.account:
                # No wash trade: an account matched with itself loses that quantity on both orders, trading nothing.
                self._self_match_in_auction(buy, quantity)
                self._self_match_in_auction(sell, quantity)
            else:
                self._settle_auction(instrument, buy, sell, price, quantity, fee_bps)
            for order in (buy, sell):
                if order.remaining == 0:
                    if order.type is _MARKET:
                        queue = book.market_bids if order.side is _BUY else book.market_asks
                        del queue[order.order_id]
                    else:
                        book.side(order.side).remove(order)
                    self._forget(order)
        assert not book.is_crossed(), "an uncrossing leaves no crossed book behind"

    def _self_match_in_auction(self, order: Order, quantity: int) -> None:
        """Book the quantity already taken off `order` in an uncrossing as a self-trade cancellation."""
        self._record_reduction(order, quantity, _SELF_TRADE)

    def _settle_auction(
        self, instrument: Instrument, buy: Order, sell: Order, price: int, quantity: int, fee_bps: int
    ) -> None:
        # The aggressor of an auction trade is, by convention, the side that arrived later.
        aggressor = _BUY if buy.priority > sell.priority else _SELL
        self._settle(instrument, buy, sell, price, quantity, aggressor, fee_bps, fee_bps, auction=True)

    # ------------------------------------------------------------------ helpers and queries

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self.instruments.get(symbol)
        if instrument is None:
            raise Rejected(RejectReason.UNKNOWN_INSTRUMENT)
        return instrument

    def _publish_book_changes(self) -> None:
        """After a command: the indicative auction of every call-phase book it changed, then every changed level."""
        call_books = self._call_books
        touched = self._touched
        for side, _ in touched:
            call_books[side.symbol] = None
        for symbol in call_books:
            instrument = self.instruments[symbol]
            if instrument.state in CALL_STATES:
                self._publish_indicative(instrument, self.books[symbol])
        seq = self._seq
        events = self._events
        for side, price in touched:
            level = side.levels.get(price)
            if level is None:
                events.append(_build(BookLevelChanged, (seq, side.symbol, side.side, price, 0, 0)))
            else:
                events.append(_build(BookLevelChanged, (seq, side.symbol, side.side, price, level.quantity, level.count)))

    def best_bid_offer(self, symbol: str) -> tuple[int | None, int | None]:
        book = self.books[symbol]
        return book.best_bid(), book.best_ask()

    def depth(self, symbol: str, levels: int = 10) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        return self.books[symbol].depth(levels)

    def level_orders(self, symbol: str, side: Side, price: int) -> list[Order]:
        """Level 3: every order at one price, in queue (time priority) order."""
        level = self.books[symbol].side(side).levels.get(price)
        return [] if level is None else list(level)

    def open_orders(self, account: str) -> list[Order]:
        return list(self.open_by_account.get(account, {}))

    def balance(self, account: str, asset: str) -> tuple[int, int]:
        """(available, held) of one account in one asset."""
        return self.balances.peek(account, asset)

    def required_holds(self) -> dict[tuple[str, str], int]:
        """What the open orders must hold, per (account, asset): the held balances must equal exactly this."""
        required: dict[tuple[str, str], int] = {}
        for order in self.orders.values():
            asset, amount = self._hold_for(order, order.remaining)
            key = (order.account, asset)
            required[key] = required.get(key, 0) + amount
        return required

    def indicative(self, symbol: str) -> call_auction.Uncrossing:
        """The price, volume and surplus an auction of this book would have now (read only)."""
        return self._indicative(self.instruments[symbol], self.books[symbol])

    def next_timer_us(self) -> int | None:
        """When the next GTD order expires or volatility auction ends (the shell's timer sends a `ClockTick` then)."""
        heap = self._gtd
        while heap and heap[0][1] not in self.orders:
            heapq.heappop(heap)
        due = []
        if heap:
            due.append(heap[0][0])
        if self._auction_ends:
            due.append(self._auction_ends[0][0])
        return min(due, default=None)

    def is_bond(self, symbol: str) -> bool:
        return self.instruments[symbol].kind is InstrumentKind.BOND
