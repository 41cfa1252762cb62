"""The trading calendar as configuration: which state changes and auctions fall due when (issue 7).

Pure tests of `api.schedule`: no engine, no database. Instants are written as Rome wall-clock times; the schedule
is the default one (08:00 pre-open, 09:00 open, 17:30 closing auction, 17:35 close, hourly periodic auctions).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from api.schedule import (
    Phase,
    ScheduleError,
    SessionEventKind,
    SessionSchedule,
    due_commands,
    load_schedule,
    phase_at,
    schedule_enabled,
    session_events,
)
from exchange.commands import EndOfDay, RunAuction, SetTradingState
from exchange.instrument import TradingState

ROME = ZoneInfo("Europe/Rome")
DEFAULT = SessionSchedule()
S = TradingState


def rome(day: date, hour: int, minute: int = 0) -> int:
    """Exchange timestamp (UTC microseconds) of a Rome wall-clock time."""
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ROME)
    return int(moment.timestamp()) * 1_000_000


def utc_clock(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1_000_000, UTC).strftime("%H:%M")


def rome_clock(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1_000_000, ROME).strftime("%H:%M")


def transitions(commands) -> list[tuple[str, TradingState]]:
    return [(c.symbol, c.state) for c in commands if isinstance(c, SetTradingState)]


def run_day(states, day: date, step_minutes: int, schedule: SessionSchedule = DEFAULT):
    """Look every `step_minutes` from midnight to midnight like a timer, applying each state change; all commands."""
    states = dict(states)
    sent = []
    last = rome(day, 0)
    for _ in range(24 * 60 // step_minutes):
        now = last + step_minutes * 60_000_000
        for command in due_commands(schedule, states, last, now):
            sent.append(command)
            if isinstance(command, SetTradingState):
                states[command.symbol] = (command.state, states[command.symbol][1])
        last = now
    return sent


TUESDAY = date(2025, 6, 10)
CONTINUOUS = {"ACME": (S.CLOSED, False)}
AUCTION_ONLY = {"COOP": (S.CLOSED, True)}


# --- a trading day ---------------------------------------------------------------------------------------


def test_a_weekday_takes_a_continuous_instrument_through_its_phases_in_order():
    commands = due_commands(DEFAULT, CONTINUOUS, rome(TUESDAY, 0), rome(TUESDAY, 23, 59))

    assert commands == [
        SetTradingState("ACME", S.PRE_OPEN, "schedule_pre_open"),
        SetTradingState("ACME", S.OPEN, "schedule_open"),
        SetTradingState("ACME", S.CLOSING_AUCTION, "schedule_closing_auction"),
        SetTradingState("ACME", S.CLOSED, "schedule_close"),
        EndOfDay(None),
    ]


def test_the_boundaries_fall_at_the_configured_rome_times():
    events = session_events(DEFAULT, rome(TUESDAY, 0), rome(TUESDAY, 23, 59))
    main = [(e.kind, rome_clock(e.at_us)) for e in events if e.kind is not SessionEventKind.PERIODIC_AUCTION]

    assert main == [
        (SessionEventKind.PRE_OPEN, "08:00"),
        (SessionEventKind.OPEN, "09:00"),
        (SessionEventKind.CLOSING_AUCTION, "17:30"),
        (SessionEventKind.CLOSE, "17:35"),
    ]


def test_each_boundary_is_due_exactly_at_its_instant_and_not_before():
    opening = rome(TUESDAY, 9)
    states = {"ACME": (S.PRE_OPEN, False)}

    assert due_commands(DEFAULT, states, rome(TUESDAY, 8, 30), opening - 1) == []
    assert transitions(due_commands(DEFAULT, states, opening - 1, opening)) == [("ACME", S.OPEN)]
    assert due_commands(DEFAULT, states, opening, rome(TUESDAY, 9, 30)) == []


def test_a_timer_looking_every_minute_sends_the_same_day_as_one_looking_once():
    instruments = {**CONTINUOUS, **AUCTION_ONLY}

    once = due_commands(DEFAULT, instruments, rome(TUESDAY, 0), rome(date(2025, 6, 11), 0))

    assert run_day(instruments, TUESDAY, 1) == once


def test_instruments_are_moved_in_symbol_order_at_each_boundary():
    states = {"ZETA": (S.CLOSED, False), "ALFA": (S.CLOSED, False)}

    commands = due_commands(DEFAULT, states, rome(TUESDAY, 7), rome(TUESDAY, 8))

    assert transitions(commands) == [("ALFA", S.PRE_OPEN), ("ZETA", S.PRE_OPEN)]


def test_the_calendar_phase_follows_the_boundaries():
    assert phase_at(DEFAULT, rome(TUESDAY, 7, 59)) is Phase.CLOSED
    assert phase_at(DEFAULT, rome(TUESDAY, 8)) is Phase.PRE_OPEN
    assert phase_at(DEFAULT, rome(TUESDAY, 12)) is Phase.OPEN
    assert phase_at(DEFAULT, rome(TUESDAY, 17, 31)) is Phase.CLOSING_AUCTION
    assert phase_at(DEFAULT, rome(TUESDAY, 17, 35)) is Phase.CLOSED


# --- days without a session -------------------------------------------------------------------------------


def test_nothing_is_due_on_a_weekend():
    saturday = date(2025, 6, 14)

    assert due_commands(DEFAULT, CONTINUOUS, rome(saturday, 0), rome(date(2025, 6, 15), 23, 59)) == []


def test_a_window_over_the_weekend_closes_friday_and_pre_opens_monday():
    friday, monday = date(2025, 6, 13), date(2025, 6, 16)

    commands = due_commands(DEFAULT, {"ACME": (S.OPEN, False)}, rome(friday, 12), rome(monday, 8, 30))

    assert transitions(commands) == [("ACME", S.CLOSING_AUCTION), ("ACME", S.CLOSED), ("ACME", S.PRE_OPEN)]
    assert commands.count(EndOfDay(None)) == 1


def test_a_configured_holiday_has_no_session():
    christmas = date(2025, 12, 25)  # a Thursday
    schedule = SessionSchedule(holidays=frozenset({christmas}))

    assert due_commands(schedule, CONTINUOUS, rome(christmas, 0), rome(christmas, 23, 59)) == []


def test_an_exchange_with_nothing_listed_is_sent_nothing():
    assert due_commands(DEFAULT, {}, rome(TUESDAY, 0), rome(TUESDAY, 23, 59)) == []


# --- summer and winter time (Europe/Rome changes on the last Sundays of March and October) -------------------


def test_the_monday_after_the_spring_change_opens_an_hour_earlier_in_utc():
    friday, monday = date(2025, 3, 28), date(2025, 3, 31)

    def opening(day: date) -> int:
        return next(e.at_us for e in session_events(DEFAULT, rome(day, 0), rome(day, 23)) if e.kind == "open")

    assert (utc_clock(opening(friday)), rome_clock(opening(friday))) == ("08:00", "09:00")
    assert (utc_clock(opening(monday)), rome_clock(opening(monday))) == ("07:00", "09:00")


def test_the_monday_after_the_autumn_change_opens_an_hour_later_in_utc():
    friday, monday = date(2025, 10, 24), date(2025, 10, 27)

    def pre_open(day: date) -> int:
        return session_events(DEFAULT, rome(day, 0), rome(day, 23))[0].at_us

    assert utc_clock(pre_open(friday)) == "06:00"
    assert utc_clock(pre_open(monday)) == "07:00"


def test_the_sunday_of_a_change_is_no_trading_day_and_the_week_around_it_is_complete():
    friday, monday = date(2025, 3, 28), date(2025, 3, 31)

    commands = due_commands(DEFAULT, {"ACME": (S.OPEN, False)}, rome(friday, 12), rome(monday, 9, 30))

    assert transitions(commands) == [
        ("ACME", S.CLOSING_AUCTION),
        ("ACME", S.CLOSED),
        ("ACME", S.PRE_OPEN),
        ("ACME", S.OPEN),
    ]


def test_a_session_time_the_spring_change_skips_happens_when_the_clock_jumps():
    # 02:30 does not exist in Rome on 30 March 2025: the clocks go from 02:00 straight to 03:00.
    sunday = date(2025, 3, 30)
    schedule = SessionSchedule(trading_weekdays=frozenset(range(7)), pre_open=time(2, 30), open=time(3, 15))

    events = session_events(schedule, rome(sunday, 0), rome(sunday, 4))

    assert [(e.kind, rome_clock(e.at_us)) for e in events][:2] == [
        (SessionEventKind.PRE_OPEN, "03:00"),
        (SessionEventKind.OPEN, "03:15"),
    ]


def test_a_session_time_the_autumn_change_shows_twice_happens_at_its_first_showing():
    # 02:30 happens twice in Rome on 26 October 2025: first in summer time (00:30 UTC), then in winter time.
    sunday = date(2025, 10, 26)
    schedule = SessionSchedule(trading_weekdays=frozenset(range(7)), pre_open=time(2, 30), open=time(3, 0))

    events = session_events(schedule, rome(date(2025, 10, 25), 23), rome(sunday, 4))

    assert [utc_clock(e.at_us) for e in events[:2]] == ["00:30", "02:00"]


# --- auction-only instruments ---------------------------------------------------------------------------


def test_an_auction_only_instrument_is_auctioned_every_hour_and_never_opens():
    commands = due_commands(DEFAULT, AUCTION_ONLY, rome(TUESDAY, 0), rome(TUESDAY, 23, 59))

    assert commands == [
        SetTradingState("COOP", S.PRE_OPEN, "schedule_pre_open"),
        *[RunAuction("COOP")] * 9,  # 09:00, 10:00, ..., 17:00
        SetTradingState("COOP", S.CLOSED, "schedule_close"),  # the close uncrosses the last call
        EndOfDay(None),
    ]


def test_periodic_auctions_run_at_the_configured_interval_from_the_pre_open():
    schedule = SessionSchedule(periodic_auction_minutes=25)

    events = session_events(schedule, rome(TUESDAY, 0), rome(TUESDAY, 10))
    auctions = [rome_clock(e.at_us) for e in events if e.kind is SessionEventKind.PERIODIC_AUCTION]

    assert auctions == ["08:25", "08:50", "09:15", "09:40"]


def test_a_periodic_auction_falling_on_the_close_is_the_close_itself():
    schedule = SessionSchedule(close=time(17, 0), closing_auction=time(16, 55))

    commands = due_commands(schedule, {"COOP": (S.PRE_OPEN, True)}, rome(TUESDAY, 16, 30), rome(TUESDAY, 18))

    assert commands == [SetTradingState("COOP", S.CLOSED, "schedule_close"), EndOfDay(None)]


# --- states the calendar leaves alone ---------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.HALTED, S.SUSPENDED, S.DELISTED])
@pytest.mark.parametrize("auction_only", [False, True])
def test_an_instrument_taken_out_of_the_day_is_never_moved(state, auction_only):
    commands = due_commands(DEFAULT, {"ACME": (state, auction_only)}, rome(TUESDAY, 0), rome(TUESDAY, 23, 59))

    assert commands == [EndOfDay(None)]  # its DAY orders still expire with the day


def test_a_volatility_auction_at_the_closing_auction_is_left_to_the_engine():
    states = {"ACME": (S.VOLATILITY_AUCTION, False)}

    assert due_commands(DEFAULT, states, rome(TUESDAY, 17, 29), rome(TUESDAY, 17, 30)) == []


def test_an_instrument_found_open_during_the_closing_auction_is_moved_into_it():
    # A volatility auction that ran over 17:30 ends by itself into OPEN; the calendar catches up at once.
    states = {"ACME": (S.OPEN, False)}

    commands = due_commands(DEFAULT, states, rome(TUESDAY, 17, 31), rome(TUESDAY, 17, 32))

    assert commands == [SetTradingState("ACME", S.CLOSING_AUCTION, "schedule_closing_auction")]


def test_an_instrument_found_open_after_the_close_is_closed():
    states = {"ACME": (S.OPEN, False)}

    commands = due_commands(DEFAULT, states, rome(TUESDAY, 20), rome(TUESDAY, 20, 1))

    assert commands == [SetTradingState("ACME", S.CLOSED, "schedule_close")]


def test_an_instrument_opened_early_by_an_operator_is_not_opened_again():
    states = {"ACME": (S.OPEN, False)}

    assert due_commands(DEFAULT, states, rome(TUESDAY, 8, 30), rome(TUESDAY, 9, 30)) == []


def test_an_instrument_already_in_pre_open_is_not_moved_at_the_pre_open():
    states = {"ACME": (S.PRE_OPEN, False)}

    assert due_commands(DEFAULT, states, rome(TUESDAY, 7), rome(TUESDAY, 8, 30)) == []


def test_an_instrument_closed_early_by_an_operator_stays_closed_for_the_rest_of_the_day():
    states = {"ACME": (S.CLOSED, False)}

    assert due_commands(DEFAULT, states, rome(TUESDAY, 15), rome(TUESDAY, 17, 34)) == []


def test_an_opening_auction_set_by_an_operator_ends_at_the_open():
    states = {"ACME": (S.OPENING_AUCTION, False)}

    commands = due_commands(DEFAULT, states, rome(TUESDAY, 8, 55), rome(TUESDAY, 9))

    assert transitions(commands) == [("ACME", S.OPEN)]


# --- configuration ----------------------------------------------------------------------------------------


def test_without_a_file_the_schedule_is_the_default():
    assert load_schedule(None) == SessionSchedule()
    assert load_schedule("") == SessionSchedule()


def test_a_schedule_file_overrides_what_it_names(tmp_path: Path):
    path = tmp_path / "schedule.json"
    path.write_text(
        json.dumps(
            {
                "timezone": "Europe/Paris",
                "trading_weekdays": ["mon", "tue", "wed", "thu"],
                "open": "09:05",
                "periodic_auction_minutes": 30,
                "holidays": ["2026-12-24"],
            }
        )
    )

    schedule = load_schedule(str(path))

    assert schedule == SessionSchedule(
        timezone="Europe/Paris",
        trading_weekdays=frozenset({0, 1, 2, 3}),
        open=time(9, 5),
        periodic_auction_minutes=30,
        holidays=frozenset({date(2026, 12, 24)}),
    )


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"opening": "09:00"}', "unknown schedule settings: opening"),
        ('{"open": "18:00"}', "pre_open < open < closing_auction < close"),
        ('{"open": "9 o\'clock"}', "is not a time"),
        ('{"open": "09:00+01:00"}', "without an offset"),
        ('{"timezone": "Mars/Olympus"}', "unknown time zone"),
        ('{"trading_weekdays": ["monday"]}', "trading_weekdays"),
        ('{"periodic_auction_minutes": 0}', "at least 1"),
        ('{"periodic_auction_minutes": 1.5}', "whole number"),
        ('{"holidays": ["25/12/2026"]}', "holidays"),
    ],
)
def test_a_bad_schedule_file_is_refused_with_a_reason(tmp_path: Path, content: str, complaint: str):
    path = tmp_path / "schedule.json"
    path.write_text(content)

    with pytest.raises(ScheduleError, match="schedule.json") as refused:
        load_schedule(str(path))
    assert complaint in str(refused.value)


def test_a_missing_schedule_file_is_refused(tmp_path: Path):
    with pytest.raises(ScheduleError, match="cannot read"):
        load_schedule(str(tmp_path / "absent.json"))


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("on", True), ("off", False), ("OFF", False)])
def test_the_timer_runs_unless_the_environment_turns_it_off(monkeypatch: pytest.MonkeyPatch, value, enabled):
    if value is None:
        monkeypatch.delenv("EXCHANGE_SCHEDULE", raising=False)
    else:
        monkeypatch.setenv("EXCHANGE_SCHEDULE", value)

    assert schedule_enabled() is enabled
