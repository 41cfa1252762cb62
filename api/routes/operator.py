"""What operators do to run the market: list instruments, change trading states (halt, resume, open, close,
suspend, delist), credit and debit cash from outside (deposits, withdrawals), and record primary issuance.

Each is a journalled command through the sequencer, answered after commit, so replay covers all of it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StrictInt

from api.auth import Principal, Role, require
from api.commands import engine_of, ensure_instrument, first_reject, reject_error, submit
from api.errors import ApiError, ErrorEnvelope
from api.schemas import AccountId, DecimalText, StrictModel, Symbol, price_text
from api.units import UnitError, cash_to_minor, parse_decimal, price_to_ticks, quantity_to_units, tick_value
from exchange.commands import Deposit, IssueSecurities, ListInstrument, SetTradingState, Withdraw
from exchange.instrument import BondTerms, DayCount, Instrument, InstrumentKind, InvestorCategory, TradingState

router = APIRouter(prefix="/v1", tags=["operator"])
OPERATOR = require(Role.OPERATOR)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 422, 429, 503)
}
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
CURRENCY_DECIMALS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}


class CashMovement(StrictModel):
    account: AccountId
    currency: Currency
    amount: DecimalText


class CashMovementView(BaseModel):
    account: str
    currency: str
    amount: str
    seq: int


class IssuanceRequest(StrictModel):
    account: AccountId
    quantity: DecimalText


class IssuanceView(BaseModel):
    account: str
    symbol: str
    quantity: str
    seq: int


class BondTermsRequest(StrictModel):
    nominal: DecimalText = Field(description="Face value of one unit in the currency, e.g. \"100\".")
    coupon_rate: DecimalText = Field(description="Annual coupon in percent, e.g. \"3.25\".")
    coupon_frequency: Literal[1, 2, 4, 12]
    day_count: DayCount
    issue_date: date
    maturity_date: date
    first_coupon_date: date | None = None
    redemption_price: DecimalText = Field(default="100", description="Percent of nominal.")
    impact_step_down: DecimalText = Field(
        default="0", description="Impact-linked: percentage points off the coupon when the impact target is met."
    )
    impact_step_up: DecimalText = Field(
        default="0", description="Impact-linked: percentage points added to the coupon when the target is missed."
    )


class ListingRequest(StrictModel):
    symbol: Symbol
    kind: InstrumentKind
    currency: Currency
    tick_size: DecimalText
    lot_size: StrictInt = Field(ge=1, le=1_000_000)
    min_quantity: StrictInt | None = Field(default=None, ge=1)
    max_quantity: StrictInt = Field(default=1_000_000, ge=1, le=10**12)
    price_band_percent: DecimalText = Field(default="10", description="Band either side of the reference price.")
    reference_price: DecimalText
    maker_fee_bps: StrictInt = Field(default=0, ge=0, le=1_000)
    taker_fee_bps: StrictInt = Field(default=0, ge=0, le=1_000)
    issuer: AccountId | None = None
    trading_state: TradingState = TradingState.PRE_OPEN
    auction_only: bool = False
    volatility_percent: DecimalText = Field(default="0", description="0: no volatility interruption.")
    volatility_auction_seconds: StrictInt = Field(default=300, ge=0, le=86_400)
    bond: BondTermsRequest | None = None
    eligible_categories: list[InvestorCategory] = Field(
        default=[InvestorCategory.RETAIL, InvestorCategory.PROFESSIONAL],
        min_length=1,
        description="Investor categories that may buy (anyone may sell).",
    )
    retail_cap: DecimalText | None = Field(
        default=None, description="Most a retail investor may have invested in this issuer, in the currency."
    )
    retail_cap_percent_of_assets: DecimalText | None = Field(
        default=None, description="Retail cap in percent of the investor's declared assets (the higher cap applies)."
    )


class TradingStateRequest(StrictModel):
    state: TradingState
    reason: str = Field(default="", max_length=500)


class TradingStateView(BaseModel):
    symbol: str
    state: TradingState
    seq: int


def _bps(text: str, field: str) -> int:
    value = parse_decimal(text, field) * 100
    if value != value.to_integral_value() or value > 100_000:
        raise UnitError("INVALID_PERCENT", f"{field} must be a percent with at most 2 decimals, up to 1000", field)
    return int(value)


def _ppm_of_percent(text: str, field: str) -> int:
    value = parse_decimal(text, field) * 10_000
    if value != value.to_integral_value() or value > 100_000_000:
        raise UnitError("INVALID_PERCENT", f"{field} must be a percent with at most 4 decimals", field)
    return int(value)


def instrument_from_listing(body: ListingRequest) -> Instrument:
    """The core's integer instrument from a listing's decimal terms; off-grid terms are refused, not rounded."""
    decimals = CURRENCY_DECIMALS.get(body.currency)
    if decimals is None:
        raise UnitError("UNSUPPORTED_CURRENCY", f"currency {body.currency} is not supported", "currency")
    tick = parse_decimal(body.tick_size, "tick_size")
    if tick <= 0:
        raise UnitError("INVALID_TICK_SIZE", "tick_size must be greater than zero", "tick_size")
    bond = None
    nominal: Decimal | None = None
    if body.kind is InstrumentKind.BOND:
        if body.bond is None:
            raise UnitError("BOND_TERMS_REQUIRED", "a bond listing needs its bond terms", "bond")
        terms = body.bond
        nominal = parse_decimal(terms.nominal, "bond.nominal")
        nominal_minor = cash_to_minor(terms.nominal, decimals, "bond.nominal")
        if not terms.issue_date < terms.maturity_date:
            raise UnitError("INVALID_BOND_DATES", "the issue date must come before maturity", "bond.maturity_date")
        if terms.first_coupon_date is not None and not (
            terms.issue_date < terms.first_coupon_date <= terms.maturity_date
        ):
            raise UnitError("INVALID_BOND_DATES", "the first coupon must fall after issue, by maturity", "bond")
        redemption = _ppm_of_percent(terms.redemption_price, "bond.redemption_price")
        if redemption <= 0:
            raise UnitError("INVALID_PERCENT", "the redemption price must be positive", "bond.redemption_price")
        bond = BondTerms(
            nominal_minor=nominal_minor,
            coupon_rate_ppm=_ppm_of_percent(terms.coupon_rate, "bond.coupon_rate"),
            coupon_frequency=terms.coupon_frequency,
            day_count=terms.day_count,
            issue_date=terms.issue_date,
            maturity_date=terms.maturity_date,
            redemption_ppm=redemption,
            first_coupon_date=terms.first_coupon_date,
        )
    elif body.bond is not None:
        raise UnitError("BOND_TERMS_NOT_ALLOWED", "only bonds carry bond terms", "bond")
    value = tick_value(body.kind, tick, body.lot_size, decimals, nominal)
    min_quantity = body.min_quantity or body.lot_size
    if min_quantity % body.lot_size or body.max_quantity % body.lot_size or min_quantity > body.max_quantity:
        raise UnitError(
            "QUANTITY_NOT_ON_LOT", "min and max quantity must be multiples of the lot size, min <= max", "min_quantity"
        )
    probe = Instrument(
        symbol=body.symbol,
        kind=body.kind,
        currency=body.currency,
        currency_decimals=decimals,
        tick_size=format(tick.normalize(), "f"),
        tick_value=value,
        lot_size=body.lot_size,
        min_quantity=min_quantity,
        max_quantity=body.max_quantity,
        band_bps=0,
        reference_price=1,
        bond=bond,
    )
    reference = price_to_ticks(probe, body.reference_price, "reference_price")
    band = _bps(body.price_band_percent, "price_band_percent")
    volatility = _bps(body.volatility_percent, "volatility_percent")
    retail_cap = None if body.retail_cap is None else cash_to_minor(body.retail_cap, decimals, "retail_cap")
    retail_cap_bps = (
        None
        if body.retail_cap_percent_of_assets is None
        else _bps(body.retail_cap_percent_of_assets, "retail_cap_percent_of_assets")
    )
    if retail_cap_bps is not None and retail_cap_bps > 10_000:
        raise UnitError("INVALID_PERCENT", "a share of assets is at most 100 percent", "retail_cap_percent_of_assets")
    steps = (0, 0)
    if body.bond is not None:
        steps = (
            _ppm_of_percent(body.bond.impact_step_down, "bond.impact_step_down"),
            _ppm_of_percent(body.bond.impact_step_up, "bond.impact_step_up"),
        )
    return Instrument(
        symbol=body.symbol,
        kind=body.kind,
        currency=body.currency,
        currency_decimals=decimals,
        tick_size=probe.tick_size,
        tick_value=value,
        lot_size=body.lot_size,
        min_quantity=min_quantity,
        max_quantity=body.max_quantity,
        band_bps=band,
        reference_price=reference,
        maker_fee_bps=body.maker_fee_bps,
        taker_fee_bps=body.taker_fee_bps,
        state=body.trading_state,
        issuer=body.issuer,
        bond=bond,
        volatility_bps=volatility,
        volatility_auction_us=body.volatility_auction_seconds * 1_000_000,
        auction_only=body.auction_only,
        retail_may_buy=InvestorCategory.RETAIL in body.eligible_categories,
        professional_may_buy=InvestorCategory.PROFESSIONAL in body.eligible_categories,
        retail_cap_minor=retail_cap,
        retail_cap_bps_of_assets=retail_cap_bps,
        impact_step_down_ppm=steps[0],
        impact_step_up_ppm=steps[1],
    )


def _unit_error(error: UnitError) -> ApiError:
    return ApiError(422, error.code, error.message, {"field": error.field})


@router.post("/instruments", status_code=201, responses=ERRORS, summary="List an instrument (operator)")
async def list_instrument(
    body: ListingRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> dict[str, Any]:
    if body.auction_only and body.trading_state is TradingState.OPEN:
        raise ApiError(422, "INVALID_STATE", "an auction-only instrument never trades continuously")
    try:
        instrument = instrument_from_listing(body)
    except UnitError as error:
        raise _unit_error(error) from None
    except AssertionError as error:
        raise ApiError(422, "INVALID_LISTING", f"the listing terms are inconsistent: {error}") from None
    outcome = await submit(request, ListInstrument(instrument), principal.participant_id)
    rejected = first_reject(outcome)
    if rejected is not None:
        raise reject_error(rejected)
    return {
        "symbol": instrument.symbol,
        "seq": outcome.seq,
        "tick_value_minor": instrument.tick_value,
        "reference_price": price_text(instrument, instrument.reference_price),
        "trading_state": instrument.state.value,
    }


@router.post(
    "/instruments/{symbol}/state", response_model=TradingStateView, responses=ERRORS, summary="Change trading state"
)
async def change_state(
    symbol: str,
    body: TradingStateRequest,
    request: Request,
    principal: Annotated[Principal, Depends(OPERATOR)],
) -> TradingStateView:
    ensure_instrument(engine_of(request), symbol)
    outcome = await submit(request, SetTradingState(symbol, body.state, body.reason), principal.participant_id)
    rejected = first_reject(outcome)
    if rejected is not None:
        raise reject_error(rejected)
    return TradingStateView(symbol=symbol, state=body.state, seq=outcome.seq)


@router.post(
    "/instruments/{symbol}/issuance",
    status_code=201,
    response_model=IssuanceView,
    responses=ERRORS,
    summary="Create issued securities in the issuer's account",
)
async def issue(
    symbol: str, body: IssuanceRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> IssuanceView:
    instrument = ensure_instrument(engine_of(request), symbol)
    try:
        quantity = quantity_to_units(instrument, body.quantity)
    except UnitError as error:
        raise _unit_error(error) from None
    outcome = await submit(request, IssueSecurities(body.account, symbol, quantity), principal.participant_id)
    rejected = first_reject(outcome)
    if rejected is not None:
        raise reject_error(rejected)
    return IssuanceView(account=body.account, symbol=symbol, quantity=str(quantity), seq=outcome.seq)


async def _move_cash(request: Request, principal: Principal, body: CashMovement, deposit: bool) -> CashMovementView:
    decimals = CURRENCY_DECIMALS.get(body.currency)
    if decimals is None:
        raise ApiError(422, "UNSUPPORTED_CURRENCY", f"currency {body.currency} is not supported")
    try:
        amount = cash_to_minor(body.amount, decimals)
    except UnitError as error:
        raise _unit_error(error) from None
    command = (
        Deposit(body.account, body.currency, amount) if deposit else Withdraw(body.account, body.currency, amount)
    )
    outcome = await submit(request, command, principal.participant_id)
    rejected = first_reject(outcome)
    if rejected is not None:
        raise reject_error(rejected)
    return CashMovementView(
        account=body.account, currency=body.currency, amount=body.amount, seq=outcome.seq
    )


@router.post("/deposits", status_code=201, response_model=CashMovementView, responses=ERRORS, summary="Credit cash")
async def deposit(
    body: CashMovement, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> CashMovementView:
    return await _move_cash(request, principal, body, deposit=True)


@router.post("/withdrawals", status_code=201, response_model=CashMovementView, responses=ERRORS, summary="Debit cash")
async def withdraw(
    body: CashMovement, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> CashMovementView:
    return await _move_cash(request, principal, body, deposit=False)

