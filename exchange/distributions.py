"""Cash flows from issuers to holders: bond coupons, equity dividends, bond redemption, impact-linked coupon steps.

Record date. The holders are the accounts holding units (available + held: units in open sell orders count) at the
sequence number of the paying command itself, the record seq; the journal orders it against every trade, so nothing
is ambiguous. The issuer's own units (its treasury) receive nothing: paying itself would move no money.

Amounts. Each holder's amount is computed on its whole position and rounded once, half-even (`exchange.daycount`,
`exchange.rounding`); the issuer pays exactly the sum of the holders' amounts, so no cent is created or lost. If the
issuer's AVAILABLE cash (not cash held by its open orders) is below that sum the command is refused with
ISSUER_LACKS_CASH and nothing at all is paid. Every payment is an event carrying its amount (see `ledger.corporate`).

- `PayCoupon(symbol, payment_date)`: a bond's coupon, `coupon_amount(terms, payment_date, units)` per holder. Refused
  unless `payment_date` is a coupon date of the schedule (NO_COUPON_ON_DATE), has come (COUPON_NOT_DUE: the trade
  date of the command is on or after it) and was not paid before (COUPON_ALREADY_PAID).
- `PayDividend(symbol, amount_per_share_micro)`: an equity's dividend, in millionths of the currency UNIT per share
  (EUR 0.125 -> 125_000): each holder gets units x amount, half-even to the minor unit. Dividends may repeat.
- `Redeem(symbol)`: at or after maturity (NOT_MATURED), once the final coupon has been paid (FINAL_COUPON_UNPAID:
  otherwise nobody could ever receive it), with no offer open. The bond is delisted first, which cancels its open
  orders and releases their holds; then every holder's units are retired (ledger: holder -> the venue's issuance
  account; the exchange's supply of the bond shrinks) and `redemption_amount(terms, units)` is paid by the issuer. The
  issuer's own units are retired for nothing.
- `RecordImpactOutcome(symbol, target_met, report)`: an impact-linked bond (`Instrument.impact_step_down_ppm` /
  `impact_step_up_ppm`, listed terms) sets its coupon rate from the latest assured impact report: the LISTED rate minus
  the step-down when the target was met (never below zero), plus the step-up when it was missed; each outcome is
  relative to the listed rate, never cumulative. The new rate is the rate of the coupon period in progress and of the
  following ones, until the next outcome: coupons paid afterwards and the accrued interest on trades use it, so a
  buyer pays accrued interest at the rate the coupon will be paid. When the rate changes every open order in the bond
  is cancelled (reason `operator`), as venues delete orders on a corporate event: their prices and the buy holds
  (which cover the accrued interest at the old rate) were set for the old terms.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING

from exchange import engine as core
from exchange.commands import PayCoupon, PayDividend, RecordImpactOutcome, Redeem
from exchange.daycount import coupon_amount, coupon_dates, redemption_amount
from exchange.events import (
    BondRedeemed,
    CouponPaid,
    CouponRateChanged,
    DistributionCompleted,
    DistributionKind,
    DividendPaid,
)
from exchange.instrument import BondTerms, Instrument, InstrumentKind, TradingState
from exchange.orders import CancelReason
from exchange.rejects import RejectReason
from exchange.rounding import round_half_even

if TYPE_CHECKING:
    from exchange.engine import Engine

MICRO = 1_000_000


class DistributionBook:
    """What was paid already: coupon dates per bond, redeemed bonds, and the listed rate of impact-linked bonds."""

    __slots__ = ("paid_coupons", "redeemed", "listed_rate_ppm")

    def __init__(self) -> None:
        self.paid_coupons: dict[str, set[date]] = {}
        self.redeemed: set[str] = set()
        self.listed_rate_ppm: dict[str, int] = {}  # kept when an impact outcome first changes the rate

    def coupon_paid(self, symbol: str, payment_date: date) -> bool:
        return payment_date in self.paid_coupons.get(symbol, ())


def holders(engine: Engine, symbol: str, *, issuer: str | None) -> list[tuple[str, int]]:
    """(account, units) of every account holding `symbol` now (available + held), by account; without `issuer`."""
    found = []
    for (account, asset), balance in engine.balances.items():
        if asset == symbol and account != issuer:
            units = balance.available + balance.held
            if units:
                found.append((account, units))
    return found


def dividend_amount(units: int, amount_per_share_micro: int, currency_decimals: int) -> int:
    """A shareholder's dividend in minor units: units x amount per share, half-even on the whole position."""
    return round_half_even(units * amount_per_share_micro * 10**currency_decimals, MICRO)


# ---------------------------------------------------------------- handlers


def pay_coupon(engine: Engine, cmd: PayCoupon) -> None:
    instrument = engine._instrument(cmd.symbol)
    terms, issuer = _bond_and_issuer(engine, instrument)
    book = engine.distributions
    if cmd.payment_date not in coupon_dates(terms):
        raise core.Rejected(RejectReason.NO_COUPON_ON_DATE)
    if book.coupon_paid(cmd.symbol, cmd.payment_date):
        raise core.Rejected(RejectReason.COUPON_ALREADY_PAID)
    if core.trade_date(engine._ts) < cmd.payment_date:
        raise core.Rejected(RejectReason.COUPON_NOT_DUE)
    payments = [
        (account, units, coupon_amount(terms, cmd.payment_date, units))
        for account, units in holders(engine, cmd.symbol, issuer=issuer)
    ]
    total = _pay(engine, instrument, issuer, payments)
    book.paid_coupons.setdefault(cmd.symbol, set()).add(cmd.payment_date)
    seq = engine._seq
    currency = instrument.currency
    payment_date = cmd.payment_date.isoformat()
    engine._events.extend(
        CouponPaid(seq, cmd.symbol, account, issuer, currency, payment_date, units, amount)
        for account, units, amount in payments
    )
    engine._events.append(
        DistributionCompleted(
            seq,
            cmd.symbol,
            DistributionKind.COUPON,
            issuer,
            currency,
            payment_date,
            terms.coupon_rate_ppm,
            len(payments),
            sum(units for _, units, _ in payments),
            total,
        )
    )


def pay_dividend(engine: Engine, cmd: PayDividend) -> None:
    instrument = engine._instrument(cmd.symbol)
    if instrument.kind is not InstrumentKind.EQUITY:
        raise core.Rejected(RejectReason.WRONG_INSTRUMENT_KIND)
    issuer = _issuer(instrument)
    if not 0 < cmd.amount_per_share_micro <= core.MAX_AMOUNT:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    payments = [
        (account, units, dividend_amount(units, cmd.amount_per_share_micro, instrument.currency_decimals))
        for account, units in holders(engine, cmd.symbol, issuer=issuer)
    ]
    total = _pay(engine, instrument, issuer, payments)
    seq = engine._seq
    currency = instrument.currency
    engine._events.extend(
        DividendPaid(seq, cmd.symbol, account, issuer, currency, units, amount) for account, units, amount in payments
    )
    engine._events.append(
        DistributionCompleted(
            seq,
            cmd.symbol,
            DistributionKind.DIVIDEND,
            issuer,
            currency,
            None,
            cmd.amount_per_share_micro,
            len(payments),
            sum(units for _, units, _ in payments),
            total,
        )
    )


def redeem(engine: Engine, cmd: Redeem) -> None:
    instrument = engine._instrument(cmd.symbol)
    terms, issuer = _bond_and_issuer(engine, instrument)
    book = engine.distributions
    if core.trade_date(engine._ts) < terms.maturity_date:
        raise core.Rejected(RejectReason.NOT_MATURED)
    if terms.coupon_rate_ppm and not book.coupon_paid(cmd.symbol, terms.maturity_date):
        raise core.Rejected(RejectReason.FINAL_COUPON_UNPAID)
    if cmd.symbol in engine.offers.open_by_symbol:
        raise core.Rejected(RejectReason.OFFER_IN_PROGRESS)
    everyone = holders(engine, cmd.symbol, issuer=None)
    payments = [
        (account, units, 0 if account == issuer else redemption_amount(terms, units)) for account, units in everyone
    ]
    total = sum(amount for _, _, amount in payments)
    if engine.balances.peek(issuer, instrument.currency)[0] < total:
        raise core.Rejected(RejectReason.ISSUER_LACKS_CASH)
    # Nothing can be refused from here on. Delisting cancels the open orders, so every unit is available again.
    if instrument.state is not TradingState.DELISTED:
        engine._change_state(instrument, TradingState.DELISTED, "redeemed")
    balances = engine.balances
    issuer_cash = balances.of(issuer, instrument.currency)
    retired = 0
    for account, units, amount in payments:
        position = balances.of(account, cmd.symbol)
        assert position.held == 0 and position.available == units, "delisting released every hold"
        position.available = 0
        retired += units
        if amount:
            issuer_cash.available -= amount
            balances.of(account, instrument.currency).available += amount
    engine.supply[cmd.symbol] = engine.supply.get(cmd.symbol, 0) - retired
    book.redeemed.add(cmd.symbol)
    seq = engine._seq
    currency = instrument.currency
    engine._events.extend(
        BondRedeemed(seq, cmd.symbol, account, issuer, currency, units, amount) for account, units, amount in payments
    )
    engine._events.append(
        DistributionCompleted(
            seq,
            cmd.symbol,
            DistributionKind.REDEMPTION,
            issuer,
            currency,
            terms.maturity_date.isoformat(),
            terms.redemption_ppm,
            len(payments),
            retired,
            total,
        )
    )


def record_impact_outcome(engine: Engine, cmd: RecordImpactOutcome) -> None:
    instrument = engine._instrument(cmd.symbol)
    terms = instrument.bond
    if terms is None or not instrument.impact_linked:
        raise core.Rejected(RejectReason.NOT_IMPACT_LINKED)
    book = engine.distributions
    if cmd.symbol in book.redeemed:
        raise core.Rejected(RejectReason.ALREADY_REDEEMED)
    listed = book.listed_rate_ppm.get(cmd.symbol, terms.coupon_rate_ppm)
    if cmd.target_met:
        rate = max(0, listed - instrument.impact_step_down_ppm)
    else:
        rate = listed + instrument.impact_step_up_ppm
    previous = terms.coupon_rate_ppm
    if rate != previous:
        book.listed_rate_ppm.setdefault(cmd.symbol, listed)
        for order in [o for o in engine.orders.values() if o.symbol == cmd.symbol]:
            engine._cancel_order(order, CancelReason.OPERATOR)
        # The engine's own copy of the listing (never the journalled command) carries the terms in force.
        instrument.bond = replace(terms, coupon_rate_ppm=rate)
    engine._events.append(CouponRateChanged(engine._seq, cmd.symbol, cmd.target_met, previous, rate, cmd.report))


# ---------------------------------------------------------------- helpers


def listed_coupon_rate_ppm(engine: Engine, symbol: str) -> int:
    """The coupon rate a bond was listed with (before any impact step)."""
    terms = engine.instruments[symbol].bond
    assert terms is not None
    return engine.distributions.listed_rate_ppm.get(symbol, terms.coupon_rate_ppm)


def _issuer(instrument: Instrument) -> str:
    if instrument.issuer is None:
        raise core.Rejected(RejectReason.NO_ISSUER)
    return instrument.issuer


def _bond_and_issuer(engine: Engine, instrument: Instrument) -> tuple[BondTerms, str]:
    terms = instrument.bond
    if terms is None:
        raise core.Rejected(RejectReason.WRONG_INSTRUMENT_KIND)
    issuer = _issuer(instrument)
    if instrument.symbol in engine.distributions.redeemed:
        raise core.Rejected(RejectReason.ALREADY_REDEEMED)
    return terms, issuer


def _pay(engine: Engine, instrument: Instrument, issuer: str, payments: list[tuple[str, int, int]]) -> int:
    """Move each holder's amount from the issuer's available cash, or refuse before moving anything."""
    total = sum(amount for _, _, amount in payments)
    if total > core.MAX_AMOUNT:
        raise core.Rejected(RejectReason.INVALID_AMOUNT)
    balances = engine.balances
    currency = instrument.currency
    if balances.peek(issuer, currency)[0] < total:
        raise core.Rejected(RejectReason.ISSUER_LACKS_CASH)
    issuer_cash = balances.of(issuer, currency)
    for account, _, amount in payments:
        if amount:
            issuer_cash.available -= amount
            balances.of(account, currency).available += amount
    return total
