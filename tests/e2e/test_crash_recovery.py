"""Kill -9 the server while several clients trade; after restart nothing acknowledged is lost and nothing
unacknowledged half-exists; books and balances equal an independent replay; verify and replay pass."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth import InvestorCategory, Role, create_key, create_participant
from api.units import ticks_to_price
from ledger.entries import Bucket
from ledger.queries import balances_of, negative_participant_balances, reconcile_balances, trial_balance
from ledger.recovery import recover
from ledger.replay import replay
from ledger.verify import verify
from tests.e2e.server import ServerProcess
from tests.support import free_port

pytestmark = pytest.mark.slow

INVESTORS = [f"inv{i}" for i in range(4)]


async def _keys(pg_dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        keys = {}
        await create_participant(conn, "ops", "Operations", Role.OPERATOR)
        keys["ops"] = (await create_key(conn, "ops"))[1]
        for name in INVESTORS:
            await create_participant(conn, name, name, Role.INVESTOR, InvestorCategory.PROFESSIONAL)
            keys[name] = (await create_key(conn, name))[1]
        return keys
    finally:
        await conn.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _set_up_market(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    ops = _auth(keys["ops"])
    listing = {
        "symbol": "COOP", "kind": "equity", "currency": "EUR", "tick_size": "0.01", "lot_size": 1,
        "reference_price": "10.00", "price_band_percent": "50", "maker_fee_bps": 5, "taker_fee_bps": 10,
        "trading_state": "open",
    }
    assert (await client.post("/v1/instruments", json=listing, headers=ops)).status_code == 201
    for name in INVESTORS:
        deposit = {"account": name, "currency": "EUR", "amount": "100000.00"}
        assert (await client.post("/v1/deposits", json=deposit, headers=ops)).status_code == 201
        issuance = {"account": name, "quantity": "10000"}
        assert (await client.post("/v1/instruments/COOP/issuance", json=issuance, headers=ops)).status_code == 201


async def _trader(
    base_url: str, name: str, key: str, seed: int, acknowledged: list[dict], stop: asyncio.Event
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, headers=_auth(key), timeout=5.0) as client:
        while not stop.is_set():
            side = rng.choice(["buy", "sell"])
            price = f"{rng.randint(990, 1010) / 100:.2f}"
            body = {"symbol": "COOP", "side": side, "quantity": str(rng.randint(1, 20)), "price": price,
                    "client_order_id": f"{name}-{seed}-{rng.getrandbits(40)}",
                    "self_trade_prevention": "cancel_oldest"}
            try:
                response = await client.post("/v1/orders", json=body)
            except httpx.HTTPError:
                return  # the server died under us: this request was never acknowledged
            if response.status_code in (200, 201):
                acknowledged.append(response.json() | {"owner": name})


@pytest.mark.parametrize("kill_after", [5, 60, 250])
async def test_acknowledged_work_survives_a_kill_and_the_state_equals_a_replay(
    db_url: str, pg_dsn: str, tmp_path: Path, kill_after: int
) -> None:
    keys = await _keys(pg_dsn)
    server = ServerProcess(db_url, free_port(), tmp_path)
    server.start()
    acknowledged: list[dict] = []
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            await _set_up_market(client, keys)
        stop = asyncio.Event()
        traders = [
            asyncio.create_task(_trader(server.base_url, name, keys[name], seed, acknowledged, stop))
            for seed, name in enumerate(INVESTORS)
        ]
        while len(acknowledged) < kill_after:
            await asyncio.sleep(0.005)
        server.kill()
        stop.set()
        await asyncio.gather(*traders)
        server.start()

        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
        try:
            # Every acknowledged order is there, with at least the fills it was acknowledged with.
            for ack in acknowledged:
                row = await pool.fetchrow("SELECT account, filled FROM orders WHERE order_id = $1", int(ack["id"]))
                assert row is not None, f"acknowledged order {ack['id']} lost"
                assert row["account"] == ack["owner"]
                assert row["filled"] >= int(ack["filled_quantity"])
                for fill in ack["fills"]:
                    assert await pool.fetchval("SELECT 1 FROM trades WHERE trade_id = $1", int(fill["trade_id"]))
            async with pool.acquire() as conn:
                # Nothing half-exists: every order has its accepting event and its journal record, and the ledger
                # balances to the cent.
                orphans = await conn.fetchval(
                    "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM events e "
                    "WHERE e.order_id = o.order_id AND e.kind = 'OrderAccepted')"
                )
                assert orphans == 0
                assert set((await trial_balance(conn)).values()) == {0}
                assert await reconcile_balances(conn) == []
                assert await negative_participant_balances(conn) == []
            # The regulator's checks: the chain verifies and a replay reproduces every event, trade and leg.
            verified = await verify(pool)
            assert verified.ok, verified.as_json()
            replayed_report = await replay(pool)
            assert replayed_report.identical, replayed_report.as_json()
            # The restarted server's book and balances equal an independent replay of the journal.
            replayed = await recover(pool)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
                book = (await client.get("/v1/markets/COOP/book", params={"depth": 1000})).json()
                instrument = replayed.engine.instruments["COOP"]
                bids, asks = replayed.engine.depth("COOP", 1000)
                for served_side, replayed_side in ((book["bids"], bids), (book["asks"], asks)):
                    assert [(level["price"], level["quantity"]) for level in served_side] == [
                        (ticks_to_price(instrument, price), str(quantity)) for price, quantity, _ in replayed_side
                    ]
                for name in INVESTORS:
                    served = (await client.get("/v1/balances", headers=_auth(keys[name]))).json()["balances"]
                    async with pool.acquire() as conn:
                        ledger = await balances_of(conn, name)
                    for view in served:
                        asset = view["asset"]
                        available, held = replayed.engine.balance(name, asset)
                        assert ledger.get((asset, Bucket.AVAILABLE), 0) == available
                        assert ledger.get((asset, Bucket.HELD), 0) == held
        finally:
            await pool.close()
    finally:
        server.stop()
