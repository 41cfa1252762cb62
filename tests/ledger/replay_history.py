"""A small but complete trading history written by a real `Sequencer`, and ways to tamper with it afterwards.

The history lists an equity, funds two buyers, issues shares to a seller, and trades: resting orders, a taker
that sweeps two levels (fees on both sides, a price-improvement release), a cancel, an amend, a withdrawal and a
rejected order, sent partly concurrently so that batches hold several commands. `Insider` edits stored rows as the
superuser with triggers off, the way an insider with database access would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from api.sequencer import Outcome, Sequencer
from exchange.commands import (
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    Withdraw,
)
from exchange.events import OrderAccepted, Trade
from exchange.instrument import Instrument, InstrumentKind
from exchange.orders import OrderType, Side
from ledger.postgres import asyncpg_dsn, create_database, drop_database
from tests.conftest import _RUN_TAG, _test_numbers  # the suite's database names, cleaned up after killed runs

SYMBOL = "COOP"


def coop() -> Instrument:
    """An equity quoted in EUR on a 0.01 tick, one share per lot, reference 10.00, fees 5 bps maker / 10 bps taker."""
    return Instrument(
        symbol=SYMBOL,
        kind=InstrumentKind.EQUITY,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=2_000,
        reference_price=1_000,
        maker_fee_bps=5,
        taker_fee_bps=10,
    )


def limit(account: str, side: Side, quantity: int, price: int) -> PlaceOrder:
    return PlaceOrder(account, SYMBOL, side, OrderType.LIMIT, quantity, price)


@dataclass(slots=True)
class History:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.outcomes[-1].seq if self.outcomes else 0

    def seqs_with(self, kind: type) -> list[int]:
        return [o.seq for o in self.outcomes if any(type(e) is kind for e in o.events)]

    def first_trade(self) -> Trade:
        return next(e for o in self.outcomes for e in o.events if type(e) is Trade)

    def order_id(self, outcome: Outcome) -> int:
        return next(e.order_id for e in outcome.events if type(e) is OrderAccepted)


@asynccontextmanager
async def running_sequencer(pool: asyncpg.Pool, batch_max: int = 1_000) -> AsyncIterator[Sequencer]:
    sequencer = Sequencer(pool, batch_max=batch_max)
    await sequencer.start()
    try:
        yield sequencer
    finally:
        await sequencer.stop()


async def submit(sequencer: Sequencer, history: History, command: Command, sender: str = "test") -> Outcome:
    outcome = await sequencer.submit(command, sender)
    history.outcomes.append(outcome)
    return outcome


async def submit_together(sequencer: Sequencer, history: History, commands: list[Command]) -> list[Outcome]:
    """Queue all the commands before the sequencer runs, so that they share batches."""
    outcomes = await asyncio.gather(*(sequencer.submit(c, "test") for c in commands))
    history.outcomes.extend(sorted(outcomes, key=lambda o: o.seq))
    return list(outcomes)


async def trade_some(sequencer: Sequencer, history: History, rounds: int = 1) -> None:
    """Each round: resting asks on two levels, a taker sweeping them, a resting bid cancelled, another amended."""
    for _ in range(rounds):
        await submit_together(
            sequencer,
            history,
            [limit("bob", Side.SELL, 100, 1_000), limit("bob", Side.SELL, 50, 1_010), limit("carol", Side.BUY, 5, 990)],
        )
        await submit(sequencer, history, limit("alice", Side.BUY, 120, 1_020))  # sweeps 100 @ 10.00, 20 @ 10.10
        resting = await submit(sequencer, history, limit("carol", Side.BUY, 10, 980))
        await submit(sequencer, history, CancelOrder("carol", history.order_id(resting)))
        amended = await submit(sequencer, history, limit("alice", Side.BUY, 20, 985))
        await submit(sequencer, history, AmendOrder("alice", history.order_id(amended), quantity=15))
        await submit(sequencer, history, limit("carol", Side.BUY, 10**6, 1_000))  # rejected: not enough cash


async def build_history(pool: asyncpg.Pool, rounds: int = 2, batch_max: int = 1_000) -> History:
    """Run a sequencer on `pool` through the whole story and stop it; everything is committed on return."""
    history = History()
    async with running_sequencer(pool, batch_max) as sequencer:
        await submit(sequencer, history, ListInstrument(coop()), "ops")
        await submit_together(
            sequencer,
            history,
            [
                Deposit("alice", "EUR", 10_000_000),
                Deposit("carol", "EUR", 500_000),
                IssueSecurities("bob", SYMBOL, 10_000),
            ],
        )
        await trade_some(sequencer, history, rounds)
        await submit(sequencer, history, Withdraw("alice", "EUR", 1_000))
    return history


class _Borrowed:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def __aenter__(self) -> asyncpg.Connection:
        return self.conn

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class OneConnection:
    """Stands in for a pool that always lends the same connection (so a reader sees that session's edits)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def acquire(self) -> _Borrowed:
        return _Borrowed(self.conn)


class Insider:
    """A superuser session that edits committed history with every trigger off (append-only and integrity checks
    included), as an insider with database access would. The edits stay inside one transaction: `pool` reads them,
    and `undo()` rolls them back so that one history can serve many tests."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.pool = OneConnection(conn)
        self._transaction = conn.transaction()

    @classmethod
    async def start(cls, dsn: str) -> Insider:
        insider = cls(await asyncpg.connect(dsn))
        await insider._transaction.start()
        await insider.conn.execute("SET LOCAL session_replication_role = replica")
        return insider

    async def execute(self, sql: str, *args: object) -> str:
        return await self.conn.execute(sql, *args)

    async def undo(self) -> None:
        try:
            await self._transaction.rollback()
        finally:
            await self.conn.close()


@asynccontextmanager
async def history_database(server_url: str, template: str, rounds: int = 2) -> AsyncIterator[tuple[str, History]]:
    """A fresh migrated database holding `build_history`, as (plain DSN, history); dropped on exit."""
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    url = await create_database(server_url, name, template=template)
    dsn = asyncpg_dsn(url)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            history = await build_history(pool, rounds)
        finally:
            await pool.close()
        yield dsn, history
    finally:
        await drop_database(server_url, name)
