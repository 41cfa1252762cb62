"""The order fast path (api.fastpath) answers exactly as the FastAPI routes it stands in front of.

Each request is sent twice to one running exchange: once with the fast path on, once with it off (FastAPI's route, the
reference), with the same X-Request-ID. Status, headers and body must be equal byte for byte; for new orders the ids,
sequence numbers, timestamps and client order ids necessarily differ, so those are compared after normalising. A spy
on the fast path's next app says whether the fast path answered itself or handed the request to FastAPI, so that
these tests cannot pass by never taking the fast path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from api.metrics import metrics_of
from api.ratelimit import RateLimiter, limiter_of
from api.schemas import PlaceOrderRequest
from api.sequencer import Backpressure, CommitFailed, SequencerState
from tests.api.trading import Caller, fund, issue, list_equity, make_caller

VARYING = {"id", "order_id", "trade_id", "seq", "created_at", "updated_at", "time", "client_order_id"}


class Spy:
    """Wraps the fast path's next app: counts the requests the fast path handed on to FastAPI."""

    def __init__(self, app: FastAPI) -> None:
        self.fast = app.state.order_fast_path
        self.inner = self.fast.app
        self.handed_on = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.handed_on += 1
            await self.inner(scope, receive, send)

        self.fast.app = counting

    def restore(self) -> None:
        self.fast.app = self.inner
        self.fast.enabled = True


@pytest.fixture
async def spy(api_app: FastAPI, api_client: httpx.AsyncClient) -> Any:
    await api_client.get("/healthz")  # the middleware stack (and so the fast path) is built on the first request
    found = Spy(api_app)
    yield found
    found.restore()


@pytest.fixture
async def market(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    callers = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "regulator": await make_caller(api_app, "watchdog", Role.REGULATOR),
        "alice": await make_caller(api_app, "alice", Role.INVESTOR),
        "bob": await make_caller(api_app, "bob", Role.INVESTOR),
    }
    await list_equity(api_client, callers["operator"], "COOP", taker_fee_bps=10, maker_fee_bps=5)
    await fund(api_client, callers["operator"], "alice", "100000.00")
    await issue(api_client, callers["operator"], "COOP", "bob", "100000")
    return callers


Send = Callable[[], Awaitable[httpx.Response]]


async def both(spy: Spy, send: Send) -> tuple[httpx.Response, int, httpx.Response]:
    """(answer with the fast path on, how many requests it handed on to FastAPI, answer with it off)."""
    spy.fast.enabled = True
    before = spy.handed_on
    fast = await send()
    handed_on = spy.handed_on - before
    spy.fast.enabled = False
    try:
        reference = await send()
    finally:
        spy.fast.enabled = True
    return fast, handed_on, reference


def same(fast: httpx.Response, reference: httpx.Response, label: str) -> None:
    assert fast.status_code == reference.status_code, f"{label}: {fast.status_code} != {reference.status_code}"
    assert fast.headers.multi_items() == reference.headers.multi_items(), f"{label}: headers differ"
    assert fast.content == reference.content, f"{label}: {fast.content!r} != {reference.content!r}"


def normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<varies>" if k in VARYING and v is not None else normalised(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def alike(fast: httpx.Response, reference: httpx.Response, label: str) -> None:
    """Equal but for the ids, sequence numbers and times of two different orders."""
    assert fast.status_code == reference.status_code, f"{label}: {fast.text} / {reference.text}"
    assert fast.headers.multi_items() != [] and {
        k: v for k, v in fast.headers.multi_items() if k != "content-length"
    } == {k: v for k, v in reference.headers.multi_items() if k != "content-length"}, f"{label}: headers differ"
    assert normalised(fast.json()) == normalised(reference.json()), f"{label}: {fast.text} / {reference.text}"


def headers(caller: Caller | None, request_id: str, **extra: str) -> dict[str, str]:
    found = {"X-Request-ID": request_id, **extra}
    if caller is not None:
        found.update(caller.headers)
    return found


def post(client: httpx.AsyncClient, body: bytes, hdrs: dict[str, str]) -> Send:
    return lambda: client.post("/v1/orders", content=body, headers=hdrs)


def order(side: str = "buy", quantity: str = "1", price: str | None = "9.00", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": "COOP", "side": side, "quantity": quantity, **extra}
    if price is not None:
        body["price"] = price
    return body


JSON = {"Content-Type": "application/json"}

# Bodies the fast path hands to FastAPI (it answers them itself: not the plain case, or invalid before any check).
BAD_BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "invalid JSON": (b'{"symbol": "COOP",', JSON),
    "empty body": (b"", JSON),
    "text/plain": (json.dumps(order()).encode(), {"Content-Type": "text/plain"}),
    "no content type": (json.dumps(order()).encode(), {}),
    "a list": (b"[1, 2]", JSON),
    "null": (b"null", JSON),
    "extra field": (json.dumps(order(colour="red")).encode(), JSON),
    "missing quantity": (json.dumps({"symbol": "COOP", "side": "buy", "price": "9.00"}).encode(), JSON),
    "price as a number": (b'{"symbol": "COOP", "side": "buy", "quantity": "1", "price": 9.5}', JSON),
    "price NaN literal": (b'{"symbol": "COOP", "side": "buy", "quantity": "1", "price": NaN}', JSON),
    "bad symbol": (json.dumps(order(symbol="co op")).encode(), JSON),
    "NUL in symbol": (json.dumps(order(symbol="CO\u0000P")).encode(), JSON),
    "bad side": (json.dumps(order(side="hold")).encode(), JSON),
    "post_only as text": (json.dumps(order(post_only="yes")).encode(), JSON),
    "bad client order id": (json.dumps(order(client_order_id="a b")).encode(), JSON),
    "bad expiry": (json.dumps(order(time_in_force="GTD", expire_at="tomorrow")).encode(), JSON),
    "invalid UTF-8": (b'{"symbol": "CO\xff", "side": "buy", "quantity": "1"}', JSON),
    "deep nesting": (b"[" * 5000 + b"]" * 5000, JSON),
    # JSON may escape a lone surrogate, which UTF-8 cannot encode: the error must still be a 422, not a 500.
    "lone surrogate price": (json.dumps(order(price="\ud800")).encode(), JSON),
    "lone surrogate key": (json.dumps({**order(), "\ud800": 1}).encode(), JSON),
    "too long a decimal": (json.dumps(order(quantity="1" * 41)).encode(), JSON),
}

# Well-formed bodies that the shared order entry refuses (the fast path answers these itself).
REFUSED_ORDERS: dict[str, dict[str, Any]] = {
    "exponent": order(price="1e3"),
    "NaN text": order(price="NaN"),
    "negative quantity": order(quantity="-1"),
    "fractional quantity": order(quantity="1.5"),
    "off tick": order(price="9.005"),
    "zero price": order(price="0"),
    "unknown symbol": order(symbol="NOPE"),
    "limit without price": order(price=None),
    "market with price": order(type="market"),
    "GTD without expiry": order(time_in_force="GTD"),
    "expiry without GTD": order(expire_at="2030-01-01T00:00:00Z"),
    "outside the band": order(price="50.00"),
    "insufficient funds": order(quantity="99999", price="11.00"),
    "post-only would trade": order(side="buy", price="11.00", post_only=True),
}


async def test_bodies_fastapi_refuses_are_handed_to_it_and_answered_alike(api_client, market, spy):
    for label, (body, extra) in BAD_BODIES.items():
        fast, handed_on, reference = await both(spy, post(api_client, body, headers(market["alice"], "rq-1", **extra)))
        same(fast, reference, label)
        assert handed_on == 1, f"{label}: expected the fast path to hand this to FastAPI"
        assert fast.status_code in (400, 422), f"{label}: {fast.status_code} {fast.text}"


async def test_orders_the_exchange_refuses_are_answered_alike_by_the_fast_path(api_client, market, spy):
    await api_client.post("/v1/orders", json=order("sell", "5", "11.00"), headers=market["bob"].headers)
    for label, body in REFUSED_ORDERS.items():
        encoded = json.dumps(body).encode()
        fast, handed_on, reference = await both(spy, post(api_client, encoded, headers(market["alice"], "rq-2", **JSON)))
        same(fast, reference, label)
        assert handed_on == 0, f"{label}: the fast path should have answered itself"
        assert 400 <= fast.status_code < 500, f"{label}: {fast.status_code} {fast.text}"


async def test_callers_without_the_right_key_or_role_are_refused_alike(api_client, market, spy):
    body = json.dumps(order()).encode()
    cases = {
        "no key": headers(None, "rq-3", **JSON),
        "basic scheme": headers(None, "rq-3", Authorization="Basic abc", **JSON),
        "empty bearer": headers(None, "rq-3", Authorization="Bearer  ", **JSON),
        "unknown key": headers(None, "rq-3", Authorization="Bearer ixk_nobody", **JSON),
        "regulator": headers(market["regulator"], "rq-3", **JSON),
        "operator": headers(market["operator"], "rq-3", **JSON),
    }
    for label, hdrs in cases.items():
        fast, handed_on, reference = await both(spy, post(api_client, body, hdrs))
        same(fast, reference, label)
        assert handed_on == 0 and fast.status_code in (401, 403), f"{label}: {fast.status_code} {fast.text}"


async def test_a_new_order_and_its_fills_are_answered_alike(api_client, market, spy):
    alice = headers(market["alice"], "rq-4", **JSON)
    resting = json.dumps(order("buy", "3", "9.50")).encode()
    fast, handed_on, reference = await both(spy, post(api_client, resting, alice))
    alike(fast, reference, "resting limit")
    assert handed_on == 0 and fast.status_code == 201 and fast.json()["status"] == "new"

    for _ in range(2):
        await api_client.post("/v1/orders", json=order("sell", "4", "10.00"), headers=market["bob"].headers)
    # Each of the two crossing orders meets a resting sell of its own, alike.
    crossing = json.dumps(order("buy", "4", "10.00", time_in_force="IOC")).encode()
    fast, handed_on, reference = await both(spy, post(api_client, crossing, alice))
    alike(fast, reference, "crossing IOC")
    assert handed_on == 0 and fast.json()["status"] == "filled"
    assert [fill["quantity"] for fill in fast.json()["fills"]] == ["4"]

    # json.loads takes a UTF-8 byte order mark (so FastAPI does); the fast path's JSON reader does not: handed on.
    bom = b"\xef\xbb\xbf" + resting
    fast, handed_on, reference = await both(spy, post(api_client, bom, alice))
    alike(fast, reference, "a body after a UTF-8 byte order mark")
    assert handed_on == 1 and fast.status_code == 201

    charset = headers(market["alice"], "rq-4", **{"Content-Type": "application/json; charset=utf-8"})
    fast, handed_on, reference = await both(spy, post(api_client, resting, charset))
    alike(fast, reference, "content type with a charset (handed on, placed by FastAPI)")
    assert handed_on == 1 and fast.status_code == 201


async def test_idempotent_retries_answer_the_first_result_byte_for_byte(api_client, market, spy):
    alice = headers(market["alice"], "rq-5", **JSON)
    first = json.dumps(order("buy", "2", "9.10", client_order_id="dup-1")).encode()
    spy.fast.enabled = True
    placed = await api_client.post("/v1/orders", content=first, headers=alice)
    assert placed.status_code == 201
    fast, handed_on, reference = await both(spy, post(api_client, first, alice))
    same(fast, reference, "retry")
    assert handed_on == 0 and fast.status_code == 200 and fast.json()["id"] == placed.json()["id"]

    different = json.dumps(order("buy", "3", "9.10", client_order_id="dup-1")).encode()
    fast, handed_on, reference = await both(spy, post(api_client, different, alice))
    same(fast, reference, "same id, another order")
    assert handed_on == 0 and fast.status_code == 409


async def test_rate_limit_back_pressure_and_unavailability_are_answered_alike(api_app, api_client, market, spy):
    alice = market["alice"]
    body = json.dumps(order()).encode()
    hdrs = headers(alice, "rq-6", **JSON)
    sequencer = api_app.state.sequencer

    # An empty bucket on a stopped clock: both answers say the same Retry-After and wait.
    saved_limiter = limiter_of(api_app)
    limiter = api_app.state.rate_limiter = RateLimiter(1.0, 1, clock=lambda: 100.0)
    principal = await api_app.state.key_cache.lookup(api_app.state.pg_pool, alice.key)
    limiter.wait_seconds(principal.key_id)
    try:
        fast, handed_on, reference = await both(spy, post(api_client, body, hdrs))
    finally:
        api_app.state.rate_limiter = saved_limiter
    same(fast, reference, "rate limited")
    assert handed_on == 0 and fast.status_code == 429 and fast.headers["retry-after"] == "1"

    async def refuse(exc: Exception) -> Any:
        raise exc

    for label, exc, status in (
        ("back-pressure", Backpressure(0.4), 429),
        ("commit failed", CommitFailed("disk full"), 503),
    ):
        saved_submit = sequencer.submit
        sequencer.submit = lambda command, sender, exc=exc: refuse(exc)
        try:
            fast, handed_on, reference = await both(spy, post(api_client, body, hdrs))
        finally:
            sequencer.submit = saved_submit
        same(fast, reference, label)
        assert handed_on == 0 and fast.status_code == status, f"{label}: {fast.text}"

    sequencer.state = SequencerState.RECOVERING
    try:
        fast, handed_on, reference = await both(spy, post(api_client, body, hdrs))
    finally:
        sequencer.state = SequencerState.RUNNING
    same(fast, reference, "recovering")
    assert handed_on == 0 and fast.status_code == 503 and fast.json()["error"]["code"] == "ENGINE_RECOVERING"

    pool, api_app.state.pg_pool = api_app.state.pg_pool, None
    try:
        fast, handed_on, reference = await both(spy, post(api_client, body, hdrs))
    finally:
        api_app.state.pg_pool = pool
    same(fast, reference, "no database pool")
    assert handed_on == 0 and fast.status_code == 503


async def test_cancels_are_answered_alike(api_client, market, spy):
    alice, bob = market["alice"], market["bob"]
    ids = []
    for _ in range(2):
        placed = await api_client.post("/v1/orders", json=order("buy", "2", "9.20"), headers=alice.headers)
        ids.append(placed.json()["id"])
    hdrs = headers(alice, "rq-7")

    spy.fast.enabled = True
    before = spy.handed_on
    fast = await api_client.delete(f"/v1/orders/{ids[0]}", headers=hdrs)
    assert spy.handed_on == before
    spy.fast.enabled = False
    reference = await api_client.delete(f"/v1/orders/{ids[1]}", headers=hdrs)
    spy.fast.enabled = True
    alike(fast, reference, "cancel")
    assert fast.status_code == 200 and fast.json()["status"] == "cancelled"

    cases = {
        "already cancelled": (f"/v1/orders/{ids[0]}", hdrs),
        "unknown": ("/v1/orders/999999", hdrs),
        "not digits": ("/v1/orders/abc", hdrs),
        "unicode digits": ("/v1/orders/%EF%BC%91%EF%BC%92", hdrs),
        "too many digits": ("/v1/orders/99999999999999999999", hdrs),
        "someone else's": (f"/v1/orders/{ids[1]}", headers(bob, "rq-7")),
        "no key": (f"/v1/orders/{ids[1]}", headers(None, "rq-7")),
        "regulator": (f"/v1/orders/{ids[1]}", headers(market["regulator"], "rq-7")),
    }
    for label, (url, hdrs_) in cases.items():
        fast, handed_on, reference = await both(spy, lambda url=url, h=hdrs_: api_client.delete(url, headers=h))
        same(fast, reference, label)
        assert handed_on == 0 and 400 <= fast.status_code < 500, f"{label}: {fast.status_code} {fast.text}"

    for label, url in (("trailing slash", "/v1/orders/"), ("deeper path", f"/v1/orders/{ids[1]}/x")):
        fast, handed_on, reference = await both(spy, lambda url=url: api_client.delete(url, headers=hdrs))
        same(fast, reference, label)
        assert handed_on == 1, label


async def test_fast_path_requests_are_counted_and_logged_under_their_route(api_app, api_client, market, spy, caplog):
    metrics = metrics_of(api_app)
    before = metrics.http_requests.value("POST", "/v1/orders", "201")
    with caplog.at_level("INFO", logger="api.access"):
        answer = await api_client.post(
            "/v1/orders", json=order("buy", "1", "9.00"), headers=headers(market["alice"], "trace-9")
        )
    assert answer.status_code == 201 and answer.headers["x-request-id"] == "trace-9"
    assert metrics.http_requests.value("POST", "/v1/orders", "201") == before + 1
    [line] = [r for r in caplog.records if r.name == "api.access"]
    assert (line.method, line.path, line.status) == ("POST", "/v1/orders", 201)  # type: ignore[attr-defined]


# Pieces that JSON readers disagree about: byte order marks, NaN, escapes, surrogates, control characters, bad UTF-8.
MANGLES = [
    b"\xef\xbb\xbf", b"\\ud800", b"\\udc80", b"\\u0000", b"\\u0031", b"\x01", b"\xff", b"\xed\xa0\x80", b"\xc3\xa9",
    b"NaN", b"Infinity", b"1e400", b"-0", b"1.0", b"1E5", b".5", b"01", b"true", b"null", b",", b" ", b"\t", b"\r\n",
    b"\x0b", b"\xa0", b'"', b"\\", b"{", b"}", b"[", b"]", b'"price":"1"', b'"quantity":"2"', b"/*x*/",
]  # fmt: skip
SEEDS = [
    b'{"symbol":"COOP","side":"buy","type":"limit","price":"9.95","quantity":"5","time_in_force":"GTC"}',
    b'{"symbol":"COOP","side":"sell","price":"9.95","quantity":"5","time_in_force":"GTD",'
    b'"expire_at":"2030-01-01T00:00:00Z","post_only":true,"client_order_id":"a.b"}',
    b'{"symbol":"COOP","side":"sell","price":"9.95","quantity":"5","time_in_force":"GTD","expire_at":1900000000}',
]


def reference_model(raw: bytes) -> PlaceOrderRequest | None:
    """What FastAPI makes of a body: json.loads, then the model in Python mode (None: refused)."""
    try:
        return PlaceOrderRequest.model_validate(json.loads(raw))
    except ValueError:
        return None


def test_every_body_the_fast_paths_json_reader_accepts_reads_the_same_with_json_loads():
    """The fast path validates with `model_validate_json` and hands on whatever that refuses; so each body it
    accepts must give FastAPI's reading exactly (duplicate keys, escapes, numbers for expire_at...)."""
    rng = random.Random(20251206)
    accepted = 0
    for _ in range(20_000):
        raw = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(raw))
            roll = rng.random()
            if roll < 0.6:
                raw[at:at] = rng.choice(MANGLES)
            elif roll < 0.8:
                del raw[at : at + rng.randint(1, 3)]
            else:
                raw[at : at + 1] = bytes([rng.randrange(256)])
        try:
            fast = PlaceOrderRequest.model_validate_json(bytes(raw))
        except ValueError:
            continue
        accepted += 1
        assert reference_model(bytes(raw)) == fast, bytes(raw)
    duplicate = b'{"symbol":"COOP","side":"buy","price":"1","price":"2","quantity":"5"}'
    assert PlaceOrderRequest.model_validate_json(duplicate) == reference_model(duplicate)
    assert accepted > 200  # the mangling leaves enough bodies valid for the comparison to mean something
