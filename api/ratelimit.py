"""Per-key rate limits: a token bucket for every API key, refilled at `rate_limit_per_second` up to `rate_limit_burst`.

Each authenticated request takes one token from its key's bucket; an empty bucket answers 429 `RATE_LIMITED` with a
`Retry-After` saying in whole seconds (at least 1) when the next token will be there. Buckets live in this process
only (one exchange process is the unit of scale: see architecture.md), so a restart refills them — fine for a limit
that protects the sequencer from one noisy client rather than billing anyone.

Routes opt in with the `rate_limited` dependency (a router-level `dependencies=[Depends(rate_limited)]` covers a whole
router). `charge` takes the token and is idempotent per request, so calling it from `api.auth.authenticate` as well
never charges a request twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request

from api.auth import Principal, authenticate
from api.errors import ApiError


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens at most, refilled continuously at `rate` tokens per second (times in seconds)."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token at time `now`: 0.0 if it was there, else the seconds until one will be (nothing taken)."""
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per API key id; `clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def wait_seconds(self, key_id: str) -> float:
        """Take a token for `key_id`: 0.0 if allowed, else how long until the next token."""
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self.rate, float(self.burst), float(self.burst), now)
        return bucket.take(now)

    def forget(self, key_id: str) -> None:
        """Drop the bucket of a revoked key (its requests are refused before reaching the limiter anyway)."""
        self._buckets.pop(key_id, None)


def limiter_of(app: FastAPI) -> RateLimiter:
    """The app's limiter, made on first use from `app.state.settings`."""
    limiter = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        settings = app.state.settings
        limiter = app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    return limiter


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, rounded up and never below 1 (0 would invite an immediate retry storm)."""
    return str(max(1, math.ceil(seconds)))


def take_token(app: FastAPI, principal: Principal) -> None:
    """Take one token from the caller's bucket, or raise 429 `RATE_LIMITED` (nothing taken)."""
    wait = limiter_of(app).wait_seconds(principal.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "RATE_LIMITED",
            "too many requests for this API key; retry after the time in Retry-After",
            {"retry_after_seconds": round(wait, 3)},
            {"Retry-After": retry_after_header(wait)},
        )


def charge(request: Request, principal: Principal) -> None:
    """Take this request's token from the caller's bucket, or raise 429 `RATE_LIMITED`. Charges once per request."""
    if getattr(request.state, "rate_charged", False):
        return
    request.state.rate_charged = True
    take_token(request.app, principal)


async def rate_limited(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
    """Dependency: the authenticated caller, after taking one token from its key's bucket."""
    charge(request, principal)
    return principal
