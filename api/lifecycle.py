"""What the app does between process start and exit: find the database, migrate it, start its components.

Order at start-up:
1. the database: `DATABASE_URL`, or an embedded PostgreSQL started here (and stopped on exit);
2. the connection pools `app.state.db_engine` (SQLAlchemy) and `app.state.pg_pool` (asyncpg), which
   connect lazily, so an unreachable database does not stop the process from starting;
3. the bring-up: migrations to head, then each `Component.start` in order, then
   `app.state.engine_ready = True`. If a step fails (typically: the database is unreachable), the process
   still serves (`/readyz` answers 503 saying why) and the bring-up is retried in the background, resuming
   at the step that failed.
At shutdown the started components stop in reverse order, then the pools close, then the embedded server.

A component (the sequencer, market-data publishers...) is an async `start(app)` and an optional
`stop(app)`. It may set `app.state.engine_ready = False` later (fail-stop) and say why in
`app.state.startup_error`; `/readyz` then answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from api.settings import Settings
from ledger.migrate import head_revision, upgrade_to_head_async
from ledger.postgres import EmbeddedPostgres, asyncpg_dsn

logger = logging.getLogger(__name__)

_MAX_RETRY_SECONDS = 30.0
_POOL_CLOSE_SECONDS = 10.0

AppHook = Callable[[FastAPI], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Component:
    """Something that runs inside the app once the database is migrated; stopped in reverse order."""

    name: str
    start: AppHook
    stop: AppHook | None = None


class BringUp:
    """Migrations then components, resumable: a failed attempt is retried from the step that failed."""

    def __init__(self, app: FastAPI, components: Sequence[Component]) -> None:
        self.app = app
        self.components = tuple(components)
        self.started: list[Component] = []
        self.migrated = False
        self._retry_task: asyncio.Task[None] | None = None

    async def attempt(self) -> bool:
        state = self.app.state
        try:
            if not self.migrated:
                revision = await upgrade_to_head_async(state.database_url)
                self.migrated = True
                logger.info("database migrated", extra={"revision": revision})
            for component in self.components[len(self.started):]:
                await component.start(self.app)
                self.started.append(component)
                logger.info("component started", extra={"component": component.name})
        except Exception as exc:  # any failure leaves the process up but not ready; the reason is reported
            state.startup_error = f"{type(exc).__name__}: {exc}".strip()
            logger.warning("start-up incomplete: %s", state.startup_error)
            return False
        state.startup_error = None
        state.engine_ready = True
        return True

    def retry_in_background(self, first_delay: float) -> None:
        self._retry_task = asyncio.create_task(self._retry(first_delay), name="bring-up-retry")

    async def _retry(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            if await self.attempt():
                logger.info("start-up completed after retry")
                return
            delay = min(delay * 2, _MAX_RETRY_SECONDS)

    async def shut_down(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        self.app.state.engine_ready = False
        for component in reversed(self.started):
            if component.stop is None:
                continue
            try:
                await component.stop(self.app)
                logger.info("component stopped", extra={"component": component.name})
            except Exception:
                logger.exception("component %s failed to stop cleanly", component.name)
        self.started.clear()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    state = app.state
    state.embedded_postgres = None
    state.db_engine = None
    state.pg_pool = None
    bring_up = BringUp(app, app.state.components)
    try:
        if settings.database_url is not None:
            state.database_url = settings.database_url
        else:
            state.embedded_postgres = EmbeddedPostgres(settings.embedded_pgdata)
            state.database_url = await asyncio.to_thread(state.embedded_postgres.start)
        state.head_revision = head_revision()
        state.db_engine = create_async_engine(state.database_url, pool_size=settings.db_pool_size, pool_pre_ping=True)
        # min_size=0: the pool connects on first use, so a database that is down does not abort start-up.
        state.pg_pool = await asyncpg.create_pool(
            asyncpg_dsn(state.database_url), min_size=0, max_size=settings.pg_pool_max_size
        )
        if not await bring_up.attempt():
            bring_up.retry_in_background(settings.startup_retry_seconds)
        yield
    finally:
        await bring_up.shut_down()
        if state.pg_pool is not None:
            try:
                await asyncio.wait_for(state.pg_pool.close(), _POOL_CLOSE_SECONDS)
            except TimeoutError:
                state.pg_pool.terminate()
        if state.db_engine is not None:
            await state.db_engine.dispose()
        if state.embedded_postgres is not None:
            await asyncio.to_thread(state.embedded_postgres.stop)
