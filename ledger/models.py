"""SQLAlchemy 2 models of the ledger tables, for reading the ledger with the ORM or Core and as documentation.

The schema itself is created by the hand-written migration `0002_ledger` (triggers and constraint triggers
cannot be expressed here); tests check that these models and the migrated tables agree column by column.
Writing goes through `ledger.writer.LedgerWriter`, never through these models.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Index, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class LedgerBase(DeclarativeBase):
    pass


class LedgerAccount(LedgerBase):
    """One bucket of one owner in one asset (owner '@venue' for the venue buckets)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("owner", "bucket", "asset", name="ledger_accounts_owner_bucket_asset_key"),
        UniqueConstraint("id", "asset", name="ledger_accounts_id_asset_key"),
        CheckConstraint(
            "bucket IN ('available', 'held', 'external', 'issuance', 'fees')", name="ledger_accounts_bucket_check"
        ),
        CheckConstraint(
            "(owner = '@venue') = (bucket IN ('external', 'issuance', 'fees'))",
            name="ledger_accounts_venue_bucket_check",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    bucket: Mapped[str] = mapped_column(Text)
    asset: Mapped[str] = mapped_column(Text)


class LedgerEntry(LedgerBase):
    """The entries one command caused: `seq` is the command's sequence number, `idx` the entry's position."""

    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime] = mapped_column(TIMESTAMP(timezone=True))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    trade_id: Mapped[int | None] = mapped_column(BigInteger)


class LedgerLeg(LedgerBase):
    """A transfer of `amount` of `asset` from the debit account to the credit account.

    The references below are enforced by a statement trigger, not a declared foreign key (see 0002_ledger);
    they are declared here so that the ORM and readers know the joins."""

    __tablename__ = "ledger_legs"
    __table_args__ = (
        ForeignKeyConstraint(["seq", "idx"], ["ledger_entries.seq", "ledger_entries.idx"]),
        ForeignKeyConstraint(["debit_account_id", "asset"], ["ledger_accounts.id", "ledger_accounts.asset"]),
        ForeignKeyConstraint(["credit_account_id", "asset"], ["ledger_accounts.id", "ledger_accounts.asset"]),
        CheckConstraint("amount > 0", name="ledger_legs_amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ledger_legs_two_accounts"),
        Index("ledger_legs_debit_idx", "debit_account_id", "seq", "idx"),
        Index("ledger_legs_credit_idx", "credit_account_id", "seq", "idx"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    leg: Mapped[int] = mapped_column(Integer, primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(BigInteger)
    credit_account_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)


class LedgerEntryBatch(LedgerBase):
    """One statement that inserted entries, and the seq range checked at commit for entries without legs."""

    __tablename__ = "ledger_entry_batches"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(Integer)


class LedgerBalance(LedgerBase):
    """Cache of an account's credits minus debits, and the last seq that moved it (None: never moved)."""

    __tablename__ = "ledger_balances"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "asset"], ["ledger_accounts.id", "ledger_accounts.asset"], name="ledger_balances_account_fkey"
        ),
    )

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    asset: Mapped[str] = mapped_column(Text)
    balance: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
