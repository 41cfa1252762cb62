"""Test helpers for trading through the API: participants with keys, a listed and funded market."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from api.auth import InvestorCategory, Role, create_key, create_participant


@dataclass(frozen=True, slots=True)
class Caller:
    participant_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_caller(app: FastAPI, participant_id: str, role: Role, category: InvestorCategory | None = None) -> Caller:
    async with app.state.pg_pool.acquire() as conn:
        if role is Role.INVESTOR and category is None:
            category = InvestorCategory.PROFESSIONAL
        await create_participant(conn, participant_id, participant_id.title(), role, category)
        _, token = await create_key(conn, participant_id)
    return Caller(participant_id, token)


async def list_equity(
    client: httpx.AsyncClient,
    operator: Caller,
    symbol: str = "COOP",
    *,
    tick_size: str = "0.01",
    reference_price: str = "10.00",
    state: str = "open",
    maker_fee_bps: int = 0,
    taker_fee_bps: int = 0,
    issuer: str | None = None,
) -> None:
    body = {
        "symbol": symbol,
        "kind": "equity",
        "currency": "EUR",
        "tick_size": tick_size,
        "lot_size": 1,
        "reference_price": reference_price,
        "price_band_percent": "20",
        "maker_fee_bps": maker_fee_bps,
        "taker_fee_bps": taker_fee_bps,
        "trading_state": state,
    }
    if issuer is not None:
        body["issuer"] = issuer
    response = await client.post("/v1/instruments", json=body, headers=operator.headers)
    assert response.status_code == 201, response.text


async def fund(client: httpx.AsyncClient, operator: Caller, account: str, amount: str) -> None:
    response = await client.post(
        "/v1/deposits", json={"account": account, "currency": "EUR", "amount": amount}, headers=operator.headers
    )
    assert response.status_code == 201, response.text


async def issue(client: httpx.AsyncClient, operator: Caller, symbol: str, account: str, quantity: str) -> None:
    response = await client.post(
        f"/v1/instruments/{symbol}/issuance", json={"account": account, "quantity": quantity}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
