"""The order fast path: `POST /v1/orders` and `DELETE /v1/orders/{order_id}` answered by a lean ASGI handler in front
of FastAPI, with exactly the semantics of the FastAPI routes in `api.routes.orders`.

Why: those two routes are the hot path of a trading day, and FastAPI's general machinery (request objects, dependency
solving, body parsing by content negotiation, response revalidation, three middleware layers) cost several times the
work of the order itself. The FastAPI routes stay: they document the operations in OpenAPI and are the reference
implementation the fast path is tested against (tests/api/test_fastpath_parity.py).

How the semantics stay the same:
- the business work is ONE shared function per route (`orders.place`, `orders.cancel`), and authentication, the rate
  limit and the role check are the same shared functions the FastAPI dependencies call (`auth.principal_for`,
  `ratelimit.take_token`, `auth.RoleCheck`), checked in the same order;
- the body is validated by the same model, `PlaceOrderRequest`, straight from the bytes (`model_validate_json`, about
  half the cost of FastAPI's `json.loads` then `model_validate`). Its JSON reader is stricter than `json.loads` in
  corners (a UTF-8 byte order mark, NaN): whatever it refuses goes to FastAPI, and whatever it accepts `json.loads`
  reads to the same model (tests/api/test_fastpath_parity.py checks that on thousands of mangled bodies);
- anything but the plain case (another content type, an empty, invalid or very large body, a body that fails
  validation, a disconnect, a root path) is handed to FastAPI untouched, with the body already read replayed, so
  FastAPI produces its own answer for it; nothing has been charged to the caller's rate limit by then;
- errors raised by the shared functions are answered by the app's own exception handlers, as FastAPI's exception
  middleware would; an unexpected exception propagates like one from the route;
- the route object goes into `scope["route"]`, so metrics label the request by the same template.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal, RoleCheck, principal_for
from api.ratelimit import take_token
from api.routes import orders
from api.schemas import OrderView, PlaceOrderRequest

ORDERS_PATH = "/v1/orders"
_ORDER_PREFIX = ORDERS_PATH + "/"
# Larger bodies go to FastAPI (no order is anywhere near this): the fast path never buffers without bound.
MAX_BODY_BYTES = 64 * 1024
_JSON = b"application/json"
_validate_json = PlaceOrderRequest.model_validate_json
# What FastAPI serializes a `response_model=OrderView` answer with (`ModelField.serialize_json`): the same bytes.
_dump_order: Callable[..., bytes] = TypeAdapter(OrderView).dump_json


def _route(app: FastAPI, path: str, method: str) -> APIRoute | None:
    """The orders router's route for `path` and `method`, if `app` serves that router; the very object FastAPI puts
    into `scope["route"]` when it routes there itself."""
    if not any(getattr(r, "original_router", r) is orders.router for r in app.router.routes):
        return None
    for route in orders.router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in route.methods:
            return route
    return None


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first gives back the messages already read, then reads on."""
    pending = iter(messages)

    async def replay() -> Message:
        for message in pending:
            return message
        return await receive()

    return replay


class OrderFastPath:
    """ASGI middleware answering the two hot order routes itself; everything else goes on to `app`.

    `enabled` may be switched off at run time (the parity tests compare both paths on one running exchange)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.place_route = _route(api, ORDERS_PATH, "POST")
        self.cancel_route = _route(api, ORDERS_PATH + "/{order_id}", "DELETE")
        self.enabled = self.place_route is not None and self.cancel_route is not None
        self.check_role = RoleCheck(orders.TRADERS)
        # What Starlette's ExceptionMiddleware handles (the 500/Exception handler belongs to ServerErrorMiddleware).
        self.handlers = {
            key: handler for key, handler in api.exception_handlers.items() if key not in (500, Exception)
        }
        api.state.order_fast_path = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.enabled and not scope.get("root_path"):
            method = scope["method"]
            path = scope["path"]
            if method == "POST" and path == ORDERS_PATH:
                await self._place(scope, receive, send)
                return
            if method == "DELETE" and path.startswith(_ORDER_PREFIX):
                order_id = path[len(_ORDER_PREFIX) :]
                if order_id and "/" not in order_id:
                    await self._cancel(scope, receive, send, order_id)
                    return
        await self.app(scope, receive, send)

    async def _place(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value
            elif name == b"content-type" and content_type is None:
                content_type = value
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or len(body) > MAX_BODY_BYTES:
                await self.app(scope, _replaying(messages, receive), send)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            if content_type != _JSON or not body:
                raise ValueError("not the plain case")
            request = _validate_json(body)
        except Exception:  # noqa: BLE001 - FastAPI answers whatever is wrong with the body, exactly as it would
            await self.app(scope, _replaying(messages, receive), send)
            return
        scope["route"] = self.place_route
        try:
            principal = await self._admit(scope, authorization)
            status, view = await orders.place(self.api, principal, request)
        except Exception as exc:  # noqa: BLE001 - answered by the app's handler for it, or re-raised
            await self._error(scope, receive, send, exc)
            return
        await _answer(send, status, _dump_order(view, by_alias=True))

    async def _cancel(self, scope: Scope, receive: Receive, send: Send, order_id: str) -> None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        scope["route"] = self.cancel_route
        try:
            principal = await self._admit(scope, authorization)
            view = await orders.cancel(self.api, principal, order_id)
        except Exception as exc:  # noqa: BLE001 - answered by the app's handler for it, or re-raised
            await self._error(scope, receive, send, exc)
            return
        await _answer(send, 200, _dump_order(view, by_alias=True))

    async def _admit(self, scope: Scope, authorization: bytes | None) -> Principal:
        """The caller, authenticated, charged one token and allowed to trade: the FastAPI dependencies' checks, in
        their order. Raises what they raise."""
        api = self.api
        principal = await principal_for(api, "" if authorization is None else authorization.decode("latin-1"))
        scope.setdefault("state", {})["principal"] = principal
        take_token(api, principal)
        self.check_role(principal)
        return principal

    async def _error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """Answer `exc` with the app's handler for the nearest class in its MRO, as Starlette does; else re-raise."""
        handler: Any = None
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                break
        if handler is None:
            raise exc
        response = handler(Request(scope, receive), exc)
        if inspect.isawaitable(response):
            response = await response
        await response(scope, receive, send)


async def _answer(send: Send, status: int, payload: bytes) -> None:
    """The two messages a `Response(payload, status, media_type="application/json")` sends, headers in its order."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(payload)).encode("latin-1")), (b"content-type", _JSON)],
        }
    )
    await send({"type": "http.response.body", "body": payload})
