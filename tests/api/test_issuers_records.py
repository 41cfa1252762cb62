"""Issuer records: the issuer writes its own, the public reads them, operators record the eligibility screening."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from api.auth import Role
from tests.api.listings import issuer_body, register_issuer, screen
from tests.api.trading import Caller, make_caller


@pytest.fixture
async def people(api_app: FastAPI) -> dict[str, Caller]:
    return {
        "operator": await make_caller(api_app, "ops", Role.OPERATOR),
        "girasole": await make_caller(api_app, "girasole", Role.ISSUER),
        "other": await make_caller(api_app, "other-issuer", Role.ISSUER),
        "investor": await make_caller(api_app, "alice", Role.INVESTOR),
    }


async def test_an_issuer_creates_its_record_and_the_screening_starts_pending(api_client, people):
    response = await api_client.put("/v1/issuers/girasole", json=issuer_body(), headers=people["girasole"].headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["issuer_id"] == "girasole"
    assert body["legal_form"] == "social_cooperative"
    assert body["screening"]["result"] == "pending"
    assert body["screening"]["evidence"] == {
        "target_population_share": "78.5",
        "excluded_sectors": [],
        "last_due_diligence": "2025-03-31",
    }
    assert body["listings"] == []


async def test_writing_the_same_record_again_answers_200_and_keeps_the_screening(api_client, people):
    await register_issuer(api_client, people["girasole"])
    await screen(api_client, people["operator"], "girasole")
    response = await api_client.put("/v1/issuers/girasole", json=issuer_body(), headers=people["girasole"].headers)
    assert response.status_code == 200
    assert response.json()["screening"]["result"] == "eligible"


async def test_changed_evidence_sends_the_screening_back_to_pending(api_client, people):
    await register_issuer(api_client, people["girasole"])
    await screen(api_client, people["operator"], "girasole")
    changed = issuer_body()
    changed["evidence"]["target_population_share"] = "55"
    response = await api_client.put("/v1/issuers/girasole", json=changed, headers=people["girasole"].headers)
    assert response.json()["screening"]["result"] == "pending"
    assert response.json()["screening"]["screened_at"] is None


async def test_an_issuer_cannot_write_another_issuers_record(api_client, people):
    response = await api_client.put("/v1/issuers/girasole", json=issuer_body(), headers=people["other"].headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "NOT_YOUR_ISSUER"


async def test_only_issuers_write_issuer_records(api_client, people):
    response = await api_client.put("/v1/issuers/alice", json=issuer_body(), headers=people["investor"].headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN_ROLE"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("legal_form", "limited_company"),
        ("country", "Italy"),
        ("website", "ftp://girasole.example.org"),
        ("website", "https://girasole.example.org/\u0000"),
        ("legal_name", "Girasole\u0000"),
        ("evidence", {"target_population_share": "101", "last_due_diligence": "2025-03-31"}),
        ("evidence", {"target_population_share": 78.5, "last_due_diligence": "2025-03-31"}),
        ("evidence", {"target_population_share": "80", "last_due_diligence": "2025-03"}),
        ("evidence", {"target_population_share": "8", "excluded_sectors": ["tea"], "last_due_diligence": "2025-01-01"}),
    ],
)
async def test_an_invalid_issuer_record_is_refused_with_422(api_client, people, field, value):
    response = await api_client.put(
        "/v1/issuers/girasole", json=issuer_body(**{field: value}), headers=people["girasole"].headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_the_public_reads_issuers_without_a_key_filtered_by_legal_form(api_client, people):
    await register_issuer(api_client, people["girasole"])
    await register_issuer(api_client, people["other"], legal_form="societa_benefit", legal_name="Valle Verde SB")
    response = await api_client.get("/v1/issuers", params={"legal_form": "societa_benefit"})
    assert response.status_code == 200
    assert [i["issuer_id"] for i in response.json()["issuers"]] == ["other-issuer"]
    one = await api_client.get("/v1/issuers/girasole")
    assert one.json()["legal_name"] == "Cooperativa Sociale Il Girasole"


async def test_issuers_page_with_a_cursor(api_client, people):
    await register_issuer(api_client, people["girasole"])
    await register_issuer(api_client, people["other"])
    first = (await api_client.get("/v1/issuers", params={"limit": 1})).json()
    assert [i["issuer_id"] for i in first["issuers"]] == ["girasole"]
    second = (await api_client.get("/v1/issuers", params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert [i["issuer_id"] for i in second["issuers"]] == ["other-issuer"]
    assert second["next_cursor"] is None


async def test_an_unknown_issuer_is_404(api_client):
    response = await api_client.get("/v1/issuers/nobody")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_ISSUER"


async def test_the_operator_records_the_screening_with_its_reason(api_client, people):
    await register_issuer(api_client, people["girasole"])
    response = await api_client.post(
        "/v1/issuers/girasole/screening",
        json={"result": "ineligible", "reason": "Less than half of the activity serves the target population"},
        headers=people["operator"].headers,
    )
    assert response.status_code == 200
    screening = response.json()["screening"]
    assert screening["result"] == "ineligible"
    assert screening["reason"].startswith("Less than half")
    assert screening["screened_at"].endswith("Z")


async def test_an_issuer_active_in_an_excluded_sector_cannot_be_found_eligible(api_client, people):
    evidence = {"target_population_share": "90", "excluded_sectors": ["gambling"], "last_due_diligence": "2025-01-31"}
    await register_issuer(api_client, people["girasole"], evidence=evidence)
    response = await api_client.post(
        "/v1/issuers/girasole/screening",
        json={"result": "eligible", "reason": "ok"},
        headers=people["operator"].headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "EXCLUDED_SECTOR"


async def test_a_screening_must_decide_and_give_a_reason(api_client, people):
    await register_issuer(api_client, people["girasole"])
    for body in ({"result": "pending", "reason": "later"}, {"result": "eligible", "reason": ""}):
        response = await api_client.post(
            "/v1/issuers/girasole/screening", json=body, headers=people["operator"].headers
        )
        assert response.status_code == 422, body


async def test_only_operators_screen_issuers(api_client, people):
    await register_issuer(api_client, people["girasole"])
    response = await api_client.post(
        "/v1/issuers/girasole/screening",
        json={"result": "eligible", "reason": "self-assessed"},
        headers=people["girasole"].headers,
    )
    assert response.status_code == 403
