"""The regulator's API: only the regulator may read everything, page by page or as an export, and run the checks.

One history (written by a sequencer, then served by a running app that recovered it) serves the whole module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.auth import InvestorCategory, Role, create_key, create_participant
from api.settings import Settings
from exchange.events import Trade
from ledger.journal import GENESIS, chain_hash
from tests.ledger.replay_history import History, history_database
from tests.support import client_for, started_app

READS = (
    "/v1/regulator/orders",
    "/v1/regulator/trades",
    "/v1/regulator/events",
    "/v1/regulator/ledger/entries",
    "/v1/regulator/journal",
    "/v1/regulator/export?kind=journal",
)
CHECKS = ("/v1/regulator/verify", "/v1/regulator/replay")


@pytest.fixture(scope="module")
async def stored(database_server_url: str, migrated_template: str) -> AsyncIterator[tuple[str, History]]:
    async with history_database(database_server_url, migrated_template) as found:
        yield found


@pytest.fixture(scope="module")
async def app(stored: tuple[str, History], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    data = Path(tmp_path_factory.mktemp("regulator")) / "var"
    async with started_app(Settings(_env_file=None, database_url=stored[0], data_dir=data)) as running:
        yield running


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


@pytest.fixture(scope="module")
async def keys(app: FastAPI) -> dict[Role, dict[str, str]]:
    """Authorization headers of one participant per role."""
    headers: dict[Role, dict[str, str]] = {}
    async with app.state.pg_pool.acquire() as conn:
        for role in (Role.INVESTOR, Role.ISSUER, Role.OPERATOR, Role.REGULATOR):
            participant = f"{role.value}-1"
            category = InvestorCategory.RETAIL if role is Role.INVESTOR else None
            await create_participant(conn, participant, participant, role, category)
            _, token = await create_key(conn, participant)
            headers[role] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
def history(stored: tuple[str, History]) -> History:
    return stored[1]


@pytest.fixture
def regulator(keys: dict[Role, dict[str, str]]) -> dict[str, str]:
    return keys[Role.REGULATOR]


async def fetch_all(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, field: str, **params: object
) -> list:
    """Every item of a paged list, following next_cursor."""
    items: list = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body[field])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def stored_count(app: FastAPI, sql: str, *args: object) -> int:
    async with app.state.pg_pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


# ---------------------------------------------------------------------------------------------------- roles


@pytest.mark.parametrize("role", [Role.INVESTOR, Role.ISSUER, Role.OPERATOR])
@pytest.mark.parametrize("path", READS)
async def test_other_roles_may_not_read_the_regulators_views(client, keys, role, path):
    response = await client.get(path, headers=keys[role])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"


@pytest.mark.parametrize("role", [Role.INVESTOR, Role.ISSUER, Role.OPERATOR])
@pytest.mark.parametrize("path", CHECKS)
async def test_other_roles_may_not_run_the_checks(client, keys, role, path):
    response = await client.post(path, json={}, headers=keys[role])
    assert response.status_code == 403


@pytest.mark.parametrize("path", READS + CHECKS)
async def test_without_a_key_the_regulators_views_answer_401(client, path):
    response = await (client.post(path, json={}) if path in CHECKS else client.get(path))
    assert response.status_code == 401


@pytest.mark.parametrize("path", READS)
async def test_the_regulator_reads_every_view(client, regulator, path):
    response = await client.get(path, headers=regulator)
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------------------------------------------- paged reads


async def test_orders_page_oldest_first_through_every_order(app, client, regulator):
    orders = await fetch_all(client, regulator, "/v1/regulator/orders", "orders", limit=2)
    ids = [int(o["id"]) for o in orders]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(ids) == await stored_count(app, "SELECT count(*) FROM orders")
    assert {o["account"] for o in orders} == {"alice", "bob", "carol"}


async def test_orders_filter_by_account_and_symbol(client, regulator):
    orders = await fetch_all(client, regulator, "/v1/regulator/orders", "orders", account="carol", symbol="COOP")
    assert orders and {o["account"] for o in orders} == {"carol"}


async def test_trades_show_both_sides_in_decimals(client, regulator, history):
    trades = await fetch_all(client, regulator, "/v1/regulator/trades", "trades", limit=1)
    first = history.first_trade()
    assert len(trades) == len(history.seqs_with(Trade)) * 2  # each sweep fills two levels
    shown = trades[0]
    assert (shown["trade_id"], shown["seq"], shown["buyer"], shown["seller"]) == (
        str(first.trade_id), first.seq, "alice", "bob"
    )
    assert (shown["price"], shown["quantity"], shown["cash"], shown["buyer_fee"], shown["seller_fee"]) == (
        "10", "100", "1000", "1", "0.5"
    )


async def test_trades_filter_by_an_account_on_either_side(client, regulator):
    assert await fetch_all(client, regulator, "/v1/regulator/trades", "trades", account="carol") == []
    sold = await fetch_all(client, regulator, "/v1/regulator/trades", "trades", account="bob")
    assert sold and all(t["seller"] == "bob" for t in sold)


async def test_events_page_in_seq_and_index_order_with_their_canonical_bodies(app, client, regulator):
    events = await fetch_all(client, regulator, "/v1/regulator/events", "events", limit=7)
    keys = [(e["seq"], e["index"]) for e in events]
    assert keys == sorted(keys) and len(keys) == await stored_count(app, "SELECT count(*) FROM events")
    async with app.state.pg_pool.acquire() as conn:
        body = await conn.fetchval("SELECT body FROM events WHERE seq = $1 AND idx = $2", *keys[5])
    assert events[5]["body"] == body


async def test_events_of_one_order_are_its_whole_story(client, regulator, history):
    order_id = history.first_trade().sell_order_id
    events = await fetch_all(client, regulator, "/v1/regulator/events", "events", order_id=str(order_id))
    assert [e["kind"] for e in events] == ["OrderAccepted", "Trade"]


async def test_events_of_one_account_include_its_trades_on_either_side(app, client, regulator):
    events = await fetch_all(client, regulator, "/v1/regulator/events", "events", account="bob", limit=1)
    keys = [(e["seq"], e["index"]) for e in events]
    assert keys == sorted(set(keys))
    assert {e["kind"] for e in events} >= {"BalanceChanged", "OrderAccepted", "Trade"}
    assert all(e["account"] in ("bob", None) for e in events)
    own = await stored_count(app, "SELECT count(*) FROM events WHERE account = 'bob'")
    sold = await stored_count(app, "SELECT count(*) FROM trades WHERE seller = 'bob' OR buyer = 'bob'")
    assert len(events) == own + sold


async def test_events_of_one_kind(client, regulator, history):
    events = await fetch_all(client, regulator, "/v1/regulator/events", "events", kind="Trade", account="alice")
    assert len(events) == 2 * len(history.seqs_with(Trade)) and {e["kind"] for e in events} == {"Trade"}


async def test_ledger_entries_carry_their_legs_with_owners_buckets_and_decimal_amounts(client, regulator, history):
    entries = await fetch_all(client, regulator, "/v1/regulator/ledger/entries", "entries", limit=3)
    fill = next(e for e in entries if e["kind"] == "fill")
    assert fill["trade_id"] == str(history.first_trade().trade_id)
    delivery, payment, *fees = fill["legs"]
    assert (delivery["debit"], delivery["credit"], delivery["asset"], delivery["amount"]) == (
        {"owner": "bob", "bucket": "held"}, {"owner": "alice", "bucket": "available"}, "COOP", "100"
    )
    assert (payment["asset"], payment["amount"]) == ("EUR", "1000")
    assert {leg["credit"]["owner"] for leg in fees} == {"@venue"}


async def test_ledger_entries_of_one_owner_are_those_that_move_its_accounts(client, regulator):
    entries = await fetch_all(client, regulator, "/v1/regulator/ledger/entries", "entries", account="carol", limit=2)
    assert entries
    assert all(
        any("carol" in (leg["debit"]["owner"], leg["credit"]["owner"]) for leg in entry["legs"]) for entry in entries
    )
    keys = [(e["seq"], e["index"]) for e in entries]
    assert keys == sorted(set(keys))


async def test_ledger_entries_of_one_asset(client, regulator):
    entries = await fetch_all(client, regulator, "/v1/regulator/ledger/entries", "entries", asset="COOP")
    assert entries and all(any(leg["asset"] == "COOP" for leg in e["legs"]) for e in entries)


async def test_journal_pages_carry_what_anyone_needs_to_recompute_the_chain(client, regulator, history):
    records = await fetch_all(client, regulator, "/v1/regulator/journal", "records", limit=4)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert len(records) >= history.last_seq
    running = GENESIS
    for record in records:
        assert record["prev_hash"] == running.hex()
        running = chain_hash(running, record["seq"], record["ts_us"], record["sender"], record["command"].encode())
        assert record["hash"] == running.hex()


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "cursor=abc", "cursor=-1", "account=UPPER", "symbol=lower"],
)
async def test_bad_paging_parameters_are_422(client, regulator, query):
    response = await client.get(f"/v1/regulator/orders?{query}", headers=regulator)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_an_event_cursor_must_be_a_seq_and_an_index(client, regulator):
    response = await client.get("/v1/regulator/events?cursor=12", headers=regulator)
    assert response.status_code == 422


# ---------------------------------------------------------------------------------------------------- export


async def export(client: httpx.AsyncClient, headers: dict[str, str], **params: object) -> list[dict]:
    response = await client.get("/v1/regulator/export", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


async def test_export_of_the_journal_is_one_line_per_record_of_the_range(client, regulator):
    lines = await export(client, regulator, kind="journal", from_seq=3, to_seq=9)
    assert [line["seq"] for line in lines] == list(range(3, 10))


async def test_export_defaults_to_the_whole_journal(app, client, regulator, history):
    response = await client.get("/v1/regulator/export", params={"kind": "journal"}, headers=regulator)
    lines = response.text.splitlines()
    assert len(lines) == int(response.headers["x-export-to-seq"]) >= history.last_seq


async def test_export_of_events_covers_exactly_the_seq_range(app, client, regulator):
    lines = await export(client, regulator, kind="events", from_seq=5, to_seq=12)
    assert {line["seq"] for line in lines} <= set(range(5, 13))
    assert len(lines) == await stored_count(app, "SELECT count(*) FROM events WHERE seq BETWEEN 5 AND 12")


async def test_export_of_trades_is_the_trades_of_the_range(client, regulator, history):
    last_sweep = history.seqs_with(Trade)[-1]
    lines = await export(client, regulator, kind="trades", from_seq=last_sweep, to_seq=last_sweep)
    assert len(lines) == 2 and {line["seq"] for line in lines} == {last_sweep}
    assert await export(client, regulator, kind="trades", from_seq=1, to_seq=2) == []


async def test_export_of_the_ledger_is_entries_with_legs(app, client, regulator):
    lines = await export(client, regulator, kind="ledger", from_seq=2, to_seq=4)
    assert len(lines) == await stored_count(app, "SELECT count(*) FROM ledger_entries WHERE seq BETWEEN 2 AND 4")
    assert all(line["legs"] for line in lines)


async def test_export_streams_more_than_one_page(client, regulator, history, monkeypatch):
    monkeypatch.setattr("api.routes.regulator.EXPORT_PAGE", 3)
    lines = await export(client, regulator, kind="ledger")
    keys = [(line["seq"], line["index"]) for line in lines]
    assert len(keys) > 3 and keys == sorted(set(keys))


@pytest.mark.parametrize("query", ["kind=orders", "kind=journal&from_seq=0", "kind=journal&from_seq=9&to_seq=3", ""])
async def test_a_bad_export_request_is_refused_before_streaming(client, regulator, query):
    response = await client.get(f"/v1/regulator/export?{query}", headers=regulator)
    assert response.status_code == 422


# ---------------------------------------------------------------------------------------------------- checks


async def test_verify_answers_the_report_with_the_chain_head(app, client, regulator):
    response = await client.post("/v1/regulator/verify", headers=regulator)
    assert response.status_code == 200, response.text
    report = response.json()
    async with app.state.pg_pool.acquire() as conn:
        head = await conn.fetchrow("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
    assert report["ok"] is True
    assert report["head"] == {"seq": head["seq"], "hash": bytes(head["hash"]).hex()}


async def test_verify_against_a_published_head_that_differs_fails(client, regulator):
    body = {"published_head": {"seq": 3, "hash": "ab" * 32}}
    report = (await client.post("/v1/regulator/verify", json=body, headers=regulator)).json()
    assert report["ok"] is False and "published" in report["published_head_problem"]


async def test_replay_answers_identical(client, regulator, history):
    response = await client.post("/v1/regulator/replay", json={}, headers=regulator)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["identical"] is True
    assert report["records"] == report["to_seq"] >= history.last_seq  # the app's own timer may have added records


async def test_replay_reports_a_changed_trade_at_its_seq(app, client, regulator, history):
    trade = history.first_trade()
    async with app.state.pg_pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE trades SET quantity = quantity - 1 WHERE trade_id = $1", trade.trade_id)
        try:
            report = (
                await client.post("/v1/regulator/replay", json={"to_seq": trade.seq}, headers=regulator)
            ).json()
        finally:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute("UPDATE trades SET quantity = quantity + 1 WHERE trade_id = $1", trade.trade_id)
    assert report["identical"] is False
    divergence = report["divergence"]
    assert (divergence["seq"], divergence["table"]) == (trade.seq, "trades")
    assert divergence["fields"] == [{"field": "quantity", "expected": trade.quantity, "stored": trade.quantity - 1}]


async def test_a_second_check_while_one_runs_is_409(app, client, regulator):
    from api.routes.regulator import _audit_lock

    class Holder:
        def __init__(self) -> None:
            self.app = app

    lock = _audit_lock(Holder())  # the lock the routes use
    async with lock:
        response = await client.post("/v1/regulator/verify", headers=regulator)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "AUDIT_IN_PROGRESS"
    assert "retry-after" in response.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/regulator/replay", {"to_seq": "5"}),
        ("/v1/regulator/replay", {"to_seq": -1}),
        ("/v1/regulator/replay", {"from": 1}),
        ("/v1/regulator/verify", {"published_head": {"seq": 1, "hash": "XYZ"}}),
    ],
)
async def test_bad_check_requests_are_422(client, regulator, path, body):
    response = await client.post(path, json=body, headers=regulator)
    assert response.status_code == 422
