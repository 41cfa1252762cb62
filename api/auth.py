"""Who is calling: API keys (random tokens shown once, stored as SHA-256), participants and their roles.

A request carries `Authorization: Bearer <key>`. The key's hash names a participant with ONE role; routes declare
which roles may call them with `Depends(require(Role.INVESTOR, ...))`. Verified keys are cached in memory (the table is
small and keys change rarely; revoking through this process clears the cache).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
from fastapi import Depends, Request

from api.errors import ApiError

KEY_PREFIX = "ixk_"
PARTICIPANT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Role(StrEnum):
    INVESTOR = "investor"
    ISSUER = "issuer"
    OPERATOR = "operator"
    REGULATOR = "regulator"
    ASSESSOR = "assessor"  # an external impact assessor: marks impact reports as assured


class InvestorCategory(StrEnum):
    RETAIL = "retail"
    PROFESSIONAL = "professional"


@dataclass(frozen=True, slots=True)
class Principal:
    participant_id: str
    role: Role
    category: InvestorCategory | None
    key_id: str


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_key() -> tuple[str, str]:
    """A fresh (key id, secret token). The token is shown once; only its hash is stored."""
    return "key_" + secrets.token_hex(8), KEY_PREFIX + secrets.token_urlsafe(32)


async def create_participant(
    conn: asyncpg.Connection,
    participant_id: str,
    name: str,
    role: Role,
    category: InvestorCategory | None = None,
) -> None:
    if not PARTICIPANT_ID.fullmatch(participant_id):
        raise ApiError(422, "INVALID_PARTICIPANT_ID", "participant ids are 1-64 of a-z, 0-9, '_', '.', '-'")
    if (role is Role.INVESTOR) != (category is not None):
        raise ApiError(422, "INVALID_CATEGORY", "investors need a category (retail or professional); others none")
    try:
        await conn.execute(
            "INSERT INTO participants (participant_id, name, role, category) VALUES ($1, $2, $3, $4)",
            participant_id,
            name,
            role.value,
            None if category is None else category.value,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "PARTICIPANT_EXISTS", f"participant {participant_id} already exists") from None


async def create_key(conn: asyncpg.Connection, participant_id: str, label: str = "") -> tuple[str, str]:
    """Issue a key for an existing participant; returns (key id, token)."""
    exists = await conn.fetchval("SELECT 1 FROM participants WHERE participant_id = $1", participant_id)
    if not exists:
        raise ApiError(404, "UNKNOWN_PARTICIPANT", f"no participant {participant_id}")
    key_id, token = new_key()
    await conn.execute(
        "INSERT INTO api_keys (key_id, participant_id, key_hash, label) VALUES ($1, $2, $3, $4)",
        key_id,
        participant_id,
        hash_key(token),
        label,
    )
    return key_id, token


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


class KeyCache:
    """Verified keys for a few seconds, so that a key revoked by another process (the CLI) stops working soon."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._by_hash: dict[bytes, tuple[float, Principal]] = {}

    def clear(self) -> None:
        self._by_hash.clear()

    async def lookup(self, pool: asyncpg.Pool, token: str) -> Principal | None:
        digest = hash_key(token)
        cached = self._by_hash.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT k.key_id, p.participant_id, p.role, p.category FROM api_keys k "
                "JOIN participants p USING (participant_id) WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
                digest,
            )
        if row is None:
            return None
        principal = Principal(
            row["participant_id"],
            Role(row["role"]),
            None if row["category"] is None else InvestorCategory(row["category"]),
            row["key_id"],
        )
        self._by_hash[digest] = (now, principal)
        return principal


def key_cache_of(app: Any) -> KeyCache:
    """The app's key cache, made on first use."""
    cache = getattr(app.state, "key_cache", None)
    if cache is None:
        cache = app.state.key_cache = KeyCache()
    return cache


def key_cache(request: Request) -> KeyCache:
    return key_cache_of(request.app)


async def principal_for(app: Any, authorization: str) -> Principal:
    """Who sends `Authorization: <authorization>`, or the 401/503 `ApiError` saying why nobody.

    Shared by the `authenticate` dependency and the order fast path (`api.fastpath`), so both answer alike."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "UNAUTHENTICATED", "send Authorization: Bearer <api key>")
    pool = app.state.pg_pool
    if pool is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    try:
        principal = await key_cache_of(app).lookup(pool, token.strip())
    except (OSError, asyncpg.PostgresError) as exc:
        raise ApiError(503, "NOT_READY", "the exchange cannot reach its database") from exc
    if principal is None:
        raise ApiError(401, "INVALID_API_KEY", "the API key is unknown or revoked")
    return principal


async def authenticate(request: Request) -> Principal:
    principal = await principal_for(request.app, request.headers.get("authorization", ""))
    request.state.principal = principal
    from api.ratelimit import charge  # here, not at the top: api.ratelimit imports this module

    charge(request, principal)
    return principal


class RoleCheck:
    """Admits callers with one of `roles`; anyone else gets 403 `FORBIDDEN_ROLE` (the message made once, here)."""

    __slots__ = ("allowed", "_message")

    def __init__(self, roles: Iterable[Role]) -> None:
        self.allowed = frozenset(roles)
        self._message = f"this needs the role {' or '.join(sorted(r.value for r in self.allowed))}"

    def __call__(self, principal: Principal) -> Principal:
        if principal.role not in self.allowed:
            raise ApiError(403, "FORBIDDEN_ROLE", self._message, {"role": principal.role.value})
        return principal


def require(*roles: Role):
    """A dependency admitting only callers with one of `roles`."""
    check = RoleCheck(roles)

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        return check(principal)

    return dependency
