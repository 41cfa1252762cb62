"""Foundation: the exchange_meta table, holding facts about this exchange database itself.

Its first fact is `instance_id`, a random id minted once when the database is created, so that journal
exports, replays and verification reports can say which exchange database they came from.

Revision ID: 0001_foundation
Revises:
Create Date: 2025-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001_foundation"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE exchange_meta (
            key        text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*$'),
            value      text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("COMMENT ON TABLE exchange_meta IS 'Facts about this exchange database (instance id, ...)'")
    op.execute("INSERT INTO exchange_meta (key, value) VALUES ('instance_id', gen_random_uuid()::text)")


def downgrade() -> None:
    op.execute("DROP TABLE exchange_meta")
