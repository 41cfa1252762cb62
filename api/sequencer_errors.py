"""What a caller hears when the sequencer cannot take or keep its command, wherever a route called `submit`.

- `Backpressure`: the inbox is full -> 429 `BACKPRESSURE` with `Retry-After` (whole seconds, at least 1).
- `SequencerUnavailable`: starting, stopped or recovering -> 503 `NOT_READY`, or `ENGINE_RECOVERING` while the
  sequencer rebuilds its engine from the journal after a failed commit.
- `CommitFailed`: the batch holding the command was not committed, so the command does not exist -> 503
  `COMMIT_FAILED`; sending it again is safe (with a `client_order_id`, doubly so).

Routes just call `await sequencer.submit(...)` and let these propagate; `install(app)` registers the handlers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import error_response
from api.ratelimit import retry_after_header
from api.sequencer import Backpressure, CommitFailed, SequencerState, SequencerUnavailable

# How long a client should wait before retrying after a 503: recovery replays the journal, typically sub-second.
UNAVAILABLE_RETRY_AFTER = "1"


async def _backpressure(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Backpressure)
    return error_response(
        429,
        "BACKPRESSURE",
        "the exchange is busy; retry after the time in Retry-After",
        {"retry_after_seconds": round(exc.retry_after, 3)},
        {"Retry-After": retry_after_header(exc.retry_after)},
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SequencerUnavailable)
    sequencer = getattr(request.app.state, "sequencer", None)
    state = getattr(sequencer, "state", None)
    if state is SequencerState.RECOVERING:
        code, message = "ENGINE_RECOVERING", "the engine is recovering from the journal; retry shortly"
    else:
        code, message = "NOT_READY", "the exchange is not taking commands"
    details = {"state": state.value} if isinstance(state, SequencerState) else {}
    return error_response(503, code, message, details, {"Retry-After": UNAVAILABLE_RETRY_AFTER})


async def _commit_failed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CommitFailed)
    return error_response(
        503,
        "COMMIT_FAILED",
        "the exchange could not record this command, so it did not happen; it is safe to send again",
        {},
        {"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


def install(app: FastAPI) -> None:
    """Answer the sequencer's refusals with the error envelope instead of a 500."""
    app.add_exception_handler(Backpressure, _backpressure)
    app.add_exception_handler(SequencerUnavailable, _unavailable)
    app.add_exception_handler(CommitFailed, _commit_failed)
