"""Per-key token buckets: a burst is allowed, then 429 `RATE_LIMITED` with `Retry-After` until tokens refill."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.auth import Role, create_key, create_participant
from api.ratelimit import RateLimiter, TokenBucket, retry_after_header
from api.settings import Settings
from tests.support import running_app


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# -- the bucket --------------------------------------------------------------------------------------------------


def test_a_full_bucket_allows_its_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) == 0.0 for _ in range(4)] == [True, True, True, False]


def test_a_refused_take_says_how_long_until_the_next_token() -> None:
    bucket = TokenBucket(rate=4.0, capacity=1.0, tokens=0.0, updated=0.0)
    assert bucket.take(0.0) == pytest.approx(0.25)


def test_tokens_refill_at_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, tokens=0.0, updated=0.0)
    assert bucket.take(0.4) > 0  # 0.8 tokens
    assert bucket.take(0.5) == 0.0  # 1.0 token


def test_tokens_never_refill_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, capacity=2.0, tokens=0.0, updated=0.0)
    allowed = [bucket.take(3600.0) == 0.0 for _ in range(3)]
    assert allowed == [True, True, False]


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1.0, capacity=5.0, tokens=0.0, updated=10.0)
    assert bucket.take(5.0) > 0


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=ManualClock())
    assert (limiter.wait_seconds("key_a"), limiter.wait_seconds("key_b")) == (0.0, 0.0)
    assert limiter.wait_seconds("key_a") > 0


def test_a_forgotten_key_starts_again_with_a_full_bucket() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=ManualClock())
    limiter.wait_seconds("key_a")
    limiter.forget("key_a")
    assert limiter.wait_seconds("key_a") == 0.0


def test_the_limiter_refills_with_its_clock() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=10.0, burst=1, clock=clock)
    limiter.wait_seconds("key_a")
    clock.now += 0.1
    assert limiter.wait_seconds("key_a") == 0.0


@pytest.mark.parametrize(("seconds", "header"), [(0.001, "1"), (0.999, "1"), (1.0, "1"), (1.01, "2"), (29.5, "30")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


# -- over HTTP ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def slow_app(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app allowing a burst of 3 requests per key, refilled at one token every 10 seconds (no sequencer)."""
    settings = Settings(
        _env_file=None, database_url=db_url, data_dir=tmp_path / "var", rate_limit_burst=3, rate_limit_per_second=0.1
    )
    async with running_app(settings, components=[]) as running:
        yield running


async def _key(app: FastAPI, participant_id: str) -> dict[str, str]:
    async with app.state.pg_pool.acquire() as conn:
        await create_participant(conn, participant_id, participant_id, Role.REGULATOR)
        _, token = await create_key(conn, participant_id)
    return {"Authorization": f"Bearer {token}"}


async def test_a_key_over_its_burst_gets_429_with_retry_after(slow_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = slow_app
    headers = await _key(app, "watcher")
    statuses = [(await client.get("/v1/me", headers=headers)).status_code for _ in range(4)]
    refused = await client.get("/v1/participants", headers=headers)
    assert statuses == [200, 200, 200, 429]
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["retry-after"]) <= 10


async def test_one_noisy_key_does_not_limit_another(slow_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = slow_app
    noisy, quiet = await _key(app, "noisy"), await _key(app, "quiet")
    for _ in range(4):
        await client.get("/v1/me", headers=noisy)
    assert (await client.get("/v1/me", headers=quiet)).status_code == 200


async def test_requests_without_a_valid_key_take_no_tokens(slow_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = slow_app
    headers = await _key(app, "watcher")
    for _ in range(5):
        await client.get("/v1/me", headers={"Authorization": "Bearer not-a-key"})
    assert [(await client.get("/v1/me", headers=headers)).status_code for _ in range(3)] == [200, 200, 200]


async def test_a_request_takes_one_token_however_many_dependencies_ask(
    slow_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # /v1/participants checks the role AND the router-level limit: still one token per request.
    app, client = slow_app
    headers = await _key(app, "watcher")
    statuses = [(await client.get("/v1/participants", headers=headers)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
