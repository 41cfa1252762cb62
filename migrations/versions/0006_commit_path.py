"""The ledger's commit path in fewer passes: inserting legs moves the balances, and the integrity checks are
bounded by the batch's seq range and count instead of probing row by row.

Before, a batch took four passes besides storing its rows: an anti-join of every (account, asset) of the legs
against `ledger_accounts`, a join of the legs' entry keys to `ledger_entries`, the client's UPDATE of every touched
balance (a fourth statement with three arrays), and at commit an index probe into `ledger_legs` for every entry.
Here:

- `ledger_legs_apply`, one statement trigger per INSERT into `ledger_legs`, sums the legs per (account, asset) and
  moves `ledger_balances` by one UPDATE joined on (account_id, asset). A balance row exists for exactly the
  (account, asset) pairs of `ledger_accounts` (born with the account, never deleted, never re-keyed), so the UPDATE
  touching fewer rows than there are pairs IS the proof that some leg names an account not holding its asset: the
  reference check comes with the balance move. The balances cache now follows the legs in the database itself,
  whoever inserts them: "balances equal the sum of legs" no longer depends on the client sending a matching UPDATE
  (the writer sends none). The negative-balance trigger of 0002 fires inside that UPDATE, as before. `last_seq`
  only moves forward (`greatest`): the largest seq among the account's legs.
- the same trigger checks that each leg belongs to an entry, joining the legs' distinct keys to the entries of their
  seq range only (unbounded, a planner without statistics read every entry ever written).
- both run as dynamic SQL, planned for each statement's legs: plpgsql keeps the plan of a static statement for the
  session, and a hash join planned for a first large batch then scanned every balance row for each one-command
  batch (measured: single-fill commits fell from about 160/s to 47/s before this).
- the deferred "every entry has legs" check counts, over the batch's seq range, the entries and the distinct entry
  keys of the legs (two range scans): since every leg belongs to an entry, equal counts mean every entry has legs;
  only when they differ does it look for the culprit, to name it.

Measured (benchmarks.ledger, PostgreSQL backend CPU per fill of 5 entries and 8 legs, which other load on the
machine barely moves): about 7 % less than before; what remains is mostly storing the rows themselves (the two
per-account indexes of `ledger_legs` alone cost about a third of it) and the balance UPDATE.

What the database guarantees is unchanged (see 0002_ledger), plus the balances cache kept by the database.

Revision ID: 0006_commit_path
Revises: 0005_issuers
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.history import as_replacement, statements_of

revision: str = "0006_commit_path"
down_revision: str | Sequence[str] | None = "0005_issuers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE: tuple[str, ...] = (
    """
    CREATE FUNCTION ledger_legs_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        bad record;
        pairs bigint;
        moved bigint;
        leg_keys bigint;
        entries_found bigint;
        first_seq bigint;
        last_seq bigint;
    BEGIN
        -- Balances first: the UPDATE's row count doubles as the "accounts hold the asset" check.
        -- EXECUTE: planned for this statement's legs. A static statement keeps the plan of the session's first call:
        -- a hash join planned for a batch of 10,000 legs then read every balance row for each one-command batch.
        EXECUTE $sql$
        WITH moves AS (
            SELECT account_id, asset, sum(delta)::bigint AS delta, max(seq) AS last_seq FROM (
                SELECT credit_account_id AS account_id, asset, amount AS delta, seq FROM new_legs
                UNION ALL
                SELECT debit_account_id, asset, -amount, seq FROM new_legs
            ) postings
            GROUP BY account_id, asset
        ), updated AS (
            UPDATE ledger_balances b
               SET balance = b.balance + m.delta, last_seq = greatest(b.last_seq, m.last_seq)
              FROM moves m
             WHERE b.account_id = m.account_id AND b.asset = m.asset
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM moves), (SELECT count(*) FROM updated)
        $sql$ INTO pairs, moved;
        IF moved <> pairs THEN
            SELECT p.account_id, p.asset INTO bad
              FROM (SELECT debit_account_id AS account_id, asset FROM new_legs
                    UNION
                    SELECT credit_account_id, asset FROM new_legs) p
             WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = p.account_id AND a.asset = p.asset)
             LIMIT 1;
            RAISE EXCEPTION 'ledger legs name account % for %, which does not hold it', bad.account_id, bad.asset
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_legs_account_asset_fkey',
                      TABLE = 'ledger_legs';
        END IF;
        -- Every leg belongs to an entry: the legs' distinct keys, each found among the entries of their seq range
        -- (bounded by the range, or a planner without statistics reads every entry ever written).
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM new_legs;
        EXECUTE $sql$
        SELECT count(*), count(e.seq)
          FROM (SELECT DISTINCT seq, idx FROM new_legs) k
          LEFT JOIN (SELECT seq, idx FROM ledger_entries WHERE seq BETWEEN $1 AND $2) e
                 ON e.seq = k.seq AND e.idx = k.idx
        $sql$ INTO leg_keys, entries_found USING first_seq, last_seq;
        IF entries_found <> leg_keys THEN
            SELECT n.seq, n.idx, n.leg INTO bad
              FROM new_legs n
             WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.seq = n.seq AND e.idx = n.idx)
             LIMIT 1;
            RAISE EXCEPTION 'ledger leg (%, %, %) belongs to no entry', bad.seq, bad.idx, bad.leg
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_legs_entry_fkey',
                      TABLE = 'ledger_legs';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "DROP TRIGGER ledger_legs_references ON ledger_legs",
    "DROP FUNCTION ledger_legs_check_references()",
    "CREATE TRIGGER ledger_legs_apply AFTER INSERT ON ledger_legs REFERENCING NEW TABLE AS new_legs "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_legs_apply()",
    """
    CREATE OR REPLACE FUNCTION ledger_entry_batch_check_legs() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        bad record;
        entries_in_range bigint;
        keys_with_legs bigint;
    BEGIN
        SELECT count(*) INTO entries_in_range
          FROM ledger_entries WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq;
        SELECT count(*) INTO keys_with_legs
          FROM (SELECT DISTINCT seq, idx FROM ledger_legs WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq) k;
        -- Every leg belongs to an entry (ledger_legs_apply), so the keys with legs are a subset of the entries:
        -- as many of them means every entry has legs.
        IF keys_with_legs <> entries_in_range THEN
            SELECT e.seq, e.idx INTO bad
              FROM ledger_entries e
             WHERE e.seq BETWEEN NEW.first_seq AND NEW.last_seq
               AND NOT EXISTS (SELECT 1 FROM ledger_legs l WHERE l.seq = e.seq AND l.idx = e.idx)
             LIMIT 1;
            RAISE EXCEPTION 'ledger entry (%, %) has no legs', bad.seq, bad.idx
                USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'ledger_entries_have_legs',
                      TABLE = 'ledger_entries';
        END IF;
        RETURN NULL;
    END
    $$
    """,
)


def upgrade() -> None:
    # exec_driver_sql: the bodies hold `%` and `:` that must reach the server untouched.
    connection = op.get_bind()
    for statement in UPGRADE:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql("DROP TRIGGER ledger_legs_apply ON ledger_legs")
    connection.exec_driver_sql("DROP FUNCTION ledger_legs_apply()")
    check_references, references_trigger, check_legs = statements_of(
        "0002_ledger.py",
        "CREATE FUNCTION ledger_legs_check_references()",
        "CREATE TRIGGER ledger_legs_references ",
        "CREATE FUNCTION ledger_entry_batch_check_legs()",
    )
    for statement in (check_references, references_trigger, as_replacement(check_legs)):
        connection.exec_driver_sql(statement)
