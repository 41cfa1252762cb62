"""`WS /v1/ws`: the market-data feed and the private orders channel over one WebSocket.

Client messages are JSON objects (an optional `id` is echoed in the reply):
  {"op": "subscribe",   "channel": "book" | "trades" | "ticker", "symbol": "ACME"}
  {"op": "unsubscribe", "channel": ..., "symbol": ...}
  {"op": "auth", "key": "<api key>"}          then  {"op": "subscribe", "channel": "orders"}
  {"op": "ping"}
Replies: {"type": "subscribed" | "unsubscribed" | "authenticated" | "pong", ...}; a subscription is followed by a
snapshot of the channel, then its updates. Anything wrong gets {"type": "error", "code": ..., "message": ...} and the
socket stays open. `book` updates carry `seq` and `prev_seq` (the seq of the previous book message for that symbol on
this subscription): a client that sees `prev_seq` differ from the last seq it holds has missed something and subscribes
again for a fresh snapshot.

Two tasks serve a connection: one reads client messages, one writes the client's outbox. A client whose outbox fills
up is closed (code 1008, "slow consumer") by the hub; it never slows the sequencer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg
from fastapi import APIRouter, WebSocket

from api.auth import key_cache
from api.marketdata import PUBLIC_CHANNELS, Channel, MarketData, Subscriber, SubscriptionError

log = logging.getLogger("exchange.ws")

router = APIRouter()

MAX_CLIENT_MESSAGE = 4_096  # characters; client messages are small commands
MAX_SUBSCRIPTIONS = 200  # per connection
_CLOSE_TIMEOUT_SECONDS = 1.0
CLOSE_TRY_AGAIN_LATER = 1013


def _error(code: str, message: str, request_id: Any = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        reply["id"] = request_id
    return reply


class Session:
    """What one connection asked for, interpreted against the hub."""

    def __init__(self, websocket: WebSocket, hub: MarketData, client: Subscriber) -> None:
        self.websocket = websocket
        self.hub = hub
        self.client = client

    def reply(self, message: dict[str, Any]) -> None:
        self.client.send_message(message)

    async def handle(self, text: str) -> None:
        if len(text) > MAX_CLIENT_MESSAGE:
            self.reply(_error("MESSAGE_TOO_LARGE", f"client messages are at most {MAX_CLIENT_MESSAGE} characters"))
            return
        try:
            message = json.loads(text)
        except ValueError:
            self.reply(_error("INVALID_JSON", "messages are JSON objects"))
            return
        if not isinstance(message, dict):
            self.reply(_error("INVALID_MESSAGE", "messages are JSON objects with an \"op\""))
            return
        request_id = message.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
            self.reply(_error("INVALID_MESSAGE", "id must be a string or an integer"))
            return
        op = message.get("op")
        if op == "subscribe" or op == "unsubscribe":
            self._subscription(op, message, request_id)
        elif op == "auth":
            await self._auth(message, request_id)
        elif op == "ping":
            self.reply({"type": "pong", **({} if request_id is None else {"id": request_id})})
        else:
            self.reply(_error("UNKNOWN_OP", "op must be subscribe, unsubscribe, auth or ping", request_id))

    def _subscription(self, op: str, message: dict[str, Any], request_id: Any) -> None:
        try:
            channel = Channel(message.get("channel"))
        except ValueError:
            self.reply(_error("UNKNOWN_CHANNEL", "channel must be book, trades, ticker or orders", request_id))
            return
        symbol = message.get("symbol")
        if channel in PUBLIC_CHANNELS:
            if not isinstance(symbol, str) or not symbol:
                self.reply(_error("SYMBOL_REQUIRED", f"the {channel.value} channel needs a symbol", request_id))
                return
        else:
            symbol = None
        reply: dict[str, Any] = {"channel": channel.value}
        if symbol is not None:
            reply["symbol"] = symbol
        if request_id is not None:
            reply["id"] = request_id
        if op == "unsubscribe":
            if not self.hub.unsubscribe(self.client, channel, symbol):
                self.reply(_error("NOT_SUBSCRIBED", "no such subscription", request_id))
                return
            self.reply({"type": "unsubscribed", **reply})
            return
        if (channel, symbol) not in self.client.subscriptions and len(self.client.subscriptions) >= MAX_SUBSCRIPTIONS:
            self.reply(_error("TOO_MANY_SUBSCRIPTIONS", f"at most {MAX_SUBSCRIPTIONS} per connection", request_id))
            return
        try:
            self.hub.subscribe(self.client, channel, symbol, {"type": "subscribed", **reply})
        except SubscriptionError as refused:
            self.reply(_error(refused.code, refused.message, request_id))

    async def _auth(self, message: dict[str, Any], request_id: Any) -> None:
        key = message.get("key")
        if not isinstance(key, str) or not key.strip():
            self.reply(_error("INVALID_MESSAGE", "auth needs a key", request_id))
            return
        if self.client.principal is not None:
            self.reply(_error("ALREADY_AUTHENTICATED", "this connection is already authenticated", request_id))
            return
        try:
            cache = key_cache(self.websocket)  # type: ignore[arg-type]  # it only needs `.app`
            principal = await cache.lookup(self.websocket.app.state.pg_pool, key.strip())
        except (OSError, asyncpg.PostgresError):
            self.reply(_error("NOT_READY", "the exchange cannot reach its database", request_id))
            return
        if principal is None:
            self.reply(_error("INVALID_API_KEY", "the API key is unknown or revoked", request_id))
            return
        self.client.principal = principal
        reply = {"type": "authenticated", "participant_id": principal.participant_id, "role": principal.role.value}
        if request_id is not None:
            reply["id"] = request_id
        self.reply(reply)


async def _read(websocket: WebSocket, session: Session) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            session.reply(_error("INVALID_MESSAGE", "send text frames of JSON"))
            continue
        try:
            await session.handle(text)
        except Exception:  # a bug in handling one message must not end the connection
            log.exception("websocket message handling failed")
            session.reply(_error("INTERNAL_ERROR", "the message could not be handled"))


async def _write(websocket: WebSocket, client: Subscriber) -> None:
    outbox = client.outbox
    while True:
        await websocket.send_text(await outbox.get())


@router.websocket("/v1/ws")
async def feed(websocket: WebSocket) -> None:
    """Market data (`book`, `trades`, `ticker`) and, after `auth`, the private `orders` channel."""
    hub: MarketData | None = getattr(websocket.app.state, "marketdata", None)
    await websocket.accept()
    if hub is None or not hub.running:
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(_error("NOT_READY", "market data is starting")))
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "market data is starting")
        return
    client = hub.connect()
    session = Session(websocket, hub, client)
    tasks = [
        asyncio.create_task(_read(websocket, session), name=f"ws-read-{client.client_id}"),
        asyncio.create_task(_write(websocket, client), name=f"ws-write-{client.client_id}"),
        asyncio.create_task(client.closed.wait(), name=f"ws-dropped-{client.client_id}"),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.disconnect(client)
    if client.close_code is not None:
        log.info(
            "websocket client closed by the exchange",
            extra={"code": client.close_code, "reason": client.close_reason},
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(client.close_code, client.close_reason), _CLOSE_TIMEOUT_SECONDS)
