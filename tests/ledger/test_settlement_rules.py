"""Settlement rules, worked by hand: the ledger entries `ledger.settlement.entries_for` makes of each engine event.

Every number below is computed in the test's docstring from the listing terms, not read back from the engine; the
test then drives a real `Engine` (through `Market`) and checks the events, the entries and the engine's balances
against those numbers. Pure: no database.

The instruments of the examples (one tick = one cent per share unless said otherwise):

- FEE_EQUITY "ACME": reference 2000 (EUR 20.00), band 10 % (1800..2200), maker 10 bps, taker 30 bps. A buy holds per
  lot its limit notional plus the fee bound ceil(notional * max(maker, taker) / 10_000) = ceil(notional * 30 / 10_000).
- the bond "GREEN27" of `tests.exchange.factories.bond`: EUR 100 nominal (10_000 cents) per unit, 4 % annual coupon
  (400 cents per unit per year), issued 2023-01-15, maturing 2027-01-15, priced in 0.01 % of par (10_000 ticks = par,
  one tick = one cent per unit); with maker 5 bps and taker 20 bps added here.

Accounts a, b, c and d start with EUR 10_000.00 (1_000_000 cents) and 1_000 of every instrument (`funded_market`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from exchange.commands import CancelOrder, Deposit, IssueSecurities, Withdraw
from exchange.events import (
    BalanceChanged,
    BalanceChangeKind,
    CommandRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    Trade,
)
from exchange.fees import fee, fee_bound_per_lot
from exchange.instrument import DayCount, Instrument
from exchange.orders import CancelReason, SelfTradePrevention, TimeInForce
from ledger.entries import VENUE, AccountRef, Bucket, Entry, EntryKind, Leg
from ledger.settlement import entries_for
from tests.exchange.factories import (
    BUY,
    EUR,
    SELL,
    Market,
    RandomSession,
    absolute_expiry,
    bond,
    equity,
    funded_market,
    limit,
    market,
    of_type,
    one,
)

CASH = 1_000_000
SHARES = 1_000
EXTERNAL = AccountRef(VENUE, Bucket.EXTERNAL)
ISSUANCE = AccountRef(VENUE, Bucket.ISSUANCE)
FEES = AccountRef(VENUE, Bucket.FEES)


def available(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.AVAILABLE)


def held(owner: str) -> AccountRef:
    return AccountRef(owner, Bucket.HELD)


def fee_equity() -> Instrument:
    return equity("ACME", reference_price=2_000, band_bps=1_000, maker_fee_bps=10, taker_fee_bps=30)


def fee_bond(day_count: DayCount = DayCount.THIRTY_360) -> Instrument:
    plain = bond()
    assert plain.bond is not None
    return replace(plain, maker_fee_bps=5, taker_fee_bps=20, bond=replace(plain.bond, day_count=day_count))


def at(year: int, month: int, day: int, hour: int = 10) -> int:
    """Exchange time (microseconds since the epoch, UTC) of a calendar instant."""
    return int((datetime(year, month, day, hour, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * (
        1_000_000
    )


def assert_balanced(entries: list[Entry]) -> None:
    """Per entry and per asset, what leaves some accounts is exactly what arrives at others."""
    for entry in entries:
        per_asset: dict[str, int] = {}
        for (_, asset), change in entry.net_by_account().items():
            per_asset[asset] = per_asset.get(asset, 0) + change
        assert set(per_asset.values()) == {0}, entry
        left = sum(leg.amount for leg in entry.legs)
        arrived = sum(change for change in entry.net_by_account().values() if change > 0)
        assert left >= arrived > 0, entry


def settle(m: Market, command: object) -> tuple[list[Event], list[Entry]]:
    """Apply one command; its events and the entries they stand for (checked to balance)."""
    events = m.apply(command)  # type: ignore[arg-type]
    entries = entries_for(m.seq, m.now_us, events)
    assert_balanced(entries)
    return events, entries


def expected(
    m: Market, index: int, kind: EntryKind, *legs: Leg, order_id: int | None = None, trade_id: int | None = None
) -> Entry:
    """An entry of the command `m` applied last."""
    return Entry(m.seq, index, kind, m.now_us, legs, order_id, trade_id)


# ---------------------------------------------------------------------------------------------- money in and out


def test_a_deposit_moves_cash_from_outside_the_exchange_to_available():
    m = Market(fee_equity())
    events, entries = settle(m, Deposit("b", EUR, 12_345))
    assert one(events, BalanceChanged).kind is BalanceChangeKind.DEPOSIT
    assert entries == [expected(m, 0, EntryKind.DEPOSIT, Leg(EXTERNAL, available("b"), EUR, 12_345))]
    assert m.balance("b") == (12_345, 0)


def test_a_withdrawal_moves_available_cash_back_outside():
    m = Market(fee_equity())
    m.deposit("b", 12_345)
    _, entries = settle(m, Withdraw("b", EUR, 2_345))
    assert entries == [expected(m, 0, EntryKind.WITHDRAWAL, Leg(available("b"), EXTERNAL, EUR, 2_345))]
    assert m.balance("b") == (10_000, 0)


def test_an_issuance_creates_securities_out_of_the_venue_issuance_account():
    m = Market(fee_equity())
    _, entries = settle(m, IssueSecurities("c", "ACME", 500))
    assert entries == [expected(m, 0, EntryKind.ISSUANCE, Leg(ISSUANCE, available("c"), "ACME", 500))]
    assert m.balance("c", "ACME") == (500, 0)


def test_a_refused_command_makes_no_entry():
    m = Market(fee_equity())
    m.deposit("b", 100)
    events, entries = settle(m, Withdraw("b", EUR, 101))
    assert of_type(events, CommandRejected)
    assert entries == []


# ---------------------------------------------------------------------------------------------- holds on acceptance


def test_a_buy_holds_its_limit_notional_plus_the_fee_bound_on_acceptance():
    """b BUY 50 ACME @ 2010 (nothing to match). Per lot (1 share): notional 2010 cents, fee bound
    ceil(2010 * 30 / 10_000) = ceil(6.03) = 7, so 2017 per lot; 50 lots hold 100_850 cents (available -> held)."""
    m = funded_market(fee_equity())
    events, entries = settle(m, limit("b", BUY, 50, 2_010))
    accepted = one(events, OrderAccepted)
    assert (accepted.hold_asset, accepted.hold_amount) == (EUR, 100_850)
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 100_850), order_id=accepted.order_id)
    ]
    assert m.balance("b") == (CASH - 100_850, 100_850)


def test_a_buy_counts_the_fee_bound_per_lot_not_per_share():
    """Lots of 10 shares, one tick = 0.01 EUR per share = 10 cents per lot. b BUY 30 @ 2010 = 3 lots.
    Per lot: notional 2010 * 10 = 20_100 cents, fee bound ceil(20_100 * 30 / 10_000) = ceil(60.3) = 61, so 20_161;
    3 lots hold 60_483 (per share the bound would have been ceil(6.03) * 30 = 210, not 183)."""
    m = funded_market(
        equity("ACME", reference_price=2_000, lot_size=10, tick_value=10, maker_fee_bps=10, taker_fee_bps=30)
    )
    events, entries = settle(m, limit("b", BUY, 30, 2_010))
    accepted = one(events, OrderAccepted)
    assert accepted.hold_amount == 3 * (20_100 + 61) == 60_483
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 60_483), order_id=accepted.order_id)
    ]


def test_a_bond_buy_also_holds_the_accrued_interest_bound():
    """b BUY 7 GREEN27 @ 10_050 (100.50 % of par). Per unit: clean 10_050 cents; fee bound ceil(10_050 * 20 / 10_000)
    = ceil(20.1) = 21; accrued bound: under 30E/360 the most a unit accrues is on the day before a coupon date,
    359 days (e.g. 2023-01-15 -> 2024-01-14: 360 * 1 + 30 * 0 + (14 - 15) = 359), so 400 * 359 / 360 = 398.89 cents,
    rounded UP to 399. Hold per unit 10_050 + 21 + 399 = 10_470; 7 units hold 73_290."""
    m = funded_market(fee_bond())
    m.now_us = at(2024, 3, 31)
    events, entries = settle(m, limit("b", BUY, 7, 10_050, "GREEN27"))
    accepted = one(events, OrderAccepted)
    assert accepted.hold_amount == 7 * (10_050 + 21 + 399) == 73_290
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 73_290), order_id=accepted.order_id)
    ]


def test_a_sell_holds_the_securities_it_offers():
    """c SELL 30 ACME @ 2050: 30 shares move from c's available to c's held; no cash is held for a sell (its fee
    comes out of its proceeds)."""
    m = funded_market(fee_equity())
    events, entries = settle(m, limit("c", SELL, 30, 2_050))
    accepted = one(events, OrderAccepted)
    assert (accepted.hold_asset, accepted.hold_amount) == ("ACME", 30)
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("c"), held("c"), "ACME", 30), order_id=accepted.order_id)
    ]
    assert m.balance("c", "ACME") == (SHARES - 30, 30)
    assert m.balance("c") == (CASH, 0)


def test_a_market_buy_holds_at_the_band_edge():
    """A market BUY may trade up to the band's upper edge, 2000 * 1.10 = 2200: per lot 2200 + ceil(2200 * 30 / 10_000)
    = 2200 + ceil(6.6) = 2207; 10 lots hold 22_070."""
    m = funded_market(fee_equity())
    m.place(limit("c", SELL, 10, 2_000))
    events, entries = settle(m, market("b", BUY, 10))
    accepted = one(events, OrderAccepted)
    assert (accepted.price, accepted.hold_amount) == (2_200, 22_070)
    assert entries[0] == expected(
        m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 22_070), order_id=accepted.order_id
    )


# ---------------------------------------------------------------------------------------------- releases


def test_a_cancel_releases_everything_the_order_still_holds():
    """b BUY 50 @ 2010 holds 50 * 2017 = 100_850; cancelling it releases all of it (held -> available)."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("b", BUY, 50, 2_010))
    events, entries = settle(m, CancelOrder("b", order_id))
    cancelled = one(events, OrderCancelled)
    assert (cancelled.reason, cancelled.release_asset, cancelled.release_amount) == (CancelReason.USER, EUR, 100_850)
    assert entries == [
        expected(m, 0, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 100_850), order_id=order_id)
    ]
    assert m.balance("b") == (CASH, 0)


def test_cancelling_a_sell_releases_its_securities():
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("c", SELL, 30, 2_050))
    _, entries = settle(m, CancelOrder("c", order_id))
    assert entries == [
        expected(m, 0, EntryKind.RELEASE, Leg(held("c"), available("c"), "ACME", 30), order_id=order_id)
    ]
    assert m.balance("c", "ACME") == (SHARES, 0)


def test_a_gtd_expiry_releases_the_hold_in_the_command_that_finds_it_due():
    """b BUY 5 @ 1990 GTD, one second: per lot 1990 + ceil(5.97) = 1996, hold 9_980. The clock tick one second later
    expires it and its entries carry the tick's sequence number."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("b", BUY, 5, 1_990, tif=TimeInForce.GTD, expire_at_us=m.now_us + 1_000_000))
    events = m.tick(1_000_000)
    entries = entries_for(m.seq, m.now_us, events)
    assert one(events, OrderCancelled).reason is CancelReason.EXPIRED
    assert entries == [expected(m, 0, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 9_980), order_id=order_id)]


def test_the_end_of_day_releases_the_holds_of_day_orders():
    """b BUY 5 @ 1990 DAY holds 9_980 and c SELL 4 @ 2100 DAY holds 4 shares; the end of day releases both, in
    order id order."""
    m = funded_market(fee_equity())
    buy_id = m.place_id(limit("b", BUY, 5, 1_990, tif=TimeInForce.DAY))
    sell_id = m.place_id(limit("c", SELL, 4, 2_100, tif=TimeInForce.DAY))
    events = m.end_of_day()
    entries = entries_for(m.seq, m.now_us, events)
    assert entries == [
        expected(m, 0, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 9_980), order_id=buy_id),
        expected(m, 1, EntryKind.RELEASE, Leg(held("c"), available("c"), "ACME", 4), order_id=sell_id),
    ]


def test_an_ioc_remainder_is_released_after_the_fill():
    """c SELL 10 @ 2000 rests. b IOC BUY 25 @ 2010 holds 25 * 2017 = 50_425, buys 10 @ 2000 and drops 15.
    Fill: clean 10 * 2000 = 20_000, b's taker fee 20_000 * 30 / 10_000 = 60, c's maker fee 20_000 * 10 / 10_000 = 20.
    The fill consumed 10 lots of hold = 20_170, of which 20_000 + 60 were paid: 110 come back with the fill.
    The remainder releases 15 * 2017 = 30_255. Held afterwards: 50_425 - 20_060 - 110 - 30_255 = 0."""
    m = funded_market(fee_equity())
    sell_id = m.place_id(limit("c", SELL, 10, 2_000))
    events, entries = settle(m, limit("b", BUY, 25, 2_010, tif=TimeInForce.IOC))
    buy_id = one(events, OrderAccepted).order_id
    trade = one(events, Trade)
    assert (trade.cash, trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (20_000, 60, 20, 110)
    remainder = one(events, OrderCancelled)
    assert (remainder.reason, remainder.cancelled_quantity, remainder.release_amount) == (
        CancelReason.IOC_REMAINDER,
        15,
        30_255,
    )
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 50_425), order_id=buy_id),
        expected(
            m,
            1,
            EntryKind.FILL,
            Leg(held("c"), available("b"), "ACME", 10),
            Leg(held("b"), available("c"), EUR, 20_000),
            Leg(held("b"), FEES, EUR, 60),
            Leg(available("c"), FEES, EUR, 20),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
        expected(
            m, 2, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 110), order_id=buy_id, trade_id=trade.trade_id
        ),
        expected(m, 3, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 30_255), order_id=buy_id),
    ]
    assert sell_id == trade.sell_order_id
    assert m.balance("b") == (CASH - 20_060, 0)
    assert m.balance("c") == (CASH + 20_000 - 20, 0)
    assert m.balance(VENUE) == (80, 0)


def test_a_self_trade_prevention_releases_what_the_cancelled_order_held():
    """b SELL 10 @ 2000 rests; b BUY 10 @ 2010 with cancel-newest holds 10 * 2017 = 20_170 and, meeting its own sell,
    is cancelled whole: the 20_170 go straight back."""
    m = funded_market(fee_equity())
    m.place_id(limit("b", SELL, 10, 2_000))
    events, entries = settle(m, limit("b", BUY, 10, 2_010, stp=SelfTradePrevention.CANCEL_NEWEST))
    buy_id = one(events, OrderAccepted).order_id
    assert one(events, OrderCancelled).reason is CancelReason.SELF_TRADE
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 20_170), order_id=buy_id),
        expected(m, 1, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 20_170), order_id=buy_id),
    ]


# ---------------------------------------------------------------------------------------------- amends


def test_an_amend_to_a_higher_price_holds_the_difference():
    """b BUY 50 @ 2010 holds 100_850. Re-priced to 2050: per lot 2050 + ceil(2050 * 30 / 10_000 = 6.15) = 2057, 50 lots
    = 102_850, so 2_000 more move to held."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("b", BUY, 50, 2_010))
    events = m.amend("b", order_id, price=2_050)
    entries = entries_for(m.seq, m.now_us, events)
    assert one(events, OrderAmended).hold_delta == 2_000
    assert entries == [expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 2_000), order_id=order_id)]
    assert m.balance("b") == (CASH - 102_850, 102_850)


def test_an_amend_to_a_smaller_quantity_releases_the_difference():
    """b BUY 50 @ 2010 holds 50 * 2017 = 100_850; cut to 20 it holds 20 * 2017 = 40_340: 60_510 are released."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("b", BUY, 50, 2_010))
    events = m.amend("b", order_id, quantity=20)
    entries = entries_for(m.seq, m.now_us, events)
    assert one(events, OrderAmended).hold_delta == -60_510
    assert entries == [
        expected(m, 0, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 60_510), order_id=order_id)
    ]
    assert m.balance("b") == (CASH - 40_340, 40_340)


def test_an_amend_to_a_lower_price_releases_the_difference():
    """b BUY 50 @ 2010 (2017 per lot) re-priced to 1900: per lot 1900 + ceil(5.7) = 1906, so 50 * (2017 - 1906)
    = 5_550 are released."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("b", BUY, 50, 2_010))
    events = m.amend("b", order_id, price=1_900)
    entries = entries_for(m.seq, m.now_us, events)
    assert entries == [expected(m, 0, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 5_550), order_id=order_id)]


def test_an_amend_of_a_sell_holds_or_releases_securities():
    """c SELL 30 @ 2050 holds 30 shares; raised to 45 it holds 15 more; cut to 12 it releases 33."""
    m = funded_market(fee_equity())
    order_id = m.place_id(limit("c", SELL, 30, 2_050))
    events = m.amend("c", order_id, quantity=45)
    assert entries_for(m.seq, m.now_us, events) == [
        expected(m, 0, EntryKind.HOLD, Leg(available("c"), held("c"), "ACME", 15), order_id=order_id)
    ]
    events = m.amend("c", order_id, quantity=12)
    assert entries_for(m.seq, m.now_us, events) == [
        expected(m, 0, EntryKind.RELEASE, Leg(held("c"), available("c"), "ACME", 33), order_id=order_id)
    ]
    assert m.balance("c", "ACME") == (SHARES - 12, 12)


def test_an_amend_that_trades_holds_first_then_settles():
    """b BUY 10 @ 1990 rests (per lot 1990 + ceil(5.97) = 1996, 19_960 held); c SELL 10 @ 2000 rests. b re-prices to
    2000 (per lot 2000 + ceil(6.0) = 2006: 10 more per lot, 100 more held) and, as a new arrival, takes c's sell:
    clean 20_000, b's taker fee 60, c's maker fee 20; the 10 lots consumed 20_060 = 20_000 + 60, so nothing is
    released."""
    m = funded_market(fee_equity())
    buy_id = m.place_id(limit("b", BUY, 10, 1_990))
    m.place_id(limit("c", SELL, 10, 2_000))
    events = m.amend("b", buy_id, price=2_000)
    entries = entries_for(m.seq, m.now_us, events)
    trade = one(events, Trade)
    assert (trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (60, 20, 0)
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 100), order_id=buy_id),
        expected(
            m,
            1,
            EntryKind.FILL,
            Leg(held("c"), available("b"), "ACME", 10),
            Leg(held("b"), available("c"), EUR, 20_000),
            Leg(held("b"), FEES, EUR, 60),
            Leg(available("c"), FEES, EUR, 20),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
    ]


# ---------------------------------------------------------------------------------------------- fills


def test_a_fill_is_one_delivery_versus_payment_entry_and_the_unused_hold_is_released():
    """c SELL 30 @ 2000 rests (maker). b BUY 50 @ 2010 (taker) holds 50 * 2017 = 100_850 and buys 30 @ 2000:
    - securities: 30 ACME from c's held to b's available;
    - cash: clean 30 * 2000 = 60_000 from b's held to c's available;
    - fees: b (taker, 30 bps) 60_000 * 30 / 10_000 = 180 from b's held; c (maker, 10 bps) 60 from c's available
      (its proceeds), both to the venue's fees account;
    - release: the 30 lots consumed 30 * 2017 = 60_510 of hold; 60_000 + 180 were paid, so 330 return to b
      (price improvement 30 * 10 = 300, unused fee bound 30 * 7 - 180 = 30).
    b still holds 20 * 2017 = 40_340 for the 20 left resting."""
    m = funded_market(fee_equity())
    sell_id = m.place_id(limit("c", SELL, 30, 2_000))
    events, entries = settle(m, limit("b", BUY, 50, 2_010))
    buy_id = one(events, OrderAccepted).order_id
    trade = one(events, Trade)
    assert trade._replace(seq=0, trade_id=0) == Trade(
        0, 0, "ACME", 2_000, 30, BUY, buy_id, sell_id, "b", "c", EUR, 60_000, 0, 180, 60, 330, 20, 0
    )
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("b"), held("b"), EUR, 100_850), order_id=buy_id),
        expected(
            m,
            1,
            EntryKind.FILL,
            Leg(held("c"), available("b"), "ACME", 30),
            Leg(held("b"), available("c"), EUR, 60_000),
            Leg(held("b"), FEES, EUR, 180),
            Leg(available("c"), FEES, EUR, 60),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
        expected(
            m, 2, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 330), order_id=buy_id, trade_id=trade.trade_id
        ),
    ]
    assert m.balance("b") == (CASH - 100_850 + 330, 40_340)
    assert m.balance("b", "ACME") == (SHARES + 30, 0)
    assert m.balance("c") == (CASH + 60_000 - 60, 0)
    assert m.balance("c", "ACME") == (SHARES - 30, 0)
    assert m.balance(VENUE) == (240, 0)


def test_a_resting_buy_pays_the_maker_rate_and_gets_its_unused_fee_bound_back():
    """b BUY 10 @ 2010 rests holding 10 * 2017 = 20_170. c SELL 10 @ 2000 (taker) trades at the maker's price 2010:
    clean 20_100; b (maker, 10 bps) pays 20_100 * 10 / 10_000 = 20.1 -> 20; c (taker, 30 bps) pays 60.3 -> 60.
    No price improvement for the maker, but its fee bound was 7 per lot and it paid 2: 20_170 - 20_100 - 20 = 50
    are released. The entries belong to c's command and name the buy order."""
    m = funded_market(fee_equity())
    buy_id = m.place_id(limit("b", BUY, 10, 2_010))
    events, entries = settle(m, limit("c", SELL, 10, 2_000))
    sell_id = one(events, OrderAccepted).order_id
    trade = one(events, Trade)
    assert (trade.price, trade.cash) == (2_010, 20_100)
    assert (trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (20, 60, 50)
    assert entries == [
        expected(m, 0, EntryKind.HOLD, Leg(available("c"), held("c"), "ACME", 10), order_id=sell_id),
        expected(
            m,
            1,
            EntryKind.FILL,
            Leg(held("c"), available("b"), "ACME", 10),
            Leg(held("b"), available("c"), EUR, 20_100),
            Leg(held("b"), FEES, EUR, 20),
            Leg(available("c"), FEES, EUR, 60),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
        expected(
            m, 2, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 50), order_id=buy_id, trade_id=trade.trade_id
        ),
    ]
    assert m.balance("b") == (CASH - 20_120, 0)
    assert m.balance("c") == (CASH + 20_040, 0)


def test_a_market_buy_gets_back_everything_it_held_beyond_the_price_it_paid():
    """c SELL 10 @ 2000 rests. b market BUY 10 holds 10 * 2207 = 22_070 (band edge 2200, see above), buys 10 @ 2000:
    clean 20_000, taker fee 60; released with the fill: 22_070 - 20_000 - 60 = 2_010 (10 * 200 price improvement
    plus 10 * 7 - 60 = 10 of unused fee bound)."""
    m = funded_market(fee_equity())
    m.place_id(limit("c", SELL, 10, 2_000))
    events, entries = settle(m, market("b", BUY, 10))
    trade = one(events, Trade)
    assert trade.buyer_release == 2_010
    assert [e.kind for e in entries] == [EntryKind.HOLD, EntryKind.FILL, EntryKind.RELEASE]
    assert entries[2].legs == (Leg(held("b"), available("b"), EUR, 2_010),)
    assert m.balance("b") == (CASH - 20_060, 0)


def test_a_fill_without_fees_or_leftover_has_two_legs_and_no_release():
    """No fees, b BUY 10 @ 100 against c's SELL 10 @ 100: hold 1_000, clean 1_000; nothing left to release."""
    m = funded_market(equity("ACME"))
    m.place_id(limit("c", SELL, 10, 100))
    events, entries = settle(m, limit("b", BUY, 10, 100))
    trade = one(events, Trade)
    assert (trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (0, 0, 0)
    assert [e.kind for e in entries] == [EntryKind.HOLD, EntryKind.FILL]
    assert entries[1].legs == (
        Leg(held("c"), available("b"), "ACME", 10),
        Leg(held("b"), available("c"), EUR, 1_000),
    )


def test_every_fill_of_a_sweep_is_its_own_entry():
    """c SELL 5 @ 2000 and d SELL 5 @ 2005 rest; b BUY 10 @ 2010 (2017 per lot, 20_170 held) takes both:
    fill 1: clean 10_000, taker fee 30, maker fee 10, release 5 * 2017 - 10_030 = 55;
    fill 2: clean 10_025, taker fee 10_025 * 30 / 10_000 = 30.075 -> 30, maker fee 10.025 -> 10,
    release 10_085 - 10_025 - 30 = 30. Held afterwards: 20_170 - 10_030 - 55 - 10_055 - 30 = 0; b paid
    10_030 + 10_055 = 20_085 in all."""
    m = funded_market(fee_equity())
    m.place_id(limit("c", SELL, 5, 2_000))
    m.place_id(limit("d", SELL, 5, 2_005))
    events, entries = settle(m, limit("b", BUY, 10, 2_010))
    first, second = of_type(events, Trade)
    assert (first.cash, first.buyer_fee, first.seller_fee, first.buyer_release) == (10_000, 30, 10, 55)
    assert (second.cash, second.buyer_fee, second.seller_fee, second.buyer_release) == (10_025, 30, 10, 30)
    assert [(e.kind, e.trade_id) for e in entries] == [
        (EntryKind.HOLD, None),
        (EntryKind.FILL, first.trade_id),
        (EntryKind.RELEASE, first.trade_id),
        (EntryKind.FILL, second.trade_id),
        (EntryKind.RELEASE, second.trade_id),
    ]
    assert entries[3].legs[1] == Leg(held("b"), available("d"), EUR, 10_025)
    assert m.balance("b") == (CASH - 20_085, 0)


# ---------------------------------------------------------------------------------------------- fee rounding


def test_a_fee_of_exactly_half_a_cent_rounds_to_the_even_cent():
    """At 10 bps a notional of n cents costs n / 1_000 cents: 2_500 -> 2.5 -> 2 (the even neighbour, down);
    3_500 -> 3.5 -> 4 (the even neighbour, up). Just off the half, it is ordinary rounding: 2_501 -> 2.501 -> 3 and
    3_499 -> 3.499 -> 3."""
    assert fee(2_500, 10) == 2
    assert fee(3_500, 10) == 4
    assert fee(2_501, 10) == 3
    assert fee(3_499, 10) == 3
    assert fee(0, 10) == 0


def test_the_fee_bound_is_the_ceiling_even_where_the_fee_rounds_down():
    """The hold must cover any rounding: the bound of 2_500 cents at 10 bps is ceil(2.5) = 3; of 2_000, exactly 2."""
    assert fee_bound_per_lot(2_500, 10) == 3
    assert fee_bound_per_lot(2_000, 10) == 2
    assert fee_bound_per_lot(1, 10) == 1


def test_trades_whose_fee_is_half_a_cent_charge_the_even_cent_on_both_sides():
    """10 bps maker and taker, price 100 (EUR 1.00). b buys 25 from c: clean 2_500, fee 2.5 -> 2 for each side.
    Then b buys 35 from c: clean 3_500, fee 3.5 -> 4 each. A buy holds 100 + ceil(0.1) = 101 per share:
    first release 25 * 101 - 2_500 - 2 = 23, second 35 * 101 - 3_500 - 4 = 31. The venue earns 2 + 2 + 4 + 4 = 12."""
    m = funded_market(equity("ACME", maker_fee_bps=10, taker_fee_bps=10))
    fills = []
    for quantity in (25, 35):
        m.place_id(limit("c", SELL, quantity, 100))
        events, entries = settle(m, limit("b", BUY, quantity, 100))
        fills.append((one(events, Trade), entries))
    (even_down, down_entries), (even_up, up_entries) = fills
    assert (even_down.cash, even_down.buyer_fee, even_down.seller_fee, even_down.buyer_release) == (2_500, 2, 2, 23)
    assert (even_up.cash, even_up.buyer_fee, even_up.seller_fee, even_up.buyer_release) == (3_500, 4, 4, 31)
    assert down_entries[1].legs[2:] == (Leg(held("b"), FEES, EUR, 2), Leg(available("c"), FEES, EUR, 2))
    assert up_entries[1].legs[2:] == (Leg(held("b"), FEES, EUR, 4), Leg(available("c"), FEES, EUR, 4))
    assert m.balance(VENUE) == (12, 0)
    assert m.balance("b") == (CASH - 2_500 - 2 - 3_500 - 4, 0)
    assert m.balance("c") == (CASH + 2_500 - 2 + 3_500 - 4, 0)


# ---------------------------------------------------------------------------------------------- bonds: accrued interest


def _bond_fill(day_count: DayCount) -> tuple[Market, Trade, list[Entry], int]:
    """c SELL 7 GREEN27 @ 10_020 rests; on 2024-03-31 b BUY 7 @ 10_050 (hold 7 * 10_470 = 73_290) takes it."""
    m = funded_market(fee_bond(day_count))
    m.now_us = at(2024, 3, 31)
    m.place_id(limit("c", SELL, 7, 10_020, "GREEN27"))
    events, entries = settle(m, limit("b", BUY, 7, 10_050, "GREEN27"))
    return m, one(events, Trade), entries, one(events, OrderAccepted).order_id


def test_a_bond_fill_pays_accrued_interest_on_the_30e_360_basis():
    """Trade on 2024-03-31 (UTC); the accrual period runs from the 2024-01-15 coupon date.
    30E/360: the 31st counts as the 30th, so days = 360 * (2024 - 2024) + 30 * (3 - 1) + (30 - 15) = 75,
    fraction 75 / 360 of the annual coupon of 400 cents per unit: 83.33 per unit. On the whole fill of 7 units,
    rounded once: 7 * 400 * 75 / 360 = 583.33 -> 583 (not 7 * 83 = 581).
    Clean 7 * 10_020 = 70_140; b's taker fee 70_140 * 20 / 10_000 = 140.28 -> 140; c's maker fee 35.07 -> 35 (fees
    are on the clean consideration). b pays 70_140 + 583 + 140 = 70_863 out of its hold of 73_290: 2_427 released.
    c receives 70_140 + 583 = 70_723, less its fee 35."""
    m, trade, entries, buy_id = _bond_fill(DayCount.THIRTY_360)
    assert (trade.price, trade.cash, trade.accrued, trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (
        10_020,
        70_140,
        583,
        140,
        35,
        2_427,
    )
    assert entries[1:] == [
        expected(
            m,
            1,
            EntryKind.FILL,
            Leg(held("c"), available("b"), "GREEN27", 7),
            Leg(held("b"), available("c"), EUR, 70_723),
            Leg(held("b"), FEES, EUR, 140),
            Leg(available("c"), FEES, EUR, 35),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
        expected(
            m,
            2,
            EntryKind.RELEASE,
            Leg(held("b"), available("b"), EUR, 2_427),
            order_id=buy_id,
            trade_id=trade.trade_id,
        ),
    ]
    assert m.balance("b") == (CASH - 70_863, 0)
    assert m.balance("c") == (CASH + 70_688, 0)
    assert m.balance("b", "GREEN27") == (SHARES + 7, 0)
    assert m.balance(VENUE) == (175, 0)


def test_a_bond_fill_pays_accrued_interest_on_the_act_act_basis():
    """The same trade on an ACT/ACT (ICMA) bond. Actual days from 2024-01-15 to 2024-03-31: 16 to 31 January, 29 more
    to 29 February (2024 is a leap year), 31 more to 31 March: 76. The coupon period
    2024-01-15 -> 2025-01-15 has 366 actual days (it holds 29 February 2024). Fraction 76 / 366; 7 units accrue
    7 * 400 * 76 / 366 = 212_800 / 366 = 581.42 -> 581. The accrued bound is again 399 (365 / 366 * 400 = 398.9 -> 399,
    and 364 / 365 * 400 = 398.9 -> 399 in a 365-day period), so the hold is 73_290 as on 30E/360, and the release is
    73_290 - 70_140 - 581 - 140 = 2_429."""
    m, trade, entries, buy_id = _bond_fill(DayCount.ACT_ACT)
    assert (trade.cash, trade.accrued, trade.buyer_fee, trade.seller_fee, trade.buyer_release) == (
        70_140,
        581,
        140,
        35,
        2_429,
    )
    assert entries[0].legs == (Leg(available("b"), held("b"), EUR, 73_290),)
    assert entries[1].legs[1] == Leg(held("b"), available("c"), EUR, 70_140 + 581)
    assert entries[2] == expected(
        m, 2, EntryKind.RELEASE, Leg(held("b"), available("b"), EUR, 2_429), order_id=buy_id, trade_id=trade.trade_id
    )
    assert m.balance("c") == (CASH + 70_140 + 581 - 35, 0)


def test_a_bond_traded_on_a_coupon_date_pays_no_accrued_interest():
    """On 2025-01-15 a coupon is paid and a new period starts: 0 days accrued, so the buyer pays the clean price and
    fee only: 70_140 + 140, releasing 73_290 - 70_280 = 3_010."""
    m = funded_market(fee_bond())
    m.now_us = at(2025, 1, 15)
    m.place_id(limit("c", SELL, 7, 10_020, "GREEN27"))
    events, entries = settle(m, limit("b", BUY, 7, 10_050, "GREEN27"))
    trade = one(events, Trade)
    assert (trade.accrued, trade.buyer_release) == (0, 3_010)
    assert entries[1].legs[1] == Leg(held("b"), available("c"), EUR, 70_140)


# ---------------------------------------------------------------------------------------------- the rules together


def test_the_entries_of_a_random_session_explain_every_engine_balance():
    """Thousands of random commands (with auctions, halts and expiries): every entry balances per asset, and folding
    the entries into accounts gives, for every participant and asset, the engine's available and held balances; the
    venue's fees account is the engine's venue balance."""
    lots_of_ten = equity("SOCI", reference_price=500, lot_size=10, tick_value=10, taker_fee_bps=25)
    instruments = [fee_equity(), lots_of_ten]
    m = Market()
    session = RandomSession(
        20_240_331,
        instruments,
        call_phases=True,
        live_orders=lambda: [
            (o.order_id, o.account, o.symbol, o.price, o.quantity) for o in m.engine.orders.values()
        ],
    )
    ledger: dict[tuple[AccountRef, str], int] = {}
    commands = session.opening() + [None] * 3_000
    for command in commands:
        if command is None:
            pause, command = session.next()
            m.advance(pause)
            command = absolute_expiry(command, m.now_us)
        _, entries = settle(m, command)
        for entry in entries:
            for key, change in entry.net_by_account().items():
                ledger[key] = ledger.get(key, 0) + change
    engine_view = {
        (owner, asset): (balance.available, balance.held)
        for (owner, asset), balance in m.engine.balances.items()
        if owner != VENUE and (balance.available or balance.held)
    }
    ledger_view: dict[tuple[str, str], tuple[int, int]] = {}
    for (account, asset), amount in ledger.items():
        if account.is_participant:
            now = ledger_view.get((account.owner, asset), (0, 0))
            ledger_view[(account.owner, asset)] = (
                (amount, now[1]) if account.bucket is Bucket.AVAILABLE else (now[0], amount)
            )
    assert {k: v for k, v in ledger_view.items() if v != (0, 0)} == engine_view
    assert ledger.get((FEES, EUR), 0) == m.balance(VENUE)[0] > 0
    assert m.balance(VENUE)[1] == 0
