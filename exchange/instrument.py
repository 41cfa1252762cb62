"""Listed instruments as the matching core sees them: integer grids, bands, states and bond terms.

Everything here is in integer units. The edge (`exchange.units`) turns the Decimal tick size, lot size and
nominal of a listing into these integers once, at listing time; the core never sees a Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class InstrumentKind(StrEnum):
    EQUITY = "equity"
    BOND = "bond"


class TradingState(StrEnum):
    """Where an instrument is in its trading day or lifecycle.

    `PRE_OPEN` and the two auction states are call phases: orders are collected and nothing matches until the
    uncrossing. `HALTED` lets participants cancel but not trade; `SUSPENDED` and `DELISTED` are operator decisions about
    the listing itself; `CLOSED` is the end of the trading day.
    """

    PRE_OPEN = "pre_open"
    OPENING_AUCTION = "opening_auction"
    OPEN = "open"
    CLOSING_AUCTION = "closing_auction"
    VOLATILITY_AUCTION = "volatility_auction"
    HALTED = "halted"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    DELISTED = "delisted"


# Orders are accepted (and rest) in these states; they only match continuously in OPEN.
ORDER_ENTRY_STATES = frozenset(
    {
        TradingState.PRE_OPEN,
        TradingState.OPENING_AUCTION,
        TradingState.OPEN,
        TradingState.CLOSING_AUCTION,
        TradingState.VOLATILITY_AUCTION,
    }
)
CALL_STATES = frozenset(
    {
        TradingState.PRE_OPEN,
        TradingState.OPENING_AUCTION,
        TradingState.CLOSING_AUCTION,
        TradingState.VOLATILITY_AUCTION,
    }
)


class InvestorCategory(StrEnum):
    """An investor's classification under MiFID II: professional clients are exempt from the retail protections."""

    RETAIL = "retail"
    PROFESSIONAL = "professional"


class DayCount(StrEnum):
    """Day-count conventions for bond interest (ICMA Rule 251 names)."""

    THIRTY_360 = "30/360"
    ACT_ACT = "ACT/ACT"


@dataclass(frozen=True, slots=True)
class BondTerms:
    """The cash-flow terms of a bond, in integers.

    `nominal_minor` is the face value of ONE unit in the currency's minor units (EUR 100.00 -> 10000).
    `coupon_rate_ppm` is the annual coupon rate in parts per million (3.125 % -> 31250).
    `coupon_frequency` is coupons per year (1, 2, 4 or 12).
    `redemption_ppm` is the redemption price in ppm of nominal (100 % -> 1_000_000).
    `first_coupon_date`, when set, fixes an irregular (long) first coupon; otherwise the schedule rolls back from
    maturity and the first period is regular or short.
    """

    nominal_minor: int
    coupon_rate_ppm: int
    coupon_frequency: int
    day_count: DayCount
    issue_date: date
    maturity_date: date
    redemption_ppm: int = 1_000_000
    # A long first coupon: the first payment date when it is more than one period after the issue date.
    first_coupon_date: date | None = None

    def __post_init__(self) -> None:
        assert self.nominal_minor > 0
        assert self.coupon_rate_ppm >= 0
        assert self.coupon_frequency in (1, 2, 4, 12)
        assert self.issue_date < self.maturity_date
        assert self.redemption_ppm > 0


@dataclass(slots=True)
class Instrument:
    """A listed equity or bond, as the engine needs it.

    Prices are integer ticks. For an equity one tick is `tick_size` of the currency; for a bond one tick is `tick_size`
    percent of par. `tick_value` is the cash value, in minor units, of a one-tick price on ONE LOT: the listing rules
    require it to be a whole number, so that every notional is an exact integer (price_ticks * lots * tick_value) and
    holds, fills and releases add up with no rounding at all. Quantities are integer units (shares, bond pieces) and
    must be a multiple of `lot_size`.
    """

    symbol: str
    kind: InstrumentKind
    currency: str
    currency_decimals: int
    tick_size: str  # the Decimal tick as a canonical string, for display and the edge only
    tick_value: int  # minor units per tick per lot
    lot_size: int
    min_quantity: int
    max_quantity: int
    band_bps: int  # price band, in basis points either side of the reference price
    reference_price: int  # ticks; the last trade or auction price, or the listing price
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0
    state: TradingState = TradingState.OPEN
    issuer: str | None = None  # participant id of the issuer
    bond: BondTerms | None = None
    # Volatility interruption: a trade further than this from the reference price moves the book to an auction.
    volatility_bps: int = 0  # 0 = no volatility interruption
    volatility_auction_us: int = 0
    auction_only: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    # Investor protection (exchange.investors): which categories may buy at all, and how much of this issuer's
    # securities a retail investor may hold (an absolute amount in minor units and/or basis points of the investor's
    # declared assets; when both are set the higher applies). None: no cap of that kind.
    retail_may_buy: bool = True
    professional_may_buy: bool = True
    retail_cap_minor: int | None = None
    retail_cap_bps_of_assets: int | None = None
    # Impact-linked bonds (exchange.distributions): the coupon rate steps down by this when the latest assured impact
    # report says the target was met, and up by this when it was missed. Both 0: an ordinary bond.
    impact_step_down_ppm: int = 0
    impact_step_up_ppm: int = 0

    def __post_init__(self) -> None:
        assert self.tick_value >= 1, "tick x lot must be worth a whole number of minor units"
        assert self.lot_size >= 1
        assert 1 <= self.min_quantity <= self.max_quantity
        assert self.min_quantity % self.lot_size == 0 and self.max_quantity % self.lot_size == 0
        assert 0 <= self.band_bps <= 100_000
        assert self.reference_price >= 1
        assert 0 <= self.maker_fee_bps <= 10_000 and 0 <= self.taker_fee_bps <= 10_000
        assert (self.kind is InstrumentKind.BOND) == (self.bond is not None)
        assert self.retail_may_buy or self.professional_may_buy, "somebody must be allowed to buy"
        assert self.retail_cap_minor is None or self.retail_cap_minor >= 0
        assert self.retail_cap_bps_of_assets is None or 0 <= self.retail_cap_bps_of_assets <= 10_000
        assert self.impact_step_down_ppm >= 0 and self.impact_step_up_ppm >= 0
        assert self.bond is not None or not (self.impact_step_down_ppm or self.impact_step_up_ppm), "only bonds"

    @property
    def impact_linked(self) -> bool:
        return bool(self.impact_step_down_ppm or self.impact_step_up_ppm)

    def band(self) -> tuple[int, int]:
        """Lowest and highest acceptable price in ticks, around the current reference price.

        The band is rounded inwards (lower up, upper down) so it never admits a price beyond the percentage.
        A band of 0 means no band: any positive price is acceptable.
        """
        ref = self.reference_price
        if self.band_bps == 0:
            return 1, 2**62
        lower = -((-ref * (10_000 - self.band_bps)) // 10_000)
        upper = (ref * (10_000 + self.band_bps)) // 10_000
        return max(lower, 1), max(upper, 1)

    def notional(self, price: int, quantity: int) -> int:
        """Clean cash value, in minor units, of `quantity` units at `price` ticks. Exact by construction."""
        return price * (quantity // self.lot_size) * self.tick_value
