"""Engine snapshots (`exchange.snapshot`): an engine decoded from a snapshot is the engine that was encoded.

Identity is checked the strong way: the canonical bytes are equal, and the restored engine, fed the same further
commands as the original, says exactly the same events. Streams come from the seeded `RandomSession` (call phases,
halts, auctions, volatility interruptions, a bond, fees, GTD expiries), cut at a point hypothesis chooses; a corporate
scenario covers offers, investor profiles, paid coupons, impact-linked rates and redemptions.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange import snapshot
from exchange.accounts import Balance
from exchange.book import BookSide, OrderBook, PriceLevel
from exchange.commands import CloseOffer, Command, PayCoupon, Subscribe
from exchange.distributions import DistributionBook
from exchange.engine import Engine
from exchange.events import Event
from exchange.investors import InvestorProfile, InvestorProfiles
from exchange.offers import Offer, OfferBook, Subscription
from exchange.orders import Order, TimeInForce
from tests.exchange.corporate_factories import PROFESSIONAL, RETAIL, CorporateMarket, social_bond, social_equity, us_at
from tests.exchange.factories import BUY, SELL, START_US, RandomSession, absolute_expiry, limit
from tests.exchange.test_engine_determinism import instruments, live

Stamped = tuple[int, int, Command]


def recorded_stream(seed: int, count: int) -> list[Stamped]:
    """A seeded session of `count` commands after the opening, stamped as a sequencer would stamp them."""
    engine = Engine()
    session = RandomSession(seed, instruments(), call_phases=True, live_orders=lambda: live(engine))
    stream: list[Stamped] = []
    now = START_US
    for command in session.opening():
        stream.append((len(stream) + 1, now, command))
        engine.apply(len(stream), now, command)
    for _ in range(count):
        pause, command = session.next()
        now += pause
        command = absolute_expiry(command, now)
        stream.append((len(stream) + 1, now, command))
        engine.apply(len(stream), now, command)
    return stream


def feed(engine: Engine, stream: list[Stamped]) -> list[list[Event]]:
    return [engine.apply(seq, ts, command) for seq, ts, command in stream]


def restored(engine: Engine) -> Engine:
    data = snapshot.encode(engine)
    again = snapshot.decode(data)
    assert snapshot.encode(again) == data, "a decoded snapshot encodes to the same bytes"
    return again


def engine_fields() -> set[str]:
    engine = Engine()
    if hasattr(engine, "__dict__"):
        return set(vars(engine))
    # Compiled (mypyc), the engine is a native class: its fields are descriptors on the type, not an instance dict.
    return {name for name, attribute in vars(Engine).items() if inspect.isgetsetdescriptor(attribute)}


def test_the_snapshot_writes_every_field_of_the_engine():
    # A field added to the engine and not to the snapshot would be silently lost on every restart.
    assert engine_fields() == snapshot.STATE_FIELDS | snapshot.SCRATCH_FIELDS


def test_an_empty_engine_round_trips():
    fresh = Engine()
    assert snapshot.encode(restored(fresh)) == snapshot.encode(fresh)


def test_a_long_session_cut_anywhere_continues_identically():
    stream = recorded_stream(seed=7, count=6_000)
    whole = Engine()
    expected = feed(whole, stream)
    for cut in (len(stream) // 3, len(stream) // 2, len(stream) - 50):
        first = Engine()
        feed(first, stream[:cut])
        resumed = restored(first)
        assert feed(resumed, stream[cut:]) == expected[cut:]
        assert snapshot.encode(resumed) == snapshot.encode(whole)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 700), cut=st.floats(0, 1))
def test_restoring_a_snapshot_taken_at_any_point_of_any_stream_is_a_full_replay(seed, count, cut):
    stream = recorded_stream(seed, count)
    at = int(cut * len(stream))
    whole = Engine()
    expected = feed(whole, stream)
    partial = Engine()
    feed(partial, stream[:at])
    resumed = restored(partial)
    assert (resumed.last_seq, resumed.last_ts_us) == (partial.last_seq, partial.last_ts_us)
    assert feed(resumed, stream[at:]) == expected[at:]
    assert snapshot.encode(resumed) == snapshot.encode(whole)
    # A second snapshot of the resumed engine, and the same engine rebuilt from it, say the same again.
    assert snapshot.encode(restored(resumed)) == snapshot.encode(whole)


def corporate_market() -> CorporateMarket:
    """Offers (one open with pending applications), investor profiles, paid coupons, an impact-linked rate, GTD."""
    m = CorporateMarket(
        social_equity(),
        social_bond(impact_step_down_ppm=5_000, impact_step_up_ppm=7_500),
        social_bond("OLD26", bond=replace(social_bond().bond, maturity_date=date(2024, 6, 1))),
        social_equity("NEWCO"),
    )
    m.issue("coop", 1_000, "COOP")
    m.issue("coop", 1_000, "GREEN27")
    m.issue("coop", 100, "OLD26")
    m.issue("coop", 500, "NEWCO")
    for account in ("a", "b", "r"):
        m.deposit(account, 50_000_000)
    m.deposit("coop", 50_000_000)
    m.profile("r", RETAIL, 2_000_000)
    m.profile("a", PROFESSIONAL)
    m.acknowledge("r")
    m.place(limit("coop", SELL, 40, 10_000, "GREEN27"))
    m.place(limit("a", BUY, 30, 10_000, "GREEN27"))
    m.place(limit("coop", SELL, 50, 10_000, "OLD26"))
    m.place(limit("b", BUY, 20, 10_000, "OLD26"))
    m.place(limit("b", BUY, 5, 990, "COOP", tif=TimeInForce.GTD, expire_at_us=m.now_us + 10**15))
    m.impact(True)
    m.open_offer("IPO-1", "NEWCO", price=1_000, quantity=500, closes_in_us=36_000_000_000_000)
    m.subscribe("a", 100, "IPO-1")
    m.subscribe("r", 10, "IPO-1")
    m.open_offer("IPO-0", "COOP", price=1_000, quantity=100, closes_in_us=1_000)
    m.subscribe("b", 50, "IPO-0")
    m.close_offer("IPO-0", after_us=2_000)
    m.move_to(date(2024, 1, 15))
    m.pay_coupon(date(2024, 1, 15))
    m.move_to(date(2024, 6, 1))
    m.pay_coupon(date(2024, 6, 1), "OLD26")
    m.redeem("OLD26")
    return m


def test_offers_profiles_and_distributions_survive_a_snapshot():
    m = corporate_market()
    engine = m.engine
    assert engine.offers.open_by_symbol and engine.investors.profiles and engine.distributions.paid_coupons
    assert engine.distributions.redeemed and engine.distributions.listed_rate_ppm and engine._gtd
    resumed = restored(engine)
    # What follows reads all of it: a second subscription, a retail purchase, the close, the next coupon, a repeat.
    later: list[Command] = [
        Subscribe("b", "IPO-1", 200),  # too late: the offer closed at the start of 2025
        limit("r", BUY, 5, 1_000, "COOP"),
        CloseOffer("IPO-1"),
        PayCoupon("GREEN27", date(2025, 1, 15)),
        PayCoupon("GREEN27", date(2024, 1, 15)),
    ]
    stamped = [(engine.last_seq + i + 1, us_at(date(2025, 1, 15)), c) for i, c in enumerate(later)]
    assert feed(resumed, stamped) == feed(engine, stamped)
    assert snapshot.encode(resumed) == snapshot.encode(engine)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],
        lambda b: b.replace(b"engine-snapshot/1", b"engine-snapshot/9"),
        lambda b: b"[]",
        lambda b: b"not json",
        lambda b: b.replace(b'"GREEN27"', b'"GREEN27', 1),
    ],
)
def test_damaged_snapshot_bytes_are_refused(damage):
    data = snapshot.encode(corporate_market().engine)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.decode(damage(data))


def test_stale_timer_entries_are_not_state():
    # The sequencer's clock asks `next_timer_us` between commands, which prunes done orders from the GTD heap; an
    # engine rebuilt from the journal never asked. Both are the same exchange and must snapshot the same.
    stream = recorded_stream(seed=3, count=3_000)
    asked, replayed = Engine(), Engine()
    for seq, ts, command in stream:
        asked.apply(seq, ts, command)
        asked.next_timer_us()
        replayed.apply(seq, ts, command)
    assert len(asked._gtd) != len(replayed._gtd), "the stream leaves stale GTD entries behind"
    assert snapshot.encode(asked) == snapshot.encode(replayed)


def _fields(cls: type) -> set[str]:
    """The instance fields of a class, whether it is interpreted (slots) or compiled (getset descriptors)."""
    return {n for n, a in vars(cls).items() if inspect.isgetsetdescriptor(a) or inspect.ismemberdescriptor(a)}


@pytest.mark.parametrize(
    ("cls", "written"),
    [
        # Each is what `exchange.snapshot` writes (or rebuilds: queue links, level sums, best level, sorted prices).
        (Order, {"order_id", "account", "symbol", "side", "type", "price", "quantity", "remaining", "tif",
                 "expire_at_us", "post_only", "stp", "hold_per_lot", "hold_balance", "priority", "level", "prev", "next"}),
        (PriceLevel, {"price", "quantity", "count", "head", "tail"}),
        (BookSide, {"symbol", "side", "levels", "prices", "best", "_is_bid"}),  # symbol and side: OrderBook(symbol)
        (OrderBook, {"symbol", "bids", "asks", "market_bids", "market_asks"}),
        (Balance, {"available", "held"}),
        (OfferBook, {"offers", "open_by_symbol"}),
        (Offer, {"offer_id", "symbol", "issuer", "currency", "price", "quantity", "min_application", "min_subscription",
                 "closes_at_us", "opened_seq", "status", "subscriptions", "subscribed", "allocated", "closed_seq",
                 "pending_by_account"}),
        (Subscription, {"seq", "account", "quantity", "amount", "allocated", "paid"}),
        (InvestorProfiles, {"profiles", "acknowledged"}),
        (InvestorProfile, {"category", "declared_assets_minor"}),
        (DistributionBook, {"paid_coupons", "redeemed", "listed_rate_ppm"}),
    ],
)  # fmt: skip
def test_the_snapshot_knows_every_field_of_the_engines_parts(cls, written):
    # A field added to any part of the engine must be added to the snapshot too, or a restart would lose it.
    assert _fields(cls) == written
