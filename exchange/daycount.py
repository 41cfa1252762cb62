"""Bond interest in integers: coupon schedules, day counts, accrued interest, coupons and redemption.

Pure date arithmetic and exact `Fraction`s; every cash amount is rounded once, half-even, to the minor unit.

Schedule. Coupon dates are the regular cycle rolled backwards from maturity in steps of 12/frequency months, each date
computed from the maturity itself (so a clamp to a short month, 31 Aug -> 28 Feb, does not stick), with the end-of-month
rule: when the maturity is the last day of its month every coupon date is a month end. The cycle stops at the first
date after the issue date, so by default the first period (issue date -> first coupon date) is regular or SHORT.
A LONG first period needs the listing to name its first coupon date: if the terms carry `first_coupon_date`
(a date on the regular cycle), no coupon is paid on the cycle dates before it.

Day counts (ICMA Rule 251 names, as `DayCount`):
- "30/360" is 30E/360, the Eurobond basis of ICMA and ISDA 2006 Definitions 4.16(g): a day 31 counts as 30, nothing
  else is adjusted (an end of February stays 28 or 29). It is the usual basis of euro-market corporate bonds, the
  Italian minibonds and social bonds listed here among them. Accrued = days360 / (360 / frequency) coupons.
- "ACT/ACT" is ACT/ACT (ICMA), Rule 251: actual days divided by the actual days of the coupon period. An irregular
  first period is cut at the quasi-coupon dates (the regular cycle continued backwards before the first coupon date)
  and each piece counts days / days of its quasi-coupon period, so a short stub is a fraction of one coupon and a long
  stub is a fraction of the first quasi period plus whole quasi periods.

A regular period pays exactly nominal * rate / frequency whatever its length; only the first period can be irregular.
Under 30E/360 a period that starts on 28 February and ends on 31 August counts 182 days, so its accrued interest can
exceed one coupon by 2/180 just before the coupon date (an artefact of the basis); `max_accrued_per_unit` covers it.

There is no ex-coupon (record date) period: accrued interest is zero on a coupon date and grows until the next one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from calendar import monthrange
from datetime import date, timedelta
from fractions import Fraction
from functools import lru_cache

from exchange.instrument import BondTerms, DayCount
from exchange.rounding import round_half_even

PPM = 1_000_000


def days_30e_360(start: date, end: date) -> int:
    """Days from `start` to `end` on the 30E/360 (Eurobond) basis, ISDA 2006 Definitions 4.16(g)."""
    d1 = min(start.day, 30)
    d2 = min(end.day, 30)
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


def coupon_dates(terms: BondTerms) -> tuple[date, ...]:
    """The dates on which a coupon is paid, ascending; the last one is the maturity date."""
    return _schedule(terms)


def coupon_period(terms: BondTerms, on: date) -> tuple[date, date]:
    """The accrual period containing `on`: (previous coupon date or issue date, next coupon date).

    The start is inclusive and the end exclusive, so on a coupon date the period starting that day is returned.
    Raises ValueError outside [issue date, maturity date).
    """
    if not terms.issue_date <= on < terms.maturity_date:
        raise ValueError(f"{on} is outside the life of the bond [{terms.issue_date}, {terms.maturity_date})")
    dates = _schedule(terms)
    i = bisect_right(dates, on)
    return (dates[i - 1] if i > 0 else terms.issue_date), dates[i]


def accrual_fraction(terms: BondTerms, start: date, on: date) -> Fraction:
    """The number of FULL coupons accrued from `start` (inclusive) to `on` (exclusive), exactly.

    Accrued interest of one unit = nominal * rate / frequency * this fraction. `start` is normally the start of the
    accrual period that contains `on` (see `coupon_period`).
    """
    if on < start:
        raise ValueError(f"accrual ends ({on}) before it starts ({start})")
    if terms.day_count is DayCount.THIRTY_360:
        return Fraction(days_30e_360(start, on) * terms.coupon_frequency, 360)
    return _act_act_icma(terms, start, on)


def accrued_interest(terms: BondTerms, on: date, units: int) -> int:
    """Accrued interest, in minor units, on `units` bonds for settlement on `on`.

    Computed exactly on the whole position and rounded once, half-even: it is NOT `units` times the rounded accrued
    interest of one unit. Zero before the issue date (a when-issued trade settling early pays no interest: nothing has
    accrued yet; whether such a trade may happen at all is a listing rule, not this function's business), zero on a
    coupon date and zero on or after the maturity date (the final coupon is paid with the redemption).
    """
    _check_units(units)
    if on <= terms.issue_date or on >= terms.maturity_date:
        return 0
    start, _ = coupon_period(terms, on)
    return _interest(terms, units, accrual_fraction(terms, start, on))


def max_accrued_per_unit(terms: BondTerms) -> int:
    """An upper bound, in minor units, of the accrued interest of one unit on any date.

    `accrued_interest(terms, d, n) <= n * max_accrued_per_unit(terms)` for every date d and n >= 0, because the bound is
    the exact per-unit maximum rounded UP and half-even rounding of n times a value never exceeds n times its ceiling.
    Accrued interest only grows within a period, so the maximum is reached on the day before some coupon date; every
    period is checked, which covers long first periods and the 30E/360 end-of-February periods.
    """
    return _max_accrued_per_unit(terms)


def coupon_amount(terms: BondTerms, payment_date: date, units: int) -> int:
    """The coupon paid on `payment_date` to `units` bonds, in minor units, half-even on the whole position.

    A regular period pays nominal * rate / frequency. An irregular first period pays its accrual fraction (ICMA
    quasi-coupon method under ACT/ACT, days360 / (360 / frequency) under 30E/360); a first period that starts on the
    regular cycle pays whole coupons. Raises ValueError if no coupon is paid on `payment_date`.
    """
    _check_units(units)
    dates = _schedule(terms)
    i = bisect_left(dates, payment_date)
    if i == len(dates) or dates[i] != payment_date:
        raise ValueError(f"no coupon is paid on {payment_date}")
    fraction = _first_period_fraction(terms) if i == 0 else Fraction(1)
    return _interest(terms, units, fraction)


def redemption_amount(terms: BondTerms, units: int) -> int:
    """The principal repaid at maturity to `units` bonds (nominal * redemption price), half-even, in minor units."""
    _check_units(units)
    return round_half_even(units * terms.nominal_minor * terms.redemption_ppm, PPM)


# --- internals -------------------------------------------------------------------------------------------------------


def _check_units(units: int) -> None:
    if units < 0:
        raise ValueError(f"units must not be negative, got {units}")


def _interest(terms: BondTerms, units: int, fraction: Fraction) -> int:
    return round_half_even(
        units * terms.nominal_minor * terms.coupon_rate_ppm * fraction.numerator,
        PPM * terms.coupon_frequency * fraction.denominator,
    )


def _is_month_end(d: date) -> bool:
    return d.day == monthrange(d.year, d.month)[1]


def _cycle_date(terms: BondTerms, k: int) -> date:
    """The k-th date of the regular cycle counted back from maturity (k = 0 is maturity, negative k lies beyond it)."""
    maturity = terms.maturity_date
    year, month0 = divmod(maturity.year * 12 + maturity.month - 1 - k * (12 // terms.coupon_frequency), 12)
    last = monthrange(year, month0 + 1)[1]
    day = last if _is_month_end(maturity) else min(maturity.day, last)
    return date(year, month0 + 1, day)


def _cycle_index(terms: BondTerms, d: date) -> int:
    """The smallest k whose cycle date is on or before `d`: the quasi-coupon period [cycle(k), cycle(k-1)) holds d."""
    maturity = terms.maturity_date
    months = (maturity.year - d.year) * 12 + (maturity.month - d.month)
    k = months // (12 // terms.coupon_frequency)  # a first guess, off by at most one either way
    while _cycle_date(terms, k) > d:
        k += 1
    while _cycle_date(terms, k - 1) <= d:
        k -= 1
    return k


def _first_coupon_date(terms: BondTerms) -> date | None:
    # Read defensively: a long first coupon needs `first_coupon_date` on the terms, which not every BondTerms carries.
    return getattr(terms, "first_coupon_date", None)


@lru_cache(maxsize=4096)
def _schedule(terms: BondTerms) -> tuple[date, ...]:
    first = _first_coupon_date(terms)
    dates: list[date] = []
    k = 0
    while (d := _cycle_date(terms, k)) > terms.issue_date and (first is None or d >= first):
        dates.append(d)
        k += 1
    if first is not None and (not dates or dates[-1] != first):
        raise ValueError(
            f"first coupon date {first} is not a date of the regular cycle after the issue date {terms.issue_date}"
        )
    return tuple(reversed(dates))


def _act_act_icma(terms: BondTerms, start: date, on: date) -> Fraction:
    """Days in [start, on) counted period by period against the actual length of each (quasi-)coupon period."""
    total = Fraction(0)
    k = _cycle_index(terms, start)
    while (period_start := _cycle_date(terms, k)) < on:
        period_end = _cycle_date(terms, k - 1)
        days = (min(on, period_end) - max(start, period_start)).days
        total += Fraction(days, (period_end - period_start).days)
        k -= 1
    return total


def _first_period_fraction(terms: BondTerms) -> Fraction:
    first = _schedule(terms)[0]
    k_issue = _cycle_index(terms, terms.issue_date)
    if _cycle_date(terms, k_issue) == terms.issue_date:
        # Issued on a cycle date: the first period is made of whole regular periods, each paying a full coupon (under
        # 30E/360 their day count need not be exactly 360 / frequency).
        return Fraction(k_issue - (len(_schedule(terms)) - 1))
    return accrual_fraction(terms, terms.issue_date, first)


@lru_cache(maxsize=4096)
def _max_accrued_per_unit(terms: BondTerms) -> int:
    dates = _schedule(terms)
    starts = (terms.issue_date, *dates[:-1])
    peak = max(accrual_fraction(terms, start, end - timedelta(days=1)) for start, end in zip(starts, dates))
    numerator = terms.nominal_minor * terms.coupon_rate_ppm * peak.numerator
    denominator = PPM * terms.coupon_frequency * peak.denominator
    return -(-numerator // denominator)
