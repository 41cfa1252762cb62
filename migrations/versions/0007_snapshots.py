"""Engine snapshots: the engine's whole state at a journal seq, so a restart replays only the journal's tail.

`snapshots` holds, per seq S it was taken at, the canonical bytes of the engine (`exchange.snapshot`) and of the live
order rows of the `orders` projection, the journal hash of record S they belong to, and `digest`, the SHA-256 over
all of it (`ledger.snapshots.digest`). A snapshot is a cache of the journal, never a source of truth: recovery uses
the newest one whose digest and journal hash check out and falls back to a full replay otherwise; `exchange replay`
never reads it. No foreign key to `journal`: a snapshot is checked against the journal when it is used, and
tampering with the journal must stay possible for the tests that prove it is detected. Old snapshots may be deleted (the sequencer keeps the last few); rows are never updated.

Revision ID: 0007_snapshots
Revises: 0006_commit_path
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_snapshots"
down_revision: str | Sequence[str] | None = "0006_commit_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE snapshots (
            seq           bigint PRIMARY KEY CHECK (seq > 0),
            ts_us         bigint NOT NULL,
            journal_hash  bytea NOT NULL CHECK (length(journal_hash) = 32),
            format        text NOT NULL,
            engine        bytea NOT NULL,
            projection    bytea NOT NULL,
            digest        bytea NOT NULL CHECK (length(digest) = 32),
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The state is already compact JSON written once and read whole: compressing it in TOAST would cost more time
    # at every snapshot and restart than the disk it saves.
    op.execute("ALTER TABLE snapshots ALTER COLUMN engine SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE snapshots ALTER COLUMN projection SET STORAGE EXTERNAL")
    op.execute(
        """
        CREATE FUNCTION snapshots_forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'a snapshot is never changed, only deleted' USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER snapshots_no_update BEFORE UPDATE ON snapshots "
        "FOR EACH ROW EXECUTE FUNCTION snapshots_forbid_update()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE snapshots")
    op.execute("DROP FUNCTION snapshots_forbid_update()")
