"""The impact reporting calendar of a listing: when reports fall due and whether the issuer is overdue.

A listing reports at a fixed frequency from its first due date: due dates are `first_due + k x period` (k = 0, 1,
...), each computed from the first one, so the 31st stays the month's end (Jan 31, Apr 30, Jul 31, ...). Reports
satisfy due dates in order: with n reports published, the next due date is the n-th one. A listing is OVERDUE once
its next due date plus the grace period has passed on `today` without a report; otherwise it is CURRENT.

Pure: the caller passes `today` (the shell reads the clock), so the same inputs always give the same answer.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class ReportFrequency(StrEnum):
    ANNUAL = "annual"
    SEMIANNUAL = "semiannual"
    QUARTERLY = "quarterly"

    @property
    def months(self) -> int:
        return _MONTHS[self]


_MONTHS = {ReportFrequency.ANNUAL: 12, ReportFrequency.SEMIANNUAL: 6, ReportFrequency.QUARTERLY: 3}


class ReportingState(StrEnum):
    CURRENT = "current"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class ReportingStatus:
    state: ReportingState
    next_due: date
    grace_ends: date  # the last day a report for `next_due` is still on time
    reports_published: int


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, kept within the target month (Jan 31 + 1 month = Feb 28 or 29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def due_date(first_due: date, frequency: ReportFrequency, index: int) -> date:
    """The `index`-th due date (0: the first)."""
    return add_months(first_due, index * frequency.months)


def reporting_status(
    first_due: date, frequency: ReportFrequency, grace_days: int, reports_published: int, today: date
) -> ReportingStatus:
    # Dates past the calendar's end (year 9999) stay at its last day rather than failing.
    try:
        next_due = due_date(first_due, frequency, reports_published)
    except ValueError:
        next_due = date.max
    try:
        grace_ends = next_due + timedelta(days=grace_days)
    except OverflowError:
        grace_ends = date.max
    state = ReportingState.OVERDUE if today > grace_ends else ReportingState.CURRENT
    return ReportingStatus(state, next_due, grace_ends, reports_published)
