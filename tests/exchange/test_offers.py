"""Primary offers: a fixed price, a subscription window, all or nothing at the close, pro rata when oversubscribed.

Worked numbers use the cooperative's equity COOP at EUR 10.00 (1 000 ticks of one cent); with lots of 10 shares a
lot costs 1 000 ticks x 10 cents = EUR 100.00.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import codec
from exchange.commands import CloseOffer, OpenOffer, SetTradingState, Subscribe
from exchange.events import CommandRejected, OfferClosed, OfferOpened, SubscriptionAccepted, SubscriptionSettled
from exchange.instrument import TradingState
from exchange.offers import OfferStatus, allocate
from exchange.rejects import RejectReason
from tests.exchange.corporate_factories import (
    ISSUER,
    PROFESSIONAL,
    RETAIL,
    CorporateMarket,
    conserved,
    holds_explained,
    snapshot,
    social_equity,
)
from tests.exchange.factories import of_type, one

EUR = "EUR"


def offering(*, lot_size: int = 1, issued: int = 1_000, investors: tuple[str, ...] = tuple("abc")) -> CorporateMarket:
    """COOP listed, `issued` shares created for the issuer, EUR 100 000.00 deposited for each investor."""
    m = CorporateMarket(social_equity(lot_size=lot_size, state=TradingState.PRE_OPEN))
    m.issue(ISSUER, issued, "COOP")
    for account in investors:
        m.deposit(account, 10_000_000)
    return m


def refused(events: list) -> RejectReason:
    return one(events, CommandRejected).reason


# ---------------------------------------------------------------- opening


def test_opening_an_offer_holds_the_issuers_offered_units():
    m = offering()

    opened = one(m.open_offer(quantity=600), OfferOpened)

    assert (opened.issuer, opened.symbol, opened.quantity, opened.price) == (ISSUER, "COOP", 600, 1_000)
    assert opened.currency == EUR
    assert m.balance(ISSUER, "COOP") == (400, 600)


def test_an_issuer_cannot_offer_units_it_does_not_hold():
    m = offering(issued=500)

    assert refused(m.open_offer(quantity=600)) is RejectReason.INSUFFICIENT_HOLDINGS


def test_only_the_listed_issuer_may_offer_the_instruments_units():
    m = offering()
    m.issue(ISSUER, 1, "COOP")

    assert refused(m.open_offer(issuer="someone-else")) is RejectReason.NOT_ISSUER


@pytest.mark.parametrize(
    "terms",
    [
        {"price": 0},
        {"quantity": 15},  # not whole lots of 10
        {"min_application": 5},  # not whole lots
        {"min_application": 0},
        {"min_subscription": 0},
        {"min_subscription": 1_010},  # more than offered
        {"closes_in_us": 0},  # closes now: no window at all
    ],
    ids=lambda terms: next(iter(terms)),
)
def test_offer_terms_off_the_grid_or_inconsistent_are_refused(terms):
    m = offering(lot_size=10)

    events = m.open_offer(**{"quantity": 1_000, "min_application": 10, **terms})

    assert refused(events) is RejectReason.INVALID_OFFER_TERMS


def test_offer_ids_are_unique_forever_and_one_instrument_has_one_open_offer_at_a_time():
    m = offering()
    m.open_offer("IPO-1", quantity=100)
    m.close_offer("IPO-1")

    assert refused(m.open_offer("IPO-1", quantity=100)) is RejectReason.OFFER_EXISTS
    m.open_offer("IPO-2", quantity=100)
    assert refused(m.open_offer("IPO-3", quantity=100)) is RejectReason.OFFER_IN_PROGRESS


# ---------------------------------------------------------------- subscribing


def test_a_subscription_holds_its_cash_at_the_offer_price():
    m = offering(lot_size=10)
    m.open_offer(quantity=1_000, min_application=20)

    accepted = one(m.subscribe("a", 30), SubscriptionAccepted)

    assert (accepted.account, accepted.quantity, accepted.amount) == ("a", 30, 3 * 10_000)
    assert m.balance("a") == (10_000_000 - 30_000, 30_000)


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        (10, RejectReason.BELOW_MINIMUM_APPLICATION),
        (25, RejectReason.QUANTITY_NOT_ON_LOT),
        (0, RejectReason.QUANTITY_OUT_OF_RANGE),
    ],
)
def test_an_application_is_whole_lots_of_at_least_the_minimum(quantity, reason):
    m = offering(lot_size=10)
    m.open_offer(quantity=1_000, min_application=20)

    assert refused(m.subscribe("a", quantity)) is reason


def test_an_application_needs_the_cash_available():
    m = offering(investors=())
    m.deposit("a", 9_999)
    m.open_offer(quantity=1_000)

    assert refused(m.subscribe("a", 10)) is RejectReason.INSUFFICIENT_FUNDS


def test_the_issuer_cannot_subscribe_to_its_own_offer():
    m = offering()
    m.deposit(ISSUER, 1_000_000)
    m.open_offer(quantity=100)

    assert refused(m.subscribe(ISSUER, 10)) is RejectReason.ISSUER_CANNOT_SUBSCRIBE


def test_applications_stop_at_the_closing_time_even_before_the_close_is_sent():
    m = offering()
    m.open_offer(quantity=100, closes_in_us=1_000)
    m.advance(1_000)

    assert refused(m.subscribe("a", 10)) is RejectReason.OFFER_NOT_OPEN
    assert refused(m.subscribe("a", 10, "NO-SUCH-OFFER")) is RejectReason.UNKNOWN_OFFER


def test_subscriptions_apply_the_retail_protections():
    m = offering()
    m.apply(SetTradingState("COOP", TradingState.OPEN))
    m.profile("a", RETAIL)
    m.open_offer(quantity=100)

    assert refused(m.subscribe("a", 10)) is RejectReason.RISK_WARNING_REQUIRED
    m.acknowledge("a")
    assert of_type(m.subscribe("a", 10), SubscriptionAccepted)


# ---------------------------------------------------------------- closing


def test_an_offer_cannot_close_before_its_closing_time_nor_twice():
    m = offering()
    m.open_offer(quantity=100, closes_in_us=1_000)

    assert refused(m.apply(CloseOffer("IPO-1"))) is RejectReason.OFFER_STILL_OPEN
    m.close_offer(after_us=1_000)
    assert refused(m.apply(CloseOffer("IPO-1"))) is RejectReason.OFFER_NOT_OPEN


def test_below_the_minimum_subscription_every_application_is_refunded_in_full():
    m = offering()
    m.open_offer(quantity=1_000, min_subscription=750)
    m.subscribe("a", 400)
    m.subscribe("b", 349)

    events = m.close_offer()

    closed = one(events, OfferClosed)
    assert (closed.succeeded, closed.subscribed, closed.allocated, closed.unsold) == (False, 749, 0, 1_000)
    assert [(s.allocated, s.paid, s.released) for s in of_type(events, SubscriptionSettled)] == [
        (0, 0, 400_000),
        (0, 0, 349_000),
    ]
    assert m.balance("a") == m.balance("b") == (10_000_000, 0)
    assert m.balance(ISSUER, "COOP") == (1_000, 0)
    assert m.balance(ISSUER) == (0, 0)
    assert m.engine.offers.get("IPO-1").status is OfferStatus.REFUNDED


def test_reaching_the_minimum_subscription_exactly_is_enough():
    m = offering()
    m.open_offer(quantity=1_000, min_subscription=750)
    m.subscribe("a", 750)

    assert one(m.close_offer(), OfferClosed).succeeded


def test_undersubscribed_above_the_minimum_everyone_gets_everything_and_the_rest_goes_back_to_the_issuer():
    m = offering()
    m.open_offer(quantity=1_000, min_subscription=500)
    m.subscribe("a", 400)
    m.subscribe("b", 200)

    events = m.close_offer()

    assert [(s.account, s.allocated, s.paid, s.released) for s in of_type(events, SubscriptionSettled)] == [
        ("a", 400, 400_000, 0),
        ("b", 200, 200_000, 0),
    ]
    assert one(events, OfferClosed).unsold == 400
    assert m.balance("a", "COOP") == (400, 0) and m.balance("a") == (9_600_000, 0)
    assert m.balance(ISSUER, "COOP") == (400, 0)
    assert m.balance(ISSUER) == (600_000, 0)


def test_oversubscribed_allocation_is_pro_rata_in_lots_and_the_leftover_lot_goes_to_the_largest_remainder():
    m = offering(lot_size=10)
    m.open_offer(quantity=1_000, min_application=10)
    m.subscribe("a", 700)
    m.subscribe("b", 500)
    m.subscribe("c", 300)

    events = m.close_offer()

    # 1 000 x q / 1 500: a 466.7 -> 460, b 333.3 -> 330, c 200 -> 200; the one lot left goes to a (remainder 6.7)
    assert [(s.account, s.allocated, s.paid, s.released) for s in of_type(events, SubscriptionSettled)] == [
        ("a", 470, 470_000, 230_000),
        ("b", 330, 330_000, 170_000),
        ("c", 200, 200_000, 100_000),
    ]
    assert one(events, OfferClosed).unsold == 0
    assert m.balance(ISSUER) == (1_000_000, 0)
    assert m.balance(ISSUER, "COOP") == (0, 0)


def test_equal_remainders_are_broken_in_favour_of_the_earlier_application():
    m = offering()
    m.open_offer(quantity=10)
    m.subscribe("b", 5)
    m.subscribe("a", 5)
    m.subscribe("c", 5)

    events = m.close_offer()

    assert [(s.account, s.allocated) for s in of_type(events, SubscriptionSettled)] == [("b", 4), ("a", 3), ("c", 3)]


def test_an_offer_of_a_delisted_instrument_is_refunded():
    m = offering()
    m.open_offer(quantity=100)
    m.subscribe("a", 100)
    m.apply(SetTradingState("COOP", TradingState.DELISTED))

    closed = one(m.close_offer(), OfferClosed)

    assert not closed.succeeded
    assert m.balance("a") == (10_000_000, 0)


def test_a_refused_offer_command_changes_nothing():
    m = offering()
    m.open_offer(quantity=100)
    m.subscribe("a", 10)
    before = snapshot(m.engine)

    for command in (
        OpenOffer("IPO-2", "COOP", ISSUER, 1_000, 10_000, 1, 1, m.now_us + 1),
        Subscribe("a", "IPO-1", 10**9),
        CloseOffer("IPO-1"),
    ):
        assert len(events := m.apply(command)) == 1 and isinstance(events[0], CommandRejected)
    assert snapshot(m.engine) == before


# ---------------------------------------------------------------- the allocation rule, for any numbers


@settings(max_examples=300, deadline=None)
@given(
    lot=st.integers(1, 100),
    offered_lots=st.integers(0, 500),
    requested_lots=st.lists(st.integers(1, 400), min_size=1, max_size=40),
)
def test_allocation_adds_up_exactly_respects_lots_and_requests_and_stays_within_a_lot_of_pro_rata(
    lot, offered_lots, requested_lots
):
    requested = [q * lot for q in requested_lots]
    offered = offered_lots * lot
    total = sum(requested)

    allocated = allocate(requested, offered, lot)

    assert sum(allocated) == min(total, offered)
    assert all(0 <= a <= q and a % lot == 0 for a, q in zip(allocated, requested, strict=True))
    if total > offered:
        # |allocation - exact pro-rata share| < one lot, for everybody
        assert all(abs(a * total - q * offered) < lot * total for a, q in zip(allocated, requested, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    applications=st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 60)), min_size=0, max_size=25),
    offered_lots=st.integers(1, 200),
    minimum_lots=st.integers(1, 200),
)
def test_an_offer_creates_and_loses_no_cent_and_no_share(applications, offered_lots, minimum_lots):
    lot = 10
    m = offering(lot_size=lot, issued=2_000, investors=tuple("abcdef"))
    minimum = min(minimum_lots, offered_lots) * lot
    m.open_offer(quantity=offered_lots * lot, min_application=lot, min_subscription=minimum)
    for account, lots in applications:
        m.subscribe(account, lots * lot)
        assert conserved(m.engine) and holds_explained(m.engine)

    events = m.close_offer()

    settled = of_type(events, SubscriptionSettled)
    paid = sum(s.paid for s in settled)
    assert m.balance(ISSUER) == (paid, 0)
    assert sum(s.allocated for s in settled) * 1_000 == paid  # EUR 10.00 a share
    assert all(s.paid + s.released == s.requested * 1_000 for s in settled)
    cash = sum(sum(m.balance(account)) for account in "abcdef")
    assert cash + paid == 6 * 10_000_000
    assert conserved(m.engine) and holds_explained(m.engine)


def test_the_same_offer_commands_replay_to_the_same_bytes():
    def run() -> list[bytes]:
        m = offering(lot_size=10)
        m.profile("c", PROFESSIONAL)
        out = [codec.encode(e) for e in m.open_offer(quantity=500, min_application=10, min_subscription=100)]
        for account, quantity in (("a", 300), ("b", 250), ("c", 120), ("a", 40)):
            out += [codec.encode(e) for e in m.subscribe(account, quantity)]
        out += [codec.encode(e) for e in m.close_offer()]
        return out

    first = run()
    assert first == run()
    assert any(b"SubscriptionSettled" in line for line in first)


@pytest.mark.parametrize(
    "command",
    [OpenOffer("IPO-9", "COOP", ISSUER, 1_000, 100, 10, 50, 1_700_000_000_000_000), Subscribe("a", "IPO-9", 20)]
    + [CloseOffer("IPO-9")],
)
def test_offer_commands_round_trip_through_the_journal_encoding(command):
    assert codec.decode(codec.encode(command)) == command
