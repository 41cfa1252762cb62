"""Builders and invariants for the tests of primary offers, distributions and retail protection.

`CorporateMarket` is the tests' `Market` with shorthands for the corporate commands and a clock that can be moved to
a calendar date. `conserved` and `holds_explained` are the engine-side trial balance: every unit and cent in the
accounts is one that entered (deposits, issuance) and has not left (withdrawals, redemptions), and every held balance
is reserved by an open order, an open offer or a pending subscription.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from exchange.commands import (
    AcknowledgeRiskWarning,
    CloseOffer,
    OpenOffer,
    PayCoupon,
    PayDividend,
    RecordImpactOutcome,
    Redeem,
    SetInvestorProfile,
    Subscribe,
)
from exchange.engine import Engine
from exchange.events import Event
from exchange.instrument import Instrument, InvestorCategory
from exchange.offers import OfferStatus
from tests.exchange.factories import Market, bond, equity

ISSUER = "coop"
RETAIL = InvestorCategory.RETAIL
PROFESSIONAL = InvestorCategory.PROFESSIONAL


def social_equity(symbol: str = "COOP", *, lot_size: int = 1, **changes: object) -> Instrument:
    """An equity of the cooperative `coop`: one tick is one cent per share, reference price EUR 10.00, 20 % band."""
    listed = equity(
        symbol, issuer=ISSUER, reference_price=1_000, band_bps=2_000, lot_size=lot_size, tick_value=lot_size
    )
    return replace(listed, **changes)


def social_bond(symbol: str = "GREEN27", **changes: object) -> Instrument:
    """The factories' 4 % annual 30E/360 bond (EUR 100 nominal, 2023-01-15 to 2027-01-15), issued by `coop`."""
    return replace(bond(symbol), **{"issuer": ISSUER, **changes})


def us_at(day: date, hour: int = 12) -> int:
    """Microseconds since the epoch at `hour` UTC on `day`."""
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()) * 1_000_000


class CorporateMarket(Market):
    def move_to(self, day: date) -> None:
        target = us_at(day)
        assert target >= self.now_us, "the exchange clock never goes back"
        self.now_us = target

    def profile(self, account: str, category: InvestorCategory, assets: int | None = None) -> list[Event]:
        return self.apply(SetInvestorProfile(account, category, assets))

    def acknowledge(self, account: str) -> list[Event]:
        return self.apply(AcknowledgeRiskWarning(account))

    def open_offer(
        self,
        offer_id: str = "IPO-1",
        symbol: str = "COOP",
        *,
        issuer: str = ISSUER,
        price: int = 1_000,
        quantity: int = 1_000,
        min_application: int = 1,
        min_subscription: int = 1,
        closes_in_us: int = 3_600_000_000,
    ) -> list[Event]:
        return self.apply(
            OpenOffer(
                offer_id, symbol, issuer, price, quantity, min_application, min_subscription, self.now_us + closes_in_us
            )
        )

    def subscribe(self, account: str, quantity: int, offer_id: str = "IPO-1") -> list[Event]:
        return self.apply(Subscribe(account, offer_id, quantity))

    def close_offer(self, offer_id: str = "IPO-1", *, after_us: int = 3_600_000_000) -> list[Event]:
        self.advance(after_us)
        return self.apply(CloseOffer(offer_id))

    def pay_coupon(self, payment_date: date, symbol: str = "GREEN27") -> list[Event]:
        return self.apply(PayCoupon(symbol, payment_date))

    def pay_dividend(self, per_share_micro: int, symbol: str = "COOP") -> list[Event]:
        return self.apply(PayDividend(symbol, per_share_micro))

    def redeem(self, symbol: str = "GREEN27") -> list[Event]:
        return self.apply(Redeem(symbol))

    def impact(self, target_met: bool, symbol: str = "GREEN27", report: str = "") -> list[Event]:
        return self.apply(RecordImpactOutcome(symbol, target_met, report))


def conserved(engine: Engine) -> bool:
    """Every asset's total over all accounts equals what entered less what left (the engine's supply)."""
    totals = {asset: amount for asset, amount in engine.balances.totals().items() if amount}
    supply = {asset: amount for asset, amount in engine.supply.items() if amount}
    return totals == supply


def holds_explained(engine: Engine) -> bool:
    """Every held balance is exactly what open orders, open offers and pending subscriptions reserve."""
    required = dict(engine.required_holds())
    for offer in engine.offers.offers.values():
        if offer.status is OfferStatus.OPEN:
            key = (offer.issuer, offer.symbol)
            required[key] = required.get(key, 0) + offer.quantity
            for subscription in offer.subscriptions:
                key = (subscription.account, offer.currency)
                required[key] = required.get(key, 0) + subscription.amount
    held = {key: balance.held for key, balance in engine.balances.items() if balance.held}
    return held == {key: amount for key, amount in required.items() if amount}


def snapshot(engine: Engine) -> tuple:
    """Everything a refused command must leave as it was."""
    return (
        [(key, b.available, b.held) for key, b in engine.balances.items()],
        {s: (i.state, i.reference_price, i.bond) for s, i in engine.instruments.items()},
        sorted((o.order_id, o.remaining) for o in engine.orders.values()),
        dict(engine.supply),
        {
            offer_id: (o.status, o.subscribed, o.allocated, len(o.subscriptions))
            for offer_id, o in engine.offers.offers.items()
        },
        dict(engine.offers.open_by_symbol),
        {s: set(d) for s, d in engine.distributions.paid_coupons.items()},
        set(engine.distributions.redeemed),
        dict(engine.investors.profiles),
        set(engine.investors.acknowledged),
    )
