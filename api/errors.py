"""The error envelope of the API, `{"error": {"code", "message", "details"}}`, and the handlers that
turn every failure into it: our own `ApiError`, request validation, Starlette's HTTP errors (unknown
route, wrong method) and, as a last resort, any unexpected exception (500, logged, no stack trace).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# Codes for plain HTTP errors raised by the framework or by `HTTPException(status)` in a route.
_HTTP_STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ErrorBody(BaseModel):
    code: str = Field(examples=["PRICE_NOT_ON_TICK"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    """Schema of every error response, for `responses={404: {"model": ErrorEnvelope}}` in routes."""

    error: ErrorBody


class ApiError(Exception):
    """Raise from anywhere in a request to answer `status` with the error envelope.

    `code` is a stable UPPER_SNAKE identifier clients can switch on; `message` is for humans;
    `details` carries the machine-readable specifics (the field, the tick size, ...); `headers` such as
    `Retry-After` go on the response.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


def _text(value: str) -> str:
    """`value`, with any lone surrogate (JSON may carry "\\ud800"; UTF-8 cannot) written as a backslash escape."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def json_safe(value: Any) -> Any:
    """`value` made of JSON types only, each string encodable as UTF-8: decimals and dates as strings, exceptions
    as their message."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def error_content(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": _text(message), "details": json_safe(dict(details or {}))}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_content(code, message, details), status_code=status, headers=dict(headers or {}))


def internal_error_response() -> JSONResponse:
    return error_response(500, "INTERNAL_ERROR", "The exchange hit an unexpected error; it has been logged.")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        entry: dict[str, Any] = {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        if "input" in error:
            entry["input"] = json_safe(error["input"])
        if error.get("ctx"):
            entry["ctx"] = json_safe(error["ctx"])
        errors.append(entry)
    return errors


async def _api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    first = errors[0] if errors else None
    message = "Request validation failed"
    if first is not None:
        where = ".".join(str(part) for part in first["loc"])
        message = f"{message}: {where}: {first['msg']}" if where else f"{message}: {first['msg']}"
    return error_response(422, "VALIDATION_ERROR", message, {"errors": errors})


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    try:
        default_phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        default_phrase = "HTTP error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else default_phrase
    details: dict[str, Any] = {} if isinstance(exc.detail, str) else {"detail": exc.detail}
    if exc.status_code == 404:
        details.setdefault("path", request.url.path)
    if exc.status_code == 405:
        details.setdefault("method", request.method)
    return error_response(exc.status_code, code, message, details, exc.headers)


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error while serving %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of `app` use the envelope."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)
