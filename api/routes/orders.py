"""Order entry and the caller's own orders, fills and balances.

Every state change goes through the sequencer and is answered after its batch committed. Reads come from PostgreSQL
(committed state), never from the engine's memory, which may hold a batch that is still being written.
A caller sees only its own orders and fills: another participant's order id answers 404, exactly like an unknown one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import Principal, Role, require
from api.commands import engine_of, engine_of_app, ensure_instrument, reject_error, submit, submit_to
from api.errors import ApiError, ErrorEnvelope
from api.keyset import Filters, split_page
from api.schemas import (
    AmendOrderRequest,
    BalancesView,
    BalanceView,
    CancelAllView,
    FillPage,
    FillView,
    OrderPage,
    OrderView,
    PlaceOrderRequest,
    average_price,
    cash_text,
    price_text,
    quantity_text,
    timestamp,
    to_us,
)
from api.units import UnitError, minor_to_cash, price_to_ticks, quantity_to_units
from exchange import codec
from exchange.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from exchange.engine import Engine
from exchange.events import CommandRejected, OrderAccepted, Trade
from exchange.instrument import Instrument
from exchange.orders import OrderType, Side, TimeInForce
from exchange.rejects import RejectReason
from ledger.entries import Bucket
from ledger.projection import ORDER_COLUMNS, OrderProjection
from ledger.queries import balances_of

# ASCII digits only (str.isdigit() admits "²", which int() refuses), at most 18 so it fits a bigint.
_DIGITS = re.compile(r"[0-9]{1,18}")
router = APIRouter(prefix="/v1", tags=["orders"])
TRADERS = (Role.INVESTOR, Role.ISSUER)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 422, 429, 503)
}

ORDER_SELECT = (
    "SELECT order_id, account, client_order_id, symbol, side, type, price, quantity, remaining, filled, "
    "notional_traded, time_in_force, expire_at_us, post_only, stp, status, cancel_reason, created_seq, "
    "created_ts_us, updated_seq, updated_ts_us FROM orders"
)


def _unit_error(error: UnitError) -> ApiError:
    return ApiError(422, error.code, error.message, {"field": error.field})


def order_view(instrument: Instrument, row: asyncpg.Record | dict, fills: list[FillView] | None = None) -> OrderView:
    is_market = row["type"] == OrderType.MARKET.value
    return OrderView(
        id=str(row["order_id"]),
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["type"]),
        price=None if is_market else price_text(instrument, row["price"]),
        quantity=quantity_text(row["quantity"]),
        filled_quantity=quantity_text(row["filled"]),
        remaining_quantity=quantity_text(row["remaining"]),
        average_price=average_price(instrument, row["notional_traded"], row["filled"]),
        status=row["status"],
        cancel_reason=row["cancel_reason"],
        time_in_force=row["time_in_force"],
        expire_at=timestamp(row["expire_at_us"]),
        post_only=row["post_only"],
        self_trade_prevention=row["stp"],
        created_at=timestamp(row["created_ts_us"]),
        updated_at=timestamp(row["updated_ts_us"]),
        seq=row["updated_seq"],
        fills=fills or [],
        account=row["account"],
    )


def fill_view(instrument: Instrument, trade: Any, account: str, ts_us: int | None) -> FillView:
    """One side of a trade, as the participant on that side sees it (a trade with itself is impossible: STP)."""
    is_buyer = trade["buyer"] == account
    taker_side = trade["aggressor"]
    side = Side.BUY if is_buyer else Side.SELL
    return FillView(
        trade_id=str(trade["trade_id"]),
        order_id=str(trade["buy_order_id"] if is_buyer else trade["sell_order_id"]),
        symbol=trade["symbol"],
        side=side,
        price=price_text(instrument, trade["price"]) or "0",
        quantity=quantity_text(trade["quantity"]),
        liquidity="maker" if trade["auction"] or side.value != taker_side else "taker",
        cash=cash_text(instrument, trade["cash"]),
        accrued_interest=cash_text(instrument, trade["accrued"]),
        fee=cash_text(instrument, trade["buyer_fee"] if is_buyer else trade["seller_fee"]),
        currency=trade["currency"],
        seq=trade["seq"],
        time=timestamp(ts_us),
    )


def _trade_record(trade: Trade, ts_us: int) -> dict[str, Any]:
    return {
        "trade_id": trade.trade_id,
        "seq": trade.seq,
        "ts_us": ts_us,
        "symbol": trade.symbol,
        "price": trade.price,
        "quantity": trade.quantity,
        "aggressor": trade.aggressor.value,
        "buy_order_id": trade.buy_order_id,
        "sell_order_id": trade.sell_order_id,
        "buyer": trade.buyer,
        "seller": trade.seller,
        "currency": trade.currency,
        "cash": trade.cash,
        "accrued": trade.accrued,
        "buyer_fee": trade.buyer_fee,
        "seller_fee": trade.seller_fee,
        "auction": trade.auction,
    }


async def _load_order(app: Any, principal: Principal, order_id: str) -> asyncpg.Record:
    if not _DIGITS.fullmatch(order_id):
        raise ApiError(404, "UNKNOWN_ORDER", f"no order {order_id}")
    async with app.state.pg_pool.acquire() as conn:
        row = await conn.fetchrow(ORDER_SELECT + " WHERE order_id = $1", int(order_id))
    if row is None or (principal.role is not Role.REGULATOR and row["account"] != principal.participant_id):
        raise ApiError(404, "UNKNOWN_ORDER", f"no order {order_id}")
    return row


async def _order_fills(app: Any, instrument: Instrument, row: Any) -> list[FillView]:
    side_column = "buy_order_id" if row["side"] == Side.BUY.value else "sell_order_id"
    async with app.state.pg_pool.acquire() as conn:
        trades = await conn.fetch(
            f"SELECT * FROM trades WHERE {side_column} = $1 ORDER BY trade_id", row["order_id"]
        )
    return [fill_view(instrument, t, row["account"], t["ts_us"]) for t in trades]


def _same_request(accepted: OrderAccepted, command: PlaceOrder) -> bool:
    """Whether a retried order (same client order id) is the same order as the one first accepted."""
    return (
        accepted.symbol == command.symbol
        and accepted.side is command.side
        and accepted.type is command.type
        and (command.type is OrderType.MARKET or accepted.price == command.price)
        and accepted.quantity == command.quantity
        and (command.type is OrderType.MARKET or accepted.tif is command.tif)
        and accepted.expire_at_us == command.expire_at_us
        and accepted.post_only == command.post_only
        and accepted.stp is command.stp
    )


async def _existing_for_client_id(
    app: Any, principal: Principal, instrument: Instrument, command: PlaceOrder
) -> OrderView | None:
    """The first result for this client order id, or 409 if the same id came with a different order."""
    async with app.state.pg_pool.acquire() as conn:
        row = await conn.fetchrow(
            ORDER_SELECT + " WHERE account = $1 AND client_order_id = $2",
            principal.participant_id,
            command.client_order_id,
        )
        if row is None:
            return None
        body = await conn.fetchval(
            "SELECT body FROM events WHERE order_id = $1 AND kind = 'OrderAccepted'", row["order_id"]
        )
    accepted = codec.decode(body.encode("ascii"))
    if not _same_request(accepted, command):
        raise ApiError(
            409,
            "DUPLICATE_CLIENT_ORDER_ID",
            "this client_order_id was used for a different order",
            {"order_id": str(row["order_id"])},
        )
    fills = await _order_fills(app, instrument, row)
    return order_view(instrument, row, fills)


def _place_command(principal: Principal, instrument: Instrument, body: PlaceOrderRequest) -> PlaceOrder:
    try:
        quantity = quantity_to_units(instrument, body.quantity)
        price = None if body.price is None else price_to_ticks(instrument, body.price)
    except UnitError as error:
        raise _unit_error(error) from None
    if body.type is OrderType.LIMIT and price is None:
        raise ApiError(422, "PRICE_REQUIRED", "a limit order needs a price", {"field": "price"})
    if body.type is OrderType.MARKET and price is not None:
        raise ApiError(422, "PRICE_NOT_ALLOWED", "a market order takes no price", {"field": "price"})
    expire_at_us = None if body.expire_at is None else to_us(body.expire_at)
    if body.time_in_force is TimeInForce.GTD and expire_at_us is None:
        raise ApiError(422, "INVALID_EXPIRY", "a GTD order needs expire_at", {"field": "expire_at"})
    if body.time_in_force is not TimeInForce.GTD and expire_at_us is not None:
        raise ApiError(422, "INVALID_EXPIRY", "expire_at is only for GTD orders", {"field": "expire_at"})
    return PlaceOrder(
        account=principal.participant_id,
        symbol=body.symbol,
        side=body.side,
        type=body.type,
        quantity=quantity,
        price=price,
        tif=body.time_in_force,
        expire_at_us=expire_at_us,
        post_only=body.post_only,
        client_order_id=body.client_order_id,
        stp=body.self_trade_prevention,
    )


async def place(app: Any, principal: Principal, body: PlaceOrderRequest) -> tuple[int, OrderView]:
    """Place an order for an admitted caller: (201, the new order) once its batch committed, or (200, the first
    result) for a retry with the same client order id. Raises `ApiError` and the sequencer's refusals.

    The one implementation of order entry: the FastAPI route below and the fast path (`api.fastpath`) both call it."""
    engine = engine_of_app(app)
    instrument = ensure_instrument(engine, body.symbol)
    command = _place_command(principal, instrument, body)
    # Only a client order id the engine has seen can name a stored order (the engine keeps every one it accepted, and
    # memory is never behind the database): a new id, the usual case, costs no database read.
    if (
        command.client_order_id is not None
        and (command.account, command.client_order_id) in engine.client_order_ids
    ):
        existing = await _existing_for_client_id(app, principal, instrument, command)
        if existing is not None:
            return 200, existing
    outcome = await submit_to(app, command, principal.participant_id)
    accepted: OrderAccepted | None = None
    for event in outcome.events:
        if type(event) is CommandRejected:
            if event.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                # A concurrent retry won the race; answer like any retry.
                existing = await _existing_for_client_id(app, principal, instrument, command)
                if existing is not None:
                    return 200, existing
            raise_reject(event)
        if type(event) is OrderAccepted:
            accepted = event
            break
    assert accepted is not None, "an order is either rejected or accepted"
    # The committed events say everything about the new order: fold them instead of reading it back.
    projection = OrderProjection(strict=False)
    projection.apply(outcome.seq, outcome.ts_us, outcome.events)
    order_row = projection.dirty[accepted.order_id]
    row = {name: getattr(order_row, name) for name in ORDER_COLUMNS}
    fills = [
        fill_view(instrument, _trade_record(event, outcome.ts_us), principal.participant_id, outcome.ts_us)
        for event in outcome.events
        if type(event) is Trade
        and (event.buy_order_id == accepted.order_id or event.sell_order_id == accepted.order_id)
    ]
    return 201, order_view(instrument, row, fills)


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderView,
    responses={
        **ERRORS,
        200: {"model": OrderView, "description": "A retry with the same client_order_id: the order it first placed."},
    },
    summary="Place an order",
)
async def place_order(
    body: PlaceOrderRequest,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
) -> OrderView:
    status, view = await place(request.app, principal, body)
    response.status_code = status
    return view


def raise_reject(event: CommandRejected) -> None:
    raise reject_error(event)


@router.get("/orders", response_model=OrderPage, responses=ERRORS, summary="List your orders")
async def list_orders(
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS, Role.REGULATOR))],
    status: Annotated[str | None, Query(pattern="^(open|done)$")] = None,
    symbol: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z0-9][A-Z0-9._\-]*$")] = None,
    account: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9@][a-z0-9_.\-]*$", description="Regulator only")
    ] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OrderPage:
    engine = engine_of(request)
    filters = Filters()
    if principal.role is not Role.REGULATOR:
        if account is not None and account != principal.participant_id:
            raise ApiError(403, "FORBIDDEN", "you may list only your own orders")
        account = principal.participant_id
    filters.add("account = {0}", account)
    if status == "open":
        filters.add("remaining > 0 AND status IN ('new', 'partially_filled')")
    elif status == "done":
        filters.add("NOT (remaining > 0 AND status IN ('new', 'partially_filled'))")
    filters.add("symbol = {0}", symbol)
    filters.add("order_id < {0}", None if cursor is None else int(cursor))
    sql = f"{ORDER_SELECT}{filters.where()} ORDER BY order_id DESC LIMIT {filters.param(limit + 1)}"
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(sql, *filters.args)
    page, next_cursor = split_page(rows, limit, lambda r: str(r["order_id"]))
    views = [order_view(engine.instruments[r["symbol"]], r) for r in page]
    return OrderPage(orders=views, next_cursor=next_cursor)


@router.get("/orders/{order_id}", response_model=OrderView, responses=ERRORS, summary="One of your orders")
async def get_order(
    order_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS, Role.REGULATOR))],
) -> OrderView:
    engine = engine_of(request)
    row = await _load_order(request.app, principal, order_id)
    instrument = engine.instruments[row["symbol"]]
    return order_view(instrument, row, await _order_fills(request.app, instrument, row))


def _is_done(row: Any) -> bool:
    return not (row["remaining"] > 0 and row["status"] in ("new", "partially_filled"))


async def cancel(app: Any, principal: Principal, order_id: str) -> OrderView:
    """Cancel one of an admitted caller's open orders and answer it as committed (shared with `api.fastpath`)."""
    engine = engine_of_app(app)
    row = await _load_order(app, principal, order_id)
    if _is_done(row):
        raise ApiError(409, "ORDER_ALREADY_DONE", f"order {order_id} is {row['status']}", {"status": row["status"]})
    outcome = await submit_to(app, CancelOrder(principal.participant_id, row["order_id"]), principal.participant_id)
    for event in outcome.events:
        if type(event) is CommandRejected:
            if event.reason is RejectReason.UNKNOWN_ORDER:
                raise ApiError(409, "ORDER_ALREADY_DONE", f"order {order_id} is no longer open")
            raise_reject(event)
    instrument = engine.instruments[row["symbol"]]
    row = await _load_order(app, principal, order_id)
    return order_view(instrument, row, await _order_fills(app, instrument, row))


@router.delete("/orders/{order_id}", response_model=OrderView, responses=ERRORS, summary="Cancel an order")
async def cancel_order(
    order_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
) -> OrderView:
    return await cancel(request.app, principal, order_id)


@router.delete("/orders", response_model=CancelAllView, responses=ERRORS, summary="Cancel all your open orders")
async def cancel_all(
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
    symbol: Annotated[str | None, Query(max_length=32)] = None,
) -> CancelAllView:
    engine = engine_of(request)
    if symbol is not None:
        ensure_instrument(engine, symbol)
    outcome = await submit(request, CancelAll(principal.participant_id, symbol), principal.participant_id)
    cancelled: list[str] = []
    for event in outcome.events:
        if type(event) is CommandRejected:
            raise_reject(event)
        order_id = getattr(event, "order_id", None)
        if order_id is not None and type(event).__name__ == "OrderCancelled":
            cancelled.append(str(order_id))
    return CancelAllView(cancelled=cancelled, seq=outcome.seq)


@router.patch("/orders/{order_id}", response_model=OrderView, responses=ERRORS, summary="Amend an order")
async def amend_order(
    order_id: str,
    body: AmendOrderRequest,
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
) -> OrderView:
    engine = engine_of(request)
    if body.price is None and body.quantity is None:
        raise ApiError(422, "NO_CHANGE", "give a new price, a new quantity or both")
    row = await _load_order(request.app, principal, order_id)
    if _is_done(row):
        raise ApiError(409, "ORDER_ALREADY_DONE", f"order {order_id} is {row['status']}", {"status": row["status"]})
    instrument = engine.instruments[row["symbol"]]
    try:
        price = None if body.price is None else price_to_ticks(instrument, body.price)
        quantity = None if body.quantity is None else quantity_to_units(instrument, body.quantity)
    except UnitError as error:
        raise _unit_error(error) from None
    command = AmendOrder(principal.participant_id, row["order_id"], price, quantity)
    outcome = await submit(request, command, principal.participant_id)
    for event in outcome.events:
        if type(event) is CommandRejected:
            if event.reason is RejectReason.UNKNOWN_ORDER:
                raise ApiError(409, "ORDER_ALREADY_DONE", f"order {order_id} is no longer open")
            raise_reject(event)
    row = await _load_order(request.app, principal, order_id)
    return order_view(instrument, row, await _order_fills(request.app, instrument, row))


@router.get("/fills", response_model=FillPage, responses=ERRORS, summary="Your fills, newest first")
async def list_fills(
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
    symbol: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z0-9][A-Z0-9._\-]*$")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FillPage:
    engine = engine_of(request)
    me = principal.participant_id
    filters = Filters()
    filters.add("(buyer = {0} OR seller = {0})", me)
    filters.add("symbol = {0}", symbol)
    filters.add("trade_id < {0}", None if cursor is None else int(cursor))
    sql = f"SELECT * FROM trades{filters.where()} ORDER BY trade_id DESC LIMIT {filters.param(limit + 1)}"
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(sql, *filters.args)
    page, next_cursor = split_page(rows, limit, lambda r: str(r["trade_id"]))
    fills = [fill_view(engine.instruments[r["symbol"]], r, me, r["ts_us"]) for r in page]
    return FillPage(fills=fills, next_cursor=next_cursor)


@router.get("/balances", response_model=BalancesView, responses=ERRORS, summary="Your balances per asset")
async def balances(
    request: Request,
    principal: Annotated[Principal, Depends(require(*TRADERS))],
) -> BalancesView:
    engine = engine_of(request)
    async with request.app.state.pg_pool.acquire() as conn:
        found = await balances_of(conn, principal.participant_id)
    assets = sorted({asset for asset, _ in found})
    views = []
    for asset in assets:
        available = found.get((asset, Bucket.AVAILABLE), 0)
        held = found.get((asset, Bucket.HELD), 0)
        views.append(
            BalanceView(
                asset=asset,
                total=format_amount(engine, asset, available + held),
                available=format_amount(engine, asset, available),
                held=format_amount(engine, asset, held),
            )
        )
    return BalancesView(account=principal.participant_id, balances=views)


def format_amount(engine: Engine, asset: str, amount: int) -> str:
    """Securities in units; cash in its currency's decimals (known from the instruments quoted in it, else 2)."""
    if asset in engine.instruments:
        return quantity_text(amount)
    return minor_to_cash(amount, currency_decimals(engine, asset))


def currency_decimals(engine: Engine, currency: str) -> int:
    for instrument in engine.instruments.values():
        if instrument.currency == currency:
            return instrument.currency_decimals
    return 2
