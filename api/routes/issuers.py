"""Issuers and their listings: issuer records with the eligibility screening, listing applications with their impact
profiles, and the operators' decisions on them (approve, reject, suspend, resume, delist, grace period).

Records live in PostgreSQL (`api.listings_store`); what changes trading goes through the sequencer: approval submits
`ListInstrument` (the approved terms, state pre_open), suspension, resumption and delisting submit `SetTradingState`
with the reason. Every operator decision is also an append-only `listing_decisions` row naming who, when, why and the
journal record that carried it. A decision is taken under a row lock on its application, so two operators cannot both
approve, or suspend and resume, the same listing at once.

Roles: an issuer writes its own record and applications; operators decide; regulators read everything; the public
reads issuer records (the listed company and its screening are public), never pending applications.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from api import listings_store as store
from api.auth import PARTICIPANT_ID, Principal, Role, require
from api.commands import engine_of, first_reject, reject_error, submit
from api.errors import ApiError, ErrorEnvelope
from api.listing_models import (
    ApplicationPage,
    ApplicationRequest,
    ApplicationStatus,
    ApplicationView,
    DecisionPage,
    DecisionRequest,
    GracePeriodRequest,
    ImpactReportingView,
    IssuerPage,
    IssuerRequest,
    IssuerView,
    LegalForm,
    ResumeRequest,
    ScreeningRequest,
    ScreeningResult,
    TradingStateChangeView,
)
from api.listing_views import application_view, decision_view, issuer_view, reporting_view
from api.routes.operator import ListingRequest, instrument_from_listing
from api.units import UnitError, parse_decimal
from exchange import codec
from exchange.commands import ListInstrument, SetTradingState
from exchange.engine import Engine
from exchange.instrument import Instrument, InstrumentKind, TradingState
from exchange.rejects import RejectReason

router = APIRouter(prefix="/v1", tags=["issuers and listings"])
ISSUER = require(Role.ISSUER)
OPERATOR = require(Role.OPERATOR)
READERS = require(Role.ISSUER, Role.OPERATOR, Role.REGULATOR)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (401, 403, 404, 409, 422, 429, 503)
}
RESUMABLE_STATES = frozenset(
    {TradingState.OPEN, TradingState.PRE_OPEN, TradingState.OPENING_AUCTION, TradingState.CLOSED}
)
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]
# Path names are checked before they reach the database, which refuses some text (a NUL) with an error of its own.
# ASCII digits only: str.isdigit() also admits digits such as "²" that int() refuses.
NUMERIC_ID = re.compile(r"^[0-9]{1,18}$")
SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._\-]{0,31}$")


def pool_of(request: Request) -> asyncpg.Pool:
    pool = getattr(request.app.state, "pg_pool", None)
    if pool is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    return pool


def utc_today() -> date:
    """Today's UTC date: the shell reads the clock and hands it to the (pure) reporting calendar."""
    return datetime.now(UTC).date()


def listing_symbol(symbol: str) -> str:
    if not SYMBOL.fullmatch(symbol):
        raise ApiError(404, "UNKNOWN_LISTING", "no such listing")
    return symbol


def issuer_id_of(issuer_id: str) -> str:
    if not PARTICIPANT_ID.fullmatch(issuer_id):
        raise ApiError(404, "UNKNOWN_ISSUER", "no such issuer")
    return issuer_id


def numeric_id(text: str, code: str, what: str) -> int:
    if not NUMERIC_ID.fullmatch(text):
        raise ApiError(404, code, f"no {what} {text}")
    return int(text)


# ---------------------------------------------------------------------------------------------------- issuers


@router.put(
    "/issuers/{issuer_id}",
    response_model=IssuerView,
    responses=ERRORS,
    summary="Create or update your issuer record (issuer)",
    description="Any change to the record or its evidence sends the eligibility screening back to pending.",
)
async def put_issuer(
    issuer_id: str,
    body: IssuerRequest,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(ISSUER)],
) -> IssuerView:
    if issuer_id != principal.participant_id:
        raise ApiError(403, "NOT_YOUR_ISSUER", "an issuer writes only its own record", {"issuer_id": issuer_id})
    async with pool_of(request).acquire() as conn, conn.transaction():
        row, created = await store.upsert_issuer(conn, issuer_id, body)
        listings = await store.listed_symbols(conn, [issuer_id])
    response.status_code = 201 if created else 200
    return issuer_view(row, listings.get(issuer_id, []))


@router.get("/issuers", response_model=IssuerPage, responses=ERRORS, summary="Issuers and their screening (public)")
async def list_issuers(
    request: Request,
    legal_form: LegalForm | None = None,
    cursor: Annotated[
        str | None, Query(pattern=PARTICIPANT_ID.pattern, description="next_cursor of the previous page")
    ] = None,
    limit: Limit = 100,
) -> IssuerPage:
    async with pool_of(request).acquire() as conn:
        rows = await store.list_issuers(conn, None if legal_form is None else legal_form.value, cursor, limit + 1)
        page = rows[:limit]
        listings = await store.listed_symbols(conn, [r["issuer_id"] for r in page])
    return IssuerPage(
        issuers=[issuer_view(r, listings.get(r["issuer_id"], [])) for r in page],
        next_cursor=page[-1]["issuer_id"] if len(rows) > limit else None,
    )


@router.get("/issuers/{issuer_id}", response_model=IssuerView, responses=ERRORS, summary="One issuer (public)")
async def get_issuer(issuer_id: str, request: Request) -> IssuerView:
    issuer_id_of(issuer_id)
    async with pool_of(request).acquire() as conn:
        row = await store.get_issuer(conn, issuer_id)
        if row is None:
            raise ApiError(404, "UNKNOWN_ISSUER", f"no issuer {issuer_id}")
        listings = await store.listed_symbols(conn, [issuer_id])
    return issuer_view(row, listings.get(issuer_id, []))


@router.post(
    "/issuers/{issuer_id}/screening",
    response_model=IssuerView,
    responses=ERRORS,
    summary="Record the eligibility screening of an issuer (operator)",
    description="An issuer active in an excluded sector cannot be found eligible.",
)
async def screen_issuer(
    issuer_id: str, body: ScreeningRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> IssuerView:
    issuer_id_of(issuer_id)
    async with pool_of(request).acquire() as conn, conn.transaction():
        current = await store.get_issuer(conn, issuer_id, for_update=True)
        if current is None:
            raise ApiError(404, "UNKNOWN_ISSUER", f"no issuer {issuer_id}")
        if body.result is ScreeningResult.ELIGIBLE and current["excluded_sectors"]:
            raise ApiError(
                409,
                "EXCLUDED_SECTOR",
                "the issuer declares activity in an excluded sector",
                {"excluded_sectors": list(current["excluded_sectors"])},
            )
        row = await store.record_screening(conn, issuer_id, body.result.value, body.reason, principal.participant_id)
        listings = await store.listed_symbols(conn, [issuer_id])
    return issuer_view(row, listings.get(issuer_id, []))


# ---------------------------------------------------------------------------------------------------- applications


def listing_request(row: asyncpg.Record) -> ListingRequest:
    """The operator's listing request for an application's stored terms: a new listing starts in pre_open."""
    terms = store.terms_of(row)
    try:
        return ListingRequest.model_validate(
            {
                **terms["trading"],
                "symbol": row["symbol"],
                "kind": row["kind"],
                "currency": row["currency"],
                "issuer": row["issuer_id"],
                "trading_state": TradingState.PRE_OPEN.value,
                "bond": terms["bond"],
            }
        )
    except ValidationError as error:
        raise ApiError(422, "INVALID_LISTING", f"the listing terms are not valid: {error.errors()[0]['msg']}") from None


def core_instrument(listing: ListingRequest) -> Instrument:
    try:
        return instrument_from_listing(listing)
    except UnitError as error:
        raise ApiError(422, error.code, error.message, {"field": f"trading.{error.field}"}) from None
    except AssertionError as error:
        raise ApiError(422, "INVALID_LISTING", f"the listing terms are inconsistent: {error}") from None


def _check_instrument_terms(body: ApplicationRequest) -> None:
    def unprocessable(code: str, message: str, field: str) -> ApiError:
        return ApiError(422, code, message, {"field": field})

    if body.kind is InstrumentKind.EQUITY:
        if body.equity is None:
            raise unprocessable("EQUITY_TERMS_REQUIRED", "an equity application needs its equity terms", "equity")
        if body.bond is not None:
            raise unprocessable("BOND_TERMS_NOT_ALLOWED", "only bonds carry bond terms", "bond")
        try:
            shares = parse_decimal(body.equity.shares_outstanding, "equity.shares_outstanding")
            parse_decimal(body.equity.nominal, "equity.nominal")
        except UnitError as error:
            raise unprocessable(error.code, error.message, error.field) from None
        if shares <= 0 or shares != shares.to_integral_value():
            raise unprocessable(
                "INVALID_SHARES", "shares outstanding must be a whole number above zero", "equity.shares_outstanding"
            )
    else:
        if body.bond is None:
            raise unprocessable("BOND_TERMS_REQUIRED", "a bond application needs its bond terms", "bond")
        if body.equity is not None:
            raise unprocessable("EQUITY_TERMS_NOT_ALLOWED", "only equities carry equity terms", "equity")


@router.post(
    "/listing-applications",
    status_code=201,
    response_model=ApplicationView,
    responses=ERRORS,
    summary="Apply to list an equity or a bond, with its impact profile (issuer)",
    description=(
        "The terms are checked as a listing would check them (tick, lot, band, bond dates, ...), so an application "
        "that is accepted here can be listed as it stands. The issuer needs its issuer record first."
    ),
)
async def submit_application(
    body: ApplicationRequest, request: Request, principal: Annotated[Principal, Depends(ISSUER)]
) -> ApplicationView:
    engine = engine_of(request)
    _check_instrument_terms(body)
    issuer_id = principal.participant_id
    # The same check approval will make, now: a valid application is a listable one.
    draft = ListingRequest.model_validate(
        {
            **body.trading.model_dump(),
            "symbol": body.symbol,
            "kind": body.kind,
            "currency": body.currency,
            "issuer": issuer_id,
            "bond": body.bond,
        }
    )
    core_instrument(draft)
    if body.symbol in engine.instruments:
        raise ApiError(409, "SYMBOL_TAKEN", f"{body.symbol} is already listed", {"symbol": body.symbol})
    async with pool_of(request).acquire() as conn, conn.transaction():
        if await store.get_issuer(conn, issuer_id) is None:
            raise ApiError(
                409, "ISSUER_RECORD_REQUIRED", f"create your issuer record first: PUT /v1/issuers/{issuer_id}"
            )
        application_id = await store.insert_application(conn, issuer_id, body, issuer_id)
        return await _application(conn, application_id)


async def _application(conn: asyncpg.Connection, application_id: int) -> ApplicationView:
    row = await store.get_application(conn, application_id)
    assert row is not None
    return (await _views(conn, [row]))[0]


async def _views(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[ApplicationView]:
    ids = [r["application_id"] for r in rows]
    parts = await store.profile_parts(conn, ids)
    decisions = await store.decisions_of_applications(conn, ids)
    return [application_view(r, parts, decisions[r["application_id"]], show_operator=True) for r in rows]


@router.get(
    "/listing-applications",
    response_model=ApplicationPage,
    responses=ERRORS,
    summary="Listing applications, newest first (an issuer sees its own)",
)
async def list_applications(
    request: Request,
    principal: Annotated[Principal, Depends(READERS)],
    status: ApplicationStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ApplicationPage:
    issuer_id = principal.participant_id if principal.role is Role.ISSUER else None
    before = None if cursor is None else int(cursor)
    async with pool_of(request).acquire() as conn:
        rows = await store.list_applications(
            conn, issuer_id, None if status is None else status.value, before, limit + 1
        )
        page = rows[:limit]
        views = await _views(conn, page)
    return ApplicationPage(
        applications=views, next_cursor=str(page[-1]["application_id"]) if len(rows) > limit else None
    )


async def _visible_application(
    conn: asyncpg.Connection, principal: Principal, application_id: str, *, for_update: bool = False
) -> asyncpg.Record:
    number = numeric_id(application_id, "UNKNOWN_APPLICATION", "application")
    row = await store.get_application(conn, number, for_update=for_update)
    # Another issuer's application answers exactly like an unknown one.
    if row is None or (principal.role is Role.ISSUER and row["issuer_id"] != principal.participant_id):
        raise ApiError(404, "UNKNOWN_APPLICATION", f"no application {application_id}")
    return row


@router.get(
    "/listing-applications/{application_id}",
    response_model=ApplicationView,
    responses=ERRORS,
    summary="One listing application with its decisions",
)
async def get_application(
    application_id: str, request: Request, principal: Annotated[Principal, Depends(READERS)]
) -> ApplicationView:
    async with pool_of(request).acquire() as conn:
        row = await _visible_application(conn, principal, application_id)
        return (await _views(conn, [row]))[0]


def _undecided(row: asyncpg.Record) -> None:
    if row["status"] != ApplicationStatus.SUBMITTED.value:
        raise ApiError(
            409,
            "APPLICATION_DECIDED",
            f"application {row['application_id']} is already {row['status']}",
            {"status": row["status"]},
        )


async def _listed_by_earlier_attempt(conn: asyncpg.Connection, engine: Engine, instrument: Instrument) -> int | None:
    """The seq that listed exactly `instrument`, if an earlier approval got it journalled but failed to record it."""
    if instrument.symbol not in engine.instruments:
        return None
    seq = await store.listed_seq_of(conn, instrument.symbol)
    if seq is None:
        return None
    command = await conn.fetchval("SELECT command FROM journal WHERE seq = $1", seq)
    listed = codec.decode(command.encode("ascii")) if command is not None else None
    return seq if isinstance(listed, ListInstrument) and listed.instrument == instrument else None


@router.post(
    "/listing-applications/{application_id}/approve",
    response_model=ApplicationView,
    responses=ERRORS,
    summary="Approve an application: the instrument is listed in pre_open (operator)",
    description="The issuer's screening must be eligible. The listing is journalled (ListInstrument) with the terms.",
)
async def approve_application(
    application_id: str,
    body: DecisionRequest,
    request: Request,
    principal: Annotated[Principal, Depends(OPERATOR)],
) -> ApplicationView:
    engine = engine_of(request)
    async with pool_of(request).acquire() as conn, conn.transaction():
        row = await _visible_application(conn, principal, application_id, for_update=True)
        _undecided(row)
        issuer = await store.get_issuer(conn, row["issuer_id"])
        assert issuer is not None
        if issuer["screening"] != ScreeningResult.ELIGIBLE.value:
            raise ApiError(
                409,
                "ISSUER_NOT_ELIGIBLE",
                "the issuer's eligibility screening must be eligible before a listing is approved",
                {"screening": issuer["screening"]},
            )
        instrument = core_instrument(listing_request(row))
        outcome = await submit(request, ListInstrument(instrument), principal.participant_id)
        seq: int | None = outcome.seq
        rejected = first_reject(outcome)
        if rejected is not None:
            seq = None
            if rejected.reason is RejectReason.INSTRUMENT_EXISTS:
                seq = await _listed_by_earlier_attempt(conn, engine, instrument)
            if seq is None:
                raise reject_error(rejected)
        number = row["application_id"]
        await store.mark_decided(conn, number, ApplicationStatus.APPROVED.value, seq)
        await store.insert_decision(
            conn, row["issuer_id"], number, row["symbol"], "approve", body.reason, principal.participant_id, seq
        )
        return await _application(conn, number)


@router.post(
    "/listing-applications/{application_id}/reject",
    response_model=ApplicationView,
    responses=ERRORS,
    summary="Reject an application, with the reason (operator)",
)
async def reject_application(
    application_id: str,
    body: DecisionRequest,
    request: Request,
    principal: Annotated[Principal, Depends(OPERATOR)],
) -> ApplicationView:
    async with pool_of(request).acquire() as conn, conn.transaction():
        row = await _visible_application(conn, principal, application_id, for_update=True)
        _undecided(row)
        number = row["application_id"]
        await store.mark_decided(conn, number, ApplicationStatus.REJECTED.value, None)
        await store.insert_decision(
            conn, row["issuer_id"], number, row["symbol"], "reject", body.reason, principal.participant_id, None
        )
        return await _application(conn, number)


# ---------------------------------------------------------------------------------------------------- listings


async def _listing(conn: asyncpg.Connection, symbol: str, *, for_update: bool = False) -> asyncpg.Record:
    row = await store.listing_of(conn, listing_symbol(symbol), for_update=for_update)
    if row is None:
        raise ApiError(404, "UNKNOWN_LISTING", f"no listing {symbol} (instruments listed by application only)")
    return row


async def _change_trading(
    request: Request, principal: Principal, symbol: str, action: str, state: TradingState, reason: str
) -> TradingStateChangeView:
    engine = engine_of(request)
    async with pool_of(request).acquire() as conn, conn.transaction():
        listing = await _listing(conn, symbol, for_update=True)
        instrument = engine.instruments.get(symbol)
        current = None if instrument is None else instrument.state
        if action == "resume" and current is not TradingState.SUSPENDED:
            raise ApiError(
                409, "NOT_SUSPENDED", f"{symbol} is not suspended", {"trading_state": getattr(current, "value", None)}
            )
        outcome = await submit(request, SetTradingState(symbol, state, reason), principal.participant_id)
        rejected = first_reject(outcome)
        if rejected is not None:
            raise reject_error(rejected)
        decision = await store.insert_decision(
            conn, listing["issuer_id"], listing["application_id"], symbol, action, reason, principal.participant_id,
            outcome.seq,
        )
    return TradingStateChangeView(
        symbol=symbol, trading_state=state, seq=outcome.seq, decision=decision_view(decision, show_operator=True)
    )


@router.post(
    "/listings/{symbol}/suspend",
    response_model=TradingStateChangeView,
    responses=ERRORS,
    summary="Suspend a listing (operator): orders are refused with INSTRUMENT_SUSPENDED; resting ones stay",
)
async def suspend(
    symbol: str, body: DecisionRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> TradingStateChangeView:
    return await _change_trading(request, principal, symbol, "suspend", TradingState.SUSPENDED, body.reason)


@router.post(
    "/listings/{symbol}/resume",
    response_model=TradingStateChangeView,
    responses=ERRORS,
    summary="Resume a suspended listing (operator), by default into continuous trading",
)
async def resume(
    symbol: str, body: ResumeRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> TradingStateChangeView:
    if body.state not in RESUMABLE_STATES:
        raise ApiError(
            422,
            "INVALID_STATE",
            "trading resumes in open, pre_open, opening_auction or closed",
            {"state": body.state.value},
        )
    return await _change_trading(request, principal, symbol, "resume", body.state, body.reason)


@router.post(
    "/listings/{symbol}/delist",
    response_model=TradingStateChangeView,
    responses=ERRORS,
    summary="Delist (operator): open orders are cancelled and their holds released; final",
)
async def delist(
    symbol: str, body: DecisionRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> TradingStateChangeView:
    return await _change_trading(request, principal, symbol, "delist", TradingState.DELISTED, body.reason)


@router.put(
    "/listings/{symbol}/reporting",
    response_model=ImpactReportingView,
    responses=ERRORS,
    summary="Set a listing's grace period for impact reports (operator)",
)
async def set_grace_period(
    symbol: str, body: GracePeriodRequest, request: Request, principal: Annotated[Principal, Depends(OPERATOR)]
) -> ImpactReportingView:
    async with pool_of(request).acquire() as conn, conn.transaction():
        listing = await _listing(conn, symbol, for_update=True)
        await store.set_grace_days(conn, listing["application_id"], body.grace_days)
        await store.insert_decision(
            conn,
            listing["issuer_id"],
            listing["application_id"],
            symbol,
            "set_grace_period",
            f"{body.grace_days} days: {body.reason}",
            principal.participant_id,
            None,
        )
        listing = await _listing(conn, symbol)
        facts = (await store.reporting_facts(conn, [listing["application_id"]]))[listing["application_id"]]
    return reporting_view(listing, facts, utc_today())


@router.get(
    "/listings/{symbol}/decisions",
    response_model=DecisionPage,
    responses=ERRORS,
    summary="The operators' decisions on a listing, newest first (its issuer, operators, regulators)",
)
async def list_decisions(
    symbol: str,
    request: Request,
    principal: Annotated[Principal, Depends(READERS)],
    cursor: Cursor = None,
    limit: Limit = 100,
) -> DecisionPage:
    async with pool_of(request).acquire() as conn:
        listing = await _listing(conn, symbol)
        if principal.role is Role.ISSUER and listing["issuer_id"] != principal.participant_id:
            raise ApiError(404, "UNKNOWN_LISTING", f"no listing {symbol} of yours")
        rows = await store.decisions_of_symbol(conn, symbol, None if cursor is None else int(cursor), limit + 1)
    page = rows[:limit]
    return DecisionPage(
        decisions=[decision_view(r, show_operator=True) for r in page],
        next_cursor=str(page[-1]["decision_id"]) if len(rows) > limit else None,
    )
