"""Migrations: programmatic Alembic from the installed package, and the per-test database fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg
from alembic.script import ScriptDirectory

from ledger.migrate import alembic_config, current_revision_async, head_revision, upgrade_to_head_async
from ledger.postgres import asyncpg_dsn, create_database, drop_database


def test_migration_history_has_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


async def test_upgrade_brings_an_empty_database_to_head(database_server_url: str) -> None:
    name = f"exch_empty_{uuid.uuid4().hex[:12]}"
    url = await create_database(database_server_url, name)
    try:
        assert await current_revision_async(url) is None
        assert await upgrade_to_head_async(url) == head_revision()
        assert await current_revision_async(url) == head_revision()
    finally:
        await drop_database(database_server_url, name)


async def test_upgrade_of_a_database_at_head_changes_nothing(db_url: str, pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    instance_before = await conn.fetchval("SELECT value FROM exchange_meta WHERE key = 'instance_id'")
    await conn.close()
    assert await upgrade_to_head_async(db_url) == head_revision()
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT value FROM exchange_meta WHERE key = 'instance_id'") == instance_before
    finally:
        await conn.close()


async def test_foundation_records_an_instance_id(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        value = await conn.fetchval("SELECT value FROM exchange_meta WHERE key = 'instance_id'")
    finally:
        await conn.close()
    assert uuid.UUID(value).version == 4


async def test_db_url_is_a_private_migrated_copy_of_the_template(db_url: str, pg_dsn: str, migrated_template: str) -> None:
    assert db_url.startswith("postgresql+asyncpg://")
    assert pg_dsn.startswith("postgresql://")
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") not in ("postgres", migrated_template)
    finally:
        await conn.close()
    assert await current_revision_async(db_url) == head_revision()


async def test_migrate_command_prints_the_head_revision(database_server_url: str) -> None:
    name = f"exch_cli_{uuid.uuid4().hex[:12]}"
    url = await create_database(database_server_url, name)
    try:
        env = {**os.environ, "DATABASE_URL": asyncpg_dsn(url), "EXCHANGE_LOG_LEVEL": "warning"}
        result = subprocess.run(
            [sys.executable, "-m", "api.cli", "migrate"], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"database at revision {head_revision()} (head)"
        assert await current_revision_async(url) == head_revision()
    finally:
        await drop_database(database_server_url, name)
