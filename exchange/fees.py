"""Trading fees and the holds that cover them, in integers.

A fee is `notional * bps / 10_000`, rounded half-even to the minor unit, per trade and per side (maker or taker rate).
A buy order holds, per lot, the fee bound `ceil(limit_notional_per_lot * max_bps / 10_000)`; because
half-even rounding never exceeds the ceiling and the ceiling of a sum never exceeds the sum of ceilings, the fees of
any split of the order into fills at or below its limit never exceed what it holds.
"""

from __future__ import annotations

from exchange.rounding import round_half_even

BPS = 10_000


def fee(notional: int, bps: int) -> int:
    """The fee on `notional` minor units at `bps` basis points, rounded half-even to the minor unit."""
    assert notional >= 0 and bps >= 0
    return round_half_even(notional * bps, BPS)


def fee_bound_per_lot(notional_per_lot: int, bps: int) -> int:
    """An upper bound of the fee on one lot traded at or below `notional_per_lot` (the ceiling)."""
    assert notional_per_lot >= 0 and bps >= 0
    return -((-notional_per_lot * bps) // BPS)
