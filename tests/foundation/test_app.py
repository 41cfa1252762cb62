"""The HTTP shell: probes, the error envelope, request ids and the start-up/shutdown of components."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, field_validator

from api.errors import ApiError
from api.lifecycle import Component
from api.settings import Settings
from tests.support import client_for, free_port, running_app, started_app


def _settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "var", **overrides)


def _assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


# -- probes ----------------------------------------------------------------------------------------


async def test_healthz_answers_ok(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_ready_on_a_migrated_database(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "migrations": "ok",
        "engine": "ok",
    }


async def test_app_state_holds_engine_pool_and_readiness(api_app: FastAPI) -> None:
    assert api_app.state.engine_ready is True
    async with api_app.state.pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    async with api_app.state.db_engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 2")).scalar_one() == 2


async def test_readyz_answers_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    async with running_app(_settings(unreachable, tmp_path, startup_retry_seconds=60)) as (_app, client):
        assert (await client.get("/healthz")).status_code == 200
        error = _assert_envelope(await client.get("/readyz"), 503, "NOT_READY")
    assert error["details"]["failed"] == ["database", "migrations", "engine"]
    assert error["details"]["checks"]["database"]["status"] == "failed"
    assert "engine" in error["message"]


async def test_readyz_answers_503_when_the_database_is_behind_head(api_client: httpx.AsyncClient, pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = '0000_older'")
    finally:
        await conn.close()
    error = _assert_envelope(await api_client.get("/readyz"), 503, "NOT_READY")
    assert error["details"]["failed"] == ["migrations"]
    assert error["details"]["checks"]["migrations"]["revision"] == "0000_older"


async def test_readyz_answers_503_after_the_engine_fail_stops(api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
    api_app.state.engine_ready = False
    api_app.state.startup_error = "journal commit failed"
    error = _assert_envelope(await api_client.get("/readyz"), 503, "NOT_READY")
    assert error["details"]["checks"]["engine"] == {"status": "failed", "error": "journal commit failed"}


# -- components ------------------------------------------------------------------------------------


async def test_components_start_in_order_and_stop_in_reverse(db_url: str, tmp_path: Path) -> None:
    journal: list[str] = []

    def component(name: str) -> Component:
        async def start(app: FastAPI) -> None:
            journal.append(f"start {name}")

        async def stop(app: FastAPI) -> None:
            journal.append(f"stop {name}")

        return Component(name, start, stop)

    async with started_app(_settings(db_url, tmp_path), [component("ledger"), component("sequencer")]) as app:
        assert app.state.engine_ready
    assert journal == ["start ledger", "start sequencer", "stop sequencer", "stop ledger"]


async def test_failed_start_up_is_retried_until_the_component_starts(db_url: str, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def flaky_start(app: FastAPI) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise ConnectionError("journal not reachable yet")

    settings = _settings(db_url, tmp_path, startup_retry_seconds=0.01)
    async with running_app(settings, [Component("sequencer", flaky_start)]) as (app, client):
        error = _assert_envelope(await client.get("/readyz"), 503, "NOT_READY")
        assert error["details"]["checks"]["engine"]["error"] == "ConnectionError: journal not reachable yet"
        for _ in range(500):
            if app.state.engine_ready:
                break
            await asyncio.sleep(0.01)
        assert (await client.get("/readyz")).status_code == 200
    assert attempts == [1, 2, 3]


# -- error envelope --------------------------------------------------------------------------------


class Quote(BaseModel):
    symbol: str
    price: Decimal

    @field_validator("symbol")
    @classmethod
    def upper_case(cls, value: str) -> str:
        if value != value.upper():
            raise ValueError("symbol must be upper case")
        return value


@pytest.fixture
def routed_app(api_app: FastAPI) -> FastAPI:
    @api_app.post("/test/quotes")
    async def post_quote(quote: Quote) -> dict[str, str]:
        return {"symbol": quote.symbol}

    @api_app.get("/test/halted")
    async def halted() -> None:
        raise ApiError(503, "TRADING_HALTED", "Trading in ACME is halted", {"symbol": "ACME"}, {"Retry-After": "30"})

    @api_app.get("/test/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals")

    return api_app


async def test_unknown_route_answers_404_envelope(api_client: httpx.AsyncClient) -> None:
    error = _assert_envelope(await api_client.get("/v1/nowhere"), 404, "NOT_FOUND")
    assert error["details"] == {"path": "/v1/nowhere"}


async def test_wrong_method_answers_405_envelope_with_allow_header(api_client: httpx.AsyncClient) -> None:
    response = await api_client.delete("/healthz")
    _assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET"


async def test_invalid_body_answers_422_validation_error(routed_app: FastAPI) -> None:
    async with client_for(routed_app) as client:
        response = await client.post("/test/quotes", json={"symbol": "acme", "price": "ten"})
    error = _assert_envelope(response, 422, "VALIDATION_ERROR")
    by_field = {tuple(e["loc"]): e for e in error["details"]["errors"]}
    assert set(by_field) == {("body", "symbol"), ("body", "price")}
    assert by_field[("body", "symbol")]["ctx"] == {"error": "symbol must be upper case"}
    assert by_field[("body", "price")]["input"] == "ten"
    assert error["message"].startswith("Request validation failed: body.")


async def test_malformed_json_answers_422_validation_error(routed_app: FastAPI) -> None:
    async with client_for(routed_app) as client:
        response = await client.post("/test/quotes", content=b"{not json", headers={"content-type": "application/json"})
    error = _assert_envelope(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["type"] == "json_invalid"


async def test_api_error_answers_its_status_code_details_and_headers(routed_app: FastAPI) -> None:
    async with client_for(routed_app) as client:
        response = await client.get("/test/halted")
    error = _assert_envelope(response, 503, "TRADING_HALTED")
    assert (error["message"], error["details"]) == ("Trading in ACME is halted", {"symbol": "ACME"})
    assert response.headers["retry-after"] == "30"


async def test_unexpected_error_answers_500_without_internals(routed_app: FastAPI) -> None:
    async with client_for(routed_app) as client:
        response = await client.get("/test/bug", headers={"X-Request-ID": "bug-1"})
    error = _assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["details"] == {}
    assert response.headers["x-request-id"] == "bug-1"


# -- request ids and docs --------------------------------------------------------------------------


async def test_request_id_from_the_caller_is_echoed(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/healthz", headers={"X-Request-ID": "trader-42.a"})
    assert response.headers["x-request-id"] == "trader-42.a"


async def test_request_id_is_minted_when_missing_or_unsafe(api_client: httpx.AsyncClient) -> None:
    minted = (await api_client.get("/healthz")).headers["x-request-id"]
    replaced = (await api_client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})).headers["x-request-id"]
    assert len(minted) == 32 and len(replaced) == 32 and minted != replaced


async def test_openapi_document_lists_the_probes(api_client: httpx.AsyncClient) -> None:
    spec = (await api_client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz"} <= set(spec["paths"])
    assert (await api_client.get("/docs")).status_code == 200
