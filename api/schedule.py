"""The trading calendar: when each instrument's trading phases begin and end, and the timer that applies it.

The calendar is configuration (`SessionSchedule`, loaded by `load_schedule` from an optional JSON file named by the
environment variable `EXCHANGE_SCHEDULE_FILE`). On a trading day, in the calendar's time zone (Europe/Rome by
default, so summer and winter time are followed), every instrument goes through:

    pre_open 08:00   CLOSED -> PRE_OPEN (orders are collected)
    open 09:00       PRE_OPEN/OPENING_AUCTION -> OPEN (the opening auction uncrosses, continuous trading starts)
    closing 17:30    OPEN -> CLOSING_AUCTION
    close 17:35      any trading phase -> CLOSED (the closing auction uncrosses), then EndOfDay (DAY orders expire)

An auction-only instrument never trades continuously: it stays in PRE_OPEN from pre_open to close and is uncrossed
by a `RunAuction` every `periodic_auction_minutes` counted from pre_open (09:00, 10:00, ...), the last call ending
with the close itself.

`due_commands` is the pure decision "which commands are due between two instants, given each instrument's state";
`ScheduleTimer` is the shell around it: an asyncio task that wakes every second, asks `due_commands` about the time
elapsed since it last looked, and submits the answer to the sequencer as sender `@schedule`. The exchange clock
stays the sequencer's: the timer only decides when to send. Set `EXCHANGE_SCHEDULE=off` to run without it (tests,
demos, a market run by hand).

The calendar never touches an instrument an operator has taken out of the day's cycle (HALTED, SUSPENDED,
DELISTED) and leaves a VOLATILITY_AUCTION to the engine, which ends it by itself. Because such an auction may end
after the closing auction has begun, one rule looks at the state rather than at the boundaries crossed: an instrument
found trading continuously (OPEN) outside the continuous-trading hours is moved to the phase the clock is in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI

from api.sequencer import Backpressure, CommitFailed, Sequencer, SequencerState, SequencerUnavailable
from exchange.commands import Command, EndOfDay, RunAuction, SetTradingState
from exchange.instrument import TradingState

log = logging.getLogger("exchange.schedule")

SCHEDULE_FILE_ENV = "EXCHANGE_SCHEDULE_FILE"
SCHEDULE_SWITCH_ENV = "EXCHANGE_SCHEDULE"
SENDER = "@schedule"

_US = 1_000_000
_DAY_US = 86_400 * _US
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TRADING_PHASES = frozenset(
    {TradingState.PRE_OPEN, TradingState.OPENING_AUCTION, TradingState.OPEN, TradingState.CLOSING_AUCTION}
)
# Call phases in which an auction-only instrument's periodic auction may run (a volatility auction ends by itself).
_PERIODIC_CALLS = frozenset({TradingState.PRE_OPEN, TradingState.OPENING_AUCTION, TradingState.CLOSING_AUCTION})


class ScheduleError(ValueError):
    """The trading calendar's configuration is not usable."""


@dataclass(frozen=True, slots=True)
class SessionSchedule:
    """The trading calendar: local session times on trading weekdays that are not holidays.

    `trading_weekdays` are ISO weekday numbers counted from Monday = 0 (Python's `date.weekday()`).
    """

    timezone: str = "Europe/Rome"
    trading_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    pre_open: time = time(8, 0)
    open: time = time(9, 0)
    closing_auction: time = time(17, 30)
    close: time = time(17, 35)
    periodic_auction_minutes: int = 60
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"unknown time zone {self.timezone!r}") from exc
        if not self.trading_weekdays <= frozenset(range(7)):
            raise ScheduleError("trading weekdays are numbered 0 (Monday) to 6 (Sunday)")
        times = (self.pre_open, self.open, self.closing_auction, self.close)
        if any(t.tzinfo is not None for t in times):
            raise ScheduleError("session times are local wall-clock times, without a time zone")
        if not self.pre_open < self.open < self.closing_auction < self.close:
            raise ScheduleError("session times must run pre_open < open < closing_auction < close")
        if self.periodic_auction_minutes < 1:
            raise ScheduleError("periodic_auction_minutes must be at least 1")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches its instances: this is a dictionary look-up

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() in self.trading_weekdays and day not in self.holidays


# ---------------------------------------------------------------------------------------------------- the calendar


class SessionEventKind(StrEnum):
    PRE_OPEN = "pre_open"
    OPEN = "open"
    PERIODIC_AUCTION = "periodic_auction"
    CLOSING_AUCTION = "closing_auction"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    at_us: int  # UTC microseconds since the Unix epoch, like every exchange timestamp
    kind: SessionEventKind


class Phase(StrEnum):
    """Where the calendar says a continuous instrument's day is at a given instant."""

    CLOSED = "closed"
    PRE_OPEN = "pre_open"
    OPEN = "open"
    CLOSING_AUCTION = "closing_auction"


def _to_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _local_date(schedule: SessionSchedule, ts_us: int) -> date:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us)
    return moment.astimezone(schedule.zone).date()


def local_instant(schedule: SessionSchedule, day: date, at: time) -> int:
    """The exchange timestamp at which the local wall clock of `day` shows `at`.

    A time shown twice (the autumn change) counts at its first showing. A time the clock skips (the spring change)
    counts at the moment the clock jumps over it, so the session still happens, once and in its place.
    """
    zone = schedule.zone
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return _to_us(utc)
    # Skipped: fold=1 reads it with the offset after the change (an instant before the jump), fold=0 with the offset
    # before it (an instant after the jump). The first instant whose wall clock reads `at` or later lies between.
    low = _to_us(wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
    high = _to_us(utc)
    while high - low > 1:
        middle = (low + high) // 2
        shown = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=middle)).astimezone(zone)
        if shown.replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def day_events(schedule: SessionSchedule, day: date) -> list[SessionEvent]:
    """The boundaries of one local calendar day, in time order (none on a weekend or holiday)."""
    if not schedule.is_trading_day(day):
        return []
    K = SessionEventKind
    close = datetime.combine(day, schedule.close)
    planned: list[tuple[time, SessionEventKind]] = [(schedule.pre_open, K.PRE_OPEN), (schedule.open, K.OPEN)]
    period = timedelta(minutes=schedule.periodic_auction_minutes)
    auction = datetime.combine(day, schedule.pre_open) + period
    while auction < close:  # an auction falling on the close is the close's own uncrossing
        planned.append((auction.time(), K.PERIODIC_AUCTION))
        auction += period
    planned.append((schedule.closing_auction, K.CLOSING_AUCTION))
    planned.append((schedule.close, K.CLOSE))
    order = list(K)
    planned.sort(key=lambda item: (item[0], order.index(item[1])))
    events: list[SessionEvent] = []
    last = 0
    for at, kind in planned:
        # Only a skipped (spring-change) time can map before its predecessor; it then happens with it, after it.
        last = max(last, local_instant(schedule, day, at))
        events.append(SessionEvent(last, kind))
    return events


def session_events(schedule: SessionSchedule, after_us: int, until_us: int) -> list[SessionEvent]:
    """Every boundary in the half-open interval (after_us, until_us], in time order."""
    if until_us <= after_us:
        return []
    day = _local_date(schedule, after_us)
    last_day = _local_date(schedule, until_us)
    found: list[SessionEvent] = []
    while day <= last_day:
        found.extend(e for e in day_events(schedule, day) if after_us < e.at_us <= until_us)
        day += timedelta(days=1)
    return found


def phase_at(schedule: SessionSchedule, ts_us: int) -> Phase:
    """The calendar phase of a continuous instrument at an instant (a boundary belongs to the phase it starts)."""
    day = _local_date(schedule, ts_us)
    events = day_events(schedule, day)
    phase = Phase.CLOSED
    for event in events:
        if event.at_us > ts_us:
            break
        phase = _PHASE_AFTER.get(event.kind, phase)
    return phase


_PHASE_AFTER = {
    SessionEventKind.PRE_OPEN: Phase.PRE_OPEN,
    SessionEventKind.OPEN: Phase.OPEN,
    SessionEventKind.CLOSING_AUCTION: Phase.CLOSING_AUCTION,
    SessionEventKind.CLOSE: Phase.CLOSED,
}


# ---------------------------------------------------------------------------------------------------- the decision


InstrumentStates = Mapping[str, tuple[TradingState, bool]]


def _command_at(kind: SessionEventKind, symbol: str, state: TradingState, auction_only: bool) -> Command | None:
    """What one boundary does to one instrument in `state`: nothing when the move would mean nothing."""
    K = SessionEventKind
    if kind is K.PRE_OPEN:
        if state is TradingState.CLOSED:
            return SetTradingState(symbol, TradingState.PRE_OPEN, "schedule_pre_open")
    elif kind is K.OPEN:
        if not auction_only and state in (TradingState.PRE_OPEN, TradingState.OPENING_AUCTION):
            return SetTradingState(symbol, TradingState.OPEN, "schedule_open")
    elif kind is K.PERIODIC_AUCTION:
        if auction_only and state in _PERIODIC_CALLS:
            return RunAuction(symbol)
    elif kind is K.CLOSING_AUCTION:
        if not auction_only and state is TradingState.OPEN:
            return SetTradingState(symbol, TradingState.CLOSING_AUCTION, "schedule_closing_auction")
    elif kind is K.CLOSE:
        if state in _TRADING_PHASES:
            return SetTradingState(symbol, TradingState.CLOSED, "schedule_close")
    return None


def due_commands(
    schedule: SessionSchedule, instruments_state: InstrumentStates, last_run_us: int, now_us: int
) -> list[Command]:
    """The commands the calendar calls for in (last_run_us, now_us], in the order they must be applied.

    `instruments_state` maps each listed symbol to (its trading state now, whether it is auction-only). Boundaries
    are taken in time order and instruments in symbol order; each command's effect on the state is taken into
    account for the next boundary, so a window spanning several boundaries (a timer that was down) yields the same
    sequence the timer would have sent live. A close is followed by `EndOfDay(None)`.
    """
    if now_us <= last_run_us:
        return []
    states = {symbol: state for symbol, (state, _) in instruments_state.items()}
    symbols = sorted(instruments_state)
    commands: list[Command] = []
    for event in session_events(schedule, last_run_us, now_us):
        for symbol in symbols:
            command = _command_at(event.kind, symbol, states[symbol], instruments_state[symbol][1])
            if command is None:
                continue
            commands.append(command)
            if isinstance(command, SetTradingState):
                states[symbol] = command.state
        if event.kind is SessionEventKind.CLOSE and symbols:
            commands.append(EndOfDay(None))
    # Continuous trading never runs outside its hours, however the instrument came to be open (a volatility auction
    # that ended after the closing auction began, an operator resuming a halt after the close).
    phase = phase_at(schedule, now_us)
    if phase is Phase.CLOSING_AUCTION or phase is Phase.CLOSED:
        target, reason = (
            (TradingState.CLOSING_AUCTION, "schedule_closing_auction")
            if phase is Phase.CLOSING_AUCTION
            else (TradingState.CLOSED, "schedule_close")
        )
        for symbol in symbols:
            if states[symbol] is TradingState.OPEN:
                commands.append(SetTradingState(symbol, target, reason))
                states[symbol] = target
    return commands


# ---------------------------------------------------------------------------------------------------- configuration


_FIELDS = {
    "timezone",
    "trading_weekdays",
    "pre_open",
    "open",
    "closing_auction",
    "close",
    "periodic_auction_minutes",
    "holidays",
}


def _parse_time(name: str, value: Any) -> time:
    if not isinstance(value, str):
        raise ScheduleError(f"{name} must be a local time string such as \"09:00\"")
    try:
        parsed = time.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(f"{name}: {value!r} is not a time such as \"09:00\"") from exc
    if parsed.tzinfo is not None:
        raise ScheduleError(f"{name} is a local wall-clock time: give it without an offset")
    return parsed


def schedule_from_mapping(data: Mapping[str, Any]) -> SessionSchedule:
    """A schedule from its JSON form; keys left out keep their defaults."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ScheduleError(f"unknown schedule settings: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    if "timezone" in data:
        if not isinstance(data["timezone"], str):
            raise ScheduleError("timezone must be an IANA time zone name such as \"Europe/Rome\"")
        values["timezone"] = data["timezone"]
    if "trading_weekdays" in data:
        days = data["trading_weekdays"]
        if not isinstance(days, list) or not all(isinstance(d, str) and d.lower() in _WEEKDAYS for d in days):
            raise ScheduleError(f"trading_weekdays must be a list of {', '.join(_WEEKDAYS)}")
        values["trading_weekdays"] = frozenset(_WEEKDAYS.index(d.lower()) for d in days)
    for name in ("pre_open", "open", "closing_auction", "close"):
        if name in data:
            values[name] = _parse_time(name, data[name])
    if "periodic_auction_minutes" in data:
        minutes = data["periodic_auction_minutes"]
        if type(minutes) is not int:
            raise ScheduleError("periodic_auction_minutes must be a whole number of minutes")
        values["periodic_auction_minutes"] = minutes
    if "holidays" in data:
        holidays = data["holidays"]
        if not isinstance(holidays, list) or not all(isinstance(d, str) for d in holidays):
            raise ScheduleError("holidays must be a list of dates such as \"2026-12-25\"")
        try:
            values["holidays"] = frozenset(date.fromisoformat(d) for d in holidays)
        except ValueError as exc:
            raise ScheduleError(f"holidays: {exc}") from exc
    return SessionSchedule(**values)


def load_schedule(path: str | None) -> SessionSchedule:
    """The schedule in the JSON file at `path`, or the default schedule when `path` is None or empty."""
    if not path:
        return SessionSchedule()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read the schedule file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ScheduleError(f"the schedule file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ScheduleError(f"the schedule file {path} must hold a JSON object")
    try:
        return schedule_from_mapping(data)
    except ScheduleError as exc:
        raise ScheduleError(f"{path}: {exc}") from exc


def schedule_enabled() -> bool:
    """Whether the process runs the calendar timer (`EXCHANGE_SCHEDULE=off` turns it off)."""
    return os.environ.get(SCHEDULE_SWITCH_ENV, "on").strip().lower() not in ("off", "false", "0", "no")


# ---------------------------------------------------------------------------------------------------- the timer


class ScheduleTimer:
    """Sends the calendar's commands to the sequencer when they fall due.

    Each run looks at (last run, now], boundary by boundary, reading the instruments' states afresh before each, and
    remembers how far it got only once a boundary's commands are all committed. After a failed submission the next
    run starts again from the last completed boundary: the state-changing commands already committed are then no
    longer due, so at worst a periodic auction or an end of day is sent twice, and both are harmless when repeated.
    On its first run it catches up from the last journalled timestamp (at most `catch_up_us` back), so a process
    that was down over a boundary applies it when it comes back.
    """

    def __init__(
        self,
        sequencer: Sequencer,
        schedule: SessionSchedule,
        *,
        interval_s: float = 1.0,
        catch_up_us: int = 7 * _DAY_US,
        last_run_us: int | None = None,
    ) -> None:
        self.sequencer = sequencer
        self.schedule = schedule
        self.interval_s = interval_s
        self.catch_up_us = catch_up_us
        self.last_run_us = last_run_us
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def _states(self) -> dict[str, tuple[TradingState, bool]]:
        # Read between commits on the sequencer's own event loop: a consistent, committed-or-about-to-be view.
        return {s: (i.state, i.auction_only) for s, i in self.sequencer.engine.instruments.items()}

    async def run_once(self) -> list[Command]:
        """Submit what is due now; return the commands sent (all committed)."""
        sequencer = self.sequencer
        if sequencer.state is not SequencerState.RUNNING:
            return []
        now = sequencer.clock()
        if self.last_run_us is None:
            self.last_run_us = max(sequencer.last_ts_us, now - self.catch_up_us)
        if now <= self.last_run_us:
            return []
        checkpoints = sorted({e.at_us for e in session_events(self.schedule, self.last_run_us, now)} | {now})
        sent: list[Command] = []
        for checkpoint in checkpoints:
            for command in due_commands(self.schedule, self._states(), self.last_run_us, checkpoint):
                await sequencer.submit(command, SENDER)
                sent.append(command)
                self.sent += 1
            self.last_run_us = checkpoint
        if sent:
            log.info("schedule commands committed", extra={"commands": len(sent), "last_run_us": self.last_run_us})
        return sent

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="schedule-timer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except (Backpressure, SequencerUnavailable, CommitFailed) as exc:
                log.warning("schedule commands not committed; retrying", extra={"error": type(exc).__name__})
            except Exception:  # the calendar must keep running whatever one attempt ran into
                log.exception("schedule timer run failed; retrying")


async def start_schedule(app: FastAPI) -> None:
    """Component start: run the calendar timer next to the sequencer, unless `EXCHANGE_SCHEDULE=off`."""
    app.state.schedule_timer = None
    if not schedule_enabled():
        log.info("trading calendar timer disabled", extra={"variable": SCHEDULE_SWITCH_ENV})
        return
    schedule = load_schedule(os.environ.get(SCHEDULE_FILE_ENV) or None)
    timer = ScheduleTimer(app.state.sequencer, schedule)
    timer.start()
    app.state.schedule_timer = timer


async def stop_schedule(app: FastAPI) -> None:
    timer = getattr(app.state, "schedule_timer", None)
    if timer is not None:
        await timer.stop()
