"""Specification of `exchange.daycount`: coupon schedules, 30E/360 and ACT/ACT (ICMA) accrued interest, coupons.

Published sources used below:
- [ISDA-30/360] ISDA, "30/360 Day Count Conventions" (isda.org, 22 Dec 2008; spreadsheet 30-360-2006ISDADefs.xls,
  tab "30E/360"), examples 1-3 for ISDA 2006 Definitions 4.16(g). The same table is reproduced in QuantLib,
  test-suite/daycounters.cpp, DayCounterTest::testThirty360_EurobondBasis.
- [ISDA-A/A] ISDA, "The Actual/Actual Day Count Fraction" (EMU and market conventions paper, 1998/1999, isda.org
  Day-Count-Fracation1999.pdf), the ICMA (ISMA) column of its examples: regular period, short first and long first
  calculation periods. Reproduced in QuantLib, test-suite/daycounters.cpp, DayCounterTest::testActualActual.
- [MEF-BTP-2024] Italian Treasury (MEF), auction results of BTP 10 anni 2.50% 1 Dec 2024 (30-31 Oct 2014): the
  first coupon, short from 1 Sep 2014 to 1 Dec 2014 (91 days), is 0.621585 % gross; quoted at
  http://bragadin.altervista.org/cedole/ (linking the MEF document).
- [MEF-BTP-2036] BTP 1.45% 1 Mar 2036 (IT0005402117), settled 18 Feb 2020: the first semiannual coupon paid on
  1 Sep 2020 was fixed by the Treasury at 0.7728 % instead of the regular 0.7250 %; reported at
  https://investireoggi.it/btp-marzo-2036-errata-corrige-su-cedola-145
Everything else is "checked by hand", with the arithmetic in the docstring.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exchange.daycount import (
    accrual_fraction,
    accrued_interest,
    coupon_amount,
    coupon_dates,
    coupon_period,
    days_30e_360,
    max_accrued_per_unit,
    redemption_amount,
)
from exchange.instrument import BondTerms, DayCount
from exchange.rounding import round_half_even

EUR_100 = 10_000  # one bond of EUR 100.00 nominal, in cents


def bond(
    issue: date,
    maturity: date,
    *,
    rate_ppm: int = 50_000,
    frequency: int = 2,
    day_count: DayCount = DayCount.ACT_ACT,
    nominal: int = EUR_100,
    first_coupon: date | None = None,
    redemption_ppm: int = 1_000_000,
) -> BondTerms:
    return BondTerms(
        nominal, rate_ppm, frequency, day_count, issue, maturity, redemption_ppm, first_coupon_date=first_coupon
    )


# --- 30E/360 ---------------------------------------------------------------------------------------------------------

ISDA_30E_360_EXAMPLES = [
    # Example 1: end dates do not involve the last day of February
    (date(2006, 8, 20), date(2007, 2, 20), 180),
    (date(2007, 2, 20), date(2007, 8, 20), 180),
    (date(2007, 8, 20), date(2008, 2, 20), 180),
    (date(2008, 2, 20), date(2008, 8, 20), 180),
    (date(2008, 8, 20), date(2009, 2, 20), 180),
    (date(2009, 2, 20), date(2009, 8, 20), 180),
    # Example 2: end dates include some end-February dates
    (date(2006, 2, 28), date(2006, 8, 31), 182),
    (date(2006, 8, 31), date(2007, 2, 28), 178),
    (date(2007, 2, 28), date(2007, 8, 31), 182),
    (date(2007, 8, 31), date(2008, 2, 29), 179),
    (date(2008, 2, 29), date(2008, 8, 31), 181),
    (date(2008, 8, 31), date(2009, 2, 28), 178),
    (date(2009, 2, 28), date(2009, 8, 31), 182),
    (date(2009, 8, 31), date(2010, 2, 28), 178),
    (date(2010, 2, 28), date(2010, 8, 31), 182),
    (date(2010, 8, 31), date(2011, 2, 28), 178),
    (date(2011, 2, 28), date(2011, 8, 31), 182),
    (date(2011, 8, 31), date(2012, 2, 29), 179),
    # Example 3: miscellaneous calculations
    (date(2006, 1, 31), date(2006, 2, 28), 28),
    (date(2006, 1, 30), date(2006, 2, 28), 28),
    (date(2006, 2, 28), date(2006, 3, 3), 5),
    (date(2006, 2, 14), date(2006, 2, 28), 14),
    (date(2006, 9, 30), date(2006, 10, 31), 30),
    (date(2006, 10, 31), date(2006, 11, 28), 28),
    (date(2007, 8, 31), date(2008, 2, 28), 178),
    (date(2008, 2, 28), date(2008, 8, 28), 180),
    (date(2008, 2, 28), date(2008, 8, 30), 182),
    (date(2008, 2, 28), date(2008, 8, 31), 182),
    (date(2007, 2, 26), date(2008, 2, 28), 362),
    (date(2007, 2, 26), date(2008, 2, 29), 363),
    (date(2008, 2, 29), date(2009, 2, 28), 359),
    (date(2008, 2, 28), date(2008, 3, 30), 32),
    (date(2008, 2, 28), date(2008, 3, 31), 32),
]


@pytest.mark.parametrize(("start", "end", "days"), ISDA_30E_360_EXAMPLES)
def test_30e_360_day_counts_match_the_isda_eurobond_basis_examples(start: date, end: date, days: int) -> None:
    """[ISDA-30/360], tab 30E/360, examples 1-3."""
    assert days_30e_360(start, end) == days


def test_30e_360_counts_the_31st_as_the_30th_at_either_end() -> None:
    """[ISDA-30/360] example 3: 30 Sep -> 31 Oct 2006 is 30 days, and 31 Oct -> 28 Nov 2006 is 28 days."""
    assert days_30e_360(date(2006, 9, 30), date(2006, 10, 31)) == 30
    assert days_30e_360(date(2006, 10, 31), date(2006, 11, 28)) == 28


def test_30e_360_leaves_the_end_of_february_as_it_is() -> None:
    """[ISDA-30/360] example 3: 28 Feb 2008 -> 30 Mar and -> 31 Mar 2008 are both 32 days (28 is not made 30),
    and 31 Jan -> 28 Feb 2006 is 28 days."""
    assert days_30e_360(date(2008, 2, 28), date(2008, 3, 30)) == 32
    assert days_30e_360(date(2008, 2, 28), date(2008, 3, 31)) == 32
    assert days_30e_360(date(2006, 1, 31), date(2006, 2, 28)) == 28


def test_30e_360_accrued_interest_of_a_semiannual_minibond() -> None:
    """Checked by hand. EUR 1,000.00 nominal, 5.5 % semiannual 30E/360, coupons 31 Jan / 31 Jul (month ends).
    Settlement 15 Mar 2024: days360 = 30 * 2 + 15 - 30 = 45, fraction = 45 / 180 of a coupon.
    One bond: 100000 * 0.055 / 2 * 45 / 180 = 687.5 cents -> half-even 688. Ten bonds: 6875 cents exactly."""
    terms = bond(date(2024, 1, 31), date(2029, 7, 31), rate_ppm=55_000, day_count=DayCount.THIRTY_360, nominal=100_000)
    assert coupon_period(terms, date(2024, 3, 15)) == (date(2024, 1, 31), date(2024, 7, 31))
    assert accrual_fraction(terms, date(2024, 1, 31), date(2024, 3, 15)) == Fraction(45, 180)
    assert accrued_interest(terms, date(2024, 3, 15), 1) == 688
    assert accrued_interest(terms, date(2024, 3, 15), 10) == 6875


def test_30e_360_short_first_coupon_pays_its_days360() -> None:
    """Checked by hand. Issued 15 Oct 2024, 4 % annual 30E/360, coupons every 30 Jun: first period 15 Oct 2024 ->
    30 Jun 2025 = 360 * 1 + 30 * (6 - 10) + (30 - 15) = 255 days; coupon of EUR 100.00 = 10000 * 0.04 * 255 / 360
    = 283.33 -> 283 cents; the next, regular, coupon is 400 cents."""
    terms = bond(date(2024, 10, 15), date(2028, 6, 30), rate_ppm=40_000, frequency=1, day_count=DayCount.THIRTY_360)
    assert coupon_dates(terms)[:2] == (date(2025, 6, 30), date(2026, 6, 30))
    assert coupon_amount(terms, date(2025, 6, 30), 1) == 283
    assert coupon_amount(terms, date(2026, 6, 30), 1) == 400


def test_30e_360_accrued_can_exceed_a_coupon_in_a_period_starting_at_the_end_of_february() -> None:
    """Checked by hand. 4 % semiannual 30E/360 maturing 31 Aug 2030 (coupons on month ends 28/29 Feb and 31 Aug).
    Period 28 Feb 2029 -> 31 Aug 2029; on 30 Aug 2029 days360 = 180 + 30 - 28 = 182, so 182/180 of a coupon:
    10000 * 0.04 / 2 * 182 / 180 = 202.22 -> 202 cents, more than the 200-cent coupon. The per-unit bound covers it."""
    terms = bond(date(2025, 8, 31), date(2030, 8, 31), rate_ppm=40_000, day_count=DayCount.THIRTY_360)
    assert accrued_interest(terms, date(2029, 8, 30), 1) == 202
    assert coupon_amount(terms, date(2029, 8, 31), 1) == 200
    assert max_accrued_per_unit(terms) >= 202


# --- ACT/ACT (ICMA) --------------------------------------------------------------------------------------------------


def test_act_act_regular_period_across_29_february_accrues_exactly_one_coupon() -> None:
    """[ISDA-A/A] regular calculation period, semiannual, 1 Nov 2003 -> 1 May 2004 (182 days, with 29 Feb 2004):
    ICMA fraction 182 / (182 * 2) = 0.5 year, i.e. one full coupon."""
    terms = bond(date(2002, 11, 1), date(2008, 5, 1))
    assert accrual_fraction(terms, date(2003, 11, 1), date(2004, 5, 1)) == 1
    assert coupon_amount(terms, date(2004, 5, 1), 1) == 250  # EUR 100 * 5 % / 2


def test_act_act_counts_29_february_in_a_leap_year() -> None:
    """Checked by hand. Same bond; to 1 Mar 2004: 30 (Nov) + 31 + 31 + 29 (Feb 2004) = 121 of 182 days; a year
    earlier, to 1 Mar 2003: 120 of 181 days (Nov 2002 -> May 2003 has no 29 Feb).
    1000 bonds on 1 Mar 2004: 1000 * 250 * 121 / 182 = 166208.79 -> 166209 cents."""
    terms = bond(date(2002, 11, 1), date(2008, 5, 1))
    assert accrual_fraction(terms, date(2003, 11, 1), date(2004, 3, 1)) == Fraction(121, 182)
    assert accrual_fraction(terms, date(2002, 11, 1), date(2003, 3, 1)) == Fraction(120, 181)
    assert accrued_interest(terms, date(2004, 3, 1), 1000) == 166209


def test_act_act_short_first_coupon_is_a_fraction_of_its_quasi_coupon_period() -> None:
    """[ISDA-A/A] short first calculation period: issued 1 Feb 1999, first coupon 1 Jul 1999, annual coupons.
    Quasi-coupon period 1 Jul 1998 -> 1 Jul 1999 = 365 days; ICMA fraction 150 / (365 * 1) = 0.410958904110."""
    terms = bond(date(1999, 2, 1), date(2004, 7, 1), frequency=1)
    assert coupon_dates(terms)[0] == date(1999, 7, 1)
    assert coupon_period(terms, date(1999, 3, 1)) == (date(1999, 2, 1), date(1999, 7, 1))
    assert accrual_fraction(terms, date(1999, 2, 1), date(1999, 7, 1)) == Fraction(150, 365)
    # Second period [ISDA-A/A]: 1 Jul 1999 -> 1 Jul 2000 is one full coupon.
    assert accrual_fraction(terms, date(1999, 7, 1), date(2000, 7, 1)) == 1


def test_act_act_long_first_coupon_adds_the_quasi_coupon_periods() -> None:
    """[ISDA-A/A] long first calculation period: issued 15 Aug 2002, first coupon 15 Jul 2003, semiannual.
    Quasi-coupon periods 15 Jul 2002 -> 15 Jan 2003 (184 days) and 15 Jan 2003 -> 15 Jul 2003 (181 days):
    153 / (184 * 2) + 181 / (181 * 2) = 0.915760869565 year = 337/184 coupons. The next period, 15 Jul 2003 ->
    15 Jan 2004, is one coupon (0.5 year)."""
    terms = bond(date(2002, 8, 15), date(2007, 7, 15), first_coupon=date(2003, 7, 15))
    assert coupon_dates(terms)[:2] == (date(2003, 7, 15), date(2004, 1, 15))
    assert coupon_period(terms, date(2003, 2, 1)) == (date(2002, 8, 15), date(2003, 7, 15))
    assert accrual_fraction(terms, date(2002, 8, 15), date(2003, 7, 15)) == Fraction(337, 184)
    assert accrual_fraction(terms, date(2002, 8, 15), date(2003, 7, 15)) / 2 == pytest.approx(0.915760869565)
    assert accrual_fraction(terms, date(2003, 7, 15), date(2004, 1, 15)) == 1


def test_btp_short_first_coupon_matches_the_treasury() -> None:
    """[MEF-BTP-2024] BTP 2.50 % 1 Dec 2024, issued 1 Sep 2014: 91 days of the 183-day quasi period 1 Jun -> 1 Dec 2014.
    On EUR 1,000,000 (1e8 cents): 1e8 * 0.025 / 2 * 91 / 183 = 621584.70 -> 621585 cents = 0.621585 %."""
    terms = bond(date(2014, 9, 1), date(2024, 12, 1), rate_ppm=25_000, nominal=100_000_000)
    assert coupon_amount(terms, date(2014, 12, 1), 1) == 621_585


def test_btp_long_first_coupon_matches_the_treasury() -> None:
    """[MEF-BTP-2036] BTP 1.45 % 1 Mar 2036 from 18 Feb 2020, first coupon 1 Sep 2020 (long): 12 days of the quasi
    period 1 Sep 2019 -> 1 Mar 2020 (182 days) plus the whole period to 1 Sep 2020:
    0.725 % * (12/182 + 1) = 0.77280 %, i.e. 7728 cents on EUR 10,000."""
    terms = bond(date(2020, 2, 18), date(2036, 3, 1), rate_ppm=14_500, nominal=1_000_000, first_coupon=date(2020, 9, 1))
    assert coupon_amount(terms, date(2020, 9, 1), 1) == 7_728
    assert coupon_amount(terms, date(2021, 3, 1), 1) == 7_250


def test_accrued_in_a_long_first_period_is_cut_at_the_quasi_coupon_date() -> None:
    """Checked by hand. The BTP 1.45 % 2036 above on 1 Jun 2020: 12/182 (18 Feb -> 1 Mar 2020 of 1 Sep 2019 -> 1 Mar
    2020) + 92/184 (1 Mar -> 1 Jun of 1 Mar -> 1 Sep 2020) coupons; on EUR 10,000: 7250 * (12/182 + 1/2) = 4103.02
    -> 4103 cents. 1 Mar 2020 pays no coupon, so it does not restart the accrual."""
    terms = bond(date(2020, 2, 18), date(2036, 3, 1), rate_ppm=14_500, nominal=1_000_000, first_coupon=date(2020, 9, 1))
    assert accrual_fraction(terms, date(2020, 2, 18), date(2020, 6, 1)) == Fraction(12, 182) + Fraction(92, 184)
    assert accrued_interest(terms, date(2020, 6, 1), 1) == 4_103
    with pytest.raises(ValueError):
        coupon_amount(terms, date(2020, 3, 1), 1)


# --- schedule ---------------------------------------------------------------------------------------------------------


def test_schedule_rolls_back_from_maturity_to_the_first_date_after_issue() -> None:
    """Checked by hand: quarterly to 15 Mar 2026 from 1 Aug 2025 -> 15 Sep 2025, 15 Dec 2025, 15 Mar 2026."""
    terms = bond(date(2025, 8, 1), date(2026, 3, 15), frequency=4)
    assert coupon_dates(terms) == (date(2025, 9, 15), date(2025, 12, 15), date(2026, 3, 15))


def test_a_month_end_maturity_puts_every_coupon_on_a_month_end() -> None:
    """Checked by hand: semiannual maturing 28 Feb 2030 (a month end) -> 31 Aug and 28/29 Feb."""
    terms = bond(date(2027, 12, 1), date(2030, 2, 28))
    assert coupon_dates(terms) == (
        date(2028, 2, 29),
        date(2028, 8, 31),
        date(2029, 2, 28),
        date(2029, 8, 31),
        date(2030, 2, 28),
    )


def test_a_clamp_to_a_short_february_does_not_stick_to_later_dates() -> None:
    """Checked by hand: semiannual maturing 29 Aug 2030 (not a month end): February dates are clamped to 28/29, the
    August dates stay on the 29th."""
    terms = bond(date(2028, 1, 1), date(2030, 8, 29))
    assert coupon_dates(terms) == (
        date(2028, 2, 29),
        date(2028, 8, 29),
        date(2029, 2, 28),
        date(2029, 8, 29),
        date(2030, 2, 28),
        date(2030, 8, 29),
    )


def test_issued_on_the_cycle_the_first_period_is_regular() -> None:
    terms = bond(date(2024, 3, 1), date(2026, 3, 1), day_count=DayCount.THIRTY_360)
    assert coupon_dates(terms)[0] == date(2024, 9, 1)
    assert coupon_amount(terms, date(2024, 9, 1), 1) == 250


def test_a_first_coupon_date_off_the_regular_cycle_is_refused() -> None:
    # off the cycle, before the issue date, after the maturity date
    for first_coupon in (date(2024, 12, 15), date(2023, 12, 31), date(2030, 12, 31)):
        with pytest.raises(ValueError):
            coupon_dates(bond(date(2024, 1, 10), date(2030, 6, 30), first_coupon=first_coupon))


def test_coupon_period_on_a_coupon_date_starts_that_day() -> None:
    terms = bond(date(2024, 1, 10), date(2030, 6, 15))
    assert coupon_period(terms, date(2024, 6, 15)) == (date(2024, 6, 15), date(2024, 12, 15))
    assert coupon_period(terms, date(2024, 6, 14)) == (date(2024, 1, 10), date(2024, 6, 15))


def test_coupon_period_outside_the_life_of_the_bond_is_refused() -> None:
    terms = bond(date(2024, 1, 10), date(2030, 6, 30))
    with pytest.raises(ValueError):
        coupon_period(terms, date(2024, 1, 9))
    with pytest.raises(ValueError):
        coupon_period(terms, date(2030, 6, 30))


# --- accrued interest, coupons, redemption ----------------------------------------------------------------------------


def test_settlement_on_a_coupon_date_accrues_nothing() -> None:
    """Checked by hand: the day after, 1000 bonds of EUR 100 at 5 % 30E/360 accrue 1000 * 10000 * 0.05 / 360
    = 1388.89 -> 1389 cents."""
    terms = bond(date(2024, 1, 10), date(2030, 6, 15), day_count=DayCount.THIRTY_360)
    assert accrued_interest(terms, date(2025, 12, 15), 1_000) == 0
    assert accrued_interest(terms, date(2025, 12, 16), 1_000) == 1_389


def test_nothing_accrues_before_or_on_the_issue_date_nor_from_maturity() -> None:
    terms = bond(date(2024, 1, 10), date(2030, 6, 30))
    for on in (date(2023, 1, 1), date(2024, 1, 10), date(2030, 6, 30), date(2031, 1, 1)):
        assert accrued_interest(terms, on, 1_000) == 0
    assert accrued_interest(terms, date(2024, 1, 11), 1_000) > 0


def test_accrued_at_exactly_half_a_cent_rounds_to_even_once_on_the_position() -> None:
    """Checked by hand. EUR 1.00 nominal (100 cents), 5 % annual 30E/360, issued 1 Jan 2024. On 1 Jul 2024
    (180 days) one bond accrues 100 * 0.05 * 180/360 = 2.5 cents -> 2 (even); three bonds accrue 7.5 -> 8 (even),
    not 3 * 2 = 6."""
    terms = bond(date(2024, 1, 1), date(2027, 1, 1), frequency=1, day_count=DayCount.THIRTY_360, nominal=100)
    assert accrued_interest(terms, date(2024, 7, 1), 1) == 2
    assert accrued_interest(terms, date(2024, 7, 1), 3) == 8


def test_coupon_is_rounded_once_on_the_whole_position() -> None:
    """Checked by hand: EUR 100 at 3.125 % quarterly pays 10000 * 0.03125 / 4 = 78.125 cents per bond;
    8 bonds get exactly 625 cents, 1 bond gets 78, and 4 bonds 312.5 -> 312."""
    terms = bond(date(2024, 3, 15), date(2027, 3, 15), rate_ppm=31_250, frequency=4)
    assert coupon_amount(terms, date(2024, 6, 15), 8) == 625
    assert coupon_amount(terms, date(2024, 6, 15), 1) == 78
    assert coupon_amount(terms, date(2024, 6, 15), 4) == 312


def test_redemption_pays_nominal_times_the_redemption_price() -> None:
    at_par = bond(date(2024, 1, 1), date(2027, 1, 1))
    above_par = bond(date(2024, 1, 1), date(2027, 1, 1), redemption_ppm=1_015_000)
    assert redemption_amount(at_par, 3) == 30_000
    assert redemption_amount(above_par, 3) == 30_450


def test_negative_units_are_refused() -> None:
    terms = bond(date(2024, 1, 1), date(2027, 1, 1))
    with pytest.raises(ValueError):
        accrued_interest(terms, date(2024, 3, 1), -1)
    with pytest.raises(ValueError):
        coupon_amount(terms, date(2024, 7, 1), -1)
    with pytest.raises(ValueError):
        redemption_amount(terms, -1)


def test_max_accrued_covers_a_long_first_coupon() -> None:
    """Checked by hand: the ISDA long first period above accrues up to 337/184 coupons less a day:
    on 14 Jul 2003, 153/184 + 180/181 coupons = 250 * 1.82597... = 456.49 cents; the bound is 457."""
    terms = bond(date(2002, 8, 15), date(2007, 7, 15), first_coupon=date(2003, 7, 15))
    assert accrued_interest(terms, date(2003, 7, 14), 1) == 456
    assert max_accrued_per_unit(terms) == 457


# --- properties ------------------------------------------------------------------------------------------------------


@st.composite
def bond_terms(draw: st.DrawFn, day_counts: tuple[DayCount, ...] = tuple(DayCount)) -> BondTerms:
    issue = draw(st.dates(date(2000, 1, 1), date(2040, 12, 31)))
    maturity = issue + timedelta(days=draw(st.integers(1, 12 * 366)))
    if draw(st.booleans()):  # month-end maturities exercise the end-of-month rule
        next_month = date(maturity.year + maturity.month // 12, maturity.month % 12 + 1, 1)
        maturity = max(next_month - timedelta(days=1), issue + timedelta(days=1))
    terms = bond(
        issue,
        maturity,
        rate_ppm=draw(st.integers(0, 150_000)),
        frequency=draw(st.sampled_from((1, 2, 4, 12))),
        day_count=draw(st.sampled_from(day_counts)),
        nominal=draw(st.integers(1, 10**8)),
    )
    dates = coupon_dates(terms)
    if len(dates) > 1 and draw(st.booleans()):  # a long first coupon, skipping up to three cycle dates
        terms = replace(terms, first_coupon_date=dates[draw(st.integers(1, min(3, len(dates) - 1)))])
    return terms


def settlement_dates(terms: BondTerms) -> st.SearchStrategy[date]:
    return st.dates(terms.issue_date - timedelta(days=40), terms.maturity_date + timedelta(days=40))


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(st.data())
def test_accrued_never_decreases_within_a_period(data: st.DataObject) -> None:
    terms = data.draw(bond_terms())
    on = data.draw(st.dates(terms.issue_date, terms.maturity_date - timedelta(days=1)))
    next_day = on + timedelta(days=1)
    assume(next_day < coupon_period(terms, on)[1])
    units = data.draw(st.integers(0, 10**6))
    assert accrued_interest(terms, on, units) <= accrued_interest(terms, next_day, units)


@PROPERTY_SETTINGS
@given(st.data())
def test_accrued_on_a_position_is_the_exact_amount_rounded_once(data: st.DataObject) -> None:
    terms = data.draw(bond_terms())
    assume(terms.maturity_date - terms.issue_date >= timedelta(days=2))
    on = data.draw(st.dates(terms.issue_date + timedelta(days=1), terms.maturity_date - timedelta(days=1)))
    units = data.draw(st.integers(0, 10**6))
    start, _ = coupon_period(terms, on)
    exact_per_unit = Fraction(terms.nominal_minor * terms.coupon_rate_ppm, 1_000_000 * terms.coupon_frequency)
    exact = units * exact_per_unit * accrual_fraction(terms, start, on)
    assert accrued_interest(terms, on, units) == round_half_even(exact.numerator, exact.denominator)


@PROPERTY_SETTINGS
@given(st.data())
def test_accrued_never_exceeds_the_per_unit_bound(data: st.DataObject) -> None:
    terms = data.draw(bond_terms())
    on = data.draw(settlement_dates(terms))
    units = data.draw(st.integers(0, 10**6))
    assert 0 <= accrued_interest(terms, on, units) <= units * max_accrued_per_unit(terms)


@PROPERTY_SETTINGS
@given(bond_terms())
def test_the_per_unit_bound_is_reached_within_a_cent(terms: BondTerms) -> None:
    """The bound is tight: some day before a coupon date accrues it, up to the rounding of one unit."""
    dates = coupon_dates(terms)
    starts = (terms.issue_date, *dates[:-1])
    peak = max(accrued_interest(terms, max(start, end - timedelta(days=1)), 1) for start, end in zip(starts, dates))
    assert max_accrued_per_unit(terms) - peak in (0, 1)


@PROPERTY_SETTINGS
@given(bond_terms(day_counts=(DayCount.ACT_ACT,)))
def test_act_act_regular_periods_accrue_less_than_one_coupon(terms: BondTerms) -> None:
    dates = coupon_dates(terms)
    for start, end in zip(dates, dates[1:]):
        assert accrual_fraction(terms, start, end - timedelta(days=1)) < 1
        assert accrual_fraction(terms, start, end) == 1
