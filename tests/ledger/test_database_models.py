"""The SQLAlchemy models describe the tables the migration creates, column by column."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql

from ledger.models import LedgerBase


@pytest.mark.parametrize("table", sorted(LedgerBase.metadata.tables))
async def test_model_columns_match_the_migrated_table(pg_dsn, table):
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT column_name, data_type, is_nullable = 'YES' AS nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = $1",
            table,
        )
    finally:
        await conn.close()
    dialect = postgresql.dialect()
    modelled = {
        (column.name, column.type.compile(dialect=dialect).lower(), bool(column.nullable))
        for column in LedgerBase.metadata.tables[table].columns
    }
    assert {(r["column_name"], r["data_type"], r["nullable"]) for r in rows} == modelled
