"""Operators suspend, resume and delist listings with a reason: journalled trading-state changes, each also an
append-only decision record; suspended and delisted instruments refuse orders with their own codes; delisting
cancels open orders and releases their holds."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.listings import equity_application, list_through_application
from tests.api.trading import Caller, fund, issue, make_caller


@pytest.fixture
async def market(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    """GIRA listed through an application, opened, the issuer holding shares and an investor holding cash."""
    people = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "girasole": await make_caller(api_app, "girasole", Role.ISSUER),
        "alice": await make_caller(api_app, "alice", Role.INVESTOR),
        "regulator": await make_caller(api_app, "consob", Role.REGULATOR),
    }
    await list_through_application(api_client, people["operator"], people["girasole"], equity_application())
    response = await api_client.post(
        "/v1/instruments/GIRA/state", json={"state": "open"}, headers=people["operator"].headers
    )
    assert response.status_code == 200, response.text
    await issue(api_client, people["operator"], "GIRA", "girasole", "1000")
    await fund(api_client, people["operator"], "alice", "5000.00")
    return people


async def _decide(client: httpx.AsyncClient, who: Caller, action: str, **body: object) -> httpx.Response:
    return await client.post(
        f"/v1/listings/GIRA/{action}", json={"reason": f"{action} for the test", **body}, headers=who.headers
    )


def _buy(quantity: str = "10", price: str = "25.00") -> dict[str, str]:
    return {"symbol": "GIRA", "side": "buy", "quantity": quantity, "price": price}


async def test_a_suspension_is_journalled_with_its_reason_and_recorded_as_a_decision(api_client, market, pg_dsn):
    response = await _decide(api_client, market["operator"], "suspend")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trading_state"] == "suspended"
    assert body["decision"]["action"] == "suspend" and body["decision"]["decided_by"] == "ops"
    assert body["decision"]["seq"] == body["seq"]
    conn = await asyncpg.connect(pg_dsn)
    try:
        event = await conn.fetchval(
            "SELECT body FROM events WHERE seq = $1 AND kind = 'TradingStateChanged'", body["seq"]
        )
    finally:
        await conn.close()
    assert "suspend for the test" in event


async def test_a_suspended_instrument_refuses_orders_with_instrument_suspended(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await api_client.post("/v1/orders", json=_buy(), headers=market["alice"].headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INSTRUMENT_SUSPENDED"


async def test_a_resumed_instrument_trades_again(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await _decide(api_client, market["operator"], "resume")
    assert response.status_code == 200
    assert response.json()["trading_state"] == "open"
    order = await api_client.post("/v1/orders", json=_buy(), headers=market["alice"].headers)
    assert order.status_code == 201


async def test_resume_may_name_a_call_phase_to_resume_in(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await _decide(api_client, market["operator"], "resume", state="opening_auction")
    assert response.json()["trading_state"] == "opening_auction"


async def test_resume_refuses_a_state_that_is_not_a_trading_phase(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await _decide(api_client, market["operator"], "resume", state="delisted")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_STATE"


async def test_only_a_suspended_listing_can_be_resumed(api_client, market):
    response = await _decide(api_client, market["operator"], "resume")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "NOT_SUSPENDED"


async def test_suspending_twice_is_a_conflict(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await _decide(api_client, market["operator"], "suspend")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INVALID_STATE_CHANGE"


async def test_delisting_cancels_open_orders_and_releases_their_holds(api_client, market):
    placed = await api_client.post("/v1/orders", json=_buy("10", "24.00"), headers=market["alice"].headers)
    assert placed.status_code == 201
    held = (await api_client.get("/v1/balances", headers=market["alice"].headers)).json()["balances"]
    assert held == [{"asset": "EUR", "total": "5000", "available": "4760", "held": "240"}]
    response = await _decide(api_client, market["operator"], "delist")
    assert response.status_code == 200
    order = (await api_client.get(f"/v1/orders/{placed.json()['id']}", headers=market["alice"].headers)).json()
    assert order["status"] == "cancelled" and order["cancel_reason"] == "delisted"
    balances = (await api_client.get("/v1/balances", headers=market["alice"].headers)).json()["balances"]
    assert balances == [{"asset": "EUR", "total": "5000", "available": "5000", "held": "0"}]


async def test_a_delisted_instrument_refuses_orders_with_instrument_delisted(api_client, market):
    await _decide(api_client, market["operator"], "delist")
    response = await api_client.post("/v1/orders", json=_buy(), headers=market["alice"].headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "INSTRUMENT_DELISTED"


async def test_a_delisting_is_final(api_client, market):
    await _decide(api_client, market["operator"], "delist")
    for action in ("suspend", "delist"):
        response = await _decide(api_client, market["operator"], action)
        assert response.status_code == 409, action


async def test_decisions_on_a_listing_are_listed_newest_first_for_regulators(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    await _decide(api_client, market["operator"], "resume")
    response = await api_client.get("/v1/listings/GIRA/decisions", headers=market["regulator"].headers)
    assert [d["action"] for d in response.json()["decisions"]] == ["resume", "suspend", "approve"]


async def test_the_issuer_reads_the_decisions_on_its_listing(api_client, market):
    await _decide(api_client, market["operator"], "suspend")
    response = await api_client.get("/v1/listings/GIRA/decisions", headers=market["girasole"].headers)
    assert response.status_code == 200
    assert response.json()["decisions"][0]["reason"] == "suspend for the test"


async def test_listing_decisions_are_append_only(api_client, market, pg_dsn):
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE listing_decisions SET reason = 'rewritten'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM listing_decisions")
    finally:
        await conn.close()


async def test_only_operators_change_a_listings_trading(api_client, market):
    for who in ("girasole", "alice", "regulator"):
        response = await _decide(api_client, market[who], "suspend")
        assert response.status_code == 403, who


async def test_an_instrument_listed_without_an_application_has_no_listing_decisions(api_client, market):
    response = await api_client.post(
        "/v1/listings/NOPE/suspend", json={"reason": "no such listing"}, headers=market["operator"].headers
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_LISTING"


async def test_the_operator_sets_the_grace_period_with_a_reason(api_client, market):
    response = await api_client.put(
        "/v1/listings/GIRA/reporting",
        json={"grace_days": 30, "reason": "Shorter grace after two late reports"},
        headers=market["operator"].headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["grace_days"] == 30
    assert response.json()["grace_ends"] == "2030-07-30"
    decisions = (await api_client.get("/v1/listings/GIRA/decisions", headers=market["operator"].headers)).json()
    assert decisions["decisions"][0]["reason"] == "30 days: Shorter grace after two late reports"
