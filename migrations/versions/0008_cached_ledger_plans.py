"""The ledger trigger on `ledger_legs` plans a small statement once per session instead of on every INSERT.

`ledger_legs_apply` (migration 0006_commit_path) ran its two statements, the balance UPDATE and the legs-to-entries
check, as dynamic SQL: parsed, analysed and planned again on every INSERT into `ledger_legs`. That was a guard
against one bad plan: plpgsql keeps the plan of a static statement for the session, and a hash join planned for a
first batch of 10,000 legs then read every balance row for each later one-command batch.

For the sequencer's batches of a few commands, which is what a live market sends most of the time, that re-planning
was the largest part of PostgreSQL's work per batch: perf on a run of one-command batches put 30 % of the backend's
time in the trigger's dynamic SQL, most of it parse and plan. Now:

- a statement of up to `KEPT_PLAN_MAX_LEGS` legs runs the two statements as static SQL, planned once per session.
  The function runs with hash joins, merge joins and sequential scans disabled, so that the plan it keeps is a
  nested loop looking up each moved balance and each entry by primary key: its cost grows with the legs of the
  statement, never with the tables;
- a larger statement (a bulk load, a saturated sequencer's COPY) runs the same text through EXECUTE with those
  three allowed again, planned for its own size, as 0006 did: for 8,000 legs a hash join over the balances costs
  less than 5,000 lookups (measured: 11 % more backend CPU per fill when every statement used the nested loop).

Measured (three A/B pairs each; this machine is noisy): a sequencer committing one-command batches, backend CPU per
batch 1.65-1.74 ms before, 1.15-1.29 ms after; benchmarks.ledger's batches of 1,000 fills, backend CPU per fill
125-130 us before, 117-139 us after (unchanged).

The function-level settings apply only while the trigger runs (PostgreSQL restores the caller's on return), and a
kept plan that an invalidation throws away (ANALYZE, DDL) is rebuilt under the same settings. The guarantees of 0002
and 0006 are unchanged: the same statements, the same errors, the same constraint names.

Revision ID: 0008_cached_ledger_plans
Revises: 0007_snapshots
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.history import as_replacement, statements_of

revision: str = "0008_cached_ledger_plans"
down_revision: str | Sequence[str] | None = "0007_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Both statements of the trigger, each written once and run either way (static or EXECUTE).
MOVE_BALANCES = """
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
    SELECT (SELECT count(*) FROM moves), (SELECT count(*) FROM updated)"""
# The seq range bounds the entries read whatever the plan (a planner without statistics once read them all).
FIND_ENTRIES = """
    SELECT count(*), count(e.seq)
      FROM (SELECT DISTINCT seq, idx FROM new_legs) k
      LEFT JOIN ledger_entries e
             ON e.seq = k.seq AND e.idx = k.idx
            AND e.seq BETWEEN (SELECT min(seq) FROM new_legs) AND (SELECT max(seq) FROM new_legs)"""
# Statements of up to this many legs run on the plans kept for the session; larger ones are planned for their own
# size. Planning costs about as much as a few hundred key lookups; the writer's one-statement path (ledger/writer.py,
# _SMALL_BATCH_LEGS) ends at the same size.
KEPT_PLAN_MAX_LEGS = 1_000
PLANNER_CHOICE = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan")


def _set_locally(value: str) -> str:
    return "PERFORM " + ", ".join(f"set_config('{name}', '{value}', true)" for name in PLANNER_CHOICE) + ";"


LEDGER_LEGS_APPLY = f"""
CREATE OR REPLACE FUNCTION ledger_legs_apply() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
AS $$
DECLARE
    bad record;
    legs bigint;
    pairs bigint;
    moved bigint;
    leg_keys bigint;
    entries_found bigint;
BEGIN
    SELECT count(*) INTO legs FROM new_legs;
    IF legs <= {KEPT_PLAN_MAX_LEGS} THEN
        -- The plans kept for the session: key lookups only, right for any small statement.
        {MOVE_BALANCES} INTO pairs, moved;
        {FIND_ENTRIES} INTO leg_keys, entries_found;
    ELSE
        -- A bulk statement: planned for its size, where a hash join may beat a lookup per row. The settings go
        -- back before any static statement can be planned under them (and at the function's exit in any case).
        {_set_locally("on")}
        EXECUTE $sql${MOVE_BALANCES}$sql$ INTO pairs, moved;
        EXECUTE $sql${FIND_ENTRIES}$sql$ INTO leg_keys, entries_found;
        {_set_locally("off")}
    END IF;
    -- The UPDATE's row count doubles as the "accounts hold the asset" check.
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
    -- Every leg belongs to an entry: each distinct entry key of the legs found among the entries.
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
"""


def upgrade() -> None:
    # exec_driver_sql: the body holds `%` that must reach the server untouched.
    op.get_bind().exec_driver_sql(LEDGER_LEGS_APPLY)


def downgrade() -> None:
    # CREATE OR REPLACE replaces the SET clauses too: 0006's definition has none.
    op.get_bind().exec_driver_sql(
        as_replacement(statements_of("0006_commit_path.py", "CREATE FUNCTION ledger_legs_apply()")[0])
    )
