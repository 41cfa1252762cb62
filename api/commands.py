"""Sending commands to the sequencer from a request, and turning the core's reject reasons into API errors."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.errors import ApiError
from api.sequencer import Outcome
from exchange.commands import Command
from exchange.engine import Engine
from exchange.events import CommandRejected
from exchange.instrument import Instrument
from exchange.rejects import RejectReason

# The HTTP status of each reject: 404 unknown, 409 conflicts with the state of an order or a listing, 503 the market
# is not trading now (retry later), 400 a business rule refused a well-formed request, 422 the request is not valid.
REJECT_STATUS: dict[RejectReason, int] = {
    RejectReason.UNKNOWN_INSTRUMENT: 404,
    RejectReason.UNKNOWN_ORDER: 404,
    RejectReason.NOT_YOUR_ORDER: 404,  # never confirm that someone else's order exists
    RejectReason.INSTRUMENT_EXISTS: 409,
    RejectReason.INSTRUMENT_NOT_OPEN: 503,
    RejectReason.INSTRUMENT_HALTED: 503,
    RejectReason.INSTRUMENT_SUSPENDED: 409,
    RejectReason.INSTRUMENT_DELISTED: 409,
    RejectReason.INVALID_STATE_CHANGE: 409,
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: 409,
    RejectReason.NO_CHANGE: 422,
    RejectReason.INSUFFICIENT_FUNDS: 400,
    RejectReason.INSUFFICIENT_HOLDINGS: 400,
    RejectReason.WOULD_TAKE_LIQUIDITY: 400,
    RejectReason.FOK_NOT_FILLABLE: 400,
    RejectReason.PRICE_OUTSIDE_BAND: 400,
    RejectReason.NOT_ISSUER: 403,
}

MESSAGES: dict[RejectReason, str] = {
    RejectReason.UNKNOWN_ORDER: "no such order",
    RejectReason.NOT_YOUR_ORDER: "no such order",
    RejectReason.INSUFFICIENT_FUNDS: "not enough available cash for this order's hold",
    RejectReason.INSUFFICIENT_HOLDINGS: "not enough available securities (no short selling)",
    RejectReason.WOULD_TAKE_LIQUIDITY: "a post-only order would have traded on arrival",
    RejectReason.FOK_NOT_FILLABLE: "a fill-or-kill order could not fill completely at once",
    RejectReason.PRICE_OUTSIDE_BAND: "the price is outside the instrument's price band",
    RejectReason.INSTRUMENT_HALTED: "trading in this instrument is halted",
    RejectReason.INSTRUMENT_NOT_OPEN: "this instrument is not accepting orders now",
}


def reject_error(event: CommandRejected) -> ApiError:
    reason = event.reason
    code = "UNKNOWN_ORDER" if reason is RejectReason.NOT_YOUR_ORDER else reason.value
    details = {}
    if event.order_id is not None and reason is not RejectReason.NOT_YOUR_ORDER:
        details["order_id"] = str(event.order_id)
    return ApiError(
        REJECT_STATUS.get(reason, 422),
        code,
        MESSAGES.get(reason, reason.value.replace("_", " ").lower()),
        details,
    )


def ensure_instrument(engine: Engine, symbol: str) -> Instrument:
    instrument = engine.instruments.get(symbol)
    if instrument is None:
        raise ApiError(404, "UNKNOWN_INSTRUMENT", f"no instrument {symbol}")
    return instrument


def engine_of(request: Request) -> Engine:
    return engine_of_app(request.app)


def engine_of_app(app: Any) -> Engine:
    sequencer = getattr(app.state, "sequencer", None)
    if sequencer is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    return sequencer.engine


async def submit(request: Request, command: Command, sender: str) -> Outcome:
    """Send a command and wait for its commit (see `submit_to`)."""
    return await submit_to(request.app, command, sender)


async def submit_to(app: Any, command: Command, sender: str) -> Outcome:
    """Send a command to `app`'s sequencer and wait for its commit.

    Back-pressure, recovery and failed commits propagate as exceptions that `api.sequencer_errors` answers with
    429/503 and `Retry-After`.
    """
    sequencer = getattr(app.state, "sequencer", None)
    if sequencer is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    return await sequencer.submit(command, sender)


def first_reject(outcome: Outcome) -> CommandRejected | None:
    for event in outcome.events:
        if type(event) is CommandRejected:
            return event
    return None
