"""Alembic environment: runs migrations over asyncpg, from the `exchange` process or the alembic CLI.

The database URL comes, in order, from the caller (`ledger.migrate` puts it in `config.attributes`),
from `-x url=...`, from `DATABASE_URL`, or from `sqlalchemy.url` in the ini file. A caller may also hand
over an open (sync-facing) SQLAlchemy connection in `config.attributes["connection"]`.

Migrations are hand-written (the ledger relies on constraints and triggers autogenerate cannot see), so
there is no target metadata. Each upgrade runs in one transaction behind an advisory lock, so that two
processes starting together do not both apply the same revision.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.postgres import normalise_database_url

# Arbitrary constant shared by every exchange process: "migrate" in ASCII.
MIGRATION_LOCK_KEY = 0x6D696772617465
CONNECT_TIMEOUT_SECONDS = 10

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database to migrate: set DATABASE_URL or pass -x url=postgresql://...")
    return normalise_database_url(url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(
        database_url(), poolclass=pool.NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS}
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
