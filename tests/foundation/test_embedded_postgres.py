"""The embedded PostgreSQL: starts from nothing, serves asyncpg and SQLAlchemy, stops, keeps its data.

These run whether or not DATABASE_URL is set: the embedded server is what a first `make run` uses.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.postgres import EmbeddedPostgres, asyncpg_dsn


@pytest.fixture
def pgdata() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="exchange-embedded-"))
    yield base / "pgdata"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(pgdata: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(pgdata, durable=False)  # fsync off: these tests never crash the machine
    yield server
    server.stop()


async def test_started_server_accepts_asyncpg_connections(server: EmbeddedPostgres) -> None:
    url = server.start()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()


async def test_started_server_url_works_for_sqlalchemy(server: EmbeddedPostgres) -> None:
    url = server.start()
    assert url.startswith("postgresql+asyncpg://")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_database()"))).scalar_one() == "postgres"
    finally:
        await engine.dispose()


async def test_server_listens_on_a_unix_socket_only(server: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(server.start()))
    try:
        assert await conn.fetchval("SHOW listen_addresses") == ""
    finally:
        await conn.close()


async def test_stopped_server_is_no_longer_running(server: EmbeddedPostgres) -> None:
    url = server.start()
    server.stop()
    assert not server.is_running
    assert not (server.pgdata / "postmaster.pid").exists()
    with pytest.raises(OSError):
        await asyncpg.connect(asyncpg_dsn(url))


async def test_restart_reuses_the_data_directory(pgdata: Path) -> None:
    server = EmbeddedPostgres(pgdata)  # durable, as `exchange serve` runs it
    conn = await asyncpg.connect(asyncpg_dsn(server.start()))
    await conn.execute("CREATE TABLE survivor (name text); INSERT INTO survivor VALUES ('kept')")
    await conn.close()
    server.stop()

    conn = await asyncpg.connect(asyncpg_dsn(server.start()))
    try:
        assert await conn.fetchval("SELECT name FROM survivor") == "kept"
    finally:
        await conn.close()
        server.stop()


def test_stop_is_idempotent(server: EmbeddedPostgres) -> None:
    server.start()
    server.stop()
    server.stop()
    assert not server.is_running


def test_server_left_running_by_a_dead_process_is_adopted_and_stopped(pgdata: Path) -> None:
    abandoned = EmbeddedPostgres(pgdata, durable=False)
    abandoned.start()  # never stopped by its owner, as after a crash
    adopter = EmbeddedPostgres(pgdata, durable=False)
    try:
        assert adopter.start() == abandoned.url
        adopter.stop()
        assert not abandoned.is_running
    finally:
        abandoned.stop()


def test_long_data_paths_put_the_socket_in_a_short_directory() -> None:
    base = Path(tempfile.mkdtemp(prefix="exchange-" + "deep" * 15))
    server = EmbeddedPostgres(base / ("nested" * 8) / "pgdata", durable=False)
    try:
        server.start()
        assert server.socket_dir != server.pgdata
        assert (server.socket_dir / ".s.PGSQL.5432").is_socket()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(server.socket_dir, ignore_errors=True)
