"""One full trading day, scripted: what the participants send and when, and a driver that adds the calendar.

The day is Tuesday 10 June 2025 on the default calendar (Rome time: 08:00 pre-open, 09:00 open, 17:30 closing auction,
17:35 close, hourly periodic auctions). Two instruments trade through it:

- ACME, continuous (reference 1.00 EUR = 100 ticks, 10 % band, trading interrupted for 5 minutes beyond 3 % of the
  reference, fees 5 bps maker / 10 bps taker): pre-open orders, the opening auction, continuous trading, a volatility
  interruption and its auction, a GTD order that expires, the closing auction, the close and the end of day.
- COOP, auction-only (reference 5.00 EUR = 500 ticks): orders collected all day, uncrossed by periodic auctions.

`participants_day()` is only what the participants send; the calendar's commands (`api.schedule.due_commands`) and
the clock ticks (`Engine.next_timer_us`) are added by whoever runs the day: `EngineDay` here, against the engine
alone, or the sequencer test in `tests/ledger/test_schedule_day.py`, against PostgreSQL. Every expected figure in
the tests that use this day is worked out by hand in `tests/exchange/test_trading_day.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from api.schedule import SENDER, SessionSchedule, due_commands, session_events
from exchange.accounts import VENUE
from exchange.commands import ClockTick, Command, Deposit, IssueSecurities, ListInstrument, Withdraw
from exchange.engine import Engine
from exchange.events import CommandRejected, Event
from exchange.instrument import CALL_STATES, Instrument, TradingState
from exchange.orders import TimeInForce
from tests.exchange.factories import BUY, EUR, SELL, equity, limit, market

SCHEDULE = SessionSchedule()
DAY = date(2025, 6, 10)  # a Tuesday
ROME = ZoneInfo("Europe/Rome")
ACCOUNTS = ("a", "b", "c", "d")
CASH = 1_000_000  # EUR 10,000.00 each
SHARES = 1_000
CLIENT = "client"
CLOCK = "@clock"
MINUTE = 60_000_000


def at(hour: int, minute: int = 0) -> int:
    """The exchange timestamp of a Rome wall-clock time on the day."""
    return int(datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=ROME).timestamp()) * 1_000_000


def continuous_equity() -> Instrument:
    return replace(
        equity("ACME", maker_fee_bps=5, taker_fee_bps=10, state=TradingState.CLOSED),
        volatility_bps=300,
        volatility_auction_us=5 * MINUTE,
    )


def auction_only_equity() -> Instrument:
    return equity("COOP", reference_price=500, band_bps=2_000, state=TradingState.CLOSED, auction_only=True)


def setup() -> list[tuple[int, str, Command]]:
    """Before the day: both instruments listed (closed), every account funded with cash and shares."""
    commands: list[tuple[int, str, Command]] = [
        (at(7), "list ACME", ListInstrument(continuous_equity())),
        (at(7), "list COOP", ListInstrument(auction_only_equity())),
    ]
    for account in ACCOUNTS:
        commands.append((at(7), f"fund {account}", Deposit(account, EUR, CASH)))
        for symbol in ("ACME", "COOP"):
            commands.append((at(7), f"issue {symbol} to {account}", IssueSecurities(account, symbol, SHARES)))
    return commands


DAY_ORDER = TimeInForce.DAY


def participants_day() -> list[tuple[int, str, Command]]:
    """What the participants send during the day, in time order, each with a label the tests refer to."""
    return [
        (at(7, 30), "too early", limit("a", BUY, 10, 100, "ACME")),
        # ACME pre-open
        (at(8, 10), "pre-open sell", limit("a", SELL, 100, 99, "ACME", tif=DAY_ORDER)),
        (at(8, 15), "pre-open buy 101", limit("b", BUY, 60, 101, "ACME", tif=DAY_ORDER)),
        (at(8, 20), "pre-open buy 100", limit("c", BUY, 50, 100, "ACME")),
        (at(8, 25), "pre-open sell 102", limit("d", SELL, 30, 102, "ACME")),
        (at(8, 30), "pre-open market buy", market("c", BUY, 20, "ACME")),
        # COOP, first call
        (at(8, 5), "coop sell 495", limit("a", SELL, 50, 495, "COOP", tif=DAY_ORDER)),
        (at(8, 40), "coop buy 505", limit("b", BUY, 30, 505, "COOP")),
        # ACME continuous trading
        (at(9, 30), "continuous sell", limit("b", SELL, 10, 100, "ACME", tif=DAY_ORDER)),
        (at(10), "continuous buy", limit("a", BUY, 10, 102, "ACME", tif=DAY_ORDER)),
        (at(10, 45), "rest sell 107", limit("a", SELL, 20, 107, "ACME")),
        (at(11), "interrupting buy", limit("b", BUY, 40, 107, "ACME", tif=DAY_ORDER)),
        (at(11, 2), "volatility auction sell", limit("c", SELL, 10, 106, "ACME", tif=DAY_ORDER)),
        (at(13), "gtd buy", limit("d", BUY, 5, 106, "ACME", tif=TimeInForce.GTD, expire_at_us=at(15, 20))),
        (at(14), "afternoon buy", limit("b", BUY, 5, 107, "ACME", tif=DAY_ORDER)),
        # COOP, later calls
        (at(9, 20), "coop buy 500", limit("c", BUY, 10, 500, "COOP", tif=DAY_ORDER)),
        (at(10, 30), "coop sell 510", limit("d", SELL, 10, 510, "COOP")),
        (at(11, 30), "coop buy 510", limit("b", BUY, 15, 510, "COOP", tif=DAY_ORDER)),
        (at(16, 10), "coop market buy", market("c", BUY, 3, "COOP")),
        (at(16, 20), "coop buy 490", limit("a", BUY, 5, 490, "COOP", tif=DAY_ORDER)),
        # ACME closing auction
        (at(17, 31), "closing sell", limit("b", SELL, 15, 105, "ACME", tif=DAY_ORDER)),
        (at(17, 32), "closing buy 108", limit("d", BUY, 10, 108, "ACME", tif=DAY_ORDER)),
        (at(17, 33), "closing market buy", market("c", BUY, 10, "ACME")),
        (at(17, 34), "closing buy 98", limit("a", BUY, 5, 98, "ACME", tif=DAY_ORDER)),
        # After the close
        (at(18), "too late", limit("a", BUY, 10, 100, "ACME")),
        (at(18, 5), "withdrawal", Withdraw("d", EUR, 1_000)),
    ]


def script() -> list[tuple[int, str, Command]]:
    return setup() + sorted(participants_day(), key=lambda item: item[0])


END_OF_DAY = at(23, 59)


@dataclass(slots=True)
class Step:
    seq: int
    ts_us: int
    sender: str
    label: str
    command: Command
    events: list[Event]
    books: dict[str, tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]]  # depth after the command


@dataclass(slots=True)
class EngineDay:
    """Runs the day through a bare engine as the sequencer, the clock and the calendar timer together would.

    Before each participant's command it applies everything due earlier: the engine's own timers (GTD expiries,
    the end of a volatility auction) as `ClockTick`s at their instant, and the calendar's commands at each boundary's
    instant, each in time order. After every command it checks the market's invariants and records what broke.
    """

    schedule: SessionSchedule = SCHEDULE
    engine: Engine = field(default_factory=Engine)
    steps: list[Step] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    last_run_us: int = 0
    now_us: int = 0
    injected: dict[str, int] = field(default_factory=dict)  # asset -> cash or securities put in minus taken out

    def apply(self, ts_us: int, sender: str, label: str, command: Command) -> list[Event]:
        assert ts_us >= self.now_us
        self.now_us = ts_us
        seq = len(self.steps) + 1
        events = self.engine.apply(seq, ts_us, command)
        books = {symbol: self.engine.depth(symbol, 10) for symbol in self.engine.books}
        self.steps.append(Step(seq, ts_us, sender, label, command, events, books))
        self._account_for(command, events)
        self.violations.extend(f"after #{seq} {label}: {problem}" for problem in invariant_violations(self.engine, self.injected))
        return events

    def _account_for(self, command: Command, events: list[Event]) -> None:
        if any(isinstance(e, CommandRejected) for e in events):
            return
        if isinstance(command, Deposit):
            self.injected[command.asset] = self.injected.get(command.asset, 0) + command.amount
        elif isinstance(command, Withdraw):
            self.injected[command.asset] = self.injected.get(command.asset, 0) - command.amount
        elif isinstance(command, IssueSecurities):
            self.injected[command.symbol] = self.injected.get(command.symbol, 0) + command.quantity

    def states(self) -> dict[str, tuple[TradingState, bool]]:
        return {s: (i.state, i.auction_only) for s, i in self.engine.instruments.items()}

    def advance_to(self, ts_us: int) -> None:
        """Apply the clock ticks and calendar commands due up to `ts_us`, each at its own instant."""
        while True:
            boundaries = session_events(self.schedule, self.last_run_us, ts_us)
            boundary = boundaries[0].at_us if boundaries else None
            timer = self.engine.next_timer_us()
            if timer is not None and timer <= ts_us and (boundary is None or timer < boundary):
                self.apply(max(timer, self.now_us), CLOCK, "clock tick", ClockTick())
                continue
            if boundary is None:
                break
            self._run_schedule(boundary)
        self._run_schedule(ts_us)

    def _run_schedule(self, until_us: int) -> None:
        for command in due_commands(self.schedule, self.states(), self.last_run_us, until_us):
            self.apply(max(until_us, self.now_us), SENDER, f"schedule {type(command).__name__}", command)
        self.last_run_us = max(self.last_run_us, until_us)

    def send(self, ts_us: int, label: str, command: Command, sender: str = CLIENT) -> list[Event]:
        self.advance_to(ts_us)
        return self.apply(ts_us, sender, label, command)

    # Reading the day back.

    def step(self, label: str) -> Step:
        found = [s for s in self.steps if s.label == label]
        assert len(found) == 1, f"{len(found)} steps labelled {label!r}"
        return found[0]

    def events_between(self, start_us: int, end_us: int) -> list[Event]:
        return [e for s in self.steps if start_us <= s.ts_us <= end_us for e in s.events]


def run_day() -> EngineDay:
    """The whole scripted day through a fresh engine, until just before midnight."""
    day = EngineDay()
    commands = script()
    day.last_run_us = commands[0][0]
    for ts_us, label, command in commands:
        day.send(ts_us, label, command)
    day.advance_to(END_OF_DAY)
    return day


def invariant_violations(engine: Engine, injected: dict[str, int]) -> list[str]:
    """What is wrong with the market right now (empty when sound).

    - outside a call phase no book is crossed and no market order waits;
    - every held balance is exactly what the open orders require;
    - no balance is negative;
    - per asset, everything in the accounts (the venue's fees included) is what came in minus what went out.
    """
    problems: list[str] = []
    for symbol, instrument in engine.instruments.items():
        book = engine.books[symbol]
        if instrument.state not in CALL_STATES:
            if book.is_crossed():
                problems.append(f"{symbol} crossed in {instrument.state}")
            if book.market_bids or book.market_asks:
                problems.append(f"{symbol} has market orders waiting in {instrument.state}")
    required = {key: amount for key, amount in engine.required_holds().items() if amount}
    held = {key: b.held for key, b in engine.balances.items() if b.held}
    if held != required:
        problems.append(f"holds {held} != required {required}")
    negative = [(key, b) for key, b in engine.balances.items() if b.available < 0 or b.held < 0]
    if negative:
        problems.append(f"negative balances {negative}")
    totals = {asset: total for asset, total in engine.balances.totals().items() if total}
    if totals != {asset: amount for asset, amount in injected.items() if amount}:
        problems.append(f"totals {totals} != injected {injected}")
    if engine.balance(VENUE, EUR)[1]:
        problems.append("the venue holds cash for an order")
    return problems
