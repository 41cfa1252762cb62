"""The ledger in PostgreSQL explains the engine: after every batch of commands, the double-entry ledger written from
the engine's events holds, account by account, exactly the engine's available and held balances.

Commands go through a real `Engine`; each command's events become entries with `ledger.settlement.entries_for`, and
each batch of commands is written by `LedgerWriter` in ONE transaction, as the sequencer does. After every batch:

- the trial balance is zero for every asset (double entry);
- the balances cache agrees with the legs (`reconcile_balances`) and no participant balance is negative;
- for every participant and asset, the ledger's available and held buckets are the engine's `balance(account, asset)`;
- the venue's fees account is the engine's "@venue" balance, and the venue's external and issuance accounts are
  minus the engine's supply (what entered the exchange less what left it);
- writing the same batch again, with the same writer or a new one, changes nothing.

The hypothesis test makes a fresh database per example (function-scoped fixtures are not reset between examples,
and the append-only ledger cannot be truncated); the seeded long session uses the `pg_dsn` fixture's database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchange.accounts import VENUE
from exchange.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    ClockTick,
    Command,
    Deposit,
    EndOfDay,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    SetTradingState,
    Withdraw,
)
from exchange.engine import Engine
from exchange.events import Trade
from exchange.instrument import Instrument, TradingState
from exchange.orders import OrderType, SelfTradePrevention, Side, TimeInForce
from ledger.entries import Bucket, Entry
from ledger.postgres import asyncpg_dsn, create_database, drop_database
from ledger.queries import balances_of, negative_participant_balances, reconcile_balances, trial_balance
from ledger.settlement import entries_for
from ledger.writer import LedgerWriter
from tests.conftest import _RUN_TAG, _test_numbers  # the suite's database names, cleaned up after killed runs
from tests.exchange.factories import EUR, RandomSession, absolute_expiry, bond, equity

ACCOUNTS = ("a", "b", "c", "d")
EQUITY = equity("ACME", reference_price=2_000, band_bps=1_000, maker_fee_bps=10, taker_fee_bps=30)
BOND = replace(bond("GREEN27"), maker_fee_bps=5, taker_fee_bps=20)
INSTRUMENTS = (EQUITY, BOND)
# 2024-03-31 10:00 UTC: the bond (4 % annual, 30E/360, coupons on 15 January) has accrued 75 days.
START_US = int((datetime(2024, 3, 31, 10, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
HOUR_US = 3_600_000_000


@dataclass(slots=True)
class Sequencer:
    """The engine plus the sequencer's bookkeeping: the next seq and the exchange time; `apply` returns the entries
    the command's events stand for."""

    engine: Engine
    seq: int = 0
    now_us: int = START_US
    trades: int = 0

    def apply(self, command: Command) -> list[Entry]:
        self.seq += 1
        events = self.engine.apply(self.seq, self.now_us, command)
        self.trades += sum(1 for event in events if type(event) is Trade)
        return entries_for(self.seq, self.now_us, events)


def opening() -> list[Command]:
    """List both instruments and fund every account with cash and both securities."""
    commands: list[Command] = [ListInstrument(i) for i in INSTRUMENTS]
    for account in ACCOUNTS:
        commands.append(Deposit(account, EUR, 2_000_000))
        commands.extend(IssueSecurities(account, i.symbol, 200) for i in INSTRUMENTS)
    return commands


# ---------------------------------------------------------------------------------------------- commands, drawn


def _place(draw: Callable, engine: Engine, now_us: int) -> PlaceOrder:
    instrument: Instrument = draw(st.sampled_from(INSTRUMENTS))
    centre = engine.instruments[instrument.symbol].reference_price
    account = draw(st.sampled_from(ACCOUNTS))
    side = draw(st.sampled_from(Side))
    quantity = draw(st.integers(1, 20))
    stp = draw(st.sampled_from(SelfTradePrevention))
    if draw(st.integers(0, 5)) == 0:
        tif = draw(st.sampled_from((TimeInForce.IOC, TimeInForce.FOK)))
        return PlaceOrder(account, instrument.symbol, side, OrderType.MARKET, quantity, None, tif, stp=stp)
    price = centre + draw(st.integers(-4, 4))  # near the reference: about half of all buy-sell pairs cross
    tif = draw(st.sampled_from(TimeInForce))
    expire_at = now_us + draw(st.integers(1, 3_000_000)) if tif is TimeInForce.GTD else None
    post_only = draw(st.integers(0, 6)) == 0
    return PlaceOrder(
        account, instrument.symbol, side, OrderType.LIMIT, quantity, price, tif, expire_at, post_only, None, stp
    )


def _live_order(draw: Callable, engine: Engine) -> tuple[int, str, int, int] | None:
    live = sorted(engine.orders)
    if not live:
        return None
    order = engine.orders[draw(st.sampled_from(live))]
    return order.order_id, order.account, order.price, order.quantity


def _cancel(draw: Callable, engine: Engine, now_us: int) -> Command:
    order = _live_order(draw, engine)
    if order is None:
        return CancelOrder(draw(st.sampled_from(ACCOUNTS)), draw(st.integers(1, 50)))
    return CancelOrder(order[1], order[0])


def _amend(draw: Callable, engine: Engine, now_us: int) -> Command:
    order = _live_order(draw, engine)
    if order is None:
        return AmendOrder(draw(st.sampled_from(ACCOUNTS)), draw(st.integers(1, 50)), quantity=draw(st.integers(1, 20)))
    order_id, account, price, quantity = order
    new_price = draw(st.none() | st.integers(price - 8, price + 8))
    new_quantity = draw(st.none() | st.integers(max(1, quantity - 10), quantity + 10))
    return AmendOrder(account, order_id, new_price, new_quantity)


def _take(draw: Callable, engine: Engine, now_us: int) -> Command:
    """An order from another account at a resting order's price: it trades (partly, wholly or beyond) unless a
    self-trade, a state or a band gets in the way."""
    resting = [o for o in engine.orders.values() if o.type is OrderType.LIMIT]
    if not resting:
        return _place(draw, engine, now_us)
    maker = draw(st.sampled_from(sorted(resting, key=lambda o: o.order_id)))
    account = draw(st.sampled_from([a for a in ACCOUNTS if a != maker.account]))
    side = Side.SELL if maker.side is Side.BUY else Side.BUY
    quantity = draw(st.integers(1, maker.remaining + 5))
    tif = draw(st.sampled_from((TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)))
    return PlaceOrder(account, maker.symbol, side, OrderType.LIMIT, quantity, maker.price, tif)


def _money(draw: Callable, engine: Engine, now_us: int) -> Command:
    account = draw(st.sampled_from(ACCOUNTS))
    kind = draw(st.sampled_from(("deposit", "withdraw", "issue")))
    if kind == "deposit":
        return Deposit(account, EUR, draw(st.integers(1, 500_000)))
    if kind == "withdraw":
        return Withdraw(account, EUR, draw(st.integers(1, 2_500_000)))
    return IssueSecurities(account, draw(st.sampled_from(INSTRUMENTS)).symbol, draw(st.integers(1, 50)))


def _housekeeping(draw: Callable, engine: Engine, now_us: int) -> Command:
    kind = draw(st.sampled_from(("cancel_all", "end_of_day", "tick", "state")))
    symbol = draw(st.sampled_from(INSTRUMENTS)).symbol
    if kind == "cancel_all":
        return CancelAll(draw(st.sampled_from(ACCOUNTS)), draw(st.none() | st.just(symbol)))
    if kind == "end_of_day":
        return EndOfDay(draw(st.none() | st.just(symbol)))
    if kind == "tick":
        return ClockTick()
    # Mostly back to continuous trading; else a call phase (leaving it uncrosses), a halt or the close.
    open_ = TradingState.OPEN
    state = draw(
        st.sampled_from(
            (open_, open_, open_, TradingState.PRE_OPEN, TradingState.CLOSING_AUCTION, TradingState.HALTED,
             TradingState.CLOSED)
        )
    )
    return SetTradingState(symbol, state)


_DRAWERS = (_place, _place, _place, _take, _take, _take, _cancel, _amend, _amend, _money, _housekeeping)


def draw_command(draw: Callable, engine: Engine, now_us: int) -> Command:
    return draw(st.sampled_from(_DRAWERS))(draw, engine, now_us)


# ---------------------------------------------------------------------------------------------- the checks


async def write_batch(conn: asyncpg.Connection, writer: LedgerWriter, entries: Sequence[Entry]) -> None:
    async with conn.transaction():
        result = await writer.write(conn, entries)
    assert result.entries == len(entries) and result.skipped == 0


async def ledger_snapshot(conn: asyncpg.Connection) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every row of the ledger's tables, to prove that a second write of a batch added and moved nothing."""
    return (
        [tuple(r) for r in await conn.fetch("SELECT * FROM ledger_entries ORDER BY seq, idx")],
        [tuple(r) for r in await conn.fetch("SELECT * FROM ledger_legs ORDER BY seq, idx, leg")],
        [tuple(r) for r in await conn.fetch("SELECT * FROM ledger_balances ORDER BY account_id")],
    )


async def assert_rewriting_changes_nothing(
    conn: asyncpg.Connection, writer: LedgerWriter, entries: Sequence[Entry]
) -> None:
    before = await ledger_snapshot(conn)
    for again in (writer, LedgerWriter()):  # the same writer, and one that learns the high-water mark from the table
        async with conn.transaction():
            result = await again.write(conn, entries)
        assert (result.entries, result.legs, result.skipped, result.balances_moved) == (0, 0, len(entries), 0)
    assert await ledger_snapshot(conn) == before


async def assert_ledger_matches_engine(conn: asyncpg.Connection, engine: Engine) -> None:
    assert set((await trial_balance(conn)).values()) <= {0}
    assert await reconcile_balances(conn) == []
    assert await negative_participant_balances(conn) == []

    owners = {row["owner"] for row in await conn.fetch("SELECT DISTINCT owner FROM ledger_accounts")}
    participants = {owner for (owner, _), _ in engine.balances.items() if owner != VENUE} | (owners - {VENUE})
    for owner in sorted(participants):
        ledger = await balances_of(conn, owner)
        assert {bucket for _, bucket in ledger} <= {Bucket.AVAILABLE, Bucket.HELD}
        assets = {asset for asset, _ in ledger} | set(engine.balances.of_account(owner))
        for asset in sorted(assets):
            in_ledger = (ledger.get((asset, Bucket.AVAILABLE), 0), ledger.get((asset, Bucket.HELD), 0))
            assert in_ledger == engine.balance(owner, asset), (owner, asset)

    venue = await balances_of(conn, VENUE)
    assert venue.get((EUR, Bucket.FEES), 0) == engine.balance(VENUE, EUR)[0]
    assert engine.balance(VENUE, EUR)[1] == 0
    assert {asset for asset, bucket in venue if bucket is Bucket.FEES} <= {EUR}
    for asset, supply in engine.supply.items():
        outside = Bucket.EXTERNAL if asset == EUR else Bucket.ISSUANCE
        assert venue.get((asset, outside), 0) == -supply, asset


async def commit_and_check(
    conn: asyncpg.Connection, writer: LedgerWriter, engine: Engine, entries: Sequence[Entry]
) -> None:
    """Write one batch's entries in one transaction, then check the ledger against the engine and the rewrite."""
    await write_batch(conn, writer, entries)
    await assert_ledger_matches_engine(conn, engine)
    await assert_rewriting_changes_nothing(conn, writer, entries)


# ---------------------------------------------------------------------------------------------- the tests


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_after_every_batch_the_ledger_holds_exactly_the_engine_balances(
    database_server_url: str, migrated_template: str, data: st.DataObject
):
    """Random deposits, withdrawals, issuance, orders of every kind on a fee-charging equity and a bond, cancels,
    amends, expiries and trading-state changes, in a few batches; the checks of the module docstring after each."""
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    embedded = not os.environ.get("DATABASE_URL", "").strip()
    url = await create_database(database_server_url, name, template=migrated_template, file_copy=embedded)
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            market = Sequencer(Engine())
            writer = LedgerWriter()
            await commit_and_check(conn, writer, market.engine, [e for c in opening() for e in market.apply(c)])
            for _ in range(data.draw(st.integers(2, 4), label="batches")):
                entries: list[Entry] = []
                for _ in range(data.draw(st.integers(5, 20), label="commands")):
                    # Mostly moments apart (GTD orders live 1 µs to 3 s); now and then hours, so the accrued moves.
                    market.now_us += data.draw(st.sampled_from((0, 1, 1_000, 1_000_000, 2_000_000, 7 * HOUR_US)))
                    # Applied as soon as drawn: the next command is drawn against the state this one left.
                    entries.extend(market.apply(draw_command(data.draw, market.engine, market.now_us)))
                await commit_and_check(conn, writer, market.engine, entries)
            event(f"trades: {'none' if not market.trades else '1-4' if market.trades <= 4 else '5 or more'}")
        finally:
            await conn.close()
    finally:
        await drop_database(database_server_url, name)


async def test_a_long_random_session_keeps_the_ledger_equal_to_the_engine(pg_dsn: str):
    """3_000 commands of `RandomSession` (with auctions, halts and expiries) in batches of 100: the same checks after
    every batch, on many more orders and trades than the hypothesis examples reach."""
    market = Sequencer(Engine())
    session = RandomSession(
        31_03_2024,
        list(INSTRUMENTS),
        ACCOUNTS,
        call_phases=True,
        live_orders=lambda: [
            (o.order_id, o.account, o.symbol, o.price, o.quantity) for o in market.engine.orders.values()
        ],
    )
    conn = await asyncpg.connect(pg_dsn)
    try:
        writer = LedgerWriter()
        await commit_and_check(conn, writer, market.engine, [e for c in session.opening() for e in market.apply(c)])
        for _ in range(30):
            entries: list[Entry] = []
            for _ in range(100):
                pause, command = session.next()
                market.now_us += pause
                entries.extend(market.apply(absolute_expiry(command, market.now_us)))
            await commit_and_check(conn, writer, market.engine, entries)
    finally:
        await conn.close()
    assert market.trades > 100
