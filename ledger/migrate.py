"""Schema migrations run programmatically: bring a database to the newest Alembic revision and say where it is.

The migration scripts ship inside the installed `migrations` package, so nothing depends on the working
directory or on an ini file. The sync functions may be called from plain code or from inside a running
event loop (they then do their work on a helper thread and block until it is done); coroutines use the
`*_async` variants, which never block the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import migrations
from ledger.postgres import asyncpg_dsn, normalise_database_url

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
VERSION_TABLE = "alembic_version"

T = TypeVar("T")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the packaged migrations (and, when given, the database at `url`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["configure_logging"] = False  # the process has configured logging already
    if url is not None:
        config.attributes["database_url"] = normalise_database_url(url)
    return config


def head_revision() -> str:
    """The newest revision of the migration scripts; raises if the history has forked into several heads."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def _off_the_loop(fn: Callable[[], T]) -> T:
    # env.py drives asyncpg with asyncio.run(), which cannot nest inside a running loop.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate") as pool:
        return pool.submit(fn).result()


def upgrade_to_head(url: str) -> str:
    """Apply every pending migration to the database at `url`; returns the head revision it is now at."""
    _off_the_loop(lambda: command.upgrade(alembic_config(url), "head"))
    return head_revision()


async def upgrade_to_head_async(url: str) -> str:
    return await asyncio.to_thread(upgrade_to_head, url)


async def fetch_current_revision(conn: asyncpg.Connection) -> str | None:
    """The revision recorded in the database on `conn`; None before the first migration."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", VERSION_TABLE):
        return None
    rows = await conn.fetch(f"SELECT version_num FROM {VERSION_TABLE}")
    if len(rows) > 1:
        raise RuntimeError(f"database records several migration heads: {sorted(r[0] for r in rows)}")
    return rows[0][0] if rows else None


async def current_revision_async(url: str) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await fetch_current_revision(conn)
    finally:
        await conn.close()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None if it was never migrated."""
    return _off_the_loop(lambda: asyncio.run(current_revision_async(url)))
