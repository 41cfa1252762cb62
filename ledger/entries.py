"""The vocabulary of the double-entry ledger: accounts, legs and entries (pure, no I/O).

Every movement of money or securities is a `Leg`: an `amount` of one `asset` leaves the
`debit` account and arrives at the `credit` account. A leg therefore balances by itself,
so every `Entry` (the legs one command caused, written together) balances per asset by
construction. The balance of an account is the sum of what it was credited minus the sum
of what it was debited.

Participants own two buckets per asset: `available` (free to trade or withdraw) and
`held` (reserved by open orders). The venue owns the buckets that mirror the world
outside the exchange: `external` (money and securities outside the exchange),
`issuance` (securities created by issuers) and `fees` (what the venue earned). Only
participant balances must stay non-negative; a venue bucket is a contra account.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

VENUE = "@venue"


class Bucket(StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    EXTERNAL = "external"
    ISSUANCE = "issuance"
    FEES = "fees"

    @property
    def is_participant_bucket(self) -> bool:
        return self in PARTICIPANT_BUCKETS


PARTICIPANT_BUCKETS = frozenset({Bucket.AVAILABLE, Bucket.HELD})
VENUE_BUCKETS = frozenset({Bucket.EXTERNAL, Bucket.ISSUANCE, Bucket.FEES})


class EntryKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    ISSUANCE = "issuance"
    HOLD = "hold"
    RELEASE = "release"
    FILL = "fill"
    FEE = "fee"
    CORPORATE_ACTION = "corporate_action"
    CORRECTION = "correction"


class InvalidEntry(ValueError):
    """An account, leg or entry that the ledger would never accept."""


@dataclass(frozen=True, slots=True)
class AccountRef:
    """One bucket of one owner; together with an asset it names a ledger account."""

    owner: str
    bucket: Bucket

    def __post_init__(self) -> None:
        if not self.owner:
            raise InvalidEntry("an account needs an owner")
        if not isinstance(self.bucket, Bucket):
            raise InvalidEntry(f"unknown bucket {self.bucket!r}")
        # The venue and the participants never share a bucket: a participant's money
        # cannot hide in a contra account, and the venue's cannot be held by an order.
        if (self.owner == VENUE) != (self.bucket in VENUE_BUCKETS):
            raise InvalidEntry(f"bucket {self.bucket.value} does not belong to owner {self.owner!r}")

    @property
    def is_participant(self) -> bool:
        return self.owner != VENUE


@dataclass(frozen=True, slots=True)
class Leg:
    """A transfer: `amount` of `asset` leaves `debit` and arrives at `credit`."""

    debit: AccountRef
    credit: AccountRef
    asset: str
    amount: int

    def __post_init__(self) -> None:
        # bool is an int subclass, and a float amount would silently lose minor units.
        if type(self.amount) is not int:
            raise InvalidEntry(f"leg amount must be an integer, got {self.amount!r}")
        if self.amount <= 0:
            raise InvalidEntry(f"leg amount must be positive, got {self.amount}")
        debit, credit = self.debit, self.credit
        # Field by field: the dataclass __eq__ builds two tuples per call, and settlement makes a leg per movement.
        if debit is credit or (debit.owner == credit.owner and debit.bucket == credit.bucket):
            raise InvalidEntry(f"leg debits and credits the same account {debit}")
        if not self.asset:
            raise InvalidEntry("a leg needs an asset")


@dataclass(frozen=True, slots=True)
class Entry:
    """The legs one command caused, keyed by (seq, index): the command's sequence number
    and the entry's position among that command's entries."""

    seq: int
    index: int
    kind: EntryKind
    ts_us: int
    legs: tuple[Leg, ...]
    order_id: int | None = None
    trade_id: int | None = None

    def __post_init__(self) -> None:
        if self.seq < 0 or self.index < 0:
            raise InvalidEntry(f"entry key ({self.seq}, {self.index}) must not be negative")
        if not isinstance(self.kind, EntryKind):
            raise InvalidEntry(f"unknown entry kind {self.kind!r}")
        if not isinstance(self.legs, tuple):
            raise InvalidEntry("entry legs must be a tuple")
        if not self.legs:
            raise InvalidEntry(f"entry ({self.seq}, {self.index}) has no legs")

    @property
    def key(self) -> tuple[int, int]:
        return (self.seq, self.index)

    def net_by_account(self) -> dict[tuple[AccountRef, str], int]:
        """What the entry does to each (account, asset): credits minus debits."""
        net: dict[tuple[AccountRef, str], int] = {}
        for leg in self.legs:
            net[(leg.credit, leg.asset)] = net.get((leg.credit, leg.asset), 0) + leg.amount
            net[(leg.debit, leg.asset)] = net.get((leg.debit, leg.asset), 0) - leg.amount
        return net
