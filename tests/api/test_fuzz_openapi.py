"""Fuzzing every operation of the OpenAPI document with schemathesis, as each role the operation admits.

Schemathesis draws requests from the document's schemas, both valid ones (positive) and ones that break them on
purpose (negative). They are sent in-process to one running app on a real PostgreSQL, with a listed equity and a bond,
funded investors and resting orders, and path parameters and body fields are often replaced by ids that exist (the
listed symbols, real order ids, participants) so that requests reach past "unknown" into the routes' logic.

Every answer must be: never a 5xx; every error in the envelope `{"error": {"code", "message", "details"}}`; and, as
schemathesis checks them, conforming to the documented response schema and content type. Well-formed requests from
callers an operation does not admit (no key, the other roles) must be refused with 401/403. Bounded for CI: a fixed
number of examples per operation and caller, derandomized so that a run is reproducible; FUZZ_EXAMPLES=N goes deeper
and FUZZ_RANDOM=1 draws new inputs on every run.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.auth import InvestorCategory, Role, create_key, create_participant
from api.settings import Settings
from ledger.postgres import create_database, drop_database
from tests.api.test_authorization_matrix import ACCESS, PUBLIC, UNSTARTED_APP
from tests.api.trading import Caller, fund, issue, list_equity
from tests.conftest import _RUN_TAG, _test_numbers  # the suite's database names, cleaned up after killed runs
from tests.support import client_for, started_app

# A dev dependency (pyproject's `dev` extra); without it this module is skipped, saying so, instead of failing.
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[dev]'")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Order entry is where most of the logic is: three times the examples.
DEEP_OPERATIONS = frozenset({("POST", "/v1/orders"), ("PATCH", "/v1/orders/{order_id}"), ("POST", "/v1/instruments")})
DEEP_EXAMPLES = 3 * EXAMPLES
# FUZZ_RANDOM=1 explores new inputs on every run (a failure prints how to reproduce it); CI runs the same inputs.
DERANDOMIZE = not os.environ.get("FUZZ_RANDOM")
# The regulator's checks run a child process each (about a second): a few examples show they never fail.
SLOW_OPERATIONS = frozenset({("POST", "/v1/regulator/verify"), ("POST", "/v1/regulator/replay")})
SLOW_EXAMPLES = 3
# Requests from callers an operation does not admit: well-formed ones, a few per caller (the matrix covers every pair).
REFUSED_EXAMPLES = 3
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
BASE_URL = "http://exchange.test"

SCHEMA = schemathesis.openapi.from_dict(UNSTARTED_APP.openapi())
OPERATIONS = {
    (operation.method.upper(), operation.path): operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
}


def callers_of(method: str, path: str) -> list[str | None]:
    """Public operations are fuzzed without a key; the others as each role they admit."""
    admitted = ACCESS.get((method, path))
    if admitted is None:
        return []  # an unclassified route fails the authorization matrix; nothing to fuzz it as here
    if admitted == PUBLIC:
        return [None]
    return sorted(role.value for role in admitted)


# Changing a listing's trading state or retiring it would leave the later operations nothing to trade: they run last
# (and order entry, which trades most, runs first).
LIFECYCLE = ("/state", "/suspend", "/resume", "/delist", "/redemption")


def _running_order(operation: tuple[str, str]) -> tuple[bool, str, str]:
    method, path = operation
    return path.endswith(LIFECYCLE), path, method


CASES = [
    (method, path, caller)
    for (method, path) in sorted(OPERATIONS, key=_running_order)
    for caller in callers_of(method, path)
]


@dataclass(frozen=True, slots=True)
class Exchange:
    client: httpx.AsyncClient
    headers: dict[str | None, dict[str, str]]
    known: dict[str, list[str]]  # parameter or field name -> values that name something that exists


async def _caller(app: FastAPI, participant_id: str, role: Role) -> Caller:
    category = InvestorCategory.PROFESSIONAL if role is Role.INVESTOR else None
    async with app.state.pg_pool.acquire() as conn:
        await create_participant(conn, participant_id, participant_id, role, category)
        _, token = await create_key(conn, participant_id)
    return Caller(participant_id, token)


async def _list_bond(client: httpx.AsyncClient, operator: Caller) -> None:
    body = {
        "symbol": "BOND1",
        "kind": "bond",
        "currency": "EUR",
        "tick_size": "0.01",
        "lot_size": 1,
        "reference_price": "100",
        "issuer": "issuer",
        "trading_state": "open",
        "bond": {
            "nominal": "100",
            "coupon_rate": "3.5",
            "coupon_frequency": 2,
            "day_count": "30/360",
            "issue_date": "2024-01-15",
            "maturity_date": "2034-01-15",
        },
    }
    response = await client.post("/v1/instruments", json=body, headers=operator.headers)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
async def exchange(
    database_server_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    url = await create_database(database_server_url, name, template=migrated_template)
    data_dir = Path(tmp_path_factory.mktemp("fuzz")) / "var"
    settings_ = Settings(
        _env_file=None, database_url=url, data_dir=data_dir, rate_limit_per_second=100_000, rate_limit_burst=100_000
    )
    try:
        async with started_app(settings_) as app, client_for(app) as client:
            callers = {role.value: await _caller(app, role.value, role) for role in Role}
            other = await _caller(app, "investor-two", Role.INVESTOR)
            operator = callers[Role.OPERATOR.value]
            await list_equity(client, operator, "COOP", issuer="issuer", maker_fee_bps=5, taker_fee_bps=10)
            await _list_bond(client, operator)
            order_ids = []
            for symbol in ("COOP", "BOND1"):
                await issue(client, operator, symbol, "issuer", "10000")
            resting = {"buy": (("COOP", "9.50"), ("BOND1", "99.50")), "sell": (("COOP", "10.50"), ("BOND1", "100.50"))}
            for who, side in ((callers["investor"], "buy"), (other, "buy"), (callers["issuer"], "sell")):
                await fund(client, operator, who.participant_id, "100000.00")
                for symbol, price in resting[side]:
                    order = {"symbol": symbol, "side": side, "quantity": "10", "price": price}
                    response = await client.post("/v1/orders", json=order, headers=who.headers)
                    assert response.status_code == 201, response.text
                    order_ids.append(response.json()["id"])
            headers: dict[str | None, dict[str, str]] = {role: who.headers for role, who in callers.items()}
            headers[None] = {}
            known = {
                "symbol": ["COOP", "BOND1"],
                "order_id": order_ids,
                "account": ["investor", "investor-two", "issuer"],
                "participant_id": ["investor", "investor-two", "issuer"],
                "issuer_id": ["issuer"],
                "issuer": ["issuer"],
                "side": ["buy", "sell"],
                "currency": ["EUR", "JPY", "USD"],
                # Amounts near the instrument's grid, on it and off it, tiny and huge: past "not a decimal".
                "price": ["9.50", "10.00", "10.50", "9.99", "99.50", "100.00", "100.50", "10.005", "0", "9" * 20],
                "quantity": ["1", "5", "10", "3", "20", "1.5", "0", "1000000", "9" * 20],
                "amount": ["1.00", "0.01", "0.001", "250", "100000000000000000000"],
                "type": ["limit", "limit", "market"],
                "time_in_force": ["GTC", "GTC", "IOC", "FOK", "DAY", "GTD"],
            }
            yield Exchange(client, headers, known)
    finally:
        await drop_database(database_server_url, name)


def _query_value(value: Any) -> str | list[str]:
    """A drawn query value as the text a client would send (negative cases draw objects and nested lists)."""
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


@functools.cache
def body_fields(method: str, path: str) -> frozenset[str]:
    """The property names of an operation's JSON body, from its schema in the document."""
    document = UNSTARTED_APP.openapi()
    content = document["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    for option in [schema, *schema.get("anyOf", [])]:
        reference = option.get("$ref", "")
        if reference.startswith("#/components/schemas/"):
            schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
            break
    return frozenset(schema.get("properties", {}))


def _steer(case: Any, known: dict[str, list[str]], data: st.DataObject) -> None:
    """Three cases in four: give most path parameters and body fields that name things, or amounts, values that exist
    or are plausible (adding optional body fields the draw left out), so that the request reaches the route's logic
    instead of stopping at "unknown instrument" or "not a decimal"."""
    if data.draw(st.integers(0, 3), label="steered") == 0:
        return
    # Copies: a drawn value may be shared with later draws (a `const` schema), which must not see our changes.
    if case.path_parameters:
        case.path_parameters = dict(case.path_parameters)
    if isinstance(case.body, dict):
        case.body = copy.deepcopy(case.body)
    fields = [(case.path_parameters, name) for name in (case.path_parameters or {})]
    if isinstance(case.body, dict):
        names = set(case.body) | body_fields(case.operation.method.upper(), case.operation.path)
        fields += [(case.body, name) for name in sorted(names)]
    for container, name in fields:
        if name in known and data.draw(st.integers(0, 9), label=f"steer {name}") > 0:
            container[name] = data.draw(st.sampled_from(known[name]), label=name)


async def send(exchange: Exchange, case: Any, caller: str | None) -> tuple[httpx.Response, dict[str, Any]]:
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
    headers.update(exchange.headers[caller])
    params = [
        (str(name), item)
        for name, value in (kwargs.get("params") or {}).items()
        for item in ([_query_value(value)] if not isinstance(value, list) else _query_value(value))
    ]
    request: dict[str, Any] = {"headers": headers, "params": params}
    if "json" in kwargs:
        request["content"] = json.dumps(kwargs["json"]).encode()
        headers["Content-Type"] = "application/json"
    elif kwargs.get("data") is not None:
        request["content"] = kwargs["data"]
    response = await exchange.client.request(kwargs["method"], kwargs["url"], **request)
    return response, {**kwargs, "headers": headers}


def assert_error_envelope(response: httpx.Response) -> None:
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"] == error["code"].upper() and error["code"], error
    assert isinstance(error["message"], str) and isinstance(error["details"], dict), error


@functools.cache
def _strategy(method: str, path: str) -> st.SearchStrategy[Any]:
    operation = OPERATIONS[(method, path)]
    return st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]).flatmap(operation.as_strategy)


async def fuzz_once(exchange: Exchange, method: str, path: str, caller: str | None, data: st.DataObject) -> None:
    case = data.draw(_strategy(method, path), label="request")
    _steer(case, exchange.known, data)
    response, sent = await send(exchange, case, caller)
    assert response.status_code < 500, (response.status_code, response.text, sent)
    if response.status_code >= 400:
        assert_error_envelope(response)
    case.validate_response(response, checks=CHECKS, headers=sent["headers"])


def _ids(cases: list[tuple[str, str, str | None]]) -> list[str]:
    return [f"{method} {path} as {caller or 'anyone'}" for method, path, caller in cases]


FAST_CASES = [case for case in CASES if case[:2] not in SLOW_OPERATIONS | DEEP_OPERATIONS]
DEEP_CASES = [case for case in CASES if case[:2] in DEEP_OPERATIONS]
SLOW_CASES = [case for case in CASES if case[:2] in SLOW_OPERATIONS]
FUZZ = settings(deadline=None, derandomize=DERANDOMIZE, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize(("method", "path", "caller"), DEEP_CASES, ids=_ids(DEEP_CASES))
@settings(FUZZ, max_examples=DEEP_EXAMPLES)
@given(data=st.data())
async def test_order_entry_and_listing_never_get_a_server_error_on_any_input(
    exchange: Exchange, method: str, path: str, caller: str | None, data: st.DataObject
) -> None:
    await fuzz_once(exchange, method, path, caller, data)


@pytest.mark.parametrize(("method", "path", "caller"), FAST_CASES, ids=_ids(FAST_CASES))
@settings(FUZZ, max_examples=EXAMPLES)
@given(data=st.data())
async def test_no_input_gets_a_server_error_and_every_answer_keeps_its_documented_shape(
    exchange: Exchange, method: str, path: str, caller: str | None, data: st.DataObject
) -> None:
    await fuzz_once(exchange, method, path, caller, data)


@pytest.mark.parametrize(("method", "path", "caller"), SLOW_CASES, ids=_ids(SLOW_CASES))
@settings(FUZZ, max_examples=SLOW_EXAMPLES)
@given(data=st.data())
async def test_the_regulators_checks_never_fail_on_any_input(
    exchange: Exchange, method: str, path: str, caller: str | None, data: st.DataObject
) -> None:
    await fuzz_once(exchange, method, path, caller, data)


def refused_callers(method: str, path: str) -> list[str | None]:
    """Who must be turned away from a keyed operation: no key, and every role it does not admit."""
    admitted = ACCESS.get((method, path))
    if admitted is None or admitted == PUBLIC:
        return []
    return [None, *sorted(role.value for role in Role if role not in admitted)]


REFUSED_CASES = [
    (method, path, caller)
    for (method, path) in sorted(OPERATIONS, key=_running_order)
    for caller in refused_callers(method, path)
]


@pytest.mark.parametrize(("method", "path", "caller"), REFUSED_CASES, ids=_ids(REFUSED_CASES))
@settings(FUZZ, max_examples=REFUSED_EXAMPLES)
@given(data=st.data())
async def test_valid_requests_from_callers_a_route_does_not_admit_are_refused_before_anything_happens(
    exchange: Exchange, method: str, path: str, caller: str | None, data: st.DataObject
) -> None:
    case = data.draw(OPERATIONS[(method, path)].as_strategy(GenerationMode.POSITIVE), label="request")
    _steer(case, exchange.known, data)
    response, _ = await send(exchange, case, caller)
    assert response.status_code == (401 if caller is None else 403), response.text
    assert_error_envelope(response)


# Found by the fuzzing above: filters passed on to PostgreSQL, which cannot hold a NUL character in a text value.
@pytest.mark.parametrize(
    ("caller", "path", "params"),
    [
        ("investor", "/v1/orders", {"symbol": "COOP\x00"}),
        ("regulator", "/v1/orders", {"account": "investor\x00"}),
        ("investor", "/v1/fills", {"symbol": "COOP\x00"}),
        ("investor", "/v1/me/subscriptions", {"offer_id": "offer\x00"}),
    ],
)
async def test_a_nul_character_in_a_list_filter_is_refused_as_bad_input(
    exchange: Exchange, caller: str, path: str, params: dict[str, str]
) -> None:
    response = await exchange.client.get(path, params=params, headers=exchange.headers[caller])
    assert response.status_code == 422
    assert_error_envelope(response)


# Found by the fuzzing above (FUZZ_RANDOM=1): candle ranges reaching outside the years 1-9999, where the bucket bounds
# (the default start, 300 buckets before `end`, or a time with an offset) cannot be written as timestamps.
@pytest.mark.parametrize(
    "params",
    [
        {"end": "0001-01-01T00:00:00Z"},
        {"end": "0001-04-01T00:06:02Z", "interval": "1d"},
        {"start": "0001-01-01T00:00:00+01:00", "end": "0001-01-01T03:00:00Z"},
        {"end": "9999-12-31T23:30:00-01:00"},
    ],
)
async def test_candles_for_a_range_at_the_edge_of_the_calendar_are_not_a_server_error(
    exchange: Exchange, params: dict[str, str]
) -> None:
    response = await exchange.client.get("/v1/markets/COOP/candles", params=params)
    assert response.status_code in (200, 422), response.text
