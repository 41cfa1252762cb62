"""Primary offers, coupons, dividends, redemptions, impact-linked coupons, investor profiles and the risk warning.

Every change is a journalled command through the sequencer, answered after commit (see `exchange.offers`,
`exchange.distributions`, `exchange.investors` for the rules):

- operator: `PUT /v1/investor-profiles/{account}` (category, declared assets), `POST /v1/offers`,
  `POST /v1/offers/{id}/close`, `POST /v1/instruments/{symbol}/coupons|dividends|redemption|impact-outcome`;
- investor: `POST /v1/me/risk-warning` (once; a repeat answers 200 with the first acknowledgment),
  `POST /v1/offers/{id}/subscriptions`, `GET /v1/me/subscriptions`, `GET /v1/me/distributions`;
- public: `GET /v1/offers`, `GET /v1/offers/{id}`, `GET /v1/instruments/{symbol}/terms`.

Reads of an investor's own subscriptions and payments come from the committed `events` table. Offer states, profiles
and terms are read from the engine (read only), like the instruments: the engine is never more than the batch being
committed ahead, and those are operator-driven, rarely changing facts.

Declared assets are in the venue's cash currency (EUR, two decimals). An investor's profile seeds itself from the
category it was registered with when it acknowledges the risk warning without one; operators set profiles (and
declared assets) at onboarding, and an account without a profile is not restricted by the core.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from api.auth import Principal, Role, require
from api.commands import MESSAGES, REJECT_STATUS, engine_of, ensure_instrument, first_reject, reject_error, submit
from api.errors import ApiError, ErrorEnvelope
from api.schemas import AccountId, DecimalText, StrictModel, price_text, timestamp, to_us
from api.units import UnitError, cash_to_minor, minor_to_cash, parse_decimal, price_to_ticks, quantity_to_units
from exchange import codec
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
from exchange.distributions import listed_coupon_rate_ppm
from exchange.engine import Engine
from exchange.events import (
    BondRedeemed,
    CouponPaid,
    CouponRateChanged,
    DistributionCompleted,
    DividendPaid,
    Event,
    SubscriptionAccepted,
    SubscriptionSettled,
)
from exchange.instrument import Instrument, InvestorCategory
from exchange.offers import Offer, OfferStatus
from exchange.rejects import RejectReason

router = APIRouter(prefix="/v1", tags=["offers and corporate actions"])
OPERATOR = require(Role.OPERATOR)
INVESTOR = require(Role.INVESTOR)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 422, 429, 503)
}
VENUE_CURRENCY_DECIMALS = 2
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")]
OfferId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
RISK_WARNING = (
    "Investing in the securities of social enterprises puts your capital at risk: you may lose all of it, the "
    "returns are not guaranteed and may be lower than on other investments, and the securities may be hard to sell "
    "(few buyers, wide spreads, trading halts). Impact is measured and reported by the issuers and assured by "
    "third parties; it is not a financial return. Invest only what you can afford to lose and diversify."
)

# The HTTP status of the core's corporate reject codes; `api.commands.reject_error` answers every reject, order entry
# included, so they are registered with it here (any code not registered would answer 422).
REJECT_STATUS.update(
    {
        RejectReason.RISK_WARNING_REQUIRED: 403,
        RejectReason.CATEGORY_NOT_ELIGIBLE: 403,
        RejectReason.RETAIL_CAP_EXCEEDED: 400,
        RejectReason.UNKNOWN_OFFER: 404,
        RejectReason.OFFER_EXISTS: 409,
        RejectReason.OFFER_NOT_OPEN: 409,
        RejectReason.OFFER_STILL_OPEN: 409,
        RejectReason.OFFER_IN_PROGRESS: 409,
        RejectReason.BELOW_MINIMUM_APPLICATION: 400,
        RejectReason.ISSUER_CANNOT_SUBSCRIBE: 403,
        RejectReason.NO_ISSUER: 409,
        RejectReason.WRONG_INSTRUMENT_KIND: 409,
        RejectReason.ISSUER_LACKS_CASH: 409,
        RejectReason.COUPON_NOT_DUE: 409,
        RejectReason.COUPON_ALREADY_PAID: 409,
        RejectReason.FINAL_COUPON_UNPAID: 409,
        RejectReason.NOT_MATURED: 409,
        RejectReason.ALREADY_REDEEMED: 409,
        RejectReason.NOT_IMPACT_LINKED: 409,
    }
)
MESSAGES.update(
    {
        RejectReason.RISK_WARNING_REQUIRED: "acknowledge the risk warning first: POST /v1/me/risk-warning",
        RejectReason.CATEGORY_NOT_ELIGIBLE: "this instrument is not open to buyers of your investor category",
        RejectReason.RETAIL_CAP_EXCEEDED: "this would take your investment in the issuer beyond the retail cap",
        RejectReason.ISSUER_LACKS_CASH: "the issuer's available cash does not cover the payment; nothing was paid",
        RejectReason.OFFER_STILL_OPEN: "the offer's subscription period has not ended",
        RejectReason.FINAL_COUPON_UNPAID: "pay the coupon due at maturity before redeeming",
    }
)


# ---------------------------------------------------------------------------------------------------- bodies


class ProfileRequest(StrictModel):
    category: InvestorCategory
    declared_assets: DecimalText | None = Field(
        default=None, description="The investor's declared financial assets in EUR (for caps in % of assets)."
    )


class ProfileView(BaseModel):
    account: str
    category: InvestorCategory | None
    declared_assets: str | None
    risk_warning_acknowledged: bool
    seq: int | None = None


class RiskWarningView(BaseModel):
    account: str
    text: str
    acknowledged: bool
    seq: int | None = None


class OfferRequest(StrictModel):
    offer_id: OfferId
    symbol: StrictStr = Field(min_length=1, max_length=32)
    issuer: AccountId | None = Field(default=None, description="Default: the instrument's issuer.")
    price: DecimalText = Field(description="Price per unit, on the instrument's tick (a bond's in percent of par).")
    quantity: DecimalText
    min_application: DecimalText | None = Field(default=None, description="Default: one lot.")
    min_subscription: DecimalText = Field(description="Units that must be applied for, else everything is refunded.")
    closes_at: datetime


class OfferView(BaseModel):
    offer_id: str
    symbol: str
    issuer: str
    currency: str
    price: str
    quantity: str
    min_application: str
    min_subscription: str
    closes_at: str | None
    status: OfferStatus
    subscribed: str
    allocated: str
    applications: int
    opened_seq: int
    closed_seq: int | None


class OfferPage(BaseModel):
    offers: list[OfferView]
    next_cursor: str | None


class SubscriptionRequest(StrictModel):
    quantity: DecimalText


class SubscriptionView(BaseModel):
    id: str = Field(description="The sequence number of the subscription.")
    offer_id: str
    symbol: str
    quantity: str
    amount: str
    currency: str
    status: str = Field(description="pending, allocated or refunded")
    allocated: str | None
    paid: str | None
    released: str | None
    seq: int


class SubscriptionPage(BaseModel):
    subscriptions: list[SubscriptionView]
    next_cursor: str | None


class CouponRequest(StrictModel):
    payment_date: date


class DividendRequest(StrictModel):
    amount_per_share: DecimalText = Field(description="In the currency, at most 6 decimals, e.g. \"0.125\".")


class ImpactOutcomeRequest(StrictModel):
    target_met: StrictBool
    report: StrictStr = Field(default="", max_length=200, description="The assured impact report it comes from.")


class DistributionView(BaseModel):
    symbol: str
    kind: str
    payment_date: str | None
    rate: str = Field(description="Coupon rate in percent, dividend per share, or redemption price in percent.")
    holders: int
    units: str
    total: str
    currency: str
    seq: int


class ImpactOutcomeView(BaseModel):
    symbol: str
    target_met: bool
    previous_coupon_rate: str
    coupon_rate: str
    report: str
    seq: int


class PaymentView(BaseModel):
    kind: str
    symbol: str
    units: str
    amount: str
    currency: str
    payment_date: str | None
    seq: int


class PaymentPage(BaseModel):
    payments: list[PaymentView]
    next_cursor: str | None


class TermsView(BaseModel):
    symbol: str
    issuer: str | None
    eligible_categories: list[InvestorCategory]
    retail_cap: str | None
    retail_cap_percent_of_assets: str | None
    impact_linked: bool
    coupon_rate: str | None = Field(description="The bond's coupon rate in force, in percent.")
    listed_coupon_rate: str | None
    impact_step_down: str | None
    impact_step_up: str | None
    coupons_paid: list[str]
    redeemed: bool
    open_offer: str | None


# ---------------------------------------------------------------------------------------------------- helpers


def _unit_error(error: UnitError) -> ApiError:
    return ApiError(422, error.code, error.message, {"field": error.field})


def _percent(ppm: int) -> str:
    return _plain(Decimal(ppm).scaleb(-4))


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _cash(instrument: Instrument, minor: int) -> str:
    return minor_to_cash(minor, instrument.currency_decimals)


def _raise_if_rejected(outcome: Any) -> None:
    rejected = first_reject(outcome)
    if rejected is not None:
        raise reject_error(rejected)


def _one(events: list[Event], kind: type) -> Any:
    return next(event for event in events if type(event) is kind)


_PAYMENT_KINDS = {CouponPaid: "coupon", DividendPaid: "dividend", BondRedeemed: "redemption"}


def _decode(body: str) -> Any:
    """A committed event from its canonical JSON (the `events.body` column)."""
    return codec.decode(body.encode("ascii"))


def _offer(engine: Engine, offer_id: str) -> Offer:
    offer = engine.offers.get(offer_id)
    if offer is None:
        raise ApiError(404, "UNKNOWN_OFFER", f"no offer {offer_id}")
    return offer


def offer_view(engine: Engine, offer: Offer) -> OfferView:
    instrument = engine.instruments[offer.symbol]
    return OfferView(
        offer_id=offer.offer_id,
        symbol=offer.symbol,
        issuer=offer.issuer,
        currency=offer.currency,
        price=price_text(instrument, offer.price) or "0",
        quantity=str(offer.quantity),
        min_application=str(offer.min_application),
        min_subscription=str(offer.min_subscription),
        closes_at=timestamp(offer.closes_at_us),
        status=offer.status,
        subscribed=str(offer.subscribed),
        allocated=str(offer.allocated),
        applications=len(offer.subscriptions),
        opened_seq=offer.opened_seq,
        closed_seq=offer.closed_seq,
    )


def profile_view(engine: Engine, account: str, seq: int | None = None) -> ProfileView:
    profile = engine.investors.profile(account)
    assets = None if profile is None else profile.declared_assets_minor
    return ProfileView(
        account=account,
        category=None if profile is None else profile.category,
        declared_assets=None if assets is None else minor_to_cash(assets, VENUE_CURRENCY_DECIMALS),
        risk_warning_acknowledged=engine.investors.has_acknowledged(account),
        seq=seq,
    )


def distribution_view(instrument: Instrument, summary: DistributionCompleted, seq: int) -> DistributionView:
    if summary.kind == "dividend":
        rate = _plain(Decimal(summary.rate).scaleb(-6))
    else:
        rate = _percent(summary.rate)
    return DistributionView(
        symbol=summary.symbol,
        kind=summary.kind.value,
        payment_date=summary.payment_date,
        rate=rate,
        holders=summary.holders,
        units=str(summary.units),
        total=_cash(instrument, summary.total),
        currency=summary.currency,
        seq=seq,
    )


async def _distribute(request: Request, principal: Principal, instrument: Instrument, command: Any) -> DistributionView:
    outcome = await submit(request, command, principal.participant_id)
    _raise_if_rejected(outcome)
    return distribution_view(instrument, _one(outcome.events, DistributionCompleted), outcome.seq)


# ---------------------------------------------------------------------------------------------------- profiles


@router.put(
    "/investor-profiles/{account}",
    response_model=ProfileView,
    responses=ERRORS,
    summary="Classify an investor: category and declared assets (operator)",
)
async def set_profile(
    account: str, body: ProfileRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> ProfileView:
    engine = engine_of(request)
    async with request.app.state.pg_pool.acquire() as conn:
        role = await conn.fetchval("SELECT role FROM participants WHERE participant_id = $1", account)
    if role is None:
        raise ApiError(404, "UNKNOWN_PARTICIPANT", f"no participant {account}")
    if role != Role.INVESTOR.value:
        raise ApiError(422, "NOT_AN_INVESTOR", f"{account} is a {role}; only investors have an investor profile")
    try:
        assets = None if body.declared_assets is None else _declared_assets(body.declared_assets)
    except UnitError as error:
        raise _unit_error(error) from None
    outcome = await submit(request, SetInvestorProfile(account, body.category, assets), principal.participant_id)
    rejected = first_reject(outcome)
    if rejected is not None and rejected.reason is not RejectReason.NO_CHANGE:
        raise reject_error(rejected)
    return profile_view(engine, account, outcome.seq if rejected is None else None)


def _declared_assets(text: str) -> int:
    if parse_decimal(text, "declared_assets") == 0:
        return 0
    return cash_to_minor(text, VENUE_CURRENCY_DECIMALS, "declared_assets")


@router.get(
    "/investor-profiles/{account}",
    response_model=ProfileView,
    responses=ERRORS,
    summary="An investor's profile (operator, regulator, or the investor itself)",
)
async def get_profile(
    account: str,
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.OPERATOR, Role.REGULATOR, Role.INVESTOR))],
) -> ProfileView:
    if principal.role is Role.INVESTOR and account != principal.participant_id:
        raise ApiError(403, "FORBIDDEN", "an investor sees only its own profile")
    return profile_view(engine_of(request), account)


@router.get("/me/risk-warning", response_model=RiskWarningView, responses=ERRORS, summary="The risk warning")
async def read_risk_warning(request: Request, principal: Annotated[Principal, Depends(INVESTOR)]) -> RiskWarningView:
    engine = engine_of(request)
    me = principal.participant_id
    return RiskWarningView(account=me, text=RISK_WARNING, acknowledged=engine.investors.has_acknowledged(me))


@router.post(
    "/me/risk-warning",
    status_code=201,
    response_model=RiskWarningView,
    responses=ERRORS,
    summary="Acknowledge the risk warning (once, before the first order)",
)
async def acknowledge_risk_warning(
    request: Request, response: Response, principal: Annotated[Principal, Depends(INVESTOR)]
) -> RiskWarningView:
    engine = engine_of(request)
    me = principal.participant_id
    if engine.investors.has_acknowledged(me):
        response.status_code = 200
        return RiskWarningView(account=me, text=RISK_WARNING, acknowledged=True)
    if engine.investors.profile(me) is None and principal.category is not None:
        # The category the investor was registered with becomes its profile, so the retail rules apply from now on.
        seeded = await submit(request, SetInvestorProfile(me, InvestorCategory(principal.category.value)), me)
        rejected = first_reject(seeded)
        if rejected is not None and rejected.reason is not RejectReason.NO_CHANGE:
            raise reject_error(rejected)
    outcome = await submit(request, AcknowledgeRiskWarning(me), me)
    rejected = first_reject(outcome)
    if rejected is not None:
        if rejected.reason is RejectReason.NO_CHANGE:  # a concurrent acknowledgment won the race
            response.status_code = 200
            return RiskWarningView(account=me, text=RISK_WARNING, acknowledged=True)
        raise reject_error(rejected)
    return RiskWarningView(account=me, text=RISK_WARNING, acknowledged=True, seq=outcome.seq)


# ---------------------------------------------------------------------------------------------------- offers


@router.post("/offers", status_code=201, response_model=OfferView, responses=ERRORS, summary="Open a primary offer")
async def open_offer(
    body: OfferRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> OfferView:
    engine = engine_of(request)
    instrument = ensure_instrument(engine, body.symbol)
    issuer = body.issuer or instrument.issuer
    if issuer is None:
        raise ApiError(422, "ISSUER_REQUIRED", "this instrument names no issuer: give the offer's issuer")
    try:
        price = price_to_ticks(instrument, body.price)
        quantity = quantity_to_units(instrument, body.quantity)
        min_application = (
            instrument.lot_size
            if body.min_application is None
            else quantity_to_units(instrument, body.min_application, "min_application")
        )
        min_subscription = quantity_to_units(instrument, body.min_subscription, "min_subscription")
    except UnitError as error:
        raise _unit_error(error) from None
    command = OpenOffer(
        body.offer_id, body.symbol, issuer, price, quantity, min_application, min_subscription, to_us(body.closes_at)
    )
    outcome = await submit(request, command, principal.participant_id)
    _raise_if_rejected(outcome)
    return offer_view(engine, _offer(engine, body.offer_id))


@router.get("/offers", response_model=OfferPage, responses=ERRORS, summary="Primary offers, newest first")
async def list_offers(
    request: Request,
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[OfferStatus | None, Query()] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OfferPage:
    engine = engine_of(request)
    before = None if cursor is None else int(cursor)
    found = [
        offer
        for offer in engine.offers.offers.values()
        if (symbol is None or offer.symbol == symbol)
        and (status is None or offer.status is status)
        and (before is None or offer.opened_seq < before)
    ]
    found.sort(key=lambda offer: offer.opened_seq, reverse=True)
    page = found[:limit]
    next_cursor = str(page[-1].opened_seq) if len(found) > limit else None
    return OfferPage(offers=[offer_view(engine, offer) for offer in page], next_cursor=next_cursor)


@router.get("/offers/{offer_id}", response_model=OfferView, responses=ERRORS, summary="One primary offer")
async def get_offer(offer_id: str, request: Request) -> OfferView:
    engine = engine_of(request)
    return offer_view(engine, _offer(engine, offer_id))


@router.post(
    "/offers/{offer_id}/close",
    response_model=OfferView,
    responses=ERRORS,
    summary="Close an offer after its closing time: allocate or refund everything (operator)",
)
async def close_offer(
    offer_id: str, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> OfferView:
    engine = engine_of(request)
    _offer(engine, offer_id)
    outcome = await submit(request, CloseOffer(offer_id), principal.participant_id)
    _raise_if_rejected(outcome)
    return offer_view(engine, _offer(engine, offer_id))


@router.post(
    "/offers/{offer_id}/subscriptions",
    status_code=201,
    response_model=SubscriptionView,
    responses=ERRORS,
    summary="Apply for units of an offer; the cash is held until the close",
)
async def subscribe(
    offer_id: str, body: SubscriptionRequest, request: Request, principal: Annotated[Principal, Depends(INVESTOR)]
) -> SubscriptionView:
    engine = engine_of(request)
    offer = _offer(engine, offer_id)
    instrument = engine.instruments[offer.symbol]
    try:
        quantity = quantity_to_units(instrument, body.quantity)
    except UnitError as error:
        raise _unit_error(error) from None
    outcome = await submit(request, Subscribe(principal.participant_id, offer_id, quantity), principal.participant_id)
    _raise_if_rejected(outcome)
    accepted: SubscriptionAccepted = _one(outcome.events, SubscriptionAccepted)
    return SubscriptionView(
        id=str(accepted.seq),
        offer_id=offer_id,
        symbol=accepted.symbol,
        quantity=str(accepted.quantity),
        amount=_cash(instrument, accepted.amount),
        currency=accepted.currency,
        status="pending",
        allocated=None,
        paid=None,
        released=None,
        seq=outcome.seq,
    )


@router.get(
    "/me/subscriptions", response_model=SubscriptionPage, responses=ERRORS, summary="Your subscriptions, newest first"
)
async def my_subscriptions(
    request: Request,
    principal: Annotated[Principal, Depends(INVESTOR)],
    offer_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SubscriptionPage:
    engine = engine_of(request)
    me = principal.participant_id
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT body FROM events WHERE account = $1 AND kind = 'SubscriptionAccepted' "
            "AND ($2::bigint IS NULL OR seq < $2) AND ($3::text IS NULL OR (body::jsonb)->>2 = $3) "
            "ORDER BY seq DESC LIMIT $4",
            me,
            None if cursor is None else int(cursor),
            offer_id,
            limit + 1,
        )
        applications: list[SubscriptionAccepted] = [_decode(row["body"]) for row in rows]
        page = applications[:limit]
        settled: dict[int, SubscriptionSettled] = {}
        if page:
            for row in await conn.fetch(
                "SELECT body FROM events WHERE account = $1 AND kind = 'SubscriptionSettled' AND seq > $2",
                me,
                page[-1].seq,
            ):
                settlement: SubscriptionSettled = _decode(row["body"])
                settled[settlement.subscription_seq] = settlement
    views = []
    for application in page:
        instrument = engine.instruments[application.symbol]
        done = settled.get(application.seq)
        views.append(
            SubscriptionView(
                id=str(application.seq),
                offer_id=application.offer_id,
                symbol=application.symbol,
                quantity=str(application.quantity),
                amount=_cash(instrument, application.amount),
                currency=application.currency,
                status="pending" if done is None else ("allocated" if done.allocated else "refunded"),
                allocated=None if done is None else str(done.allocated),
                paid=None if done is None else _cash(instrument, done.paid),
                released=None if done is None else _cash(instrument, done.released),
                seq=application.seq if done is None else done.seq,
            )
        )
    next_cursor = str(page[-1].seq) if len(applications) > limit else None
    return SubscriptionPage(subscriptions=views, next_cursor=next_cursor)


# ---------------------------------------------------------------------------------------------------- distributions


@router.post(
    "/instruments/{symbol}/coupons",
    status_code=201,
    response_model=DistributionView,
    responses=ERRORS,
    summary="Pay a bond's coupon to every holder now (operator)",
)
async def pay_coupon(
    symbol: str, body: CouponRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> DistributionView:
    instrument = ensure_instrument(engine_of(request), symbol)
    return await _distribute(request, principal, instrument, PayCoupon(symbol, body.payment_date))


@router.post(
    "/instruments/{symbol}/dividends",
    status_code=201,
    response_model=DistributionView,
    responses=ERRORS,
    summary="Pay a dividend per share to every shareholder now (operator)",
)
async def pay_dividend(
    symbol: str, body: DividendRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> DistributionView:
    instrument = ensure_instrument(engine_of(request), symbol)
    try:
        per_share = parse_decimal(body.amount_per_share, "amount_per_share").scaleb(6)
    except UnitError as error:
        raise _unit_error(error) from None
    if per_share != per_share.to_integral_value():
        raise ApiError(422, "AMOUNT_TOO_PRECISE", "at most 6 decimals", {"field": "amount_per_share"})
    if per_share <= 0:
        raise ApiError(422, "AMOUNT_NOT_POSITIVE", "must be greater than zero", {"field": "amount_per_share"})
    return await _distribute(request, principal, instrument, PayDividend(symbol, int(per_share)))


@router.post(
    "/instruments/{symbol}/redemption",
    status_code=201,
    response_model=DistributionView,
    responses=ERRORS,
    summary="Redeem a matured bond: retire every unit and repay the holders (operator)",
)
async def redeem(
    symbol: str, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> DistributionView:
    instrument = ensure_instrument(engine_of(request), symbol)
    return await _distribute(request, principal, instrument, Redeem(symbol))


@router.post(
    "/instruments/{symbol}/impact-outcome",
    response_model=ImpactOutcomeView,
    responses=ERRORS,
    summary="Set an impact-linked bond's coupon from its latest assured impact report (operator)",
)
async def record_impact_outcome(
    symbol: str, body: ImpactOutcomeRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> ImpactOutcomeView:
    ensure_instrument(engine_of(request), symbol)
    outcome = await submit(request, RecordImpactOutcome(symbol, body.target_met, body.report), principal.participant_id)
    _raise_if_rejected(outcome)
    changed: CouponRateChanged = _one(outcome.events, CouponRateChanged)
    return ImpactOutcomeView(
        symbol=symbol,
        target_met=changed.target_met,
        previous_coupon_rate=_percent(changed.previous_rate_ppm),
        coupon_rate=_percent(changed.rate_ppm),
        report=changed.report,
        seq=outcome.seq,
    )


@router.get(
    "/me/distributions",
    response_model=PaymentPage,
    responses=ERRORS,
    summary="Coupons, dividends and redemptions you received, newest first",
)
async def my_distributions(
    request: Request,
    principal: Annotated[Principal, Depends(INVESTOR)],
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PaymentPage:
    engine = engine_of(request)
    async with request.app.state.pg_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT seq, kind, body FROM events WHERE account = $1 "
            "AND kind IN ('CouponPaid', 'DividendPaid', 'BondRedeemed') AND ($2::bigint IS NULL OR seq < $2) "
            "ORDER BY seq DESC LIMIT $3",
            principal.participant_id,
            None if cursor is None else int(cursor),
            limit + 1,
        )
    payments = []
    for row in rows[:limit]:
        paid: CouponPaid | DividendPaid | BondRedeemed = _decode(row["body"])
        instrument = engine.instruments[paid.symbol]
        payments.append(
            PaymentView(
                kind=_PAYMENT_KINDS[type(paid)],
                symbol=paid.symbol,
                units=str(paid.units),
                amount=_cash(instrument, paid.amount),
                currency=paid.currency,
                payment_date=paid.payment_date if type(paid) is CouponPaid else None,
                seq=row["seq"],
            )
        )
    next_cursor = str(rows[limit - 1]["seq"]) if len(rows) > limit else None
    return PaymentPage(payments=payments, next_cursor=next_cursor)


@router.get(
    "/instruments/{symbol}/terms",
    response_model=TermsView,
    responses=ERRORS,
    summary="Who may buy, the retail caps, and the coupon in force (impact-linked bonds)",
)
async def instrument_terms(symbol: str, request: Request) -> TermsView:
    engine = engine_of(request)
    instrument = ensure_instrument(engine, symbol)
    categories = [
        category
        for category, allowed in (
            (InvestorCategory.RETAIL, instrument.retail_may_buy),
            (InvestorCategory.PROFESSIONAL, instrument.professional_may_buy),
        )
        if allowed
    ]
    bond = instrument.bond
    return TermsView(
        symbol=symbol,
        issuer=instrument.issuer,
        eligible_categories=categories,
        retail_cap=None if instrument.retail_cap_minor is None else _cash(instrument, instrument.retail_cap_minor),
        retail_cap_percent_of_assets=(
            None
            if instrument.retail_cap_bps_of_assets is None
            else _plain(Decimal(instrument.retail_cap_bps_of_assets).scaleb(-2))
        ),
        impact_linked=instrument.impact_linked,
        coupon_rate=None if bond is None else _percent(bond.coupon_rate_ppm),
        listed_coupon_rate=None if bond is None else _percent(listed_coupon_rate_ppm(engine, symbol)),
        impact_step_down=None if bond is None else _percent(instrument.impact_step_down_ppm),
        impact_step_up=None if bond is None else _percent(instrument.impact_step_up_ppm),
        coupons_paid=sorted(d.isoformat() for d in engine.distributions.paid_coupons.get(symbol, ())),
        redeemed=symbol in engine.distributions.redeemed,
        open_offer=engine.offers.open_by_symbol.get(symbol),
    )
