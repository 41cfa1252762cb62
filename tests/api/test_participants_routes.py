"""Participants and API keys administration: who may call what, registering participants, issuing and revoking keys,
and `GET /v1/me`."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from fastapi import FastAPI

from api.auth import InvestorCategory, Role, create_key, create_participant

ROLES = tuple(Role)
CATEGORY = {Role.INVESTOR: InvestorCategory.RETAIL}


async def _key_for(app: FastAPI, participant_id: str, role: Role) -> str:
    async with app.state.pg_pool.acquire() as conn:
        await create_participant(conn, participant_id, participant_id.title(), role, CATEGORY.get(role))
        _, token = await create_key(conn, participant_id)
    return token


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def keys(api_app: FastAPI) -> dict[Role, str]:
    """One participant and key per role, the participant named after its role (`operator`, `investor`, ...)."""
    return {role: await _key_for(api_app, role.value, role) for role in ROLES}


@pytest.fixture
async def operator(keys: dict[Role, str]) -> dict[str, str]:
    return _auth(keys[Role.OPERATOR])


def _error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# -- the authorization matrix ------------------------------------------------------------------------------------


async def _new_key_id(client: httpx.AsyncClient, operator: dict[str, str]) -> str:
    response = await client.post("/v1/participants/investor/keys", json={}, headers=operator)
    assert response.status_code == 201
    return response.json()["key_id"]


async def test_only_operators_register_participants(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    statuses = {}
    for role in ROLES:
        body = {"participant_id": f"new-{role.value}", "name": "New", "role": "issuer"}
        statuses[role] = (await api_client.post("/v1/participants", json=body, headers=_auth(keys[role]))).status_code
    assert statuses == {role: 201 if role is Role.OPERATOR else 403 for role in ROLES}


async def test_operators_and_regulators_list_participants(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    statuses = {
        role: (await api_client.get("/v1/participants", headers=_auth(keys[role]))).status_code for role in ROLES
    }
    assert statuses == {role: 200 if role in (Role.OPERATOR, Role.REGULATOR) else 403 for role in ROLES}


async def test_operators_and_regulators_read_a_participant(
    api_client: httpx.AsyncClient, keys: dict[Role, str]
) -> None:
    statuses = {
        role: (await api_client.get("/v1/participants/issuer", headers=_auth(keys[role]))).status_code for role in ROLES
    }
    assert statuses == {role: 200 if role in (Role.OPERATOR, Role.REGULATOR) else 403 for role in ROLES}


async def test_only_operators_issue_keys(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    statuses = {
        role: (await api_client.post("/v1/participants/issuer/keys", json={}, headers=_auth(keys[role]))).status_code
        for role in ROLES
    }
    assert statuses == {role: 201 if role is Role.OPERATOR else 403 for role in ROLES}


async def test_only_operators_revoke_keys(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    operator = _auth(keys[Role.OPERATOR])
    statuses = {}
    for role in ROLES:
        key_id = await _new_key_id(api_client, operator)
        path = f"/v1/participants/investor/keys/{key_id}"
        statuses[role] = (await api_client.delete(path, headers=_auth(keys[role]))).status_code
    assert statuses == {role: 200 if role is Role.OPERATOR else 403 for role in ROLES}


async def test_every_role_may_ask_who_it_is(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    statuses = {role: (await api_client.get("/v1/me", headers=_auth(keys[role]))).status_code for role in ROLES}
    assert statuses == dict.fromkeys(ROLES, 200)


async def test_every_route_needs_an_api_key(api_client: httpx.AsyncClient) -> None:
    routes = [
        ("POST", "/v1/participants"),
        ("GET", "/v1/participants"),
        ("GET", "/v1/participants/operator"),
        ("POST", "/v1/participants/operator/keys"),
        ("DELETE", "/v1/participants/operator/keys/key_0123456789abcdef"),
        ("GET", "/v1/me"),
    ]
    answers = {}
    for method, path in routes:
        response = await api_client.request(method, path, json={})
        answers[method, path] = (response.status_code, _error_code(response))
    assert answers == dict.fromkeys(routes, (401, "UNAUTHENTICATED"))


async def test_a_wrong_role_is_told_which_role_is_needed(api_client: httpx.AsyncClient, keys: dict[Role, str]) -> None:
    response = await api_client.post(
        "/v1/participants",
        json={"participant_id": "x", "name": "X", "role": "issuer"},
        headers=_auth(keys[Role.ISSUER]),
    )
    assert (response.status_code, _error_code(response)) == (403, "FORBIDDEN_ROLE")


# -- registering participants ------------------------------------------------------------------------------------


async def test_operator_registers_an_investor_with_its_category(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = {"participant_id": "anna.rossi", "name": "Anna Rossi", "role": "investor", "category": "retail"}
    response = await api_client.post("/v1/participants", json=body, headers=operator)
    assert response.status_code == 201
    created = response.json()
    assert {k: created[k] for k in body} == body
    assert created["created_at"].endswith("Z")
    assert (await api_client.get("/v1/participants/anna.rossi", headers=operator)).json()["name"] == "Anna Rossi"


async def test_a_second_participant_with_the_same_id_is_a_conflict(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = {"participant_id": "coop-1", "name": "Coop", "role": "issuer"}
    assert (await api_client.post("/v1/participants", json=body, headers=operator)).status_code == 201
    again = await api_client.post("/v1/participants", json={**body, "name": "Other"}, headers=operator)
    assert (again.status_code, _error_code(again)) == (409, "PARTICIPANT_EXISTS")


async def test_an_investor_without_a_category_is_refused(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = {"participant_id": "bob", "name": "Bob", "role": "investor"}
    response = await api_client.post("/v1/participants", json=body, headers=operator)
    assert (response.status_code, _error_code(response)) == (422, "INVALID_CATEGORY")


async def test_a_category_for_anyone_but_an_investor_is_refused(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = {"participant_id": "coop", "name": "Coop", "role": "issuer", "category": "professional"}
    response = await api_client.post("/v1/participants", json=body, headers=operator)
    assert (response.status_code, _error_code(response)) == (422, "INVALID_CATEGORY")


MALFORMED_PARTICIPANTS = [
    ("participant_id", "Upper Case"),
    ("participant_id", "-starts-with-dash"),
    ("participant_id", "x" * 65),
    ("participant_id", "trailing-newline\n"),
    ("participant_id", 42),
    ("name", ""),
    ("name", "   "),
    ("name", "n" * 201),
    ("name", "nul\x00byte"),
    ("name", None),
    ("role", "king"),
    ("category", "whale"),
]


async def test_malformed_participants_are_refused_naming_the_field(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    answers = []
    for field, value in MALFORMED_PARTICIPANTS:
        body = {"participant_id": "valid-id", "name": "Valid", "role": "investor", "category": "retail", field: value}
        response = await api_client.post("/v1/participants", json=body, headers=operator)
        first_error = response.json()["error"]["details"]["errors"][0]
        answers.append((response.status_code, _error_code(response), first_error["loc"]))
    assert answers == [(422, "VALIDATION_ERROR", ["body", field]) for field, _ in MALFORMED_PARTICIPANTS]
    assert (await api_client.get("/v1/participants/valid-id", headers=operator)).status_code == 404


async def test_unknown_fields_are_refused(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    body = {"participant_id": "p", "name": "P", "role": "issuer", "admin": True}
    response = await api_client.post("/v1/participants", json=body, headers=operator)
    assert (response.status_code, _error_code(response)) == (422, "VALIDATION_ERROR")


# -- reading participants ----------------------------------------------------------------------------------------


async def test_participants_page_by_id_with_a_cursor(
    api_client: httpx.AsyncClient, api_app: FastAPI, operator: dict[str, str]
) -> None:
    for name in ("p-a", "p-b", "p-c", "p-d"):
        await _key_for(api_app, name, Role.ISSUER)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = (await api_client.get("/v1/participants", params=params, headers=operator)).json()
        seen += [p["participant_id"] for p in page["participants"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everyone = ["assessor", "investor", "issuer", "operator", "p-a", "p-b", "p-c", "p-d", "regulator"]
    assert (seen, pages) == (everyone, 3)


async def test_bad_paging_parameters_are_refused(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    bad = [{"cursor": "Not An Id"}, {"cursor": "x" * 65}, {"limit": 0}, {"limit": 501}, {"limit": "many"}]
    answers = []
    for params in bad:
        response = await api_client.get("/v1/participants", params=params, headers=operator)
        answers.append((response.status_code, _error_code(response)))
    assert answers == [(422, "VALIDATION_ERROR")] * len(bad)


async def test_an_unknown_participant_is_404(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    unknown = ["nobody", "NOT-AN-ID", "nul%00byte", "newline%0A", "%E2%82%AC"]
    answers = []
    for participant_id in unknown:
        response = await api_client.get(f"/v1/participants/{participant_id}", headers=operator)
        answers.append((response.status_code, _error_code(response)))
    assert answers == [(404, "UNKNOWN_PARTICIPANT")] * len(unknown)


async def test_a_participant_record_lists_its_keys_without_secrets(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    issued = (await api_client.post("/v1/participants/issuer/keys", json={"label": "bot"}, headers=operator)).json()
    detail = (await api_client.get("/v1/participants/issuer", headers=operator)).json()
    assert [(k["label"], k["revoked_at"]) for k in detail["keys"]] == [("", None), ("bot", None)]
    assert issued["key_id"] in [k["key_id"] for k in detail["keys"]]
    assert issued["api_key"] not in str(detail)


# -- keys --------------------------------------------------------------------------------------------------------


async def test_a_new_key_authenticates_as_its_participant(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await api_client.post("/v1/participants/investor/keys", json={"label": "phone"}, headers=operator)
    assert response.status_code == 201
    issued = response.json()
    assert (issued["participant_id"], issued["label"]) == ("investor", "phone")
    me = await api_client.get("/v1/me", headers=_auth(issued["api_key"]))
    expected = {"participant_id": "investor", "role": "investor", "category": "retail", "key_id": issued["key_id"]}
    assert me.json() == expected


async def test_a_key_may_be_issued_without_a_body(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await api_client.post("/v1/participants/issuer/keys", headers=operator)
    assert (response.status_code, response.json()["label"]) == (201, "")


async def test_the_answer_holding_a_new_key_must_not_be_cached(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await api_client.post("/v1/participants/issuer/keys", json={}, headers=operator)
    assert response.headers["cache-control"] == "no-store"


async def test_the_token_is_stored_only_as_its_sha256(
    api_client: httpx.AsyncClient, api_app: FastAPI, operator: dict[str, str]
) -> None:
    issued = (await api_client.post("/v1/participants/issuer/keys", json={}, headers=operator)).json()
    async with api_app.state.pg_pool.acquire() as conn:
        stored = await conn.fetchval("SELECT key_hash FROM api_keys WHERE key_id = $1", issued["key_id"])
        everything = await conn.fetchval("SELECT string_agg(row_to_json(k)::text, ' ') FROM api_keys k")
    assert bytes(stored) == hashlib.sha256(issued["api_key"].encode()).digest()
    assert issued["api_key"] not in everything
    assert issued["api_key"].encode().hex() not in everything


async def test_a_revoked_key_is_refused_at_once(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    issued = (await api_client.post("/v1/participants/investor/keys", json={}, headers=operator)).json()
    assert (await api_client.get("/v1/me", headers=_auth(issued["api_key"]))).status_code == 200  # now cached
    path = f"/v1/participants/investor/keys/{issued['key_id']}"
    revoked = await api_client.delete(path, headers=operator)
    assert (revoked.status_code, revoked.json()["key_id"]) == (200, issued["key_id"])
    after = await api_client.get("/v1/me", headers=_auth(issued["api_key"]))
    assert (after.status_code, _error_code(after)) == (401, "INVALID_API_KEY")


async def test_revoking_one_key_leaves_the_others_working(
    api_client: httpx.AsyncClient, keys: dict[Role, str], operator: dict[str, str]
) -> None:
    key_id = await _new_key_id(api_client, operator)
    await api_client.delete(f"/v1/participants/investor/keys/{key_id}", headers=operator)
    assert (await api_client.get("/v1/me", headers=_auth(keys[Role.INVESTOR]))).status_code == 200


async def test_revoking_a_key_twice_is_a_conflict(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    key_id = await _new_key_id(api_client, operator)
    path = f"/v1/participants/investor/keys/{key_id}"
    await api_client.delete(path, headers=operator)
    again = await api_client.delete(path, headers=operator)
    assert (again.status_code, _error_code(again)) == (409, "KEY_ALREADY_REVOKED")


async def test_a_key_is_revoked_only_through_its_own_participant(
    api_client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    key_id = await _new_key_id(api_client, operator)  # belongs to `investor`
    response = await api_client.delete(f"/v1/participants/issuer/keys/{key_id}", headers=operator)
    assert (response.status_code, _error_code(response)) == (404, "UNKNOWN_KEY")


async def test_revoking_an_unknown_key_is_404(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    unknown = ["key_0123456789abcdef", "not-a-key", "key_%00"]
    answers = []
    for key_id in unknown:
        response = await api_client.delete(f"/v1/participants/investor/keys/{key_id}", headers=operator)
        answers.append((response.status_code, _error_code(response)))
    assert answers == [(404, "UNKNOWN_KEY")] * len(unknown)


async def test_a_key_for_an_unknown_participant_is_404(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await api_client.post("/v1/participants/nobody/keys", json={}, headers=operator)
    assert (response.status_code, _error_code(response)) == (404, "UNKNOWN_PARTICIPANT")


async def test_malformed_key_labels_are_refused(api_client: httpx.AsyncClient, operator: dict[str, str]) -> None:
    malformed: list[object] = ["l" * 201, "tab\there", "nul\x00", 7, None]
    answers = []
    for label in malformed:
        response = await api_client.post("/v1/participants/issuer/keys", json={"label": label}, headers=operator)
        answers.append((response.status_code, _error_code(response)))
    assert answers == [(422, "VALIDATION_ERROR")] * len(malformed)


# -- who am I ----------------------------------------------------------------------------------------------------


async def test_me_names_the_participant_role_and_category_of_the_key(
    api_client: httpx.AsyncClient, keys: dict[Role, str]
) -> None:
    investor = (await api_client.get("/v1/me", headers=_auth(keys[Role.INVESTOR]))).json()
    regulator = (await api_client.get("/v1/me", headers=_auth(keys[Role.REGULATOR]))).json()
    assert (investor["participant_id"], investor["role"], investor["category"]) == ("investor", "investor", "retail")
    assert (regulator["participant_id"], regulator["role"], regulator["category"]) == ("regulator", "regulator", None)
