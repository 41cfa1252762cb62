"""Retail protection: the risk warning before the first order, who may buy at all, and the cap per issuer.

COOP is the cooperative's equity at EUR 10.00 (1 000 ticks of one cent a share); GREEN27 its bond at par (EUR 100.00
a unit). Caps are in cents.
"""

from __future__ import annotations

import pytest

from exchange import codec
from exchange.commands import AcknowledgeRiskWarning, SetInvestorProfile
from exchange.events import CommandRejected, InvestorProfileSet, OrderAccepted, RiskWarningAcknowledged
from exchange.engine import Rejected
from exchange.investors import InvestorProfile, check_amend, issuer_exposure, retail_cap
from exchange.rejects import RejectReason
from tests.exchange.corporate_factories import (
    ISSUER,
    PROFESSIONAL,
    RETAIL,
    CorporateMarket,
    snapshot,
    social_bond,
    social_equity,
)
from tests.exchange.factories import BUY, SELL, limit, market, one

CAP = 100_000  # EUR 1 000.00


def protected_market(*instruments, retail_assets: int | None = None) -> CorporateMarket:
    """`ret` is a retail investor who acknowledged the warning, `pro` a professional; both hold EUR 50 000.00; the
    issuer offers 10 000 COOP at EUR 10.00 (and 10 000 GREEN27 at par, if listed) in the book."""
    m = CorporateMarket(*(instruments or (social_equity(retail_cap_minor=CAP),)))
    m.profile("ret", RETAIL, retail_assets)
    m.acknowledge("ret")
    m.profile("pro", PROFESSIONAL)
    for account in ("ret", "pro"):
        m.deposit(account, 5_000_000)
    for instrument in m.engine.instruments.values():
        m.issue(ISSUER, 10_000, instrument.symbol)
        m.place(limit(ISSUER, SELL, 10_000, instrument.reference_price, instrument.symbol))
    return m


def reason(events: list) -> RejectReason:
    return one(events, CommandRejected).reason


def accepted(events: list) -> bool:
    return any(isinstance(e, OrderAccepted) for e in events)


# ---------------------------------------------------------------- risk warning


def test_a_retail_investor_cannot_place_an_order_before_acknowledging_the_risk_warning():
    m = protected_market()
    m.profile("new", PROFESSIONAL)
    m.deposit("new", 100_000)
    m.place(limit("new", BUY, 5, 1_000, "COOP"))
    m.profile("new", RETAIL)  # reclassified: a retail investor with shares who never saw the warning

    assert reason(m.place(limit("new", BUY, 1, 1_000, "COOP"))) is RejectReason.RISK_WARNING_REQUIRED
    assert reason(m.place(limit("new", SELL, 1, 1_000, "COOP"))) is RejectReason.RISK_WARNING_REQUIRED


def test_once_acknowledged_a_retail_investor_may_trade():
    m = protected_market()
    m.profile("new", RETAIL)
    m.deposit("new", 100_000)

    acknowledged = one(m.acknowledge("new"), RiskWarningAcknowledged)

    assert acknowledged.account == "new"
    assert accepted(m.place(limit("new", BUY, 1, 1_000, "COOP")))


def test_the_risk_warning_is_acknowledged_once():
    m = protected_market()

    assert reason(m.acknowledge("ret")) is RejectReason.NO_CHANGE


def test_a_professional_needs_no_risk_warning():
    m = protected_market()

    assert accepted(m.place(limit("pro", BUY, 1, 1_000, "COOP")))


def test_an_account_without_a_profile_is_unrestricted():
    m = protected_market(social_equity(retail_may_buy=False, professional_may_buy=True, retail_cap_minor=0))
    m.deposit("anyone", 100_000)

    assert accepted(m.place(limit("anyone", BUY, 1, 1_000, "COOP")))


# ---------------------------------------------------------------- who may buy


def test_a_retail_investor_cannot_buy_an_instrument_reserved_to_professionals_but_may_sell_it():
    m = protected_market(social_equity(retail_may_buy=False))
    m.place(limit("pro", BUY, 5, 1_000, "COOP"))

    assert reason(m.place(limit("ret", BUY, 1, 1_000, "COOP"))) is RejectReason.CATEGORY_NOT_ELIGIBLE
    assert accepted(m.place(limit("pro", SELL, 5, 1_100, "COOP")))


def test_a_professional_cannot_buy_an_instrument_reserved_to_retail_investors():
    m = protected_market(social_equity(professional_may_buy=False))

    assert reason(m.place(limit("pro", BUY, 1, 1_000, "COOP"))) is RejectReason.CATEGORY_NOT_ELIGIBLE


# ---------------------------------------------------------------- the cap per issuer


def test_a_retail_buy_up_to_the_cap_is_accepted_and_one_share_more_is_refused():
    m = protected_market()

    assert reason(m.place(limit("ret", BUY, 101, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 100, 1_000, "COOP")))  # exactly EUR 1 000.00


def test_holdings_count_at_the_reference_price():
    m = protected_market()
    m.place(limit("ret", BUY, 50, 1_000, "COOP"))  # fills: 50 shares, EUR 500.00 at the reference price

    assert reason(m.place(limit("ret", BUY, 51, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 50, 1_000, "COOP")))


def test_open_buy_orders_count_at_their_limit():
    m = protected_market()
    m.place(limit("ret", BUY, 60, 900, "COOP"))  # rests: EUR 540.00

    assert reason(m.place(limit("ret", BUY, 47, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 46, 1_000, "COOP")))


def test_a_market_buy_counts_at_the_edge_of_the_price_band():
    m = protected_market()

    # the band is 20 % around EUR 10.00: a market buy may pay up to EUR 12.00 a share; 84 x 12 = 1 008 > 1 000
    assert reason(m.place(market("ret", BUY, 84, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(market("ret", BUY, 83, "COOP")))


def test_every_instrument_of_the_same_issuer_counts_against_the_cap():
    m = protected_market(social_equity(retail_cap_minor=2_000_000), social_bond())
    m.place(limit("ret", BUY, 150, 10_000, "GREEN27"))  # EUR 15 000.00 of the issuer's bond

    assert reason(m.place(limit("ret", BUY, 501, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 500, 1_000, "COOP")))


def test_pending_subscriptions_count_against_the_cap():
    m = protected_market(social_equity(retail_cap_minor=CAP, reference_price=1_000))
    m.issue(ISSUER, 1_000, "COOP")
    m.open_offer(quantity=1_000)
    m.subscribe("ret", 60)  # EUR 600.00 held for the application

    assert reason(m.place(limit("ret", BUY, 41, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert reason(m.subscribe("ret", 41)) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 40, 1_000, "COOP")))


def test_a_cap_in_percent_of_declared_assets():
    m = protected_market(social_equity(retail_cap_bps_of_assets=1_000), retail_assets=500_000)  # 10 % of EUR 5 000

    assert reason(m.place(limit("ret", BUY, 51, 1_000, "COOP"))) is RejectReason.RETAIL_CAP_EXCEEDED
    assert accepted(m.place(limit("ret", BUY, 50, 1_000, "COOP")))


@pytest.mark.parametrize(
    ("cap_minor", "cap_bps", "assets", "expected"),
    [
        (100_000, None, None, 100_000),
        (None, 500, 4_000_000, 200_000),
        (100_000, 500, 4_000_000, 200_000),  # both: the higher, as the EU crowdfunding regulation's limit
        (100_000, 500, 1_000_000, 100_000),
        (None, 500, None, 0),  # a percentage of undeclared assets allows nothing
        (None, None, 4_000_000, None),
    ],
)
def test_the_cap_is_the_higher_of_the_absolute_and_the_percentage_cap(cap_minor, cap_bps, assets, expected):
    instrument = social_equity(retail_cap_minor=cap_minor, retail_cap_bps_of_assets=cap_bps)

    assert retail_cap(instrument, InvestorProfile(RETAIL, assets)) == expected


def test_professionals_are_exempt_from_the_cap():
    m = protected_market()

    assert accepted(m.place(limit("pro", BUY, 1_000, 1_000, "COOP")))


def test_sells_are_never_capped():
    m = protected_market()
    m.place(limit("ret", BUY, 100, 1_000, "COOP"))

    assert accepted(m.place(limit("ret", SELL, 100, 1_200, "COOP")))


def test_exposure_is_what_the_investor_has_in_the_issuer_now():
    m = protected_market(social_equity(), social_bond())
    m.place(limit("ret", BUY, 10, 1_000, "COOP"))  # EUR 100.00
    m.place(limit("ret", BUY, 2, 10_000, "GREEN27"))  # EUR 200.00 (clean, accrued interest is not exposure)
    m.place(limit("ret", BUY, 5, 950, "COOP"))  # resting: EUR 47.50

    assert issuer_exposure(m.engine, "ret", m.engine.instruments["COOP"]) == 34_750


def test_a_refused_order_changes_nothing():
    m = protected_market()
    before = snapshot(m.engine)

    m.place(limit("ret", BUY, 101, 1_000, "COOP"))

    assert snapshot(m.engine) == before


# ---------------------------------------------------------------- profiles


def test_an_investor_profile_is_set_by_a_journalled_command_and_a_repeat_changes_nothing():
    m = CorporateMarket()

    profile = one(m.profile("anna", RETAIL, 2_500_000), InvestorProfileSet)

    assert (profile.account, profile.category, profile.declared_assets_minor) == ("anna", RETAIL, 2_500_000)
    assert m.engine.investors.profile("anna") == InvestorProfile(RETAIL, 2_500_000)
    assert reason(m.profile("anna", RETAIL, 2_500_000)) is RejectReason.NO_CHANGE


def test_declared_assets_are_never_negative():
    m = CorporateMarket()

    assert reason(m.profile("anna", RETAIL, -1)) is RejectReason.INVALID_AMOUNT


def test_reclassification_keeps_the_acknowledgment():
    m = protected_market()
    m.profile("ret", PROFESSIONAL)
    m.profile("ret", RETAIL)

    assert accepted(m.place(limit("ret", BUY, 1, 1_000, "COOP")))


@pytest.mark.parametrize("command", [SetInvestorProfile("anna", RETAIL, None), AcknowledgeRiskWarning("anna")])
def test_profile_commands_round_trip_through_the_journal_encoding(command):
    assert codec.decode(codec.encode(command)) == command


# ---------------------------------------------------------------- raising a resting buy (for Engine._amend)


def test_raising_a_resting_retail_buy_is_capped_for_the_notional_it_adds():
    m = protected_market()
    order_id = one(m.place(limit("ret", BUY, 60, 900, "COOP")), OrderAccepted).order_id  # rests: EUR 540.00
    order = m.engine.orders[order_id]
    instrument = m.engine.instruments["COOP"]

    check_amend(m.engine, order, instrument, 900, 111)  # EUR 999.00: within the cap
    check_amend(m.engine, order, instrument, 800, 60)  # lower: always allowed
    with pytest.raises(Rejected) as refused:
        check_amend(m.engine, order, instrument, 900, 112)  # EUR 1 008.00
    assert (refused.value.reason, refused.value.order_id) == (RejectReason.RETAIL_CAP_EXCEEDED, order_id)
