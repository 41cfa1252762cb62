"""Every refusal the core can give: its reason, and that a refused command changes nothing at all.

Each case builds a market, then sends one command that must be refused with the stated reason. `PRICE_NOT_ON_TICK`
is the one reason the core never gives: prices reach it as integer ticks, so only the API edge can be off the grid.
"""

from __future__ import annotations

from tests.exchange.test_corporate_rejects import CORPORATE_REASONS

from collections.abc import Callable
from dataclasses import replace

import pytest

from exchange.commands import (
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    SetTradingState,
)
from exchange.events import CommandRejected
from exchange.instrument import TradingState
from exchange.orders import TimeInForce
from exchange.rejects import RejectReason as R
from tests.exchange.factories import BUY, SELL, Market, equity, funded_market, limit, market

Case = Callable[[], tuple[Market, Command]]


def in_state(state: TradingState) -> Case:
    def build() -> tuple[Market, Command]:
        m = funded_market(equity())
        m.set_state(state)
        return m, limit("b", BUY, 1, 100)

    return build


def with_book(*orders: PlaceOrder, then: Callable[[Market], Command], **instrument) -> Case:
    def build() -> tuple[Market, Command]:
        m = funded_market(equity(**instrument), cash=1_000)
        for order in orders:
            m.place_id(order)
        return m, then(m)

    return build


CASES: list[tuple[str, R, Case]] = [
    ("order for an unlisted symbol", R.UNKNOWN_INSTRUMENT, with_book(then=lambda m: limit("b", BUY, 1, 100, "NOPE"))),
    ("listing a symbol twice", R.INSTRUMENT_EXISTS, with_book(then=lambda m: ListInstrument(equity()))),
    ("order after the close", R.INSTRUMENT_NOT_OPEN, in_state(TradingState.CLOSED)),
    ("order during a halt", R.INSTRUMENT_HALTED, in_state(TradingState.HALTED)),
    ("order while suspended", R.INSTRUMENT_SUSPENDED, in_state(TradingState.SUSPENDED)),
    ("order after delisting", R.INSTRUMENT_DELISTED, in_state(TradingState.DELISTED)),
    (
        "changing to the current state",
        R.INVALID_STATE_CHANGE,
        with_book(then=lambda m: SetTradingState("ACME", TradingState.OPEN)),
    ),
    (
        "opening an auction-only instrument",
        R.INVALID_STATE_CHANGE,
        with_book(
            then=lambda m: SetTradingState("ACME", TradingState.OPEN), auction_only=True, state=TradingState.CLOSED
        ),
    ),
    (
        "limit order without a price",
        R.PRICE_REQUIRED,
        with_book(then=lambda m: replace(limit("b", BUY, 1, 1), price=None)),
    ),
    (
        "market order with a price",
        R.PRICE_NOT_ALLOWED,
        with_book(then=lambda m: replace(market("b", BUY, 1), price=100)),
    ),
    ("price of zero ticks", R.PRICE_OUT_OF_RANGE, with_book(then=lambda m: limit("b", BUY, 1, 0), band_bps=0)),
    ("price of 2**53 ticks", R.PRICE_OUT_OF_RANGE, with_book(then=lambda m: limit("b", SELL, 1, 2**53), band_bps=0)),
    ("price above the band", R.PRICE_OUTSIDE_BAND, with_book(then=lambda m: limit("b", SELL, 1, 111))),
    ("price below the band", R.PRICE_OUTSIDE_BAND, with_book(then=lambda m: limit("b", BUY, 1, 89))),
    (
        "quantity off the lot grid",
        R.QUANTITY_NOT_ON_LOT,
        with_book(then=lambda m: limit("b", BUY, 15, 100), lot_size=10),
    ),
    ("quantity of zero", R.QUANTITY_OUT_OF_RANGE, with_book(then=lambda m: limit("b", BUY, 0, 100))),
    (
        "quantity below the minimum",
        R.QUANTITY_OUT_OF_RANGE,
        with_book(then=lambda m: limit("b", BUY, 4, 100), min_quantity=5),
    ),
    (
        "quantity above the maximum",
        R.QUANTITY_OUT_OF_RANGE,
        with_book(then=lambda m: limit("b", BUY, 6, 100), max_quantity=5),
    ),
    (
        "post-only immediate or cancel",
        R.INVALID_TIME_IN_FORCE,
        with_book(then=lambda m: limit("b", BUY, 1, 100, tif=TimeInForce.IOC, post_only=True)),
    ),
    (
        "GTD without an expiry",
        R.INVALID_EXPIRY,
        with_book(then=lambda m: limit("b", BUY, 1, 100, tif=TimeInForce.GTD)),
    ),
    ("deposit of nothing", R.INVALID_AMOUNT, with_book(then=lambda m: Deposit("b", "EUR", 0))),
    ("buy beyond the cash", R.INSUFFICIENT_FUNDS, with_book(then=lambda m: limit("b", BUY, 11, 100))),
    ("sell beyond the holdings", R.INSUFFICIENT_HOLDINGS, with_book(then=lambda m: limit("b", SELL, 1_001, 100))),
    (
        "client order id used before",
        R.DUPLICATE_CLIENT_ORDER_ID,
        with_book(
            limit("b", BUY, 1, 99, client_order_id="mine-1"),
            then=lambda m: limit("b", BUY, 1, 98, client_order_id="mine-1"),
        ),
    ),
    ("cancel of an unknown order", R.UNKNOWN_ORDER, with_book(then=lambda m: CancelOrder("b", 77))),
    ("amend of an unknown order", R.UNKNOWN_ORDER, with_book(then=lambda m: AmendOrder("b", 77, quantity=1))),
    (
        "cancel of another's order",
        R.NOT_YOUR_ORDER,
        with_book(limit("c", BUY, 1, 99), then=lambda m: CancelOrder("b", 1)),
    ),
    (
        "post-only that would cross",
        R.WOULD_TAKE_LIQUIDITY,
        with_book(limit("c", SELL, 1, 100), then=lambda m: limit("b", BUY, 1, 100, post_only=True)),
    ),
    (
        "fill-or-kill beyond the book",
        R.FOK_NOT_FILLABLE,
        with_book(limit("c", SELL, 1, 100), then=lambda m: limit("b", BUY, 2, 100, tif=TimeInForce.FOK)),
    ),
    (
        "amend that changes nothing",
        R.NO_CHANGE,
        with_book(limit("b", BUY, 1, 99), then=lambda m: AmendOrder("b", 1, 99, 1)),
    ),
    (
        "issuance by someone else",
        R.NOT_ISSUER,
        with_book(then=lambda m: IssueSecurities("b", "ACME", 1), issuer="coop"),
    ),
]


def snapshot(m: Market) -> tuple:
    e = m.engine
    return (
        {s: (i.state, i.reference_price) for s, i in e.instruments.items()},
        {s: e.depth(s, 1_000) for s in e.books},
        [(key, b.available, b.held) for key, b in e.balances.items()],
        sorted((o.order_id, o.remaining, o.quantity, o.price) for o in e.orders.values()),
        dict(e.client_order_ids),
        e.next_order_id,
        e.next_trade_id,
    )


@pytest.mark.parametrize(("reason", "case"), [(reason, case) for _, reason, case in CASES], ids=[c[0] for c in CASES])
def test_a_refused_command_gives_its_reason_and_changes_nothing(reason: R, case: Case):
    m, command = case()
    before = snapshot(m)

    events = m.apply(command)

    assert len(events) == 1 and isinstance(events[0], CommandRejected), events
    assert events[0].reason is reason
    assert snapshot(m) == before


def test_every_reason_the_core_can_give_is_specified_here():
    # The corporate actions' reasons (offers, distributions, retail protection) are specified in
    # test_corporate_rejects.py; only the API can say PRICE_NOT_ON_TICK.
    assert {reason for _, reason, _ in CASES} == set(R) - {R.PRICE_NOT_ON_TICK} - CORPORATE_REASONS


def test_a_refused_order_names_its_account_symbol_and_client_order_id():
    m = funded_market(equity(), cash=0)

    rejected = m.apply(limit("b", BUY, 1, 100, client_order_id="mine-7"))[0]

    assert (rejected.account, rejected.symbol, rejected.client_order_id) == ("b", "ACME", "mine-7")


def test_a_duplicate_client_order_id_names_the_order_that_carries_it():
    m = funded_market(equity())
    first = m.place_id(limit("b", BUY, 1, 99, client_order_id="mine-1"))

    rejected = m.apply(limit("b", BUY, 1, 98, client_order_id="mine-1"))[0]

    assert (rejected.reason, rejected.order_id) == (R.DUPLICATE_CLIENT_ORDER_ID, first)


def test_the_same_client_order_id_may_be_used_by_two_accounts():
    m = funded_market(equity())
    m.place_id(limit("b", BUY, 1, 99, client_order_id="mine-1"))

    events = m.apply(limit("c", BUY, 1, 99, client_order_id="mine-1"))

    assert [type(e).__name__ for e in events] == ["OrderAccepted", "BookLevelChanged"]


def test_a_cancel_refused_for_an_order_names_the_order():
    m = funded_market(equity())
    order_id = m.place_id(limit("c", BUY, 1, 99))

    rejected = m.cancel("b", order_id)[0]

    assert (rejected.reason, rejected.order_id) == (R.NOT_YOUR_ORDER, order_id)
