"""Exact integer rounding for money: one division, one rounding, no floats.

Every cash amount the core derives from a rate (accrued interest, coupons, fees) is an exact rational number
`numerator / denominator` of minor units. It is rounded exactly once, at the end, with this helper.
"""

from __future__ import annotations


def round_half_even(numerator: int, denominator: int) -> int:
    """`numerator / denominator` rounded to the nearest integer, ties to the even neighbour (banker's rounding).

    Exact for any size of integers and symmetric around zero: `round_half_even(-n, d) == -round_half_even(n, d)`,
    so a credit and its reversing debit round to the same magnitude. Half-even rather than half-up because over many
    postings its rounding errors cancel instead of drifting one way.
    """
    if denominator == 0:
        raise ZeroDivisionError("round_half_even: denominator is zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient = numerator // denominator  # floor division: 0 <= remainder < denominator
    remainder = numerator - quotient * denominator  # (not divmod: compiled, these are native integer operations)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient
