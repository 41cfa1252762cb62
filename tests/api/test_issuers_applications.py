"""Listing applications: an issuer applies with terms and an impact profile; an operator approves (the instrument is
listed through the sequencer in pre_open) or rejects, with a reason recorded."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role
from exchange.instrument import InstrumentKind, TradingState
from tests.api.listings import (
    apply,
    approve,
    bond_application,
    equity_application,
    register_issuer,
    screen,
)
from tests.api.trading import Caller, make_caller


@pytest.fixture
async def people(api_app: FastAPI, api_client: httpx.AsyncClient) -> dict[str, Caller]:
    callers = {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "girasole": await make_caller(api_app, "girasole", Role.ISSUER),
        "other": await make_caller(api_app, "other-issuer", Role.ISSUER),
        "regulator": await make_caller(api_app, "consob", Role.REGULATOR),
        "investor": await make_caller(api_app, "alice", Role.INVESTOR),
    }
    await register_issuer(api_client, callers["girasole"])
    return callers


async def test_a_submitted_application_carries_its_terms_profile_and_calendar(api_client, people):
    body = await apply(api_client, people["girasole"], equity_application())
    assert body["status"] == "submitted"
    assert body["issuer_id"] == "girasole"
    assert body["equity"] == {"shares_outstanding": "100000", "nominal": "25"}
    assert body["trading"]["tick_size"] == "0.01" and body["trading"]["price_band_percent"] == "20"
    assert body["impact"]["sdgs"] == [8, 10]
    assert [i["code"] for i in body["impact"]["indicators"]] == ["PI3687", "OI1479"]
    assert body["impact"]["indicators"][1]["baseline"] == "120.5"
    assert body["impact"]["documents"][0]["kind"] == "prospectus"
    assert body["reporting"] == {"frequency": "annual", "first_due": "2030-06-30", "grace_days": 90}
    assert body["decisions"] == [] and body["listed_seq"] is None


async def test_approval_lists_the_instrument_in_pre_open_with_the_approved_terms(api_app, api_client, people):
    await screen(api_client, people["operator"], "girasole")
    application = await apply(api_client, people["girasole"], equity_application())
    approved = await approve(api_client, people["operator"], application["id"])
    assert approved["status"] == "approved"
    assert approved["listed_seq"] > 0
    [decision] = approved["decisions"]
    assert decision["action"] == "approve" and decision["decided_by"] == "ops"
    assert decision["seq"] == approved["listed_seq"]
    instrument = api_app.state.sequencer.engine.instruments["GIRA"]
    assert instrument.state is TradingState.PRE_OPEN
    assert instrument.issuer == "girasole"
    assert instrument.kind is InstrumentKind.EQUITY
    assert instrument.band_bps == 2_000 and instrument.reference_price == 2_500


async def test_the_listing_is_journalled_by_the_operator_who_approved(api_client, people, pg_dsn):
    import asyncpg

    await screen(api_client, people["operator"], "girasole")
    application = await apply(api_client, people["girasole"], equity_application())
    approved = await approve(api_client, people["operator"], application["id"])
    conn = await asyncpg.connect(pg_dsn)
    try:
        sender = await conn.fetchval("SELECT sender FROM journal WHERE seq = $1", approved["listed_seq"])
    finally:
        await conn.close()
    assert sender == "ops"


async def test_a_bond_application_lists_a_bond_with_its_terms(api_app, api_client, people):
    await screen(api_client, people["operator"], "girasole")
    application = await apply(api_client, people["girasole"], bond_application())
    assert application["bond"]["day_count"] == "30/360"
    await approve(api_client, people["operator"], application["id"])
    terms = api_app.state.sequencer.engine.instruments["CASA28"].bond
    assert terms.nominal_minor == 10_000 and terms.coupon_rate_ppm == 40_000 and terms.coupon_frequency == 1


async def test_approval_needs_an_eligible_screening(api_client, people):
    application = await apply(api_client, people["girasole"], equity_application())
    response = await api_client.post(
        f"/v1/listing-applications/{application['id']}/approve",
        json={"reason": "ok"},
        headers=people["operator"].headers,
    )
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "ISSUER_NOT_ELIGIBLE",
        "message": "the issuer's eligibility screening must be eligible before a listing is approved",
        "details": {"screening": "pending"},
    }


async def test_a_rejected_application_records_the_reason_and_frees_the_symbol(api_client, people):
    application = await apply(api_client, people["girasole"], equity_application())
    response = await api_client.post(
        f"/v1/listing-applications/{application['id']}/reject",
        json={"reason": "The theory of change does not match the indicators"},
        headers=people["operator"].headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "rejected" and body["decided_at"] is not None
    assert body["decisions"][0]["action"] == "reject"
    assert body["decisions"][0]["reason"] == "The theory of change does not match the indicators"
    again = await apply(api_client, people["girasole"], equity_application())
    assert again["status"] == "submitted"


async def test_a_decided_application_cannot_be_decided_again(api_client, people):
    await screen(api_client, people["operator"], "girasole")
    application = await apply(api_client, people["girasole"], equity_application())
    await approve(api_client, people["operator"], application["id"])
    for action in ("approve", "reject"):
        response = await api_client.post(
            f"/v1/listing-applications/{application['id']}/{action}",
            json={"reason": "twice"},
            headers=people["operator"].headers,
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "APPLICATION_DECIDED"


async def test_a_decision_needs_a_reason(api_client, people):
    application = await apply(api_client, people["girasole"], equity_application())
    response = await api_client.post(
        f"/v1/listing-applications/{application['id']}/reject", json={"reason": ""}, headers=people["operator"].headers
    )
    assert response.status_code == 422


async def test_only_operators_decide_applications(api_client, people):
    application = await apply(api_client, people["girasole"], equity_application())
    for caller in ("girasole", "regulator", "investor"):
        response = await api_client.post(
            f"/v1/listing-applications/{application['id']}/approve",
            json={"reason": "self-approved"},
            headers=people[caller].headers,
        )
        assert response.status_code == 403, caller


async def test_a_symbol_applied_for_cannot_be_applied_for_again(api_client, people):
    await apply(api_client, people["girasole"], equity_application())
    response = await api_client.post(
        "/v1/listing-applications", json=equity_application(), headers=people["girasole"].headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "SYMBOL_TAKEN"


async def test_an_application_needs_the_issuer_record_first(api_client, people):
    response = await api_client.post(
        "/v1/listing-applications", json=equity_application(), headers=people["other"].headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ISSUER_RECORD_REQUIRED"


def _with(body: dict, path: str, value: object) -> dict:
    target = body
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("impact.sdgs", [0, 7], "VALIDATION_ERROR"),
        ("impact.sdgs", [18], "VALIDATION_ERROR"),
        ("impact.sdgs", [7, 7], "VALIDATION_ERROR"),
        ("impact.sdgs", [], "VALIDATION_ERROR"),
        ("impact.documents", [], "VALIDATION_ERROR"),
        ("impact.documents.0.sha256", "abc", "VALIDATION_ERROR"),
        ("impact.documents.0.sha256", "A" * 64, "VALIDATION_ERROR"),
        ("impact.documents.0.url", "girasole.example.org/p.pdf", "VALIDATION_ERROR"),
        ("impact.documents.0.kind", "impact_report", "VALIDATION_ERROR"),  # no prospectus left
        ("impact.indicators.0.baseline", "1e3", "VALIDATION_ERROR"),
        ("impact.indicators.0.target", 60, "VALIDATION_ERROR"),
        ("impact.indicators.1.code", "PI3687", "VALIDATION_ERROR"),
        ("impact.theory_of_change", "   ", "VALIDATION_ERROR"),
        ("reporting.frequency", "monthly", "VALIDATION_ERROR"),
        ("trading.tick_size", "0.001", "TICK_VALUE_NOT_WHOLE"),
        ("trading.tick_size", "0", "INVALID_TICK_SIZE"),
        ("trading.reference_price", "25.005", "PRICE_NOT_ON_TICK"),
        ("trading.lot_size", 0, "VALIDATION_ERROR"),
        ("equity.shares_outstanding", "10.5", "INVALID_SHARES"),
        ("equity", None, "EQUITY_TERMS_REQUIRED"),
        ("currency", "XXX", "UNSUPPORTED_CURRENCY"),
    ],
)
async def test_an_invalid_application_is_refused_with_422(api_client, people, path, value, code):
    body = _with(equity_application(), path, value)
    response = await api_client.post("/v1/listing-applications", json=body, headers=people["girasole"].headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_a_bond_application_with_maturity_before_issue_is_refused(api_client, people):
    body = bond_application(issue_date="2024-06-30", maturity_date="2024-01-31")
    response = await api_client.post("/v1/listing-applications", json=body, headers=people["girasole"].headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "INVALID_BOND_DATES"


async def test_an_issuer_sees_only_its_own_applications(api_client, people):
    mine = await apply(api_client, people["girasole"], equity_application())
    await register_issuer(api_client, people["other"], legal_name="Other")
    theirs = await apply(api_client, people["other"], equity_application("OTHR"))
    listed = (await api_client.get("/v1/listing-applications", headers=people["girasole"].headers)).json()
    assert [a["id"] for a in listed["applications"]] == [mine["id"]]
    response = await api_client.get(f"/v1/listing-applications/{theirs['id']}", headers=people["girasole"].headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_APPLICATION"


async def test_regulators_read_every_application_newest_first_by_page(api_client, people):
    first = await apply(api_client, people["girasole"], equity_application())
    second = await apply(api_client, people["girasole"], equity_application("GIRB"))
    page = (
        await api_client.get("/v1/listing-applications", params={"limit": 1}, headers=people["regulator"].headers)
    ).json()
    assert [a["id"] for a in page["applications"]] == [second["id"]]
    rest = (
        await api_client.get(
            "/v1/listing-applications",
            params={"limit": 1, "cursor": page["next_cursor"]},
            headers=people["regulator"].headers,
        )
    ).json()
    assert [a["id"] for a in rest["applications"]] == [first["id"]] and rest["next_cursor"] is None


async def test_applications_filter_by_status(api_client, people):
    await apply(api_client, people["girasole"], equity_application())
    response = await api_client.get(
        "/v1/listing-applications", params={"status": "approved"}, headers=people["operator"].headers
    )
    assert response.json()["applications"] == []


async def test_the_public_cannot_read_applications(api_client, people):
    application = await apply(api_client, people["girasole"], equity_application())
    assert (await api_client.get("/v1/listing-applications")).status_code == 401
    assert (await api_client.get(f"/v1/listing-applications/{application['id']}")).status_code == 401


@pytest.mark.parametrize("application_id", ["abc", "99999999", "1" * 40])
async def test_an_unknown_application_id_is_404(api_client, people, application_id):
    response = await api_client.get(f"/v1/listing-applications/{application_id}", headers=people["operator"].headers)
    assert response.status_code == 404


async def test_two_operators_approving_at_once_list_the_instrument_once(api_app, api_client, people):
    second = await make_caller(api_app, "ops-two", Role.OPERATOR)
    await screen(api_client, people["operator"], "girasole")
    application = await apply(api_client, people["girasole"], equity_application())
    path = f"/v1/listing-applications/{application['id']}/approve"
    answers = await asyncio.gather(
        *(api_client.post(path, json={"reason": "ok"}, headers=who.headers) for who in (people["operator"], second))
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    decided = (await api_client.get(f"/v1/listing-applications/{application['id']}", headers=second.headers)).json()
    assert [d["action"] for d in decided["decisions"]] == ["approve"]
