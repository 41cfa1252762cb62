"""Who may call what: every route of the API against every kind of caller (no key, a bad key, and one key per role).

`ACCESS` is the specification: for each route (method, path template) the roles admitted, or `PUBLIC`. The routes are
enumerated from the running app (its OpenAPI document plus the framework's own pages), so a route added without a line
here fails `test_every_route_of_the_app_is_in_the_access_table`. The expected outcome of a call is a class, not a
status: 401 without a valid key, 403 for a role not admitted, and "allowed" (anything but 401 and 403: 200, 404, 409,
422...) for the roles admitted. Calls carry an empty JSON body where the route takes one, so most allowed calls stop at
validation; the few that act (cancel all, acknowledge the risk warning, revoke a spare key) act on fixtures made for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from api.app import create_app
from api.auth import InvestorCategory, Role, create_key, create_participant
from api.settings import Settings
from ledger.postgres import create_database, drop_database
from tests.api.trading import Caller, fund, issue, list_equity
from tests.conftest import _RUN_TAG, _test_numbers  # the suite's database names, cleaned up after killed runs
from tests.support import client_for, started_app

PUBLIC = "public"
AUTHENTICATED = frozenset(Role)
INVESTOR = frozenset({Role.INVESTOR})
ISSUER = frozenset({Role.ISSUER})
OPERATOR = frozenset({Role.OPERATOR})
REGULATOR = frozenset({Role.REGULATOR})
ASSESSOR = frozenset({Role.ASSESSOR})
TRADERS = frozenset({Role.INVESTOR, Role.ISSUER})

# (method, path template) -> the roles admitted, or PUBLIC (no key needed).
ACCESS: dict[tuple[str, str], frozenset[Role] | str] = {
    # operations and documentation
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    # order entry and the caller's own orders, fills and balances
    ("POST", "/v1/orders"): TRADERS,
    ("GET", "/v1/orders"): TRADERS | REGULATOR,
    ("DELETE", "/v1/orders"): TRADERS,
    ("GET", "/v1/orders/{order_id}"): TRADERS | REGULATOR,
    ("DELETE", "/v1/orders/{order_id}"): TRADERS,
    ("PATCH", "/v1/orders/{order_id}"): TRADERS,
    ("GET", "/v1/fills"): TRADERS,
    ("GET", "/v1/balances"): TRADERS,
    # public market data
    ("GET", "/v1/instruments"): PUBLIC,
    ("GET", "/v1/instruments/{symbol}"): PUBLIC,
    ("GET", "/v1/instruments/{symbol}/terms"): PUBLIC,
    ("GET", "/v1/markets/{symbol}/book"): PUBLIC,
    ("GET", "/v1/markets/{symbol}/trades"): PUBLIC,
    ("GET", "/v1/markets/{symbol}/ticker"): PUBLIC,
    ("GET", "/v1/markets/{symbol}/candles"): PUBLIC,
    # running the market
    ("POST", "/v1/instruments"): OPERATOR,
    ("POST", "/v1/instruments/{symbol}/state"): OPERATOR,
    ("POST", "/v1/instruments/{symbol}/issuance"): OPERATOR,
    ("POST", "/v1/deposits"): OPERATOR,
    ("POST", "/v1/withdrawals"): OPERATOR,
    # participants and keys
    ("POST", "/v1/participants"): OPERATOR,
    ("GET", "/v1/participants"): OPERATOR | REGULATOR,
    ("GET", "/v1/participants/{participant_id}"): OPERATOR | REGULATOR,
    ("POST", "/v1/participants/{participant_id}/keys"): OPERATOR,
    ("DELETE", "/v1/participants/{participant_id}/keys/{key_id}"): OPERATOR,
    ("GET", "/v1/me"): AUTHENTICATED,
    # investor profiles, the risk warning, offers and corporate actions
    ("PUT", "/v1/investor-profiles/{account}"): OPERATOR,
    ("GET", "/v1/investor-profiles/{account}"): OPERATOR | REGULATOR | INVESTOR,
    ("GET", "/v1/me/risk-warning"): INVESTOR,
    ("POST", "/v1/me/risk-warning"): INVESTOR,
    ("POST", "/v1/offers"): OPERATOR,
    ("GET", "/v1/offers"): PUBLIC,
    ("GET", "/v1/offers/{offer_id}"): PUBLIC,
    ("POST", "/v1/offers/{offer_id}/close"): OPERATOR,
    ("POST", "/v1/offers/{offer_id}/subscriptions"): INVESTOR,
    ("GET", "/v1/me/subscriptions"): INVESTOR,
    ("GET", "/v1/me/distributions"): INVESTOR,
    ("POST", "/v1/instruments/{symbol}/coupons"): OPERATOR,
    ("POST", "/v1/instruments/{symbol}/dividends"): OPERATOR,
    ("POST", "/v1/instruments/{symbol}/redemption"): OPERATOR,
    ("POST", "/v1/instruments/{symbol}/impact-outcome"): OPERATOR,
    # the regulator's reads and checks
    ("GET", "/v1/regulator/orders"): REGULATOR,
    ("GET", "/v1/regulator/trades"): REGULATOR,
    ("GET", "/v1/regulator/events"): REGULATOR,
    ("GET", "/v1/regulator/ledger/entries"): REGULATOR,
    ("GET", "/v1/regulator/journal"): REGULATOR,
    ("GET", "/v1/regulator/export"): REGULATOR,
    ("POST", "/v1/regulator/verify"): REGULATOR,
    ("POST", "/v1/regulator/replay"): REGULATOR,
    # issuers, listing applications and the operators' decisions
    ("PUT", "/v1/issuers/{issuer_id}"): ISSUER,
    ("GET", "/v1/issuers"): PUBLIC,
    ("GET", "/v1/issuers/{issuer_id}"): PUBLIC,
    ("POST", "/v1/issuers/{issuer_id}/screening"): OPERATOR,
    ("POST", "/v1/listing-applications"): ISSUER,
    ("GET", "/v1/listing-applications"): ISSUER | OPERATOR | REGULATOR,
    ("GET", "/v1/listing-applications/{application_id}"): ISSUER | OPERATOR | REGULATOR,
    ("POST", "/v1/listing-applications/{application_id}/approve"): OPERATOR,
    ("POST", "/v1/listing-applications/{application_id}/reject"): OPERATOR,
    ("POST", "/v1/listings/{symbol}/suspend"): OPERATOR,
    ("POST", "/v1/listings/{symbol}/resume"): OPERATOR,
    ("POST", "/v1/listings/{symbol}/delist"): OPERATOR,
    ("PUT", "/v1/listings/{symbol}/reporting"): OPERATOR,
    ("GET", "/v1/listings/{symbol}/decisions"): ISSUER | OPERATOR | REGULATOR,
    # impact reports and the public impact views
    ("POST", "/v1/listings/{symbol}/impact-reports"): ISSUER,
    ("POST", "/v1/impact-reports/{report_id}/assurance"): ASSESSOR,
    ("GET", "/v1/impact-reports/{report_id}"): PUBLIC,
    ("GET", "/v1/impact/instruments"): PUBLIC,
    ("GET", "/v1/impact/instruments/{symbol}"): PUBLIC,
    ("GET", "/v1/impact/instruments/{symbol}/reports"): PUBLIC,
}

# POSTs that only read: the regulator's checks run over the stored journal and change nothing.
READ_ONLY_POSTS = frozenset({("POST", "/v1/regulator/verify"), ("POST", "/v1/regulator/replay")})
# Reads of the caller's OWN account (its fills, balances, risk warning, subscriptions, payments): the regulator has
# none and reads everyone's through /v1/regulator/*, so these refuse it.
OWN_ACCOUNT_VIEWS = frozenset(
    {
        ("GET", "/v1/fills"),
        ("GET", "/v1/balances"),
        ("GET", "/v1/me/risk-warning"),
        ("GET", "/v1/me/subscriptions"),
        ("GET", "/v1/me/distributions"),
    }
)

NO_KEY = "no key"
BAD_KEY = "bad key"
CALLERS = (NO_KEY, BAD_KEY, *(role.value for role in Role))


def app_operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves over HTTP: its OpenAPI operations and its own pages."""
    found: set[tuple[str, str]] = set()
    for path, operations in app.openapi()["paths"].items():
        found.update((method.upper(), path) for method in operations)
    for route in app.routes:  # the framework's pages (/docs, /openapi.json) are not in the OpenAPI document
        if isinstance(route, Route | APIRoute) and route.methods:
            found.update((method, route.path) for method in route.methods if method != "HEAD")
    return sorted(found, key=lambda operation: (operation[1], operation[0]))


UNSTARTED_APP = create_app(Settings(_env_file=None))
OPERATIONS = app_operations(UNSTARTED_APP)


@dataclass(frozen=True, slots=True)
class World:
    """The running app, one key per caller, and the ids the paths are filled with."""

    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    path_values: dict[str, str]
    callers: dict[str, Caller]


async def _caller(app: FastAPI, participant_id: str, role: Role) -> Caller:
    category = InvestorCategory.PROFESSIONAL if role is Role.INVESTOR else None
    async with app.state.pg_pool.acquire() as conn:
        await create_participant(conn, participant_id, participant_id, role, category)
        _, token = await create_key(conn, participant_id)
    return Caller(participant_id, token)


async def _place(client: httpx.AsyncClient, who: Caller, side: str, price: str) -> str:
    body = {"symbol": "COOP", "side": side, "quantity": "5", "price": price}
    response = await client.post("/v1/orders", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
async def world(
    database_server_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    url = await create_database(database_server_url, name, template=migrated_template)
    data_dir = Path(tmp_path_factory.mktemp("authz")) / "var"
    settings = Settings(
        _env_file=None, database_url=url, data_dir=data_dir, rate_limit_per_second=100_000, rate_limit_burst=100_000
    )
    try:
        async with started_app(settings) as app, client_for(app) as client:
            callers = {role.value: await _caller(app, f"{role.value}-one", role) for role in Role}
            other = await _caller(app, "investor-two", Role.INVESTOR)
            spare = await _caller(app, "spare", Role.INVESTOR)  # its key is the one a DELETE .../keys/{key_id} revokes
            async with app.state.pg_pool.acquire() as conn:
                spare_key = await conn.fetchval("SELECT key_id FROM api_keys WHERE participant_id = 'spare'")
            operator = callers[Role.OPERATOR.value]
            await list_equity(client, operator, "COOP")
            await fund(client, operator, "investor-one", "10000.00")
            await issue(client, operator, "COOP", "investor-two", "100")
            await _place(client, callers[Role.INVESTOR.value], "buy", "9.00")
            others_order = await _place(client, other, "sell", "11.00")
            mine = await _place(client, callers[Role.INVESTOR.value], "buy", "9.50")
            headers = {caller: who.headers for caller, who in callers.items()}
            headers[NO_KEY] = {}
            headers[BAD_KEY] = {"Authorization": "Bearer ixk_not-a-key-anyone-was-given"}
            path_values = {
                "order_id": mine,
                "symbol": "COOP",
                "account": "investor-one",
                "participant_id": "spare",
                "key_id": spare_key,
                "issuer_id": "issuer-one",
                "offer_id": "no-such-offer",
                "application_id": "1",
                "report_id": "1",
                "others_order": others_order,
            }
            yield World(client, headers, path_values, {**callers, "investor-two": other, "spare": spare})
    finally:
        await drop_database(database_server_url, name)


def _has_body(app: FastAPI, method: str, path: str) -> bool:
    operation = app.openapi()["paths"].get(path, {}).get(method.lower(), {})
    return "requestBody" in operation


async def call(world: World, method: str, path: str, caller: str) -> httpx.Response:
    url = path.format(**world.path_values)
    body: Any = {} if _has_body(UNSTARTED_APP, method, path) else None
    return await world.client.request(method, url, json=body, headers=world.headers[caller])


def expected_class(method: str, path: str, caller: str) -> str:
    admitted = ACCESS[(method, path)]
    if admitted == PUBLIC:
        return "allowed"
    if caller in (NO_KEY, BAD_KEY):
        return "401"
    assert isinstance(admitted, frozenset)
    return "allowed" if Role(caller) in admitted else "403"


def outcome_class(response: httpx.Response) -> str:
    return str(response.status_code) if response.status_code in (401, 403) else "allowed"


def test_every_route_of_the_app_is_in_the_access_table() -> None:
    unclassified = [operation for operation in OPERATIONS if operation not in ACCESS]
    assert unclassified == [], f"add these routes to ACCESS with the roles they admit: {unclassified}"


def test_the_access_table_names_no_route_the_app_lacks() -> None:
    stale = [operation for operation in ACCESS if operation not in OPERATIONS]
    assert stale == [], f"ACCESS names routes the app does not serve: {stale}"


def test_no_state_changing_route_admits_the_regulator_in_the_table() -> None:
    admitting = [
        operation
        for operation, admitted in ACCESS.items()
        if operation[0] != "GET" and operation not in READ_ONLY_POSTS and admitted != PUBLIC
        and Role.REGULATOR in admitted
    ]
    assert admitting == []


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_each_caller_gets_the_outcome_class_the_table_gives(
    world: World, operation: tuple[str, str], caller: str
) -> None:
    method, path = operation
    if operation not in ACCESS:
        pytest.fail(f"{method} {path} is not classified in ACCESS")
    response = await call(world, method, path, caller)
    assert outcome_class(response) == expected_class(method, path, caller), (response.status_code, response.text)
    if response.status_code in (401, 403):
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}


async def test_the_regulator_is_refused_every_state_changing_route(world: World) -> None:
    answers = {}
    for method, path in OPERATIONS:
        if method in ("POST", "PUT", "PATCH", "DELETE") and (method, path) not in READ_ONLY_POSTS:
            answers[(method, path)] = (await call(world, method, path, Role.REGULATOR.value)).status_code
    assert answers and set(answers.values()) == {403}, {op: s for op, s in answers.items() if s != 403}


async def test_the_regulator_reads_every_read_route_but_the_own_account_views(world: World) -> None:
    refused = []
    for method, path in OPERATIONS:
        if method == "GET" and (method, path) not in OWN_ACCOUNT_VIEWS:
            if (await call(world, method, path, Role.REGULATOR.value)).status_code in (401, 403):
                refused.append(path)
    assert refused == []


async def test_the_regulator_reads_another_participants_order(world: World) -> None:
    order_id = world.path_values["others_order"]
    response = await world.client.get(f"/v1/orders/{order_id}", headers=world.headers[Role.REGULATOR.value])
    assert response.status_code == 200
    assert response.json()["account"] == "investor-two"


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
async def test_an_investor_asking_for_another_investors_order_gets_404(world: World, method: str) -> None:
    order_id = world.path_values["others_order"]
    body = {"quantity": "1"} if method == "PATCH" else None
    response = await world.client.request(
        method, f"/v1/orders/{order_id}", json=body, headers=world.headers[Role.INVESTOR.value]
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_ORDER"
    owner_view = await world.client.get(f"/v1/orders/{order_id}", headers=world.callers["investor-two"].headers)
    assert owner_view.json()["status"] == "new" and owner_view.json()["remaining_quantity"] == "5"


async def test_another_investors_order_and_an_unknown_one_answer_alike(world: World) -> None:
    headers = world.headers[Role.INVESTOR.value]
    others = await world.client.get(f"/v1/orders/{world.path_values['others_order']}", headers=headers)
    unknown = await world.client.get("/v1/orders/999999999", headers=headers)
    assert others.status_code == unknown.status_code == 404
    assert others.json()["error"]["code"] == unknown.json()["error"]["code"]


async def test_an_investors_order_list_never_shows_another_investors_order(world: World) -> None:
    response = await world.client.get("/v1/orders", headers=world.headers[Role.INVESTOR.value])
    assert response.status_code == 200
    accounts = {order["account"] for order in response.json()["orders"]}
    assert accounts == {"investor-one"}
