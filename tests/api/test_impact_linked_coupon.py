"""An impact-linked bond's coupon follows its latest ASSURED impact report (issue 8): assurance journals the outcome."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.listings import bond_application, list_through_application, publish, report_body
from tests.api.trading import Caller, make_caller


@pytest.fixture
async def people(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    people = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "issuer": await make_caller(api_app, "casa", Role.ISSUER),
        "assessor": await make_caller(api_app, "impact-audit", Role.ASSESSOR),
    }
    body = bond_application("CASA30", issue_date="2024-01-01", maturity_date="2030-01-01", coupon_rate="4")
    body["bond"] |= {"impact_step_down": "0.25", "impact_step_up": "0.5"}
    await list_through_application(api_client, people["operator"], people["issuer"], body)
    return people


async def _assure(client: httpx.AsyncClient, assessor: Caller, report_id: str) -> None:
    response = await client.post(
        f"/v1/impact-reports/{report_id}/assurance",
        json={"level": "reasonable", "statement": "Figures traced to payroll and weighbridge records."},
        headers=assessor.headers,
    )
    assert response.status_code == 200, response.text


async def _coupon_rate(client: httpx.AsyncClient) -> str:
    return (await client.get("/v1/instruments/CASA30/terms")).json()["coupon_rate"]


async def test_an_assured_report_that_meets_every_target_steps_the_coupon_down(api_client, people):
    body = report_body(workers="60") | {
        "values": [{"code": "PI3687", "value": "60"}, {"code": "OI1479", "value": "80"}]
    }
    report = await publish(api_client, people["issuer"], "CASA30", body)
    assert await _coupon_rate(api_client) == "4"
    await _assure(api_client, people["assessor"], report["id"])
    assert await _coupon_rate(api_client) == "3.75"


async def test_an_assured_report_that_misses_a_target_steps_the_coupon_up(api_client, people):
    report = await publish(api_client, people["issuer"], "CASA30", report_body(workers="47"))
    await _assure(api_client, people["assessor"], report["id"])
    assert await _coupon_rate(api_client) == "4.5"


async def test_a_published_but_unassured_report_does_not_move_the_coupon(api_client, people):
    await publish(api_client, people["issuer"], "CASA30", report_body(workers="60"))
    assert await _coupon_rate(api_client) == "4"
