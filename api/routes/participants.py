"""Who may use the exchange: operators register participants and issue and revoke their API keys; anyone asks who
they are (`GET /v1/me`).

Operators change; regulators read the participant list and records (never the keys' secrets, which nobody can read:
only their SHA-256 is stored, and the token is shown once, in the answer that creates it). Every route here is rate
limited per key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, StrictStr, field_validator

from api.auth import (
    PARTICIPANT_ID,
    InvestorCategory,
    Principal,
    Role,
    create_key,
    create_participant,
    key_cache,
    require,
)
from api.commands import first_reject, reject_error, submit
from api.errors import ApiError, ErrorEnvelope
from api.ratelimit import limiter_of, rate_limited
from api.schemas import StrictModel
from exchange.commands import SetInvestorProfile
from exchange.instrument import InvestorCategory as CoreCategory

router = APIRouter(prefix="/v1", tags=["participants"], dependencies=[Depends(rate_limited)])
OPERATOR = require(Role.OPERATOR)
OPERATOR_OR_REGULATOR = require(Role.OPERATOR, Role.REGULATOR)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (401, 403, 404, 409, 422, 429)}
KEY_ID = re.compile(r"^key_[0-9a-f]{16}$")
# Control characters would make names unreadable in listings (and NUL cannot be stored in a PostgreSQL text).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ParticipantIdText = Annotated[
    StrictStr, Field(min_length=1, max_length=64, pattern=PARTICIPANT_ID.pattern, examples=["acme-impact"])
]


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


class ParticipantRequest(StrictModel):
    participant_id: ParticipantIdText = Field(description="1-64 of a-z, 0-9, '_', '.', '-', starting alphanumeric.")
    name: StrictStr = Field(min_length=1, max_length=200)
    role: Role
    category: InvestorCategory | None = Field(default=None, description="Investors only: retail or professional.")

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return _printable(value)


class KeyRequest(StrictModel):
    label: StrictStr = Field(default="", max_length=200, description="What the key is for, e.g. \"trading bot\".")

    @field_validator("label")
    @classmethod
    def _label_is_printable(cls, value: str) -> str:
        return _printable(value)


class KeyView(BaseModel):
    key_id: str
    label: str
    created_at: str
    revoked_at: str | None


class ParticipantView(BaseModel):
    participant_id: str
    name: str
    role: Role
    category: InvestorCategory | None
    created_at: str


class ParticipantDetail(ParticipantView):
    keys: list[KeyView]


class ParticipantPage(BaseModel):
    participants: list[ParticipantView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class NewKey(BaseModel):
    key_id: str
    participant_id: str
    label: str
    api_key: str = Field(description="The secret token, shown only in this answer: store it now.")


class RevokedKey(BaseModel):
    key_id: str
    participant_id: str
    revoked_at: str


class Me(BaseModel):
    participant_id: str
    role: Role
    category: InvestorCategory | None
    key_id: str


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _participant_view(row: asyncpg.Record) -> ParticipantView:
    return ParticipantView(
        participant_id=row["participant_id"],
        name=row["name"],
        role=Role(row["role"]),
        category=None if row["category"] is None else InvestorCategory(row["category"]),
        created_at=rfc3339(row["created_at"]),
    )


def _known_participant_id(participant_id: str) -> str:
    # A path that cannot be a participant id names nobody (and never reaches the database as a bad string).
    if not PARTICIPANT_ID.match(participant_id):
        raise ApiError(404, "UNKNOWN_PARTICIPANT", "no such participant")
    return participant_id


_PARTICIPANT_COLUMNS = "participant_id, name, role, category, created_at"


@router.post(
    "/participants",
    status_code=201,
    response_model=ParticipantView,
    responses=ERRORS,
    summary="Register a participant (operator)",
)
async def register_participant(
    request: Request, body: ParticipantRequest, operator: Annotated[Principal, Depends(OPERATOR)]
) -> ParticipantView:
    async with request.app.state.pg_pool.acquire() as conn:
        await create_participant(conn, body.participant_id, body.name, body.role, body.category)
        row = await conn.fetchrow(
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = $1", body.participant_id
        )
    if body.category is not None:
        # The engine enforces retail protection from the investor's profile: journal it with the registration, so
        # a retail investor is never unrestricted (declared assets can be added later by the profile route).
        profile = SetInvestorProfile(body.participant_id, CoreCategory(body.category.value), None)
        outcome = await submit(request, profile, operator.participant_id)
        rejected = first_reject(outcome)
        if rejected is not None:
            raise reject_error(rejected)
    return _participant_view(row)


@router.get(
    "/participants",
    response_model=ParticipantPage,
    responses=ERRORS,
    summary="List participants by id (operator, regulator)",
)
async def list_participants(
    request: Request,
    _: Annotated[Principal, Depends(OPERATOR_OR_REGULATOR)],
    cursor: Annotated[
        str | None,
        Query(max_length=64, pattern=PARTICIPANT_ID.pattern, description="next_cursor of the previous page"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ParticipantPage:
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants "
            "WHERE $1::text IS NULL OR participant_id > $1 ORDER BY participant_id LIMIT $2",
            cursor,
            limit + 1,
        )
    page = rows[:limit]
    next_cursor = page[-1]["participant_id"] if len(rows) > limit else None
    return ParticipantPage(participants=[_participant_view(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/participants/{participant_id}",
    response_model=ParticipantDetail,
    responses=ERRORS,
    summary="One participant and its keys (operator, regulator)",
)
async def get_participant(
    request: Request, participant_id: str, _: Annotated[Principal, Depends(OPERATOR_OR_REGULATOR)]
) -> ParticipantDetail:
    _known_participant_id(participant_id)
    async with request.app.state.pg_pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_PARTICIPANT_COLUMNS} FROM participants WHERE participant_id = $1", participant_id
        )
        if row is None:
            raise ApiError(404, "UNKNOWN_PARTICIPANT", f"no participant {participant_id}")
        keys = await conn.fetch(
            "SELECT key_id, label, created_at, revoked_at FROM api_keys WHERE participant_id = $1 "
            "ORDER BY created_at, key_id",
            participant_id,
        )
    view = _participant_view(row)
    return ParticipantDetail(
        **view.model_dump(),
        keys=[
            KeyView(
                key_id=k["key_id"],
                label=k["label"],
                created_at=rfc3339(k["created_at"]),
                revoked_at=None if k["revoked_at"] is None else rfc3339(k["revoked_at"]),
            )
            for k in keys
        ],
    )


@router.post(
    "/participants/{participant_id}/keys",
    status_code=201,
    response_model=NewKey,
    responses=ERRORS,
    summary="Issue an API key; the token is in this answer only (operator)",
)
async def issue_key(
    request: Request,
    response: Response,
    participant_id: str,
    _: Annotated[Principal, Depends(OPERATOR)],
    body: KeyRequest | None = None,
) -> NewKey:
    _known_participant_id(participant_id)
    label = "" if body is None else body.label
    async with request.app.state.pg_pool.acquire() as conn:
        key_id, token = await create_key(conn, participant_id, label)
    response.headers["Cache-Control"] = "no-store"  # a secret: no proxy or browser cache may keep it
    return NewKey(key_id=key_id, participant_id=participant_id, label=label, api_key=token)


@router.delete(
    "/participants/{participant_id}/keys/{key_id}",
    response_model=RevokedKey,
    responses=ERRORS,
    summary="Revoke an API key at once (operator)",
)
async def revoke(
    request: Request, participant_id: str, key_id: str, _: Annotated[Principal, Depends(OPERATOR)]
) -> RevokedKey:
    _known_participant_id(participant_id)
    if not KEY_ID.match(key_id):
        raise ApiError(404, "UNKNOWN_KEY", "no such key")
    async with request.app.state.pg_pool.acquire() as conn:
        row = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND participant_id = $2 AND revoked_at IS NULL "
            "RETURNING revoked_at",
            key_id,
            participant_id,
        )
        if row is None:
            revoked_at = await conn.fetchval(
                "SELECT revoked_at FROM api_keys WHERE key_id = $1 AND participant_id = $2", key_id, participant_id
            )
            if revoked_at is None:
                raise ApiError(404, "UNKNOWN_KEY", f"participant {participant_id} has no key {key_id}")
            raise ApiError(409, "KEY_ALREADY_REVOKED", f"key {key_id} was revoked at {rfc3339(revoked_at)}")
    # Verified keys are cached in memory: forget them all so the revoked one stops working on the next request.
    key_cache(request).clear()
    limiter_of(request.app).forget(key_id)
    return RevokedKey(key_id=key_id, participant_id=participant_id, revoked_at=rfc3339(row["revoked_at"]))


@router.get("/me", response_model=Me, responses=ERRORS, summary="Who this API key belongs to")
async def me(principal: Annotated[Principal, Depends(rate_limited)]) -> Me:
    return Me(
        participant_id=principal.participant_id,
        role=principal.role,
        category=principal.category,
        key_id=principal.key_id,
    )
