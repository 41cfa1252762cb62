"""The public impact view: instruments filtered by goal, legal form, kind and reporting status; one instrument with
its issuer, terms, profile, reporting status (overdue past the grace period) and listing events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.listings import (
    apply,
    approve,
    bond_application,
    equity_application,
    impact_profile,
    list_through_application,
    publish,
    register_issuer,
    report_body,
    screen,
)
from tests.api.trading import Caller, make_caller

TODAY = datetime.now(UTC).date()


@pytest.fixture
async def listings(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    """GIRA (social cooperative equity, SDG 8/10, first report long overdue), SOLE (società benefit equity, SDG 7/13,
    first report due next year) and CASA (social cooperative bond, SDG 1/11); one application left pending."""
    people = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "girasole": await make_caller(api_app, "girasole", Role.ISSUER),
        "valleverde": await make_caller(api_app, "valleverde", Role.ISSUER),
        "assessor": await make_caller(api_app, "impact-audit", Role.ASSESSOR),
    }
    overdue_since = TODAY - timedelta(days=200)
    await list_through_application(
        api_client, people["operator"], people["girasole"], equity_application("GIRA", first_due=overdue_since)
    )
    casa = await apply(api_client, people["girasole"], bond_application("CASA", maturity_date="2034-06-30"))
    await approve(api_client, people["operator"], casa["id"])
    await register_issuer(
        api_client, people["valleverde"], legal_form="societa_benefit", legal_name="Valle Verde Energia SB"
    )
    await screen(api_client, people["operator"], "valleverde")
    sole = equity_application("SOLE", first_due=TODAY + timedelta(days=365))
    sole["impact"] = impact_profile([7, 13])
    await approve(api_client, people["operator"], (await apply(api_client, people["valleverde"], sole))["id"])
    await apply(api_client, people["valleverde"], equity_application("PEND"))
    return people


async def _symbols(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get("/v1/impact/instruments", params=params)
    assert response.status_code == 200, response.text
    return [i["symbol"] for i in response.json()["instruments"]]


async def test_the_public_lists_approved_listings_only(api_client, listings):
    assert await _symbols(api_client) == ["CASA", "GIRA", "SOLE"]


async def test_instruments_filter_by_goal(api_client, listings):
    assert await _symbols(api_client, sdg=7) == ["SOLE"]
    assert await _symbols(api_client, sdg=10) == ["GIRA"]
    assert await _symbols(api_client, sdg=16) == []


async def test_instruments_filter_by_legal_form_and_kind_together(api_client, listings):
    assert await _symbols(api_client, legal_form="social_cooperative") == ["CASA", "GIRA"]
    assert await _symbols(api_client, legal_form="social_cooperative", kind="equity") == ["GIRA"]
    assert await _symbols(api_client, kind="bond") == ["CASA"]


async def test_instruments_filter_by_reporting_status(api_client, listings):
    assert await _symbols(api_client, reporting="overdue") == ["GIRA"]
    assert await _symbols(api_client, reporting="current") == ["CASA", "SOLE"]


@pytest.mark.parametrize("params", [{"sdg": 0}, {"sdg": 18}, {"legal_form": "spa"}, {"kind": "fund"}])
async def test_an_invalid_filter_is_422(api_client, listings, params):
    response = await api_client.get("/v1/impact/instruments", params=params)
    assert response.status_code == 422


async def test_the_instruments_list_pages_by_symbol(api_client, listings):
    first = (await api_client.get("/v1/impact/instruments", params={"limit": 2})).json()
    assert [i["symbol"] for i in first["instruments"]] == ["CASA", "GIRA"]
    rest = (await api_client.get("/v1/impact/instruments", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [i["symbol"] for i in rest["instruments"]] == ["SOLE"] and rest["next_cursor"] is None


async def test_a_summary_carries_the_issuer_goals_state_and_reporting_status(api_client, listings):
    response = await api_client.get("/v1/impact/instruments", params={"sdg": 7})
    [sole] = response.json()["instruments"]
    assert sole["kind"] == "equity" and sole["trading_state"] == "pre_open"
    assert sole["issuer"] == {
        "issuer_id": "valleverde",
        "legal_name": "Valle Verde Energia SB",
        "country": "IT",
        "legal_form": "societa_benefit",
        "website": "https://girasole.example.org",
        "screening": "eligible",
    }
    assert sole["sdgs"] == [7, 13]
    assert sole["impact_reporting"]["status"] == "current"
    assert sole["impact_reporting"]["next_due"] == (TODAY + timedelta(days=365)).isoformat()


async def test_an_overdue_listing_is_flagged_publicly(api_client, listings):
    body = (await api_client.get("/v1/impact/instruments/GIRA")).json()
    reporting = body["impact_reporting"]
    assert reporting["status"] == "overdue"
    assert reporting["next_due"] == (TODAY - timedelta(days=200)).isoformat()
    assert reporting["grace_days"] == 90 and reporting["reports_published"] == 0
    assert reporting["last_assured_report"] is None


async def test_a_report_brings_an_overdue_listing_back_to_current(api_client, listings):
    await publish(api_client, listings["girasole"], "GIRA", report_body())
    reporting = (await api_client.get("/v1/impact/instruments/GIRA")).json()["impact_reporting"]
    assert reporting["status"] == "current" and reporting["reports_published"] == 1


async def test_a_longer_grace_period_lifts_the_overdue_flag(api_client, listings):
    response = await api_client.put(
        "/v1/listings/GIRA/reporting",
        json={"grace_days": 365, "reason": "Auditor delayed by a regional flood"},
        headers=listings["operator"].headers,
    )
    assert response.json()["status"] == "current"


async def test_the_operator_may_suspend_an_overdue_listing_and_the_public_sees_why(api_client, listings):
    response = await api_client.post(
        "/v1/listings/GIRA/suspend",
        json={"reason": "Impact report overdue past the grace period"},
        headers=listings["operator"].headers,
    )
    assert response.status_code == 200
    body = (await api_client.get("/v1/impact/instruments/GIRA")).json()
    assert body["trading_state"] == "suspended"
    assert [(e["action"], e["reason"]) for e in body["listing_events"]] == [
        ("approve", "Eligible issuer; prospectus approved"),
        ("suspend", "Impact report overdue past the grace period"),
    ]
    assert "decided_by" not in body["listing_events"][0]


async def test_the_last_assured_report_is_shown(api_client, listings):
    older = await publish(api_client, listings["girasole"], "GIRA", report_body("2023-01-01", "2023-12-31"))
    await publish(api_client, listings["girasole"], "GIRA", report_body("2024-01-01", "2024-12-31"))
    await api_client.post(
        f"/v1/impact-reports/{older['id']}/assurance",
        json={"level": "reasonable", "statement": "Agreed to source records."},
        headers=listings["assessor"].headers,
    )
    reporting = (await api_client.get("/v1/impact/instruments/GIRA")).json()["impact_reporting"]
    assert reporting["last_assured_report"]["report_id"] == older["id"]
    assert reporting["last_assured_report"]["period_end"] == "2023-12-31"
    assert reporting["last_assured_report"]["level"] == "reasonable"


async def test_one_instrument_shows_its_terms_profile_and_latest_reports(api_client, listings):
    await publish(api_client, listings["girasole"], "GIRA", report_body())
    body = (await api_client.get("/v1/impact/instruments/GIRA")).json()
    assert body["equity"] == {"shares_outstanding": "100000", "nominal": "25"} and body["bond"] is None
    assert body["impact"]["theory_of_change"].startswith("Paid work")
    assert [d["kind"] for d in body["impact"]["documents"]] == ["prospectus"]
    assert [r["period_end"] for r in body["latest_reports"]] == ["2024-12-31"]
    bond = (await api_client.get("/v1/impact/instruments/CASA")).json()
    assert bond["bond"]["coupon_rate"] == "4" and bond["equity"] is None


async def test_a_pending_application_is_not_public(api_client, listings):
    response = await api_client.get("/v1/impact/instruments/PEND")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_LISTING"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/impact/instruments/GI%00RA",
        "/v1/impact/instruments/gira",
        "/v1/impact/instruments/%C2%B2/reports",
        "/v1/issuers/%00",
        "/v1/impact-reports/%C2%B2",
    ],
)
async def test_names_that_cannot_exist_are_404_before_reaching_the_database(api_client, listings, path):
    response = await api_client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("UNKNOWN_LISTING", "UNKNOWN_ISSUER", "UNKNOWN_REPORT")


@pytest.mark.parametrize("params", [{"cursor": "GI\u0000RA"}])
async def test_a_cursor_that_no_page_could_have_given_is_422(api_client, listings, params):
    assert (await api_client.get("/v1/impact/instruments", params=params)).status_code == 422
    assert (await api_client.get("/v1/issuers", params=params)).status_code == 422
