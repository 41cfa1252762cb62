"""Shared fixtures: one PostgreSQL server per session, a template migrated to head, a fresh database per test.

- `database_server_url` (session): `DATABASE_URL` if set, else an embedded PostgreSQL in a temp dir.
- `migrated_template` (session): NAME of a database on that server migrated to head (new migrations are
  picked up every session); connections to it are disabled so it can always serve as a template.
- `db_url` (function): a fresh database copied from the template, dropped after the test.
- `pg_dsn` (function): the same database as a plain `postgresql://` DSN for raw asyncpg.
- `api_app` / `api_client` (function): the FastAPI app running (lifespan entered) on `db_url`, and an
  httpx client talking to it in-process.

Database names carry a host tag and the pid of the pytest process, so parallel runs never collide and
databases left behind by a killed run on this host are dropped by the next session.
"""

from __future__ import annotations

import os

# The calendar timer would change trading states at session boundaries (or at night) in the middle of a test:
# tests drive states themselves. Set before the app is imported anywhere.
os.environ.setdefault("EXCHANGE_SCHEDULE", "off")

import hashlib
import itertools
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.settings import Settings
from ledger.migrate import upgrade_to_head_async
from ledger.postgres import (
    EmbeddedPostgres,
    asyncpg_dsn,
    create_database,
    drop_database,
    normalise_database_url,
)
from tests.support import client_for, started_app

_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_RUN_TAG = f"{_HOST_TAG}_{os.getpid()}"
_OURS = re.compile(r"^exch_(?:tmpl|test)_(?P<host>[0-9a-f]{6})_(?P<pid>\d+)(?:_\d+)?$")
_test_numbers = itertools.count(1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _drop_leftovers(server_url: str) -> None:
    """Drop test databases of earlier runs on this host whose pytest process is gone."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        names = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'exch\\_%'")]
        for name in names:
            match = _OURS.match(name)
            if match is None or match["host"] != _HOST_TAG or _pid_alive(int(match["pid"])):
                continue
            await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _embedded_for_tests() -> bool:
    return not os.environ.get("DATABASE_URL", "").strip()


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    """`postgresql+asyncpg://` URL of a server the tests may create databases on."""
    if not _embedded_for_tests():
        yield normalise_database_url(os.environ["DATABASE_URL"])
        return
    base = Path(tempfile.mkdtemp(prefix="exchange-test-pg-"))
    server = EmbeddedPostgres(base / "pgdata", durable=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
async def migrated_template(database_server_url: str) -> AsyncIterator[str]:
    """Name of a database migrated to head, to be copied with CREATE DATABASE ... TEMPLATE."""
    await _drop_leftovers(database_server_url)
    name = f"exch_tmpl_{_RUN_TAG}"
    await drop_database(database_server_url, name)
    url = await create_database(database_server_url, name)
    await upgrade_to_head_async(url)
    conn = await asyncpg.connect(asyncpg_dsn(database_server_url))
    try:
        # Nobody may connect to the template: a stray session would make every CREATE DATABASE fail.
        await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    finally:
        await conn.close()
    yield name
    conn = await asyncpg.connect(asyncpg_dsn(database_server_url))
    try:
        await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_url(database_server_url: str, migrated_template: str) -> AsyncIterator[str]:
    """`postgresql+asyncpg://` URL of a fresh database migrated to head, private to this test."""
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    # FILE_COPY checkpoints the whole cluster: cheap on our private fsync-off server, slow on a shared one.
    url = await create_database(database_server_url, name, template=migrated_template, file_copy=_embedded_for_tests())
    yield url
    await drop_database(database_server_url, name)


@pytest.fixture
def pg_dsn(db_url: str) -> str:
    """The test's database as a plain `postgresql://` DSN for `asyncpg.connect`/`create_pool`."""
    return asyncpg_dsn(db_url)


@pytest.fixture
async def api_app(db_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The exchange app with its lifespan entered (migrations checked, components started) on `db_url`."""
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var")
    async with started_app(settings) as app:
        yield app


@pytest.fixture
async def api_client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling `api_app` in-process (base URL http://exchange.test)."""
    async with client_for(api_app) as client:
        yield client
