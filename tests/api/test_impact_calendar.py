"""The impact reporting calendar: due dates by frequency, reports meet them in order, overdue after the grace period."""

from __future__ import annotations

import calendar
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from api.impact_calendar import ReportFrequency, ReportingState, add_months, due_date, reporting_status

ANNUAL, SEMIANNUAL, QUARTERLY = ReportFrequency.ANNUAL, ReportFrequency.SEMIANNUAL, ReportFrequency.QUARTERLY


def test_due_dates_step_by_the_frequency_from_the_first_due_date():
    first = date(2025, 3, 31)
    assert [due_date(first, QUARTERLY, k) for k in range(4)] == [
        date(2025, 3, 31),
        date(2025, 6, 30),
        date(2025, 9, 30),
        date(2025, 12, 31),
    ]
    assert due_date(first, SEMIANNUAL, 3) == date(2026, 9, 30)
    assert due_date(first, ANNUAL, 2) == date(2027, 3, 31)


def test_a_month_end_due_date_stays_at_the_month_end():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert due_date(date(2024, 8, 31), SEMIANNUAL, 1) == date(2025, 2, 28)
    assert due_date(date(2024, 8, 31), SEMIANNUAL, 2) == date(2025, 8, 31)


def test_before_the_first_due_date_a_listing_is_current():
    status = reporting_status(date(2026, 6, 30), ANNUAL, 90, 0, date(2026, 1, 1))
    assert status.state is ReportingState.CURRENT
    assert status.next_due == date(2026, 6, 30)


def test_within_the_grace_period_a_listing_is_still_current():
    status = reporting_status(date(2026, 6, 30), ANNUAL, 90, 0, date(2026, 9, 28))
    assert status.grace_ends == date(2026, 9, 28)
    assert status.state is ReportingState.CURRENT


def test_the_day_after_the_grace_period_a_listing_without_a_report_is_overdue():
    status = reporting_status(date(2026, 6, 30), ANNUAL, 90, 0, date(2026, 9, 29))
    assert status.state is ReportingState.OVERDUE


def test_a_report_moves_the_next_due_date_one_period_on():
    status = reporting_status(date(2026, 6, 30), ANNUAL, 90, 1, date(2026, 9, 29))
    assert status.next_due == date(2027, 6, 30)
    assert status.state is ReportingState.CURRENT


def test_a_zero_grace_period_makes_a_listing_overdue_the_day_after_the_due_date():
    assert reporting_status(date(2026, 6, 30), ANNUAL, 0, 0, date(2026, 6, 30)).state is ReportingState.CURRENT
    assert reporting_status(date(2026, 6, 30), ANNUAL, 0, 0, date(2026, 7, 1)).state is ReportingState.OVERDUE


@settings(max_examples=200, deadline=None)
@given(
    first=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    frequency=st.sampled_from(list(ReportFrequency)),
    k=st.integers(min_value=0, max_value=40),
)
def test_due_dates_always_advance_and_keep_the_day_when_the_month_has_it(first, frequency, k):
    this, following = due_date(first, frequency, k), due_date(first, frequency, k + 1)
    assert following > this
    assert this.day == min(first.day, calendar.monthrange(this.year, this.month)[1])
    assert (this.year * 12 + this.month) - (first.year * 12 + first.month) == k * frequency.months


def test_dates_beyond_the_calendars_end_stay_at_its_last_day():
    status = reporting_status(date(9999, 6, 30), ANNUAL, 730, 1, date(2026, 1, 1))
    assert status.next_due == date.max and status.grace_ends == date.max
    assert status.state is ReportingState.CURRENT
