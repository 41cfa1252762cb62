"""The ledger entries of primary offers and distributions: each event becomes balanced legs, and the ledger alone
explains every engine balance after every step of an offer, trading, coupons, an impact step and the redemption."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date

import asyncpg
import pytest

from exchange.commands import PayCoupon, PayDividend, RecordImpactOutcome, Redeem
from exchange.engine import Engine
from exchange.events import (
    BondRedeemed,
    CommandRejected,
    CouponPaid,
    CouponRateChanged,
    DistributionCompleted,
    DistributionKind,
    DividendPaid,
    InvestorProfileSet,
    OfferClosed,
    OfferOpened,
    RiskWarningAcknowledged,
    SubscriptionAccepted,
    SubscriptionSettled,
)
from exchange.instrument import InvestorCategory
from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, Leg
from ledger.queries import balances_of, negative_participant_balances, reconcile_balances, trial_balance
from ledger.settlement import entries_for
from ledger.writer import LedgerWriter
from tests.exchange.corporate_factories import ISSUER, CorporateMarket, social_bond, social_equity
from tests.exchange.factories import BUY, SELL, limit, of_type

ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)
TS = 1_700_000_000_000_000


def available(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.AVAILABLE)


def held(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.HELD)


def entries(*events) -> list[tuple[EntryKind, tuple[Leg, ...]]]:
    return [(entry.kind, entry.legs) for entry in entries_for(7, TS, events)]


# ---------------------------------------------------------------- one event, its legs


def test_an_offer_holds_the_issuers_units_and_a_subscription_holds_the_subscribers_cash():
    opened = OfferOpened(7, "IPO-1", "COOP", ISSUER, "EUR", 1_000, 600, 10, 450, TS + 1)
    applied = SubscriptionAccepted(7, "IPO-1", "anna", "COOP", 30, "EUR", 30_000)

    assert entries(opened, applied) == [
        (EntryKind.HOLD, (Leg(available(ISSUER), held(ISSUER), "COOP", 600),)),
        (EntryKind.HOLD, (Leg(available("anna"), held("anna"), "EUR", 30_000),)),
    ]


def test_an_allocation_is_delivery_versus_payment_and_the_unallocated_cash_is_released():
    settled = SubscriptionSettled(7, "IPO-1", 3, "anna", ISSUER, "COOP", "EUR", 30, 20, 20_000, 10_000)

    assert entries(settled) == [
        (
            EntryKind.FILL,
            (Leg(held(ISSUER), available("anna"), "COOP", 20), Leg(held("anna"), available(ISSUER), "EUR", 20_000)),
        ),
        (EntryKind.RELEASE, (Leg(held("anna"), available("anna"), "EUR", 10_000),)),
    ]


def test_a_refund_releases_the_whole_application_and_the_close_returns_the_unsold_units():
    refunded = SubscriptionSettled(7, "IPO-1", 3, "anna", ISSUER, "COOP", "EUR", 30, 0, 0, 30_000)
    closed = OfferClosed(7, "IPO-1", "COOP", ISSUER, False, 30, 0, 600)

    assert entries(refunded, closed) == [
        (EntryKind.RELEASE, (Leg(held("anna"), available("anna"), "EUR", 30_000),)),
        (EntryKind.RELEASE, (Leg(held(ISSUER), available(ISSUER), "COOP", 600),)),
    ]


def test_a_sold_out_offer_returns_nothing():
    assert entries(OfferClosed(7, "IPO-1", "COOP", ISSUER, True, 900, 600, 0)) == []


def test_coupons_and_dividends_move_cash_from_the_issuer_to_each_holder():
    coupon = CouponPaid(7, "GREEN27", "anna", ISSUER, "EUR", "2024-01-15", 10, 4_000)
    dividend = DividendPaid(7, "COOP", "bruno", ISSUER, "EUR", 3, 38)

    assert entries(coupon, dividend) == [
        (EntryKind.CORPORATE_ACTION, (Leg(available(ISSUER), available("anna"), "EUR", 4_000),)),
        (EntryKind.CORPORATE_ACTION, (Leg(available(ISSUER), available("bruno"), "EUR", 38),)),
    ]


def test_a_payment_rounded_to_nothing_makes_no_entry():
    assert entries(CouponPaid(7, "GREEN27", "anna", ISSUER, "EUR", "2024-01-15", 1, 0)) == []


def test_a_redemption_retires_the_units_to_the_issuance_account_and_repays_the_holder():
    repaid = BondRedeemed(7, "GREEN27", "anna", ISSUER, "EUR", 10, 100_000)
    own = BondRedeemed(7, "GREEN27", ISSUER, ISSUER, "EUR", 990, 0)

    assert entries(repaid, own) == [
        (
            EntryKind.CORPORATE_ACTION,
            (
                Leg(available("anna"), ISSUANCE, "GREEN27", 10),
                Leg(available(ISSUER), available("anna"), "EUR", 100_000),
            ),
        ),
        (EntryKind.CORPORATE_ACTION, (Leg(available(ISSUER), ISSUANCE, "GREEN27", 990),)),
    ]


def test_profiles_acknowledgments_summaries_and_rate_changes_move_nothing():
    assert (
        entries(
            InvestorProfileSet(7, "anna", InvestorCategory.RETAIL, None),
            RiskWarningAcknowledged(7, "anna"),
            DistributionCompleted(7, "GREEN27", DistributionKind.COUPON, ISSUER, "EUR", "2024-01-15", 40_000, 0, 0, 0),
            CouponRateChanged(7, "GREEN27", True, 40_000, 35_000, "r"),
        )
        == []
    )


# ---------------------------------------------------------------- a whole life, step by step


def a_life(check: Callable[[CorporateMarket, list[Entry]], None] | None = None):
    """Offers of an equity and an impact-linked bond, trading, coupons, a dividend, an impact step, redemption.

    Returns the market and every command's (seq, ts, events); `check` sees the market and the command's entries after
    each command.
    """
    m = CorporateMarket(social_equity(), social_bond(impact_step_down_ppm=5_000, impact_step_up_ppm=7_500))
    steps: list[tuple[int, int, list]] = []

    def do(events: list) -> None:
        assert not of_type(events, CommandRejected), events
        steps.append((m.seq, m.now_us, events))
        if check is not None:
            check(m, entries_for(m.seq, m.now_us, events))

    for symbol in ("COOP", "GREEN27"):
        do(m.issue(ISSUER, 1_000, symbol))
    do(m.deposit(ISSUER, 1_000_000))
    for account in ("anna", "bruno", "carla"):
        do(m.deposit(account, 5_000_000))
    do(m.open_offer("IPO-COOP", "COOP", quantity=600, min_subscription=300))
    do(m.open_offer("IPO-GREEN", "GREEN27", price=10_000, quantity=100, min_subscription=50))
    for account, units in (("anna", 400), ("bruno", 300), ("carla", 5)):
        do(m.subscribe(account, units, "IPO-COOP"))
    for account, units in (("anna", 30), ("bruno", 90)):
        do(m.subscribe(account, units, "IPO-GREEN"))
    do(m.close_offer("IPO-COOP"))
    do(m.close_offer("IPO-GREEN", after_us=0))
    do(m.place(limit("anna", SELL, 50, 1_050, "COOP")))
    do(m.place(limit("carla", BUY, 60, 1_050, "COOP")))
    do(m.place(limit("bruno", SELL, 10, 10_000, "GREEN27")))
    do(m.place(limit("carla", BUY, 10, 10_000, "GREEN27")))
    do(m.apply(PayDividend("COOP", 125_000)))
    do(m.place(limit("bruno", SELL, 5, 10_100, "GREEN27")))
    for day, command in (
        (date(2024, 1, 15), PayCoupon("GREEN27", date(2024, 1, 15))),
        (None, RecordImpactOutcome("GREEN27", False, "2024")),
        (date(2025, 1, 15), PayCoupon("GREEN27", date(2025, 1, 15))),
        (date(2026, 1, 15), PayCoupon("GREEN27", date(2026, 1, 15))),
        (date(2027, 1, 15), PayCoupon("GREEN27", date(2027, 1, 15))),
        (None, Redeem("GREEN27")),
    ):
        if day is not None:
            m.move_to(day)
        do(m.apply(command))
    return m, steps


def fold(balances: dict[tuple[AccountRef, str], int], entry: Entry) -> None:
    for (account, asset), change in entry.net_by_account().items():
        balances[(account, asset)] = balances.get((account, asset), 0) + change


def ledger_view(balances: dict[tuple[AccountRef, str], int]) -> dict[tuple[str, str], tuple[int, int]]:
    """(owner, asset) -> (available, held) of every participant, from the ledger; zeros left out."""
    view: dict[tuple[str, str], list[int]] = {}
    for (account, asset), amount in balances.items():
        if account.is_participant:
            slot = view.setdefault((account.owner, asset), [0, 0])
            slot[0 if account.bucket is Bucket.AVAILABLE else 1] += amount
    return {key: (a, h) for key, (a, h) in view.items() if a or h}


def engine_view(engine: Engine) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        key: (b.available, b.held) for key, b in engine.balances.items() if (b.available or b.held) and key[0] != VENUE
    }


def test_after_every_step_the_ledger_explains_every_engine_balance_and_every_asset_sums_to_zero():
    ledger: dict[tuple[AccountRef, str], int] = {}

    def check(m: CorporateMarket, step_entries: list[Entry]) -> None:
        for entry in step_entries:
            fold(ledger, entry)
        totals: dict[str, int] = {}
        for (_, asset), amount in ledger.items():
            totals[asset] = totals.get(asset, 0) + amount
        assert all(total == 0 for total in totals.values()), (m.seq, totals)
        assert ledger_view(ledger) == engine_view(m.engine), m.seq

    _, steps = a_life(check)

    kinds = {type(e) for _, _, events in steps for e in events}
    assert {SubscriptionSettled, OfferClosed, CouponPaid, DividendPaid, BondRedeemed} <= kinds


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    yield connection
    await connection.close()


async def test_written_to_postgresql_the_trial_balance_is_zero_after_every_step_and_balances_match_the_engine(conn):
    m, steps = a_life()
    writer = LedgerWriter()

    for seq, ts, events in steps:
        async with conn.transaction():
            await writer.write(conn, entries_for(seq, ts, events))
        assert all(total == 0 for total in (await trial_balance(conn)).values()), seq
    assert await reconcile_balances(conn) == []
    assert await negative_participant_balances(conn) == []
    for owner in ("anna", "bruno", "carla", ISSUER):
        stored = await balances_of(conn, owner)
        for asset in ("EUR", "COOP", "GREEN27"):
            assert (stored.get((asset, Bucket.AVAILABLE), 0), stored.get((asset, Bucket.HELD), 0)) == m.balance(
                owner, asset
            ), (owner, asset)
