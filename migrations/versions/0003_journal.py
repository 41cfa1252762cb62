"""The journal of commands (hash-chained), the events they produced, and the queryable orders and trades.

`journal` is the system of record for replay: one row per sequenced command with its canonical bytes and
`hash = sha256(prev_hash || record bytes)`. `events` holds every engine event in canonical form (the audit trail
of order events after MiFID II RTS 24 / CAT: order ids, account, instrument, side, type, prices, quantities, validity,
event type, priority, sequence number). `trades` is the trade report. `journal`, `events` and `trades` are
append-only: the database rejects UPDATE, DELETE and TRUNCATE. Events and trades carry their command's seq without a
foreign key to `journal`: the sequencer writes all three in one transaction, and a declared key doubled the cost of
every COPY; `exchange verify` reports any row whose seq lies beyond the journal. `orders` is a projection (current state of each
order) that the sequencer upserts in the same transaction; it can always be rebuilt from `events`.

Revision ID: 0003_journal
Revises: 0002_ledger
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_journal"
down_revision: str | Sequence[str] | None = "0002_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("journal", "events", "trades")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE journal (
            seq        bigint PRIMARY KEY CHECK (seq > 0),
            ts_us      bigint NOT NULL,
            sender     text NOT NULL,
            command    text NOT NULL,
            prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
            hash       bytea NOT NULL CHECK (length(hash) = 32)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE events (
            seq        bigint NOT NULL,
            idx        integer NOT NULL CHECK (idx >= 0),
            kind       text NOT NULL,
            symbol     text,
            account    text,
            order_id   bigint,
            trade_id   bigint,
            body       text NOT NULL,
            PRIMARY KEY (seq, idx)
        )
        """
    )
    op.execute("CREATE INDEX events_order_idx ON events (order_id, seq) WHERE order_id IS NOT NULL")
    op.execute("CREATE INDEX events_account_idx ON events (account, seq) WHERE account IS NOT NULL")
    op.execute(
        """
        CREATE TABLE trades (
            trade_id       bigint PRIMARY KEY,
            seq            bigint NOT NULL,
            ts_us          bigint NOT NULL,
            symbol         text NOT NULL,
            price          bigint NOT NULL CHECK (price > 0),
            quantity       bigint NOT NULL CHECK (quantity > 0),
            aggressor      text NOT NULL CHECK (aggressor IN ('buy', 'sell')),
            buy_order_id   bigint NOT NULL,
            sell_order_id  bigint NOT NULL,
            buyer          text NOT NULL,
            seller         text NOT NULL,
            currency       text NOT NULL,
            cash           bigint NOT NULL CHECK (cash >= 0),
            accrued        bigint NOT NULL CHECK (accrued >= 0),
            buyer_fee      bigint NOT NULL CHECK (buyer_fee >= 0),
            seller_fee     bigint NOT NULL CHECK (seller_fee >= 0),
            auction        boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute("CREATE INDEX trades_symbol_idx ON trades (symbol, trade_id)")
    op.execute("CREATE INDEX trades_symbol_time_idx ON trades (symbol, ts_us)")
    op.execute("CREATE INDEX trades_seq_idx ON trades (seq)")
    op.execute("CREATE INDEX trades_buy_order_idx ON trades (buy_order_id)")
    op.execute("CREATE INDEX trades_sell_order_idx ON trades (sell_order_id)")
    op.execute("CREATE INDEX trades_buyer_idx ON trades (buyer, trade_id)")
    op.execute("CREATE INDEX trades_seller_idx ON trades (seller, trade_id)")
    op.execute(
        """
        CREATE TABLE orders (
            order_id         bigint PRIMARY KEY,
            account          text NOT NULL,
            client_order_id  text,
            symbol           text NOT NULL,
            side             text NOT NULL,
            type             text NOT NULL,
            price            bigint NOT NULL,
            quantity         bigint NOT NULL,
            remaining        bigint NOT NULL CHECK (remaining >= 0),
            filled           bigint NOT NULL CHECK (filled >= 0),
            notional_traded  bigint NOT NULL,
            time_in_force    text NOT NULL,
            expire_at_us     bigint,
            post_only        boolean NOT NULL,
            stp              text NOT NULL,
            status           text NOT NULL,
            cancel_reason    text,
            priority_seq     bigint NOT NULL,
            created_seq      bigint NOT NULL,
            created_ts_us    bigint NOT NULL,
            updated_seq      bigint NOT NULL,
            updated_ts_us    bigint NOT NULL,
            UNIQUE (account, client_order_id)
        )
        """
    )
    op.execute("CREATE INDEX orders_account_idx ON orders (account, order_id)")
    op.execute("CREATE INDEX orders_open_idx ON orders (account, order_id) WHERE remaining > 0")
    op.execute(
        """
        CREATE FUNCTION journal_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION journal_forbid_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION journal_forbid_change()"
        )


def downgrade() -> None:
    op.execute("DROP TABLE orders")
    op.execute("DROP TABLE trades")
    op.execute("DROP TABLE events")
    op.execute("DROP TABLE journal")
    op.execute("DROP FUNCTION journal_forbid_change()")
