"""The living demo: `exchange demo` and `exchange serve --demo` fill an empty exchange with three impact issuers, a
book on both sides and trades, through the API and the sequencer; running it again duplicates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.auth import Role
from api.demo import INVESTOR, DemoOutcome, add_demo_component, seed_demo
from api.settings import Settings
from ledger.queries import trial_balance
from ledger.replay import replay
from tests.api.trading import list_equity, make_caller
from tests.support import client_for

SYMBOLS = ("ABITARE30", "GIRASOLE", "VALLEVERDE")


@pytest.fixture
async def demo(api_app: FastAPI) -> dict[str, str]:
    result = await seed_demo(api_app)
    assert result.outcome is DemoOutcome.SEEDED
    return result.keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_demo_lists_its_three_instruments_with_bids_asks_and_trades(api_client, demo):
    listed = (await api_client.get("/v1/instruments")).json()["instruments"]
    assert sorted(i["symbol"] for i in listed) == list(SYMBOLS)
    for symbol in SYMBOLS:
        book = (await api_client.get(f"/v1/markets/{symbol}/book")).json()
        assert book["bids"] and book["asks"], symbol
        assert Decimal(book["bids"][0]["price"]) < Decimal(book["asks"][0]["price"]), symbol
        trades = (await api_client.get(f"/v1/markets/{symbol}/trades")).json()["trades"]
        assert trades, symbol


async def test_the_demo_instruments_carry_full_impact_profiles(api_client, demo):
    for symbol in SYMBOLS:
        body = (await api_client.get(f"/v1/impact/instruments/{symbol}")).json()
        assert body["issuer"]["screening"] == "eligible"
        assert body["impact"]["sdgs"] and len(body["impact"]["indicators"]) >= 2
        assert body["impact"]["theory_of_change"]
        assert any(d["kind"] == "prospectus" for d in body["impact"]["documents"])
        assert body["impact_reporting"]["status"] == "current", symbol
    girasole = (await api_client.get("/v1/impact/instruments/GIRASOLE")).json()
    assert girasole["impact_reporting"]["last_assured_report"] is not None
    legal_forms = {
        s: (await api_client.get(f"/v1/impact/instruments/{s}")).json()["issuer"]["legal_form"] for s in SYMBOLS
    }
    assert legal_forms == {
        "ABITARE30": "impresa_sociale",
        "GIRASOLE": "social_cooperative",
        "VALLEVERDE": "societa_benefit",
    }


async def test_the_printed_investor_key_shows_cash_and_holdings(api_client, demo):
    response = await api_client.get("/v1/balances", headers=_auth(demo[INVESTOR]))
    assert response.status_code == 200
    assets = {b["asset"] for b in response.json()["balances"]}
    assert {"EUR", "GIRASOLE", "ABITARE30", "VALLEVERDE"} <= assets


async def test_the_printed_operator_key_works(api_client, demo):
    response = await api_client.get("/v1/listing-applications", headers=_auth(demo["demo-operator"]))
    assert response.status_code == 200
    assert {a["status"] for a in response.json()["applications"]} == {"approved"}


async def test_running_the_demo_again_adds_nothing_and_issues_fresh_keys(api_app, api_client, demo):
    async with api_app.state.pg_pool.acquire() as conn:
        head = await conn.fetchval("SELECT max(seq) FROM journal")
    again = await seed_demo(api_app)
    assert again.outcome is DemoOutcome.ALREADY_PRESENT
    assert again.keys[INVESTOR] != demo[INVESTOR]
    async with api_app.state.pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT max(seq) FROM journal") == head
        assert await conn.fetchval("SELECT count(*) FROM issuers") == 3
        assert await conn.fetchval("SELECT count(*) FROM listing_applications") == 3
    response = await api_client.get("/v1/balances", headers=_auth(again.keys[INVESTOR]))
    assert response.status_code == 200


async def test_the_demo_history_balances_and_replays_identically(api_app, demo):
    async with api_app.state.pg_pool.acquire() as conn:
        assert set((await trial_balance(conn)).values()) == {0}
    report = await replay(api_app.state.pg_pool)
    assert report.identical, report.divergence
    assert report.trades > 0


async def test_the_start_up_demo_leaves_an_exchange_that_lists_instruments_alone(api_app, api_client):
    operator = await make_caller(api_app, "ops", Role.OPERATOR)
    await list_equity(api_client, operator, "REAL")
    result = await seed_demo(api_app, only_if_empty=True)
    assert result.outcome is DemoOutcome.NOT_EMPTY
    listed = (await api_client.get("/v1/instruments")).json()["instruments"]
    assert [i["symbol"] for i in listed] == ["REAL"]


async def test_serve_demo_seeds_at_start_up_before_the_trading_calendar(db_url, tmp_path: Path, capsys):
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var")
    app = create_app(settings)
    add_demo_component(app, settings)
    names = [c.name for c in app.state.components]
    assert names.index("demo") == names.index("schedule") - 1
    async with app.router.lifespan_context(app), client_for(app) as client:
        book = (await client.get("/v1/markets/GIRASOLE/book")).json()
        assert book["bids"] and book["asks"]
    printed = capsys.readouterr().err
    assert "Demo market created" in printed and "demo-investor" in printed and "ixk_" in printed


async def test_the_exchange_demo_command_creates_the_market_and_prints_keys(db_url, pg_dsn):
    env = {**os.environ, "DATABASE_URL": db_url, "EXCHANGE_LOG_LEVEL": "warning"}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo"], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Demo market created: GIRASOLE, ABITARE30, VALLEVERDE.")
    [investor_line] = [line for line in result.stdout.splitlines() if line.strip().startswith("demo-investor")]
    token = investor_line.split()[-1]
    assert token.startswith("ixk_")
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM trades") > 0
    finally:
        await conn.close()
