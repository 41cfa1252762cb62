"""A listing's whole life through the API, on a real sequencer and PostgreSQL, with the exchange clock moved by hand:
application, approval, issuance and a primary offer, trading, a coupon, a dividend, an impact report and its
assurance, a suspension and resumption, the final coupon and redemption at maturity.

After every step the ledger's trial balance is zero for every asset, every cached balance equals its legs, and a
replay of the whole journal through a fresh engine reproduces every stored event, trade, posting and order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import default_components
from api.auth import InvestorCategory, Role
from api.lifecycle import Component
from api.schemas import to_us
from api.sequencer import Sequencer, stop_sequencer
from api.settings import Settings
from exchange.instrument import TradingState
from ledger.queries import reconcile_balances, trial_balance
from ledger.replay import replay
from tests.api.listings import (
    apply,
    approve,
    bond_application,
    equity_application,
    register_issuer,
    report_body,
    screen,
)
from tests.api.trading import Caller, make_caller
from tests.support import running_app


class ExchangeClock:
    """The sequencer's clock, moved forward by the test (the exchange's time is the sequencer's, not the wall's)."""

    def __init__(self, start: datetime) -> None:
        self.now_us = to_us(start)

    def __call__(self) -> int:
        return self.now_us

    def move_to(self, moment: datetime) -> None:
        assert to_us(moment) >= self.now_us, "the exchange clock never goes back"
        self.now_us = to_us(moment)


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    clock: ExchangeClock
    people: dict[str, Caller]

    async def call(self, method: str, path: str, who: str | None, body: object = None, status: int = 200) -> dict:
        headers = {} if who is None else self.people[who].headers
        response = await self.client.request(method, path, json=body, headers=headers)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    async def balance(self, who: str, asset: str) -> str:
        balances = (await self.call("GET", "/v1/balances", who))["balances"]
        return next((b["total"] for b in balances if b["asset"] == asset), "0")

    async def checkpoint(self) -> None:
        """The ledger balances, every cached balance equals its legs, and replay reproduces the journal."""
        async with self.app.state.pg_pool.acquire() as conn:
            totals = await trial_balance(conn)
            mismatches = await reconcile_balances(conn)
        assert all(total == 0 for total in totals.values()), totals
        assert mismatches == []
        report = await replay(self.app.state.pg_pool)
        assert report.identical, report.divergence


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    clock = ExchangeClock(datetime(2024, 2, 1, 9, 0, tzinfo=UTC))

    async def start_sequencer(app: FastAPI) -> None:
        sequencer = Sequencer(app.state.pg_pool, clock=clock)
        await sequencer.start()
        app.state.sequencer = sequencer

    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var")
    components = [
        Component("sequencer", start_sequencer, stop_sequencer) if c.name == "sequencer" else c
        for c in default_components(settings)
        if c.name != "schedule"
    ]
    async with running_app(settings, components) as (app, client):
        people = {
            "ops": await make_caller(app, "ops", Role.OPERATOR),
            "girasole": await make_caller(app, "girasole", Role.ISSUER),
            "alice": await make_caller(app, "alice", Role.INVESTOR, InvestorCategory.PROFESSIONAL),
            "bob": await make_caller(app, "bob", Role.INVESTOR, InvestorCategory.RETAIL),
            "assessor": await make_caller(app, "impact-audit", Role.ASSESSOR),
        }
        yield World(app, client, clock, people)


def _order(symbol: str, side: str, quantity: str, price: str) -> dict[str, str]:
    return {"symbol": symbol, "side": side, "quantity": quantity, "price": price}


async def test_a_listing_lives_from_application_to_redemption_with_a_balanced_replayable_ledger(world: World):
    w = world
    # -- 1. the issuer applies for an equity and a bond (semiannual 4 %, 2024-01-15 to 2025-01-15) -----------------
    await register_issuer(w.client, w.people["girasole"])
    await screen(w.client, w.people["ops"], "girasole")
    equity = await apply(w.client, w.people["girasole"], equity_application("GIRA"))
    bond_body = bond_application("CASA", issue_date="2024-01-15", maturity_date="2025-01-15")
    bond_body["bond"]["coupon_frequency"] = 2
    bond = await apply(w.client, w.people["girasole"], bond_body)
    assert {equity["status"], bond["status"]} == {"submitted"}
    async with w.app.state.pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM journal") == 0  # applications are records, not trading

    # -- 2. the operator approves both: listed in pre_open through the sequencer ----------------------------------
    for application in (equity, bond):
        approved = await approve(w.client, w.people["ops"], application["id"])
        assert approved["status"] == "approved"
    engine = w.app.state.sequencer.engine
    assert engine.instruments["GIRA"].state is TradingState.PRE_OPEN
    assert engine.instruments["CASA"].issuer == "girasole"
    await w.checkpoint()

    # -- 3. issuance: shares to the issuer; the bond sold in a primary offer at par ---------------------------------
    await w.call("POST", "/v1/instruments/GIRA/issuance", "ops", {"account": "girasole", "quantity": "10000"}, 201)
    await w.call("POST", "/v1/instruments/CASA/issuance", "ops", {"account": "girasole", "quantity": "1000"}, 201)
    for account, amount in (("alice", "150000.00"), ("bob", "30000.00"), ("girasole", "60000.00")):
        await w.call("POST", "/v1/deposits", "ops", {"account": account, "currency": "EUR", "amount": amount}, 201)
    await w.call("POST", "/v1/me/risk-warning", "bob", None, 201)  # retail: once, before any order or subscription
    offer = {
        "offer_id": "CASA-2024",
        "symbol": "CASA",
        "price": "100.00",
        "quantity": "1000",
        "min_subscription": "500",
        "closes_at": "2024-02-15T16:00:00Z",
    }
    await w.call("POST", "/v1/offers", "ops", offer, 201)
    await w.call("POST", "/v1/offers/CASA-2024/subscriptions", "alice", {"quantity": "700"}, 201)
    await w.call("POST", "/v1/offers/CASA-2024/subscriptions", "bob", {"quantity": "100"}, 201)
    w.clock.move_to(datetime(2024, 2, 16, 9, 0, tzinfo=UTC))
    closed = await w.call("POST", "/v1/offers/CASA-2024/close", "ops")
    assert closed["status"] == "allocated" and closed["allocated"] == "800"
    assert await w.balance("alice", "CASA") == "700"
    assert await w.balance("girasole", "CASA") == "200"
    await w.checkpoint()

    # -- 4. trading: the shares from the issuer, the bond between investors with accrued interest --------------------
    for symbol in ("GIRA", "CASA"):
        await w.call("POST", f"/v1/instruments/{symbol}/state", "ops", {"state": "open", "reason": "first day"})
    await w.call("POST", "/v1/orders", "girasole", _order("GIRA", "sell", "1000", "25.00"), 201)
    bought = await w.call("POST", "/v1/orders", "alice", _order("GIRA", "buy", "600", "25.00"), 201)
    assert bought["status"] == "filled"
    await w.call("POST", "/v1/orders", "bob", _order("GIRA", "buy", "50", "25.00"), 201)
    await w.call("POST", "/v1/orders", "alice", _order("CASA", "sell", "100", "101.00"), 201)
    bond_trade = await w.call("POST", "/v1/orders", "bob", _order("CASA", "buy", "100", "101.00"), 201)
    [fill] = bond_trade["fills"]
    assert fill["cash"] == "10100" and fill["accrued_interest"] != "0"  # 100 bonds at 101 % of 100 EUR, plus accrued
    await w.checkpoint()

    # -- 5. the first coupon: 2 % of 100 EUR on each of the 800 bonds held by investors --------------------------------
    w.clock.move_to(datetime(2024, 7, 16, 9, 0, tzinfo=UTC))
    coupon = await w.call("POST", "/v1/instruments/CASA/coupons", "ops", {"payment_date": "2024-07-15"}, 201)
    assert (coupon["holders"], coupon["units"], coupon["total"]) == (2, "800", "1600")
    await w.checkpoint()

    # -- 6. a dividend of 0.50 EUR a share on the 650 shares the investors hold ----------------------------------------
    dividend = await w.call("POST", "/v1/instruments/GIRA/dividends", "ops", {"amount_per_share": "0.50"}, 201)
    assert (dividend["units"], dividend["total"]) == ("650", "325")
    await w.checkpoint()

    # -- 7. the issuer reports its impact for the half-year; the assessor assures it -----------------------------------
    report = await w.call(
        "POST", "/v1/listings/GIRA/impact-reports", "girasole", report_body("2024-01-01", "2024-06-30"), 201
    )
    await w.call(
        "POST",
        f"/v1/impact-reports/{report['id']}/assurance",
        "assessor",
        {"level": "limited", "statement": "Agreed to payroll and weighbridge records."},
    )
    history = await w.call("GET", "/v1/impact/instruments/GIRA/reports", None)
    assert [r["assurance"]["assessor_id"] for r in history["reports"]] == ["impact-audit"]
    view = await w.call("GET", "/v1/impact/instruments/GIRA", None)
    assert view["impact_reporting"]["last_assured_report"]["report_id"] == report["id"]
    await w.checkpoint()

    # -- 8. a suspension refuses orders; resumption lets them trade again ----------------------------------------------
    await w.call("POST", "/v1/listings/GIRA/suspend", "ops", {"reason": "Pending clarification of a press report"})
    refused = await w.client.post(
        "/v1/orders", json=_order("GIRA", "buy", "10", "25.00"), headers=w.people["alice"].headers
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "INSTRUMENT_SUSPENDED"
    await w.call("POST", "/v1/listings/GIRA/resume", "ops", {"reason": "Issuer statement published"})
    resumed = await w.call("POST", "/v1/orders", "alice", _order("GIRA", "buy", "10", "25.00"), 201)
    assert resumed["status"] == "filled"
    await w.checkpoint()

    # -- 9. maturity: the final coupon, then redemption at par; the bond is delisted and retired -----------------------
    w.clock.move_to(datetime(2025, 1, 16, 9, 0, tzinfo=UTC))
    final = await w.call("POST", "/v1/instruments/CASA/coupons", "ops", {"payment_date": "2025-01-15"}, 201)
    assert final["total"] == "1600"
    redemption = await w.call("POST", "/v1/instruments/CASA/redemption", "ops", None, 201)
    assert (redemption["units"], redemption["total"]) == ("1000", "80000")  # the issuer's own 200 retired for nothing
    assert engine.instruments["CASA"].state is TradingState.DELISTED
    for who in ("alice", "bob", "girasole"):
        assert await w.balance(who, "CASA") == "0"
    public = await w.call("GET", "/v1/impact/instruments/CASA", None)
    assert public["trading_state"] == "delisted"
    await w.checkpoint()

    # Where the money went, to the cent: alice paid 70,000 for 700 bonds at the offer, 15,000 + 250 for 610 shares,
    # sold 100 bonds for 10,100 + accrued; received coupons on 600 bonds twice (2 x 1,200), a dividend on 600 shares
    # (300) and 60,000 at redemption.
    accrued = Decimal(fill["accrued_interest"])
    expected = Decimal("150000") - 70000 - 15000 - 250 + 10100 + accrued + 2 * 1200 + 300 + 60000
    assert Decimal(await w.balance("alice", "EUR")) == expected
