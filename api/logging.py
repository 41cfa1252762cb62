"""Structured logs: one JSON object per line, and an access log that ties each request to a request id.

Every record carries `ts` (RFC 3339 UTC, microseconds), `level`, `logger`, `msg`, the request id of the
request being served (if any) and whatever was passed as `extra=`. The access-log middleware takes the
caller's `X-Request-ID` when it is a sane token, mints one otherwise, and echoes it on the response.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Paths probed every few seconds by orchestrators: logged at debug so they do not drown the access log.
_PROBE_PATHS = frozenset({"/healthz", "/readyz"})
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured duplicate of msg
}

access_logger = logging.getLogger("api.access")
logger = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line; values JSON cannot hold are written with str()."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Route every logger (ours, uvicorn's, alembic's) through one JSON handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        # uvicorn's own dictConfig may have disabled or raised these loggers earlier in the process.
        uvicorn_logger.disabled = False
        uvicorn_logger.setLevel(logging.NOTSET)
    # Our middleware writes the access log (with request ids); uvicorn's own would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


class AccessLogMiddleware:
    """Pure ASGI middleware: request id in context and on the response, one access-log line per request,
    and the last line of defence: an exception nobody handled is logged here and answered with a 500
    error envelope (no stack trace leaves the process)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: int | None = None

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("unhandled error while serving %s %s", scope.get("method", "WS"), scope.get("path"))
            if scope["type"] == "http" and status is None:
                from api.errors import internal_error_response  # errors imports nothing from here; avoid a cycle

                await internal_error_response()(scope, receive, send_with_request_id)
            status = status or 500
        finally:
            path = scope.get("path", "")
            access_logger.log(
                logging.DEBUG if path in _PROBE_PATHS else logging.INFO,
                "%s %s %s",
                scope.get("method", "WS"),
                path,
                status,
                extra={
                    "method": scope.get("method", "WS"),
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            request_id_var.reset(token)
