"""Investor profiles and the retail protections checked before a buy order or an offer subscription.

Profiles are engine state set by journalled commands, so replay rebuilds them and every check is deterministic:
`SetInvestorProfile` (category retail/professional and the declared assets, set by the operator at onboarding) and
`AcknowledgeRiskWarning` (by the investor, once).

Decisions:
- An account WITHOUT a profile is unrestricted. Issuers, the venue's own market makers and other non-investor
  participants have none; every investor is given one at onboarding. (The core cannot see the participants table, so
  the alternative, "no profile = retail", would lock out every issuer from buying back its own securities.)
- A retail account must have acknowledged the risk warning before its FIRST order, buy or sell, and before any
  subscription: RISK_WARNING_REQUIRED. Professional accounts need no acknowledgment.
- A buy or a subscription is refused with CATEGORY_NOT_ELIGIBLE when the instrument is closed to the account's category
  (`Instrument.retail_may_buy` / `professional_may_buy`; e.g. Italian minibonds are reserved to professionals).
  Sells are never restricted: an investor may always get out.
- Retail cap (RETAIL_CAP_EXCEEDED), checked for a retail account's buys and subscriptions: its exposure to the issuer
  after the order must not exceed the cap of the instrument being bought. The cap is `retail_cap_minor` (absolute)
  and/or `retail_cap_bps_of_assets` of the declared assets; when both are set the HIGHER applies, as in the EU
  crowdfunding regulation's limit for non-sophisticated investors (Reg. (EU) 2020/1503 art. 21(7): the higher of
  EUR 1 000 or 5 % of net worth). A percentage cap with no declared assets allows nothing.
  Exposure = over every instrument of the same issuer in the cap's currency: units held (available + held) valued at
  the instrument's reference price, plus the limit notional of the account's open buy orders, plus its pending offer
  subscriptions; plus the new order's notional at its limit (a market buy: at the band's edge, its worst price).
  Clean notional only: fees and accrued interest are not exposure to the issuer.
- Checks run in this order: warning, eligibility, cap; all before anything changes.
- Raising a resting buy (`check_amend`) is checked like a new buy for the notional it adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from exchange import engine as core
from exchange.accounts import VENUE
from exchange.commands import AcknowledgeRiskWarning, PlaceOrder, SetInvestorProfile
from exchange.events import InvestorProfileSet, RiskWarningAcknowledged
from exchange.instrument import Instrument, InvestorCategory
from exchange.orders import Order, Side
from exchange.rejects import RejectReason

if TYPE_CHECKING:
    from exchange.engine import Engine

MAX_DECLARED_ASSETS = 2**62


@dataclass(frozen=True, slots=True)
class InvestorProfile:
    category: InvestorCategory
    declared_assets_minor: int | None = None


class InvestorProfiles:
    """Who is retail or professional, their declared assets, and who acknowledged the risk warning."""

    __slots__ = ("profiles", "acknowledged")

    def __init__(self) -> None:
        self.profiles: dict[str, InvestorProfile] = {}
        self.acknowledged: set[str] = set()

    def profile(self, account: str) -> InvestorProfile | None:
        return self.profiles.get(account)

    def has_acknowledged(self, account: str) -> bool:
        return account in self.acknowledged


# ---------------------------------------------------------------- handlers


def set_profile(engine: Engine, cmd: SetInvestorProfile) -> None:
    if cmd.account == VENUE or not cmd.account:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    assets = cmd.declared_assets_minor
    if assets is not None and not 0 <= assets <= MAX_DECLARED_ASSETS:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    try:
        category = InvestorCategory(cmd.category)
    except ValueError:
        raise core.Rejected(RejectReason.INVALID_AMOUNT) from None
    profile = InvestorProfile(category, assets)
    book = engine.investors
    if book.profiles.get(cmd.account) == profile:
        raise core.Rejected(RejectReason.NO_CHANGE)
    book.profiles[cmd.account] = profile
    engine._events.append(InvestorProfileSet(engine._seq, cmd.account, profile.category, assets))


def acknowledge_risk_warning(engine: Engine, cmd: AcknowledgeRiskWarning) -> None:
    book = engine.investors
    if cmd.account == VENUE or not cmd.account:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    if cmd.account in book.acknowledged:
        raise core.Rejected(RejectReason.NO_CHANGE)  # once is enough; the first acknowledgment stays on record
    book.acknowledged.add(cmd.account)
    engine._events.append(RiskWarningAcknowledged(engine._seq, cmd.account))


# ---------------------------------------------------------------- the checks


def check_order(engine: Engine, cmd: PlaceOrder, instrument: Instrument, price: int) -> None:
    """The protections for a new order at limit `price` (ticks); raises `Rejected` and changes nothing.

    Called by `Engine._place` after its own validation. An account without a profile returns at once.
    """
    profile = engine.investors.profiles.get(cmd.account)
    if profile is None:
        return
    if profile.category is InvestorCategory.PROFESSIONAL:
        if cmd.side is Side.BUY and not instrument.professional_may_buy:
            raise core.Rejected(RejectReason.CATEGORY_NOT_ELIGIBLE)
        return
    if cmd.account not in engine.investors.acknowledged:
        raise core.Rejected(RejectReason.RISK_WARNING_REQUIRED)
    if cmd.side is Side.BUY:
        _check_buy(engine, cmd.account, profile, instrument, instrument.notional(price, cmd.quantity))


def check_amend(engine: Engine, order: Order, instrument: Instrument, price: int, quantity: int) -> None:
    """The protections for raising a resting buy to `price` and total `quantity` (what `_amend` would set).

    Only the increase of the order's notional is new exposure; lowering an order is always allowed.
    """
    profile = engine.investors.profiles.get(order.account)
    if profile is None or order.side is not Side.BUY:
        return
    remaining = quantity - (order.quantity - order.remaining)
    increase = instrument.notional(price, remaining) - instrument.notional(order.price, order.remaining)
    if increase <= 0:
        return
    if profile.category is InvestorCategory.RETAIL and order.account not in engine.investors.acknowledged:
        raise core.Rejected(RejectReason.RISK_WARNING_REQUIRED, order.order_id)
    _check_buy(engine, order.account, profile, instrument, increase, order.order_id)


def check_subscription(engine: Engine, account: str, instrument: Instrument, amount: int) -> None:
    """The protections for an offer subscription of `amount` minor units (it is a buy)."""
    profile = engine.investors.profiles.get(account)
    if profile is None:
        return
    if profile.category is InvestorCategory.RETAIL and account not in engine.investors.acknowledged:
        raise core.Rejected(RejectReason.RISK_WARNING_REQUIRED)
    _check_buy(engine, account, profile, instrument, amount)


def _check_buy(
    engine: Engine,
    account: str,
    profile: InvestorProfile,
    instrument: Instrument,
    notional: int,
    order_id: int | None = None,
) -> None:
    if profile.category is InvestorCategory.RETAIL:
        if not instrument.retail_may_buy:
            raise core.Rejected(RejectReason.CATEGORY_NOT_ELIGIBLE, order_id)
        cap = retail_cap(instrument, profile)
        if cap is not None and issuer_exposure(engine, account, instrument) + notional > cap:
            raise core.Rejected(RejectReason.RETAIL_CAP_EXCEEDED, order_id)
    elif not instrument.professional_may_buy:
        raise core.Rejected(RejectReason.CATEGORY_NOT_ELIGIBLE, order_id)


def retail_cap(instrument: Instrument, profile: InvestorProfile) -> int | None:
    """The most a retail investor may have invested in the instrument's issuer, in minor units (None: no cap)."""
    caps = []
    if instrument.retail_cap_minor is not None:
        caps.append(instrument.retail_cap_minor)
    if instrument.retail_cap_bps_of_assets is not None:
        assets = profile.declared_assets_minor or 0
        caps.append(assets * instrument.retail_cap_bps_of_assets // 10_000)
    return max(caps) if caps else None


def issuer_exposure(engine: Engine, account: str, instrument: Instrument) -> int:
    """What `account` has invested in the issuer of `instrument` now, in minor units of its currency (see above)."""
    issuer = instrument.issuer
    currency = instrument.currency
    same_issuer = {
        other.symbol: other
        for other in engine.instruments.values()
        if other.currency == currency
        and (other.symbol == instrument.symbol or (issuer is not None and other.issuer == issuer))
    }
    total = 0
    for symbol, other in same_issuer.items():
        available, held = engine.balances.peek(account, symbol)
        if available or held:
            total += other.notional(other.reference_price, available + held)
    for order in engine.open_by_account.get(account, {}):
        if order.side is Side.BUY and order.symbol in same_issuer:
            total += same_issuer[order.symbol].notional(order.price, order.remaining)
    return total + engine.offers.pending_amount(account, same_issuer.keys())
