"""Impact reports: the listing's issuer publishes indicator values for a period with the document's hash; an external
assessor marks a report assured; reports are append-only and the public reads the history, newest period first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.listings import equity_application, list_through_application, publish, register_issuer, report_body
from tests.api.trading import Caller, make_caller


@pytest.fixture
async def listed(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    people = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "girasole": await make_caller(api_app, "girasole", Role.ISSUER),
        "other": await make_caller(api_app, "other-issuer", Role.ISSUER),
        "assessor": await make_caller(api_app, "impact-audit", Role.ASSESSOR),
        "alice": await make_caller(api_app, "alice", Role.INVESTOR),
    }
    await list_through_application(api_client, people["operator"], people["girasole"], equity_application())
    return people


async def _assure(client: httpx.AsyncClient, who: Caller, report_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/impact-reports/{report_id}/assurance",
        json={"level": "limited", "statement": "Figures traced to payroll and weighbridge records."},
        headers=who.headers,
    )


async def test_a_published_report_shows_each_value_against_its_baseline_and_target(api_client, listed):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    assert report["symbol"] == "GIRA"
    assert (report["period_start"], report["period_end"]) == ("2024-01-01", "2024-12-31")
    assert report["document"]["url"].endswith("impact-2024.pdf")
    workers, waste = report["values"]
    assert workers == {
        "code": "PI3687",
        "name": "Disadvantaged workers employed",
        "unit": "people",
        "value": "47",
        "baseline": "40",
        "target": "60",
        "target_date": "2027-12-31",
        "target_met": False,
    }
    assert waste["value"] == "95.25" and waste["target_met"] is False
    assert report["assurance"] is None


async def test_a_target_below_the_baseline_is_met_by_going_down_to_it(api_client, listed):
    body = report_body()
    body["values"] = [{"code": "OI1479", "value": "79.9"}]
    report = await publish(api_client, listed["girasole"], "GIRA", body)
    [waste] = report["values"]
    assert (waste["code"], waste["baseline"], waste["target"]) == ("OI1479", "120.5", "80")
    assert waste["target_met"] is True


async def test_an_assessor_marks_a_report_assured_with_a_statement(api_client, listed):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    response = await _assure(api_client, listed["assessor"], report["id"])
    assert response.status_code == 200, response.text
    assurance = response.json()["assurance"]
    assert assurance["assessor_id"] == "impact-audit" and assurance["level"] == "limited"
    assert assurance["statement"].startswith("Figures traced")


async def test_a_report_is_assured_once(api_client, listed):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    await _assure(api_client, listed["assessor"], report["id"])
    response = await _assure(api_client, listed["assessor"], report["id"])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ALREADY_ASSURED"


async def test_only_assessors_assure_reports(api_client, listed):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    for who in ("girasole", "operator", "alice"):
        response = await _assure(api_client, listed[who], report["id"])
        assert response.status_code == 403, who


async def test_assuring_an_unknown_report_is_404(api_client, listed):
    for report_id in ("12345", "x"):
        response = await _assure(api_client, listed["assessor"], report_id)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "UNKNOWN_REPORT"


async def test_only_the_listings_issuer_publishes_its_reports(api_client, listed):
    await register_issuer(api_client, listed["other"], legal_name="Other")
    response = await api_client.post(
        "/v1/listings/GIRA/impact-reports", json=report_body(), headers=listed["other"].headers
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_LISTING"
    response = await api_client.post(
        "/v1/listings/GIRA/impact-reports", json=report_body(), headers=listed["operator"].headers
    )
    assert response.status_code == 403


async def test_values_must_be_for_the_listings_own_indicators(api_client, listed):
    body = report_body()
    body["values"].append({"code": "PI9999", "value": "1"})
    response = await api_client.post("/v1/listings/GIRA/impact-reports", json=body, headers=listed["girasole"].headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"codes": ["PI9999"]}


async def test_a_report_period_must_have_ended(api_client, listed):
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    response = await api_client.post(
        "/v1/listings/GIRA/impact-reports",
        json=report_body("2025-01-01", tomorrow),
        headers=listed["girasole"].headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "PERIOD_NOT_ENDED"


async def test_report_periods_may_not_overlap(api_client, listed):
    first = await publish(api_client, listed["girasole"], "GIRA", report_body("2024-01-01", "2024-12-31"))
    response = await api_client.post(
        "/v1/listings/GIRA/impact-reports",
        json=report_body("2024-07-01", "2025-06-30"),
        headers=listed["girasole"].headers,
    )
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "REPORT_PERIOD_OVERLAPS",
        "message": "an earlier report covers part of this period",
        "details": {"report_id": first["id"]},
    }


@pytest.mark.parametrize(
    "change",
    [
        {"period_start": "2025-01-01", "period_end": "2024-12-31"},
        {"values": []},
        {"values": [{"code": "PI3687", "value": "1"}, {"code": "PI3687", "value": "2"}]},
        {"values": [{"code": "PI3687", "value": 47}]},
        {"document": {"url": "https://x.example/r.pdf", "sha256": "not-a-hash"}},
        {"summary": "bell\u0007"},
    ],
)
async def test_an_invalid_report_is_refused_with_422(api_client, listed, change):
    response = await api_client.post(
        "/v1/listings/GIRA/impact-reports", json={**report_body(), **change}, headers=listed["girasole"].headers
    )
    assert response.status_code == 422, response.text


async def test_the_public_reads_the_impact_history_newest_period_first_by_page(api_client, listed):
    for year in (2022, 2023, 2024):
        await publish(api_client, listed["girasole"], "GIRA", report_body(f"{year}-01-01", f"{year}-12-31"))
    first = (await api_client.get("/v1/impact/instruments/GIRA/reports", params={"limit": 2})).json()
    assert [r["period_end"] for r in first["reports"]] == ["2024-12-31", "2023-12-31"]
    rest = (
        await api_client.get("/v1/impact/instruments/GIRA/reports", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [r["period_end"] for r in rest["reports"]] == ["2022-12-31"]
    assert rest["next_cursor"] is None


async def test_a_bad_history_cursor_is_422(api_client, listed):
    response = await api_client.get("/v1/impact/instruments/GIRA/reports", params={"cursor": "2024-13-45.1"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_CURSOR"


async def test_one_report_is_public(api_client, listed):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    response = await api_client.get(f"/v1/impact-reports/{report['id']}")
    assert response.status_code == 200
    assert response.json() == report


async def test_published_reports_and_assurances_are_append_only(api_client, listed, pg_dsn):
    report = await publish(api_client, listed["girasole"], "GIRA", report_body())
    await _assure(api_client, listed["assessor"], report["id"])
    conn = await asyncpg.connect(pg_dsn)
    try:
        for statement in (
            "UPDATE impact_report_values SET value = 60",
            "UPDATE impact_reports SET summary = 'better'",
            "DELETE FROM impact_assurances",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()
