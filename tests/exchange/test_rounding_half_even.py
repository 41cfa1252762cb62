"""Specification of `exchange.rounding.round_half_even`: exact integer division, ties to the even neighbour."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.rounding import round_half_even


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(5, 2, 2), (7, 2, 4), (1, 2, 0), (3, 2, 2), (-5, 2, -2), (-7, 2, -4), (-1, 2, 0)],
)
def test_exact_ties_go_to_the_even_neighbour(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"), [(249, 100, 2), (251, 100, 3), (-249, 100, -2), (-251, 100, -3)]
)
def test_non_ties_go_to_the_nearest_integer(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected


def test_a_negative_denominator_is_the_same_as_negating_the_numerator() -> None:
    assert round_half_even(5, -2) == round_half_even(-5, 2) == -2


def test_a_zero_denominator_is_refused() -> None:
    with pytest.raises(ZeroDivisionError):
        round_half_even(1, 0)


def test_integers_far_beyond_float_precision_stay_exact() -> None:
    big = 10**40 + 1
    assert round_half_even(2 * big + 1, 2) == big + 1  # big + 1/2, big odd -> up to the even big + 1


@settings(max_examples=500, deadline=None)
@given(st.integers(-(10**30), 10**30), st.integers(1, 10**15))
def test_agrees_with_python_round_of_the_exact_fraction(numerator: int, denominator: int) -> None:
    # Python's round() on a Fraction is exact and rounds half to even.
    assert round_half_even(numerator, denominator) == round(Fraction(numerator, denominator))


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**30), 10**30), st.integers(1, 10**15))
def test_is_symmetric_around_zero(numerator: int, denominator: int) -> None:
    assert round_half_even(-numerator, denominator) == -round_half_even(numerator, denominator)
