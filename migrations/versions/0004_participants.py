"""Participants (investors, issuers, operators, regulators) and their API keys, stored hashed.

Revision ID: 0004_participants
Revises: 0003_journal
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004_participants"
down_revision: str | Sequence[str] | None = "0003_journal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE participants (
            participant_id  text PRIMARY KEY CHECK (participant_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
            name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            role            text NOT NULL CHECK (role IN ('investor', 'issuer', 'operator', 'regulator', 'assessor')),
            category        text CHECK (category IN ('retail', 'professional')),
            created_at      timestamptz NOT NULL DEFAULT now(),
            CHECK ((role = 'investor') = (category IS NOT NULL))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id          text PRIMARY KEY,
            participant_id  text NOT NULL REFERENCES participants (participant_id),
            key_hash        bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
            label           text NOT NULL DEFAULT '',
            created_at      timestamptz NOT NULL DEFAULT now(),
            revoked_at      timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE participants")
