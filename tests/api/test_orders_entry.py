"""Order entry over HTTP: answered after commit, strict decimals, idempotent client order ids, own orders only."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.trading import Caller, fund, issue, list_equity, make_caller


@pytest.fixture
async def market(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    operator = await make_caller(api_app, "ops", Role.OPERATOR)
    alice = await make_caller(api_app, "alice", Role.INVESTOR)
    bob = await make_caller(api_app, "bob", Role.INVESTOR)
    await list_equity(api_client, operator, "COOP", taker_fee_bps=10, maker_fee_bps=5)
    await fund(api_client, operator, "alice", "10000.00")
    await issue(api_client, operator, "COOP", "bob", "1000")
    return {"operator": operator, "alice": alice, "bob": bob}


def order(side: str, quantity: str, price: str | None = "10.00", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"symbol": "COOP", "side": side, "quantity": quantity, **extra}
    if price is not None:
        body["price"] = price
    return body


async def test_a_resting_limit_order_is_answered_as_new_with_its_remaining_quantity(api_client, market):
    response = await api_client.post("/v1/orders", json=order("sell", "100"), headers=market["bob"].headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "new"
    assert body["remaining_quantity"] == "100"
    assert body["filled_quantity"] == "0"
    assert body["price"] == "10"
    assert body["fills"] == []


async def test_a_crossing_order_reports_its_fills_at_the_makers_price(api_client, market):
    await api_client.post("/v1/orders", json=order("sell", "100", "9.50"), headers=market["bob"].headers)
    response = await api_client.post("/v1/orders", json=order("buy", "40", "10.00"), headers=market["alice"].headers)
    body = response.json()
    assert body["status"] == "filled"
    assert body["average_price"] == "9.5"
    [fill] = body["fills"]
    assert fill["price"] == "9.5" and fill["quantity"] == "40" and fill["liquidity"] == "taker"
    assert fill["fee"] == "0.38"  # 380.00 EUR x 10 bps


async def test_balances_show_available_and_held_after_a_resting_buy(api_client, market):
    await api_client.post("/v1/orders", json=order("buy", "10", "10.00"), headers=market["alice"].headers)
    response = await api_client.get("/v1/balances", headers=market["alice"].headers)
    [eur] = response.json()["balances"]
    # 100.00 EUR notional + the fee bound of 10 bps rounded up per lot (1 cent x 10 lots).
    assert eur == {"asset": "EUR", "total": "10000", "available": "9899.9", "held": "100.1"}


async def test_a_price_sent_as_a_json_number_is_refused_with_422(api_client, market):
    body = order("buy", "10", None) | {"price": 10.05}
    response = await api_client.post("/v1/orders", json=body, headers=market["alice"].headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ("10.005", "PRICE_NOT_ON_TICK"),
        ("1e3", "INVALID_DECIMAL"),
        ("-1", "INVALID_DECIMAL"),
        ("NaN", "INVALID_DECIMAL"),
        ("0", "PRICE_NOT_POSITIVE"),
        ("12345678901234567890.123456789", "INVALID_DECIMAL"),
    ],
)
async def test_a_bad_price_string_is_refused_with_a_code_that_names_the_problem(api_client, market, price, code):
    response = await api_client.post("/v1/orders", json=order("buy", "10", price), headers=market["alice"].headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


async def test_an_order_beyond_the_funds_is_rejected_and_changes_nothing(api_client, market):
    response = await api_client.post("/v1/orders", json=order("buy", "5000", "10.00"), headers=market["alice"].headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    balances = (await api_client.get("/v1/balances", headers=market["alice"].headers)).json()["balances"]
    assert balances == [{"asset": "EUR", "total": "10000", "available": "10000", "held": "0"}]


async def test_resending_the_same_client_order_id_returns_the_first_order(api_client, market):
    body = order("sell", "10", client_order_id="abc-1")
    first = await api_client.post("/v1/orders", json=body, headers=market["bob"].headers)
    again = await api_client.post("/v1/orders", json=body, headers=market["bob"].headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    listed = (await api_client.get("/v1/orders", headers=market["bob"].headers)).json()["orders"]
    assert len(listed) == 1


async def test_the_same_client_order_id_with_a_different_order_is_a_conflict(api_client, market):
    await api_client.post("/v1/orders", json=order("sell", "10", client_order_id="abc-2"), headers=market["bob"].headers)
    response = await api_client.post(
        "/v1/orders", json=order("sell", "11", client_order_id="abc-2"), headers=market["bob"].headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID"


async def test_another_participants_order_answers_404(api_client, market):
    placed = (await api_client.post("/v1/orders", json=order("sell", "10"), headers=market["bob"].headers)).json()
    response = await api_client.get(f"/v1/orders/{placed['id']}", headers=market["alice"].headers)
    assert response.status_code == 404
    cancel = await api_client.delete(f"/v1/orders/{placed['id']}", headers=market["alice"].headers)
    assert cancel.status_code == 404


async def test_cancelling_an_order_releases_its_hold(api_client, market):
    placed = (await api_client.post("/v1/orders", json=order("buy", "10"), headers=market["alice"].headers)).json()
    response = await api_client.delete(f"/v1/orders/{placed['id']}", headers=market["alice"].headers)
    assert response.json()["status"] == "cancelled"
    balances = (await api_client.get("/v1/balances", headers=market["alice"].headers)).json()["balances"]
    assert balances[0]["held"] == "0"


async def test_cancelling_a_done_order_is_a_conflict(api_client, market):
    placed = (await api_client.post("/v1/orders", json=order("buy", "10"), headers=market["alice"].headers)).json()
    await api_client.delete(f"/v1/orders/{placed['id']}", headers=market["alice"].headers)
    again = await api_client.delete(f"/v1/orders/{placed['id']}", headers=market["alice"].headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "ORDER_ALREADY_DONE"


async def test_lowering_quantity_by_amend_keeps_the_order_open_with_the_new_quantity(api_client, market):
    placed = (await api_client.post("/v1/orders", json=order("sell", "10"), headers=market["bob"].headers)).json()
    response = await api_client.patch(
        f"/v1/orders/{placed['id']}", json={"quantity": "6"}, headers=market["bob"].headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["remaining_quantity"] == "6"


async def test_cancel_all_cancels_only_the_callers_open_orders(api_client, market):
    await api_client.post("/v1/orders", json=order("sell", "10", "11.00"), headers=market["bob"].headers)
    await api_client.post("/v1/orders", json=order("sell", "10", "11.50"), headers=market["bob"].headers)
    await api_client.post("/v1/orders", json=order("buy", "10", "9.00"), headers=market["alice"].headers)
    response = await api_client.delete("/v1/orders?symbol=COOP", headers=market["bob"].headers)
    assert len(response.json()["cancelled"]) == 2
    open_alice = (await api_client.get("/v1/orders?status=open", headers=market["alice"].headers)).json()["orders"]
    assert len(open_alice) == 1


async def test_fills_list_shows_each_side_its_own_fee(api_client, market):
    await api_client.post("/v1/orders", json=order("sell", "100", "10.00"), headers=market["bob"].headers)
    await api_client.post("/v1/orders", json=order("buy", "100", "10.00"), headers=market["alice"].headers)
    [bob_fill] = (await api_client.get("/v1/fills", headers=market["bob"].headers)).json()["fills"]
    [alice_fill] = (await api_client.get("/v1/fills", headers=market["alice"].headers)).json()["fills"]
    assert bob_fill["side"] == "sell" and bob_fill["liquidity"] == "maker" and bob_fill["fee"] == "0.5"
    assert alice_fill["side"] == "buy" and alice_fill["liquidity"] == "taker" and alice_fill["fee"] == "1"


async def test_an_operator_cannot_place_orders(api_client, market):
    response = await api_client.post("/v1/orders", json=order("buy", "1"), headers=market["operator"].headers)
    assert response.status_code == 403


async def test_an_investor_cannot_deposit_cash(api_client, market):
    response = await api_client.post(
        "/v1/deposits", json={"account": "alice", "currency": "EUR", "amount": "5"}, headers=market["alice"].headers
    )
    assert response.status_code == 403


async def test_orders_need_an_api_key(api_client, market):
    response = await api_client.post("/v1/orders", json=order("buy", "1"))
    assert response.status_code == 401


async def test_an_order_id_of_unicode_digits_answers_404_not_500(api_client, market):
    response = await api_client.delete("/v1/orders/\u00b2", headers=market["bob"].headers)
    assert response.status_code == 404
