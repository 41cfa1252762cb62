"""Probes for orchestrators: liveness (`/healthz`, the process answers) and readiness (`/readyz`).

Ready means: the database answers `SELECT 1` within the readiness timeout (about a second), it is
migrated to the head revision the code expects, and the engine says it is ready (start-up finished and
no fail-stop since). A 503 names the checks that failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import ErrorEnvelope, error_response
from ledger.migrate import fetch_current_revision

router = APIRouter(tags=["health"])

Check = dict[str, Any]


async def _database_checks(app: FastAPI) -> tuple[Check, Check]:
    state = app.state
    pool = getattr(state, "pg_pool", None)
    if pool is None:
        not_started = {"status": "failed", "error": "database pool not started"}
        return not_started, {"status": "unknown", "error": "database unavailable"}
    try:
        async with asyncio.timeout(state.settings.readiness_timeout_seconds):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                revision = await fetch_current_revision(conn)
    except TimeoutError:
        error = f"no answer within {state.settings.readiness_timeout_seconds:g} s"
        return {"status": "failed", "error": error}, {"status": "unknown", "error": "database unavailable"}
    except Exception as exc:  # connection refused, auth failure, server shutting down...
        error = f"{type(exc).__name__}: {exc}".strip()
        return {"status": "failed", "error": error}, {"status": "unknown", "error": "database unavailable"}
    head = state.head_revision
    migrations: Check = {"status": "ok" if revision == head else "failed", "revision": revision, "head": head}
    return {"status": "ok"}, migrations


def _engine_check(app: FastAPI) -> Check:
    sequencer = getattr(app.state, "sequencer", None)
    if sequencer is not None and not sequencer.ready:
        return {"status": "failed", "error": f"sequencer {sequencer.state.value}"}
    if getattr(app.state, "engine_ready", False):
        return {"status": "ok"}
    return {"status": "failed", "error": getattr(app.state, "startup_error", None) or "engine not ready"}


async def readiness(app: FastAPI) -> dict[str, Check]:
    database, migrations = await _database_checks(app)
    return {"database": database, "migrations": migrations, "engine": _engine_check(app)}


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, migrated to head, engine ready",
    responses={503: {"model": ErrorEnvelope, "description": "Not ready; `details.failed` lists the checks"}},
)
async def readyz(request: Request) -> JSONResponse:
    checks = await readiness(request.app)
    failed = [name for name, check in checks.items() if check["status"] != "ok"]
    if failed:
        return error_response(
            503, "NOT_READY", f"not ready: {', '.join(failed)}", {"failed": failed, "checks": checks}
        )
    return JSONResponse({"status": "ready", "checks": checks})
