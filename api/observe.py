"""One pure-ASGI middleware that observes every request: its request id, its access-log line, its HTTP metrics, and
the last line of defence against an exception nobody handled.

It replaces two middlewares (access log, HTTP metrics) that each wrapped `send` and timed the request: one wrapper
per request is enough. Request ids are the caller's `X-Request-ID` when it is a sane token, else minted from a
per-process random prefix and a counter (32 hex characters, unique within the process and across restarts with
overwhelming probability), which costs far less than a uuid4 per request.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logging import REQUEST_ID_HEADER, access_logger, request_id_var
from api.metrics import UNMATCHED_ROUTE, ExchangeMetrics

logger = logging.getLogger("api.logging")  # where unhandled errors were always logged

_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Paths probed every few seconds by orchestrators: logged at debug so they do not drown the access log.
_PROBE_PATHS = frozenset({"/healthz", "/readyz"})
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")


def request_id_minter() -> Callable[[], str]:
    """A function returning a new request id on each call: 16 random hex digits, then a 16-digit counter."""
    prefix = os.urandom(8).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("latin-1") if _VALID_REQUEST_ID.fullmatch(value) else None
    return None


class ObserveMiddleware:
    """Request id in context, in `scope["state"]` and on the response; one access-log line per request; the request
    counted by method, route template and status with its duration; an unhandled exception logged and answered with
    a 500 error envelope (no stack trace leaves the process)."""

    def __init__(self, app: ASGIApp, metrics: ExchangeMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.mint = request_id_minter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or self.mint()
        header = (_REQUEST_ID_KEY, request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: int | None = None

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Same effect as MutableHeaders(scope=message)[...] = ...: a fresh list, any earlier value replaced.
                message["headers"] = [h for h in message.get("headers", ()) if h[0].lower() != _REQUEST_ID_KEY]
                message["headers"].append(header)
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("unhandled error while serving %s %s", scope.get("method", "WS"), scope.get("path"))
            if kind == "http" and status is None:
                from api.errors import internal_error_response  # errors imports nothing from here; avoid a cycle

                await internal_error_response()(scope, receive, send_with_request_id)
            status = status or 500
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "WS")
            path = scope.get("path", "")
            if kind == "http":
                # The router (or the order fast path) puts the matched route into the scope; a path no route knows
                # keeps one shared label, so the label set stays bounded.
                route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
                self.metrics.on_request(method, route, 500 if status is None else status, elapsed)
            level = logging.DEBUG if path in _PROBE_PATHS else logging.INFO
            if access_logger.isEnabledFor(level):  # the extra dict costs more than the call: build it when needed
                access_logger.log(
                    level,
                    "%s %s %s",
                    method,
                    path,
                    status,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            request_id_var.reset(token)
