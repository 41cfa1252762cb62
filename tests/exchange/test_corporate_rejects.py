"""Every reason the core gives for refusing an offer, a distribution or a protected order: one case each, and the
refused command changes nothing at all (balances, supply, orders, offers, payments, profiles)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from exchange.commands import (
    CloseOffer,
    Command,
    OpenOffer,
    PayCoupon,
    PayDividend,
    RecordImpactOutcome,
    Redeem,
    Subscribe,
)
from exchange.events import CommandRejected
from exchange.rejects import RejectReason as R
from tests.exchange.corporate_factories import (
    ISSUER,
    PROFESSIONAL,
    RETAIL,
    CorporateMarket,
    snapshot,
    social_bond,
    social_equity,
)
from tests.exchange.factories import BUY, SELL, limit

CORPORATE_REASONS = frozenset(
    {
        R.RISK_WARNING_REQUIRED,
        R.CATEGORY_NOT_ELIGIBLE,
        R.RETAIL_CAP_EXCEEDED,
        R.UNKNOWN_OFFER,
        R.OFFER_EXISTS,
        R.OFFER_NOT_OPEN,
        R.OFFER_STILL_OPEN,
        R.OFFER_IN_PROGRESS,
        R.INVALID_OFFER_TERMS,
        R.BELOW_MINIMUM_APPLICATION,
        R.ISSUER_CANNOT_SUBSCRIBE,
        R.NO_ISSUER,
        R.WRONG_INSTRUMENT_KIND,
        R.ISSUER_LACKS_CASH,
        R.NO_COUPON_ON_DATE,
        R.COUPON_NOT_DUE,
        R.COUPON_ALREADY_PAID,
        R.FINAL_COUPON_UNPAID,
        R.NOT_MATURED,
        R.ALREADY_REDEEMED,
        R.NOT_IMPACT_LINKED,
    }
)
FIRST_COUPON = date(2024, 1, 15)
MATURITY = date(2027, 1, 15)
Case = Callable[[], tuple[CorporateMarket, Command]]


def market() -> CorporateMarket:
    """COOP (retail cap EUR 1 000, 10 % of assets), its professional-only MINI, the impact-linked bond GREEN27,
    the plain bond PLAIN and the issuer-less bond ORPHAN; `ret` (retail, acknowledged), `new` (retail, not yet),
    `pro`; `a` holds 10 GREEN27 and 10 COOP; the offer IPO-1 of 100 COOP is open."""
    m = CorporateMarket(
        social_equity(retail_cap_minor=100_000),
        social_equity("MINI", retail_may_buy=False),
        social_bond(impact_step_down_ppm=5_000, impact_step_up_ppm=5_000),
        social_bond("PLAIN"),
        social_bond("ORPHAN", issuer=None),
    )
    for account in ("ret", "new", "pro", "a", ISSUER):
        m.deposit(account, 10_000_000)
    m.profile("ret", RETAIL)
    m.acknowledge("ret")
    m.profile("new", RETAIL)
    m.profile("pro", PROFESSIONAL)
    for symbol, price in (("COOP", 1_000), ("GREEN27", 10_000), ("MINI", 1_000)):
        m.issue(ISSUER, 1_000, symbol)
        m.place(limit(ISSUER, SELL, 10, price, symbol))
        m.place(limit("a", BUY, 10, price, symbol))
    m.place(limit(ISSUER, SELL, 500, 1_000, "COOP"))
    m.open_offer("IPO-1", quantity=100, min_application=5)
    return m


def with_command(command: Command, prepare: Callable[[CorporateMarket], None] | None = None) -> Case:
    def case() -> tuple[CorporateMarket, Command]:
        m = market()
        if prepare is not None:
            prepare(m)
        return m, command

    return case


def on(day: date, *then: Callable[[CorporateMarket], object]) -> Callable[[CorporateMarket], None]:
    def prepare(m: CorporateMarket) -> None:
        m.move_to(day)
        for step in then:
            step(m)

    return prepare


def coupon(day: date) -> Callable[[CorporateMarket], object]:
    return lambda m: m.apply(PayCoupon("GREEN27", day))


def broke(m: CorporateMarket) -> None:
    m.withdraw(ISSUER, m.balance(ISSUER)[0])


def closed_offer(m: CorporateMarket) -> None:
    m.close_offer("IPO-1")


CASES: list[tuple[str, R, Case]] = [
    ("order before the warning", R.RISK_WARNING_REQUIRED, with_command(limit("new", BUY, 1, 1_000, "COOP"))),
    ("retail buys professional-only", R.CATEGORY_NOT_ELIGIBLE, with_command(limit("ret", BUY, 1, 1_000, "MINI"))),
    ("retail buy beyond the cap", R.RETAIL_CAP_EXCEEDED, with_command(limit("ret", BUY, 101, 1_000, "COOP"))),
    ("unknown offer", R.UNKNOWN_OFFER, with_command(Subscribe("ret", "NOPE", 5))),
    ("offer id reused", R.OFFER_EXISTS, with_command(OpenOffer("IPO-1", "MINI", ISSUER, 1_000, 10, 1, 1, 2**60))),
    ("subscription after the close", R.OFFER_NOT_OPEN, with_command(Subscribe("ret", "IPO-1", 5), closed_offer)),
    ("close before the closing time", R.OFFER_STILL_OPEN, with_command(CloseOffer("IPO-1"))),
    ("second offer", R.OFFER_IN_PROGRESS, with_command(OpenOffer("IPO-2", "COOP", ISSUER, 1_000, 10, 1, 1, 2**60))),
    ("no window", R.INVALID_OFFER_TERMS, with_command(OpenOffer("IPO-2", "MINI", ISSUER, 1_000, 10, 1, 1, 0))),
    ("application below the minimum", R.BELOW_MINIMUM_APPLICATION, with_command(Subscribe("ret", "IPO-1", 4))),
    ("issuer applies to its offer", R.ISSUER_CANNOT_SUBSCRIBE, with_command(Subscribe(ISSUER, "IPO-1", 5))),
    ("coupon of a bond without issuer", R.NO_ISSUER, with_command(PayCoupon("ORPHAN", FIRST_COUPON))),
    ("dividend on a bond", R.WRONG_INSTRUMENT_KIND, with_command(PayDividend("GREEN27", 1_000))),
    ("issuer broke", R.ISSUER_LACKS_CASH, with_command(PayCoupon("GREEN27", FIRST_COUPON), on(FIRST_COUPON, broke))),
    ("no coupon that day", R.NO_COUPON_ON_DATE, with_command(PayCoupon("GREEN27", date(2024, 1, 16)), on(MATURITY))),
    ("coupon before its date", R.COUPON_NOT_DUE, with_command(PayCoupon("GREEN27", FIRST_COUPON))),
    (
        "coupon paid twice",
        R.COUPON_ALREADY_PAID,
        with_command(PayCoupon("GREEN27", FIRST_COUPON), on(FIRST_COUPON, coupon(FIRST_COUPON))),
    ),
    ("redemption before the last coupon", R.FINAL_COUPON_UNPAID, with_command(Redeem("GREEN27"), on(MATURITY))),
    ("redemption before maturity", R.NOT_MATURED, with_command(Redeem("GREEN27"))),
    (
        "redeemed twice",
        R.ALREADY_REDEEMED,
        with_command(Redeem("GREEN27"), on(MATURITY, coupon(MATURITY), lambda m: m.redeem())),
    ),
    ("outcome of a plain bond", R.NOT_IMPACT_LINKED, with_command(RecordImpactOutcome("PLAIN", True))),
]


@pytest.mark.parametrize(("reason", "case"), [(reason, case) for _, reason, case in CASES], ids=[c[0] for c in CASES])
def test_a_refused_corporate_command_gives_its_reason_and_changes_nothing(reason: R, case: Case):
    m, command = case()
    before = snapshot(m.engine)

    events = m.apply(command)

    assert len(events) == 1 and isinstance(events[0], CommandRejected), events
    assert events[0].reason is reason
    assert snapshot(m.engine) == before


def test_every_corporate_reason_is_specified_here():
    assert {reason for _, reason, _ in CASES} == CORPORATE_REASONS
