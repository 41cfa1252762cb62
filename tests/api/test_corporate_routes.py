"""Offers, coupons, dividends, redemption, impact-linked coupons and retail protection over HTTP, on PostgreSQL.

Every change is answered after commit; at the end the ledger verifies (trial balance zero, hash chain intact) and a
replay of the journal through a fresh engine reproduces every stored event and ledger entry.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.auth import InvestorCategory, Role
from ledger.replay import replay
from ledger.verify import verify
from tests.api.trading import Caller, fund, issue, make_caller


@pytest.fixture
async def venue(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    """An operator, the cooperative `coop` (issuer) with EUR 10 000, `anna` (retail) and `bruno` (professional)."""
    callers = {
        "ops": await make_caller(api_app, "ops", Role.OPERATOR),
        "coop": await make_caller(api_app, "coop", Role.ISSUER),
        "anna": await make_caller(api_app, "anna", Role.INVESTOR, InvestorCategory.RETAIL),
        "bruno": await make_caller(api_app, "bruno", Role.INVESTOR, InvestorCategory.PROFESSIONAL),
    }
    for account in ("coop", "anna", "bruno"):
        await fund(api_client, callers["ops"], account, "10000.00")
    return callers


async def list_equity(client: httpx.AsyncClient, ops: Caller, symbol: str, **terms: Any) -> None:
    body = {
        "symbol": symbol,
        "kind": "equity",
        "currency": "EUR",
        "tick_size": "0.01",
        "lot_size": 1,
        "reference_price": "10.00",
        "price_band_percent": "20",
        "issuer": "coop",
        "trading_state": "open",
        **terms,
    }
    response = await client.post("/v1/instruments", json=body, headers=ops.headers)
    assert response.status_code == 201, response.text


async def list_impact_bond(client: httpx.AsyncClient, ops: Caller, symbol: str = "GB25") -> None:
    """4 % a year on EUR 100, 30/360, 2020-06-30 to 2025-06-30 (already matured): -0.50 % if the target is met,
    +0.75 % if it is missed."""
    bond = {
        "nominal": "100",
        "coupon_rate": "4",
        "coupon_frequency": 1,
        "day_count": "30/360",
        "issue_date": "2020-06-30",
        "maturity_date": "2025-06-30",
        "impact_step_down": "0.5",
        "impact_step_up": "0.75",
    }
    body = {
        "symbol": symbol,
        "kind": "bond",
        "currency": "EUR",
        "tick_size": "0.01",
        "lot_size": 1,
        "reference_price": "100",
        "issuer": "coop",
        "trading_state": "open",
        "bond": bond,
    }
    response = await client.post("/v1/instruments", json=body, headers=ops.headers)
    assert response.status_code == 201, response.text


async def order(client: httpx.AsyncClient, who: Caller, side: str, quantity: str, price: str, symbol: str):
    body = {"symbol": symbol, "side": side, "quantity": quantity, "price": price}
    return await client.post("/v1/orders", json=body, headers=who.headers)


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


async def ledger_and_journal_are_sound(app: FastAPI) -> None:
    report = await verify(app.state.pg_pool)
    assert report.ok, report.problems
    assert not report.imbalances
    replayed = await replay(app.state.pg_pool)
    assert replayed.identical, replayed.divergence


# ---------------------------------------------------------------- risk warning, profiles, retail cap, eligibility


async def test_a_retail_investor_acknowledges_the_risk_warning_once_and_then_buys_up_to_the_cap(
    api_app, api_client, venue
):
    ops, coop, anna = venue["ops"], venue["coop"], venue["anna"]
    await list_equity(api_client, ops, "COOP", retail_cap="1000.00")
    await issue(api_client, ops, "COOP", "coop", "1000")
    await order(api_client, coop, "sell", "500", "10.00", "COOP")

    profile = await api_client.put("/v1/investor-profiles/anna", json={"category": "retail"}, headers=ops.headers)
    assert profile.status_code == 200, profile.text
    assert profile.json()["risk_warning_acknowledged"] is False

    refused = await order(api_client, anna, "buy", "10", "10.00", "COOP")
    assert (refused.status_code, code(refused)) == (403, "RISK_WARNING_REQUIRED")

    warning = await api_client.get("/v1/me/risk-warning", headers=anna.headers)
    assert warning.json()["acknowledged"] is False and "capital at risk" in warning.json()["text"]
    first = await api_client.post("/v1/me/risk-warning", headers=anna.headers)
    again = await api_client.post("/v1/me/risk-warning", headers=anna.headers)
    assert (first.status_code, again.status_code) == (201, 200)

    over = await order(api_client, anna, "buy", "101", "10.00", "COOP")
    assert (over.status_code, code(over)) == (400, "RETAIL_CAP_EXCEEDED")
    bought = await order(api_client, anna, "buy", "100", "10.00", "COOP")
    assert bought.status_code == 201 and bought.json()["status"] == "filled"
    await ledger_and_journal_are_sound(api_app)


async def test_an_investor_registered_as_retail_becomes_retail_in_the_core_when_it_acknowledges(api_client, venue):
    anna = venue["anna"]

    await api_client.post("/v1/me/risk-warning", headers=anna.headers)

    profile = await api_client.get("/v1/investor-profiles/anna", headers=anna.headers)
    assert profile.json() | {"seq": None} == {
        "account": "anna",
        "category": "retail",
        "declared_assets": None,
        "risk_warning_acknowledged": True,
        "seq": None,
    }
    others = await api_client.get("/v1/investor-profiles/bruno", headers=anna.headers)
    assert others.status_code == 403


async def test_profiles_are_for_known_investors_and_set_by_operators(api_client, venue):
    ops = venue["ops"]

    unknown = await api_client.put("/v1/investor-profiles/nobody", json={"category": "retail"}, headers=ops.headers)
    issuer = await api_client.put("/v1/investor-profiles/coop", json={"category": "retail"}, headers=ops.headers)
    by_investor = await api_client.put(
        "/v1/investor-profiles/anna", json={"category": "professional"}, headers=venue["anna"].headers
    )
    bad_assets = await api_client.put(
        "/v1/investor-profiles/anna", json={"category": "retail", "declared_assets": "1.234"}, headers=ops.headers
    )
    assert (unknown.status_code, code(unknown)) == (404, "UNKNOWN_PARTICIPANT")
    assert (issuer.status_code, code(issuer)) == (422, "NOT_AN_INVESTOR")
    assert by_investor.status_code == 403
    assert (bad_assets.status_code, code(bad_assets)) == (422, "AMOUNT_TOO_PRECISE")


async def test_an_instrument_reserved_to_professionals_refuses_retail_buyers(api_client, venue):
    ops, coop, anna, bruno = venue["ops"], venue["coop"], venue["anna"], venue["bruno"]
    await list_equity(api_client, ops, "MINI", eligible_categories=["professional"])
    await issue(api_client, ops, "MINI", "coop", "100")
    await order(api_client, coop, "sell", "100", "10.00", "MINI")
    await api_client.post("/v1/me/risk-warning", headers=anna.headers)
    await api_client.put("/v1/investor-profiles/bruno", json={"category": "professional"}, headers=ops.headers)

    refused = await order(api_client, anna, "buy", "1", "10.00", "MINI")
    bought = await order(api_client, bruno, "buy", "1", "10.00", "MINI")

    assert (refused.status_code, code(refused)) == (403, "CATEGORY_NOT_ELIGIBLE")
    assert bought.status_code == 201
    terms = (await api_client.get("/v1/instruments/MINI/terms")).json()
    assert terms["eligible_categories"] == ["professional"] and terms["retail_cap"] is None


# ---------------------------------------------------------------- a primary offer


async def test_a_primary_offer_is_opened_subscribed_closed_and_allocated_pro_rata(api_app, api_client, venue):
    ops, anna, bruno = venue["ops"], venue["anna"], venue["bruno"]
    await list_equity(api_client, ops, "SOC", trading_state="pre_open")
    await issue(api_client, ops, "SOC", "coop", "1000")
    await api_client.post("/v1/me/risk-warning", headers=anna.headers)
    closes_at = datetime.now(UTC) + timedelta(seconds=1)
    terms = {
        "offer_id": "SOC-IPO",
        "symbol": "SOC",
        "price": "10.00",
        "quantity": "600",
        "min_subscription": "300",
        "closes_at": closes_at.isoformat(),
    }

    by_investor = await api_client.post("/v1/offers", json=terms, headers=anna.headers)
    opened = await api_client.post("/v1/offers", json=terms, headers=ops.headers)
    assert by_investor.status_code == 403
    assert opened.status_code == 201, opened.text
    assert opened.json()["status"] == "open" and opened.json()["issuer"] == "coop"

    applied = await api_client.post("/v1/offers/SOC-IPO/subscriptions", json={"quantity": "400"}, headers=anna.headers)
    assert applied.status_code == 201, applied.text
    assert (applied.json()["amount"], applied.json()["status"]) == ("4000", "pending")
    await api_client.post("/v1/offers/SOC-IPO/subscriptions", json={"quantity": "500"}, headers=bruno.headers)
    fraction = await api_client.post("/v1/offers/SOC-IPO/subscriptions", json={"quantity": "0.5"}, headers=anna.headers)
    by_operator = await api_client.post("/v1/offers/SOC-IPO/subscriptions", json={"quantity": "1"}, headers=ops.headers)
    early = await api_client.post("/v1/offers/SOC-IPO/close", headers=ops.headers)
    assert (fraction.status_code, code(fraction)) == (422, "QUANTITY_NOT_ON_LOT")
    assert by_operator.status_code == 403
    assert (early.status_code, code(early)) == (409, "OFFER_STILL_OPEN")

    await asyncio.sleep(max(0.0, closes_at.timestamp() - time.time()) + 0.05)
    closed = await api_client.post("/v1/offers/SOC-IPO/close", headers=ops.headers)
    late = await api_client.post("/v1/offers/SOC-IPO/subscriptions", json={"quantity": "1"}, headers=anna.headers)

    # 900 applied for 600: anna 266.7 -> 266 + the leftover unit (largest remainder), bruno 333.3 -> 333
    assert closed.status_code == 200, closed.text
    offer = closed.json()
    assert (offer["status"], offer["allocated"], offer["subscribed"]) == ("allocated", "600", "900")
    assert (late.status_code, code(late)) == (409, "OFFER_NOT_OPEN")
    [mine] = (await api_client.get("/v1/me/subscriptions", headers=anna.headers)).json()["subscriptions"]
    assert (mine["status"], mine["allocated"], mine["paid"], mine["released"]) == ("allocated", "267", "2670", "1330")
    balances = (await api_client.get("/v1/balances", headers=anna.headers)).json()["balances"]
    assert {b["asset"]: b["total"] for b in balances} == {"EUR": "7330", "SOC": "267"}
    listed = (await api_client.get("/v1/offers?symbol=SOC")).json()["offers"]
    assert [o["offer_id"] for o in listed] == ["SOC-IPO"]
    missing = await api_client.get("/v1/offers/NOPE")
    assert (missing.status_code, code(missing)) == (404, "UNKNOWN_OFFER")
    await ledger_and_journal_are_sound(api_app)


# ---------------------------------------------------------------- an impact-linked bond's coupons and redemption


async def test_an_impact_linked_bond_pays_its_stepped_coupon_and_is_redeemed(api_app, api_client, venue):
    ops, coop, bruno = venue["ops"], venue["coop"], venue["bruno"]
    await list_impact_bond(api_client, ops)
    await issue(api_client, ops, "GB25", "coop", "100")
    await order(api_client, coop, "sell", "10", "100", "GB25")
    assert (await order(api_client, bruno, "buy", "10", "100", "GB25")).json()["status"] == "filled"

    missed = await api_client.post(
        "/v1/instruments/GB25/impact-outcome", json={"target_met": False, "report": "2020-21"}, headers=ops.headers
    )
    assert missed.status_code == 200, missed.text
    assert (missed.json()["previous_coupon_rate"], missed.json()["coupon_rate"]) == ("4", "4.75")

    coupon = await api_client.post(
        "/v1/instruments/GB25/coupons", json={"payment_date": "2021-06-30"}, headers=ops.headers
    )
    assert coupon.status_code == 201, coupon.text
    assert {k: coupon.json()[k] for k in ("kind", "rate", "holders", "units", "total")} == {
        "kind": "coupon",
        "rate": "4.75",
        "holders": 1,
        "units": "10",
        "total": "47.5",
    }
    twice = await api_client.post(
        "/v1/instruments/GB25/coupons", json={"payment_date": "2021-06-30"}, headers=ops.headers
    )
    off_date = await api_client.post(
        "/v1/instruments/GB25/coupons", json={"payment_date": "2021-07-01"}, headers=ops.headers
    )
    too_early = await api_client.post("/v1/instruments/GB25/redemption", headers=ops.headers)
    dividend = await api_client.post(
        "/v1/instruments/GB25/dividends", json={"amount_per_share": "1"}, headers=ops.headers
    )
    assert (twice.status_code, code(twice)) == (409, "COUPON_ALREADY_PAID")
    assert (off_date.status_code, code(off_date)) == (422, "NO_COUPON_ON_DATE")
    assert (too_early.status_code, code(too_early)) == (409, "FINAL_COUPON_UNPAID")
    assert (dividend.status_code, code(dividend)) == (409, "WRONG_INSTRUMENT_KIND")

    await api_client.post("/v1/instruments/GB25/coupons", json={"payment_date": "2025-06-30"}, headers=ops.headers)
    redeemed = await api_client.post("/v1/instruments/GB25/redemption", headers=ops.headers)

    assert redeemed.status_code == 201, redeemed.text
    assert (redeemed.json()["units"], redeemed.json()["total"], redeemed.json()["rate"]) == ("100", "1000", "100")
    payments = (await api_client.get("/v1/me/distributions", headers=bruno.headers)).json()["payments"]
    assert [(p["kind"], p["amount"], p["payment_date"]) for p in payments] == [
        ("redemption", "1000", None),
        ("coupon", "47.5", "2025-06-30"),
        ("coupon", "47.5", "2021-06-30"),
    ]
    terms = (await api_client.get("/v1/instruments/GB25/terms")).json()
    assert (terms["redeemed"], terms["coupons_paid"], terms["listed_coupon_rate"]) == (
        True,
        ["2021-06-30", "2025-06-30"],
        "4",
    )
    balances = (await api_client.get("/v1/balances", headers=bruno.headers)).json()["balances"]
    # EUR 10 000 - 1 000 paid for the bonds + 2 coupons of 47.50 + 1 000 repaid; no bond left
    assert {b["asset"]: b["total"] for b in balances if b["total"] != "0"} == {"EUR": "10095"}
    await ledger_and_journal_are_sound(api_app)


# ---------------------------------------------------------------- dividends


async def test_a_dividend_is_paid_per_share_and_refused_when_the_issuer_lacks_the_cash(api_app, api_client, venue):
    ops, coop, bruno = venue["ops"], venue["coop"], venue["bruno"]
    await list_equity(api_client, ops, "DIV")
    await issue(api_client, ops, "DIV", "coop", "1000")
    await order(api_client, coop, "sell", "3", "10.00", "DIV")
    await order(api_client, bruno, "buy", "3", "10.00", "DIV")

    paid = await api_client.post(
        "/v1/instruments/DIV/dividends", json={"amount_per_share": "0.125"}, headers=ops.headers
    )
    too_precise = await api_client.post(
        "/v1/instruments/DIV/dividends", json={"amount_per_share": "0.1234567"}, headers=ops.headers
    )
    too_much = await api_client.post(
        "/v1/instruments/DIV/dividends", json={"amount_per_share": "100000"}, headers=ops.headers
    )
    as_number = await api_client.post(
        "/v1/instruments/DIV/dividends", json={"amount_per_share": 1}, headers=ops.headers
    )

    assert paid.status_code == 201, paid.text
    assert (paid.json()["rate"], paid.json()["total"]) == ("0.125", "0.38")  # 3 x 0.125 = 0.375 -> 0.38
    assert (too_precise.status_code, code(too_precise)) == (422, "AMOUNT_TOO_PRECISE")
    assert (too_much.status_code, code(too_much)) == (409, "ISSUER_LACKS_CASH")
    assert as_number.status_code == 422
    await ledger_and_journal_are_sound(api_app)
