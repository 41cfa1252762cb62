"""`WS /v1/ws` against a real uvicorn server running the test app: snapshots and deltas that rebuild the REST book,
gap detection by `prev_seq`, public trades without participants, the private orders channel, bad messages, slow
consumers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.auth import Role
from api.marketdata import CLOSE_SLOW_CONSUMER, MarketData, Subscriber
from api.sequencer import Outcome
from exchange.commands import (
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
)
from exchange.events import OrderAccepted
from exchange.instrument import Instrument, InstrumentKind
from exchange.orders import OrderType, Side, TimeInForce
from tests.api.trading import make_caller
from tests.support import free_port

ACCOUNTS = ("inv-alice", "inv-bob", "inv-carol", "inv-dan")
WAIT = 5.0


def equity(symbol: str = "ACME") -> Instrument:
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.EQUITY,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=1_000,
        reference_price=1_000,
        taker_fee_bps=10,
    )


async def submit(app: FastAPI, command: Command) -> Outcome:
    return await app.state.sequencer.submit(command, "@test")


async def limit(app: FastAPI, account: str, side: Side, quantity: int, price: int, symbol: str = "ACME") -> Outcome:
    return await submit(app, PlaceOrder(account, symbol, side, OrderType.LIMIT, quantity, price))


@pytest.fixture
async def market(api_app: FastAPI) -> FastAPI:
    await submit(api_app, ListInstrument(equity()))
    await submit(api_app, ListInstrument(equity("OTHER")))
    for account in ACCOUNTS:
        await submit(api_app, Deposit(account, "EUR", 1_000_000_000))
        await submit(api_app, IssueSecurities(account, "ACME", 1_000_000))
    return api_app


@pytest.fixture
async def ws_url(api_app: FastAPI) -> AsyncIterator[str]:
    """The test app served by uvicorn on a free port, in this event loop (its lifespan is already running)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"ws://127.0.0.1:{port}/v1/ws"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


class Feed:
    """A test client: JSON in and out, with a timeout on every read."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.socket.recv(), WAIT))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def subscribe(self, channel: str, symbol: str | None = "ACME") -> dict[str, Any]:
        """Subscribe and return the snapshot that follows the acknowledgement."""
        message = {"op": "subscribe", "channel": channel}
        if symbol is not None:
            message["symbol"] = symbol
        ack = await self.request(message)
        assert ack["type"] == "subscribed", ack
        return await self.recv()


@pytest.fixture
async def feed(ws_url: str) -> AsyncIterator[Feed]:
    async with connect(ws_url) as socket:
        yield Feed(socket)


class BookGap(Exception):
    """An update whose prev_seq is not the seq the replica holds: something was missed."""


class BookReplica:
    """What a client does with the `book` channel: a snapshot, then updates chained by prev_seq."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        assert snapshot["type"] == "snapshot"
        self.seq = snapshot["seq"]
        self.levels = {
            "buy": {level["price"]: level for level in snapshot["bids"]},
            "sell": {level["price"]: level for level in snapshot["asks"]},
        }

    def apply(self, update: dict[str, Any]) -> None:
        assert update["type"] == "update"
        if update["prev_seq"] != self.seq:
            raise BookGap(f"update {update['seq']} follows {update['prev_seq']}, replica is at {self.seq}")
        for change in update["changes"]:
            side = self.levels[change["side"]]
            level = {k: change[k] for k in ("price", "quantity", "order_count")}
            if change["quantity"] == "0":
                side.pop(change["price"], None)
            else:
                side[change["price"]] = level
        self.seq = update["seq"]

    def book(self) -> dict[str, Any]:
        def ordered(side: str, best_high: bool) -> list[dict[str, Any]]:
            return sorted(self.levels[side].values(), key=lambda lvl: Decimal(lvl["price"]), reverse=best_high)

        return {"seq": self.seq, "bids": ordered("buy", True), "asks": ordered("sell", False)}


async def rest_book(client: httpx.AsyncClient, symbol: str = "ACME") -> dict[str, Any]:
    body = (await client.get(f"/v1/markets/{symbol}/book", params={"depth": 1000})).json()
    return {"seq": body["seq"], "bids": body["bids"], "asks": body["asks"]}


async def catch_up(feed: Feed, replica: BookReplica, seq: int) -> None:
    while replica.seq < seq:
        message = await feed.recv()
        if message.get("channel") == "book":
            replica.apply(message)


# ---------------------------------------------------------------------------------------------------- the book channel


async def test_a_book_subscription_starts_with_a_snapshot_of_the_committed_book(market: FastAPI, feed: Feed):
    placed = await limit(market, "inv-alice", Side.BUY, 10, 990)
    snapshot = await feed.subscribe("book")
    assert snapshot["channel"] == "book" and snapshot["symbol"] == "ACME"
    assert snapshot["seq"] == placed.seq
    assert snapshot["bids"] == [{"price": "9.9", "quantity": "10", "order_count": 1}]
    assert snapshot["asks"] == []


async def test_each_command_that_touches_the_book_sends_one_update_with_its_changes(market: FastAPI, feed: Feed):
    snapshot = await feed.subscribe("book")
    resting = await limit(market, "inv-alice", Side.SELL, 10, 1_010)
    taking = await limit(market, "inv-bob", Side.BUY, 4, 1_010)
    first, second = await feed.recv(), await feed.recv()
    assert (first["seq"], first["prev_seq"]) == (resting.seq, snapshot["seq"])
    assert first["changes"] == [{"side": "sell", "price": "10.1", "quantity": "10", "order_count": 1}]
    assert (second["seq"], second["prev_seq"]) == (taking.seq, resting.seq)
    assert second["changes"] == [{"side": "sell", "price": "10.1", "quantity": "6", "order_count": 1}]


async def test_commands_that_leave_the_book_alone_send_no_update(market: FastAPI, feed: Feed):
    await feed.subscribe("book")
    await submit(market, Deposit("inv-alice", "EUR", 100))
    await limit(market, "inv-alice", Side.BUY, 1, 990, symbol="OTHER")
    placed = await limit(market, "inv-alice", Side.BUY, 1, 990)
    update = await feed.recv()
    assert update["symbol"] == "ACME" and update["seq"] == placed.seq


async def test_snapshot_and_updates_rebuild_the_rest_book_at_every_seq(
    market: FastAPI, feed: Feed, api_client: httpx.AsyncClient
):
    rng = random.Random(20_240_611)
    replica = BookReplica(await feed.subscribe("book"))
    open_orders: list[tuple[str, int]] = []

    def remember(outcome: Outcome) -> None:
        open_orders.extend((e.account, e.order_id) for e in outcome.events if isinstance(e, OrderAccepted))

    def random_command() -> Command:
        roll = rng.random()
        account = rng.choice(ACCOUNTS)
        if roll < 0.15 and open_orders:
            owner, order_id = rng.choice(open_orders)
            return CancelOrder(owner, order_id)
        if roll < 0.25 and open_orders:
            owner, order_id = rng.choice(open_orders)
            return AmendOrder(owner, order_id, price=rng.randint(960, 1_040), quantity=rng.randint(1, 40))
        side = rng.choice((Side.BUY, Side.SELL))
        tif = TimeInForce.IOC if roll > 0.9 else TimeInForce.GTC
        return PlaceOrder(account, "ACME", side, OrderType.LIMIT, rng.randint(1, 40), rng.randint(960, 1_040), tif)

    for step in range(120):
        if step % 10 == 9:  # a burst: several commands in one batch, each still its own update
            outcomes = await asyncio.gather(*(submit(market, random_command()) for _ in range(8)))
        else:
            outcomes = [await submit(market, random_command())]
        for outcome in outcomes:
            remember(outcome)
        expected = await rest_book(api_client)
        await catch_up(feed, replica, expected["seq"])
        assert replica.book() == expected, f"after step {step}"
    assert len(open_orders) > 50


async def test_a_client_that_missed_an_update_sees_the_gap_and_recovers_by_subscribing_again(
    market: FastAPI, feed: Feed, api_client: httpx.AsyncClient
):
    replica = BookReplica(await feed.subscribe("book"))
    await limit(market, "inv-alice", Side.BUY, 10, 990)
    await limit(market, "inv-bob", Side.BUY, 5, 980)
    await feed.recv()  # lost on the client's side
    with pytest.raises(BookGap):
        replica.apply(await feed.recv())
    replica = BookReplica(await feed.subscribe("book"))
    assert replica.book() == await rest_book(api_client)
    placed = await limit(market, "inv-carol", Side.SELL, 2, 1_020)
    replica.apply(await feed.recv())
    assert replica.seq == placed.seq
    assert replica.book() == await rest_book(api_client)


async def test_an_unsubscribed_channel_sends_nothing_more(market: FastAPI, feed: Feed):
    await feed.subscribe("book")
    reply = await feed.request({"op": "unsubscribe", "channel": "book", "symbol": "ACME"})
    assert reply == {"type": "unsubscribed", "channel": "book", "symbol": "ACME"}
    await limit(market, "inv-alice", Side.BUY, 10, 990)
    assert await feed.request({"op": "ping", "id": 7}) == {"type": "pong", "id": 7}


# ---------------------------------------------------------------------------------------------------- trades and ticker


async def test_the_trades_channel_shows_public_trades_without_participants(market: FastAPI, feed: Feed):
    await limit(market, "inv-alice", Side.SELL, 10, 1_000)
    await limit(market, "inv-bob", Side.BUY, 3, 1_000)
    snapshot = await feed.subscribe("trades")
    assert [(t["price"], t["quantity"], t["aggressor"]) for t in snapshot["trades"]] == [("10", "3", "buy")]
    taking = await limit(market, "inv-carol", Side.BUY, 7, 1_000)
    update = await feed.recv()
    assert update["channel"] == "trades" and update["seq"] == taking.seq
    [public] = update["trades"]
    assert set(public) == {"trade_id", "seq", "price", "quantity", "aggressor", "time"}
    assert (public["quantity"], public["aggressor"]) == ("7", "buy")
    assert not any(account in json.dumps(snapshot) + json.dumps(update) for account in ACCOUNTS)


async def test_the_ticker_channel_sends_a_snapshot_then_changes(market: FastAPI, feed: Feed):
    snapshot = await feed.subscribe("ticker")
    assert snapshot["type"] == "snapshot" and snapshot["last_price"] is None
    await limit(market, "inv-alice", Side.SELL, 10, 1_010)
    quoted = await feed.recv()
    assert quoted["type"] == "update" and quoted["best_ask"] == "10.1"
    await limit(market, "inv-bob", Side.BUY, 10, 1_010)
    traded = await feed.recv()
    assert (traded["last_price"], traded["volume_24h"], traded["best_ask"]) == ("10.1", "10", None)


# ---------------------------------------------------------------------------------------------------- private orders


async def test_the_orders_channel_needs_an_api_key(market: FastAPI, feed: Feed):
    reply = await feed.request({"op": "subscribe", "channel": "orders"})
    assert reply["type"] == "error" and reply["code"] == "UNAUTHENTICATED"
    reply = await feed.request({"op": "auth", "key": "ixk_not-a-key"})
    assert reply["type"] == "error" and reply["code"] == "INVALID_API_KEY"


async def test_the_orders_channel_sends_only_the_callers_own_order_events(market: FastAPI, ws_url: str):
    alice = await make_caller(market, "inv-alice", Role.INVESTOR)
    async with connect(ws_url) as socket:
        feed = Feed(socket)
        assert (await feed.request({"op": "auth", "key": alice.key}))["participant_id"] == "inv-alice"
        assert (await feed.request({"op": "subscribe", "channel": "orders"}))["type"] == "subscribed"
        await limit(market, "inv-bob", Side.SELL, 10, 1_000)  # not hers: nothing is sent
        placed = await limit(market, "inv-alice", Side.BUY, 4, 1_000)
        accepted, fill = await feed.recv(), await feed.recv()
        assert accepted["type"] == "accepted" and accepted["seq"] == placed.seq
        assert (accepted["account"], accepted["side"], accepted["price"], accepted["quantity"]) == (
            "inv-alice",
            "buy",
            "10",
            "4",
        )
        assert fill["type"] == "fill" and fill["account"] == "inv-alice"
        assert (fill["side"], fill["quantity"], fill["liquidity"], fill["fee"]) == ("buy", "4", "taker", "0.04")
        assert "inv-bob" not in json.dumps(fill)
        await submit(market, CancelOrder("inv-alice", 10**9))
        rejected = await feed.recv()
        assert (rejected["type"], rejected["reason"]) == ("rejected", "UNKNOWN_ORDER")


async def test_a_regulator_sees_every_participants_order_events(market: FastAPI, ws_url: str):
    regulator = await make_caller(market, "consob", Role.REGULATOR)
    async with connect(ws_url) as socket:
        feed = Feed(socket)
        await feed.request({"op": "auth", "key": regulator.key})
        await feed.request({"op": "subscribe", "channel": "orders"})
        await limit(market, "inv-bob", Side.SELL, 10, 1_000)
        await limit(market, "inv-alice", Side.BUY, 4, 1_000)
        seen = [await feed.recv() for _ in range(4)]
        assert [(m["type"], m["account"]) for m in seen] == [
            ("accepted", "inv-bob"),
            ("accepted", "inv-alice"),
            ("fill", "inv-alice"),
            ("fill", "inv-bob"),
        ]


# ---------------------------------------------------------------------------------------------------- protocol errors


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "INVALID_JSON"),
        ("[1, 2]", "INVALID_MESSAGE"),
        ({"op": "dance"}, "UNKNOWN_OP"),
        ({"op": "subscribe", "channel": "gossip", "symbol": "ACME"}, "UNKNOWN_CHANNEL"),
        ({"op": "subscribe", "channel": "book"}, "SYMBOL_REQUIRED"),
        ({"op": "subscribe", "channel": "book", "symbol": "NOPE"}, "UNKNOWN_INSTRUMENT"),
        ({"op": "unsubscribe", "channel": "trades", "symbol": "ACME"}, "NOT_SUBSCRIBED"),
        ({"op": "auth"}, "INVALID_MESSAGE"),
        ({"op": "ping", "id": {"nested": True}}, "INVALID_MESSAGE"),
        ("x" * 5_000, "MESSAGE_TOO_LARGE"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_socket_stays_open(market: FastAPI, feed: Feed, message, code):
    reply = await feed.request(message)
    assert reply["type"] == "error" and reply["code"] == code
    assert (await feed.request({"op": "ping"}))["type"] == "pong"


async def test_a_binary_frame_gets_an_error(market: FastAPI, feed: Feed):
    await feed.socket.send(b"\x00\x01")
    assert (await feed.recv())["code"] == "INVALID_MESSAGE"


# ---------------------------------------------------------------------------------------------------- slow consumers


async def test_a_client_that_cannot_keep_up_is_dropped_with_a_reason(market: FastAPI, ws_url: str):
    hub: MarketData = market.state.marketdata
    hub.queue_size = 4
    async with connect(ws_url) as socket:
        feed = Feed(socket)
        await feed.subscribe("book")
        # One batch of 30 commands: the listener queues 30 updates at once, more than the outbox holds.
        outcomes = await asyncio.gather(*(limit(market, "inv-alice", Side.BUY, 1, 900 + i) for i in range(30)))
        assert all(o.events for o in outcomes)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await feed.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_SLOW_CONSUMER
    assert "slow consumer" in closed.value.rcvd.reason
    for _ in range(100):
        if hub.ws_clients == 0:
            break
        await asyncio.sleep(0.01)
    assert hub.ws_clients == 0 and hub.dropped_clients == 1


async def test_a_full_outbox_drops_the_client_without_waiting():
    client = Subscriber(1, queue_size=2)
    assert client.send("a") and client.send("b")
    assert not client.send("c")
    assert client.closed.is_set() and client.close_code == CLOSE_SLOW_CONSUMER
    assert not client.send("d")  # nothing more is queued for a dropped client
    assert client.outbox.qsize() == 2


async def test_ws_clients_counts_the_connected_clients(market: FastAPI, ws_url: str):
    hub: MarketData = market.state.marketdata
    async with connect(ws_url) as first, connect(ws_url) as second:
        for socket in (first, second):
            assert (await Feed(socket).request({"op": "ping"}))["type"] == "pong"
        assert hub.ws_clients == 2
    for _ in range(100):
        if hub.ws_clients == 0:
            break
        await asyncio.sleep(0.01)
    assert hub.ws_clients == 0
