"""Entries, legs and accounts refuse to exist in a shape the ledger would never accept."""

from __future__ import annotations

import pytest

from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, InvalidEntry, Leg

ALICE_AVAILABLE = AccountRef("alice", Bucket.AVAILABLE)
ALICE_HELD = AccountRef("alice", Bucket.HELD)
EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)


def hold(amount: int = 100) -> Leg:
    return Leg(ALICE_AVAILABLE, ALICE_HELD, "EUR", amount)


def test_a_leg_moves_a_positive_amount():
    with pytest.raises(InvalidEntry):
        hold(0)
    with pytest.raises(InvalidEntry):
        hold(-5)


def test_a_leg_amount_is_an_integer_never_a_float_or_bool():
    with pytest.raises(InvalidEntry):
        hold(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntry):
        hold(True)


def test_a_leg_moves_between_two_different_accounts():
    with pytest.raises(InvalidEntry):
        Leg(ALICE_AVAILABLE, AccountRef("alice", Bucket.AVAILABLE), "EUR", 1)


def test_a_leg_names_its_asset():
    with pytest.raises(InvalidEntry):
        Leg(ALICE_AVAILABLE, ALICE_HELD, "", 1)


def test_an_entry_has_at_least_one_leg():
    with pytest.raises(InvalidEntry):
        Entry(1, 0, EntryKind.HOLD, 0, ())


def test_an_entry_key_is_never_negative():
    with pytest.raises(InvalidEntry):
        Entry(-1, 0, EntryKind.HOLD, 0, (hold(),))
    with pytest.raises(InvalidEntry):
        Entry(1, -1, EntryKind.HOLD, 0, (hold(),))


def test_an_entry_kind_must_be_an_entry_kind():
    with pytest.raises(InvalidEntry):
        Entry(1, 0, "hold", 0, (hold(),))  # type: ignore[arg-type]


def test_an_entry_keeps_its_legs_in_an_immutable_tuple():
    with pytest.raises(InvalidEntry):
        Entry(1, 0, EntryKind.HOLD, 0, [hold()])  # type: ignore[arg-type]


def test_venue_buckets_belong_to_the_venue_only():
    with pytest.raises(InvalidEntry):
        AccountRef("alice", Bucket.FEES)
    with pytest.raises(InvalidEntry):
        AccountRef(VENUE, Bucket.AVAILABLE)
    assert AccountRef(VENUE, Bucket.ISSUANCE).is_participant is False
    assert ALICE_HELD.is_participant is True


def test_an_entry_balances_per_asset_by_construction():
    fill = Entry(
        7,
        0,
        EntryKind.FILL,
        0,
        (
            Leg(AccountRef("bob", Bucket.HELD), ALICE_AVAILABLE, "ACME", 10),
            Leg(ALICE_HELD, AccountRef("bob", Bucket.AVAILABLE), "EUR", 1_000),
            Leg(ALICE_HELD, AccountRef(VENUE, Bucket.FEES), "EUR", 3),
        ),
        order_id=1,
        trade_id=2,
    )
    net = fill.net_by_account()
    for asset in ("ACME", "EUR"):
        assert sum(amount for (_, leg_asset), amount in net.items() if leg_asset == asset) == 0
    assert net[(ALICE_HELD, "EUR")] == -1_003
    assert fill.key == (7, 0)
