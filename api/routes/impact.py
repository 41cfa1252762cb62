"""Impact reporting and the public impact view of listed instruments.

Issuers publish periodic impact reports (indicator values for a period, with the report document's SHA-256); an
external assessor marks a report as assured, with a statement. Reports and assurances are append-only: a published
figure is never edited. The public reads each listing's impact profile, its reporting status (computed on read from
today's date: `api.impact_calendar`) and its impact history, and filters listed instruments by goal, legal form and
kind.

The instruments filter is its own route, `GET /v1/impact/instruments`, rather than parameters of the market-data
`GET /v1/instruments`: the market list comes from the in-memory market picture, this one from the listing records
in PostgreSQL, and keeping them apart keeps each route to one source.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request

from api import listings_store as store
from api.auth import Principal, Role, require
from api.commands import first_reject, submit
from api.errors import ApiError, ErrorEnvelope
from api.impact_calendar import ReportingState
from api.listing_models import (
    AssuranceRequest,
    ImpactInstrumentPage,
    ImpactInstrumentSummary,
    ImpactInstrumentView,
    ImpactReportPage,
    ImpactReportRequest,
    ImpactReportView,
    LegalForm,
    ListingEventView,
)
from api.listing_views import (
    instrument_terms,
    issuer_summary,
    profile_view,
    report_view,
    reporting_view,
    rfc3339,
    status_of,
)
from api.routes.issuers import SYMBOL, listing_symbol, numeric_id, pool_of, utc_today
from exchange.commands import RecordImpactOutcome
from exchange.instrument import InstrumentKind

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["impact"])
ISSUER = require(Role.ISSUER)
ASSESSOR = require(Role.ASSESSOR)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (401, 403, 404, 409, 422, 429, 503)
}
PUBLIC_ACTIONS = ("approve", "suspend", "resume", "delist")
LATEST_REPORTS = 5
REPORT_CURSOR = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})\.([0-9]{1,18})$")


def trading_state_of(request: Request, symbol: str) -> str | None:
    """The state the public market picture shows (committed); the engine's if market data is not running."""
    hub = getattr(request.app.state, "marketdata", None)
    market = hub.market(symbol) if hub is not None and hub.running else None
    if market is not None:
        return market.state.value
    sequencer = getattr(request.app.state, "sequencer", None)
    instrument = None if sequencer is None else sequencer.engine.instruments.get(symbol)
    return None if instrument is None else instrument.state.value


async def _public_listing(conn: asyncpg.Connection, symbol: str) -> asyncpg.Record:
    row = await store.listing_of(conn, listing_symbol(symbol))
    if row is None:
        raise ApiError(404, "UNKNOWN_LISTING", f"no impact listing {symbol}", {"symbol": symbol})
    return row


async def _report_views(
    conn: asyncpg.Connection, listing: asyncpg.Record, rows: list[asyncpg.Record]
) -> list[ImpactReportView]:
    indicators = (await store.profile_parts(conn, [listing["application_id"]])).indicators[listing["application_id"]]
    parts = await store.report_parts(conn, [r["report_id"] for r in rows])
    return [report_view(r, indicators, parts) for r in rows]


async def _report(conn: asyncpg.Connection, report_id: int) -> ImpactReportView:
    row = await store.get_report(conn, report_id)
    if row is None:
        raise ApiError(404, "UNKNOWN_REPORT", f"no impact report {report_id}")
    listing = await store.get_application(conn, row["application_id"])
    assert listing is not None
    return (await _report_views(conn, listing, [row]))[0]


# ---------------------------------------------------------------------------------------------------- reports


@router.post(
    "/listings/{symbol}/impact-reports",
    status_code=201,
    response_model=ImpactReportView,
    responses=ERRORS,
    summary="Publish an impact report for a period (the listing's issuer)",
    description=(
        "Values are for the listing's own indicators; the period must have ended and must not overlap an earlier "
        "report. Each report meets the next due date of the reporting calendar."
    ),
)
async def publish_report(
    symbol: str, body: ImpactReportRequest, request: Request, principal: Annotated[Principal, Depends(ISSUER)]
) -> ImpactReportView:
    today = utc_today()
    if body.period_end > today:
        raise ApiError(
            422, "PERIOD_NOT_ENDED", "a report covers a period that has ended", {"period_end": body.period_end}
        )
    async with pool_of(request).acquire() as conn, conn.transaction():
        # The lock serialises reports of one listing, so two cannot claim overlapping periods at once.
        listing = await store.listing_of(conn, listing_symbol(symbol), for_update=True)
        if listing is None or listing["issuer_id"] != principal.participant_id:
            raise ApiError(404, "UNKNOWN_LISTING", f"no listing {symbol} of yours", {"symbol": symbol})
        application_id = listing["application_id"]
        known = {i["code"] for i in (await store.profile_parts(conn, [application_id])).indicators[application_id]}
        unknown = sorted({v.code for v in body.values} - known)
        if unknown:
            raise ApiError(
                422, "UNKNOWN_INDICATOR", "values must be for the listing's indicators", {"codes": unknown}
            )
        overlap = await store.overlapping_report(conn, application_id, body.period_start, body.period_end)
        if overlap is not None:
            raise ApiError(
                409,
                "REPORT_PERIOD_OVERLAPS",
                "an earlier report covers part of this period",
                {"report_id": str(overlap["report_id"])},
            )
        report_id = await store.insert_report(
            conn,
            listing,
            body.period_start,
            body.period_end,
            body.summary,
            body.document.url,
            body.document.sha256,
            [(v.code, v.value) for v in body.values],
            principal.participant_id,
        )
        return await _report(conn, report_id)


@router.post(
    "/impact-reports/{report_id}/assurance",
    response_model=ImpactReportView,
    responses=ERRORS,
    summary="Mark an impact report as assured, with the statement (assessor)",
)
async def assure_report(
    report_id: str, body: AssuranceRequest, request: Request, principal: Annotated[Principal, Depends(ASSESSOR)]
) -> ImpactReportView:
    number = numeric_id(report_id, "UNKNOWN_REPORT", "impact report")
    async with pool_of(request).acquire() as conn, conn.transaction():
        if await store.get_report(conn, number) is None:
            raise ApiError(404, "UNKNOWN_REPORT", f"no impact report {report_id}")
        await store.insert_assurance(conn, number, principal.participant_id, body.level.value, body.statement)
        view = await _report(conn, number)
    await _step_impact_linked_coupon(request, view, principal)
    return view


async def _step_impact_linked_coupon(request: Request, view: ImpactReportView, principal: Principal) -> None:
    """The coupon of an impact-linked bond follows its latest ASSURED report: journal the outcome now.

    The listed rule: the target is met when every indicator of the report reached its target; then the coupon steps
    down, otherwise up (by the steps in the bond's listed terms). The assurance itself is already recorded; if the
    engine refuses the outcome (the bond was redeemed or delisted meanwhile), that is logged, not undone.
    """
    sequencer = getattr(request.app.state, "sequencer", None)
    instrument = None if sequencer is None else sequencer.engine.instruments.get(view.symbol)
    if instrument is None or not instrument.impact_linked:
        return
    target_met = bool(view.values) and all(value.target_met for value in view.values)
    outcome = await submit(
        request, RecordImpactOutcome(view.symbol, target_met, f"impact-report-{view.id}"), principal.participant_id
    )
    rejected = first_reject(outcome)
    if rejected is not None:
        log.warning(
            "impact outcome not applied", extra={"symbol": view.symbol, "report": view.id, "reason": rejected.reason}
        )


@router.get(
    "/impact-reports/{report_id}", response_model=ImpactReportView, responses=ERRORS, summary="One impact report"
)
async def get_report(report_id: str, request: Request) -> ImpactReportView:
    number = numeric_id(report_id, "UNKNOWN_REPORT", "impact report")
    async with pool_of(request).acquire() as conn:
        return await _report(conn, number)


# ---------------------------------------------------------------------------------------------------- public views


@router.get(
    "/impact/instruments",
    response_model=ImpactInstrumentPage,
    responses=ERRORS,
    summary="Listed instruments by goal, legal form, kind and reporting status, with issuer and impact summary",
)
async def find_instruments(
    request: Request,
    sdg: Annotated[int | None, Query(ge=1, le=17, description="A UN Sustainable Development Goal, 1-17.")] = None,
    legal_form: LegalForm | None = None,
    kind: InstrumentKind | None = None,
    reporting: Annotated[
        ReportingState | None, Query(description="current or overdue (as of today)")
    ] = None,
    cursor: Annotated[str | None, Query(pattern=SYMBOL.pattern, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ImpactInstrumentPage:
    today = utc_today()
    async with pool_of(request).acquire() as conn:
        rows = await store.listings_matching(
            conn,
            sdg,
            None if legal_form is None else legal_form.value,
            None if kind is None else kind.value,
            cursor,
        )
        facts = await store.reporting_facts(conn, [r["application_id"] for r in rows])
    # The reporting status depends on today, so it is filtered here; an exchange lists hundreds, not millions.
    found: list[ImpactInstrumentSummary] = []
    for row in rows:
        row_facts = facts[row["application_id"]]
        if reporting is not None and status_of(row, row_facts, today).state is not reporting:
            continue
        found.append(_summary(request, row, row_facts, today))
        if len(found) > limit:
            break
    page = found[:limit]
    return ImpactInstrumentPage(instruments=page, next_cursor=page[-1].symbol if len(found) > limit else None)


def _summary(
    request: Request, row: asyncpg.Record, facts: store.ReportingFacts, today: date
) -> ImpactInstrumentSummary:
    return ImpactInstrumentSummary(
        symbol=row["symbol"],
        kind=InstrumentKind(row["kind"]),
        currency=row["currency"],
        trading_state=trading_state_of(request, row["symbol"]),
        issuer=issuer_summary(row),
        sdgs=list(row["sdgs"]),
        impact_reporting=reporting_view(row, facts, today),
    )


@router.get(
    "/impact/instruments/{symbol}",
    response_model=ImpactInstrumentView,
    responses=ERRORS,
    summary="A listed instrument's issuer, terms, impact profile, reporting status and latest reports",
)
async def get_impact_instrument(symbol: str, request: Request) -> ImpactInstrumentView:
    today = utc_today()
    async with pool_of(request).acquire() as conn:
        listing = await _public_listing(conn, symbol)
        issuer = await store.get_issuer(conn, listing["issuer_id"])
        assert issuer is not None
        application_id = listing["application_id"]
        parts = await store.profile_parts(conn, [application_id])
        facts = (await store.reporting_facts(conn, [application_id]))[application_id]
        reports = await _report_views(conn, listing, await store.reports_of(conn, symbol, None, LATEST_REPORTS))
        decisions = (await store.decisions_of_applications(conn, [application_id]))[application_id]
    equity, bond, _ = instrument_terms(listing)
    summary = _summary(request, {**dict(listing), **_issuer_columns(issuer)}, facts, today)
    return ImpactInstrumentView(
        **summary.model_dump(),
        equity=equity,
        bond=bond,
        impact=profile_view(listing, parts),
        latest_reports=reports,
        listing_events=[
            ListingEventView(action=d["action"], reason=d["reason"], time=rfc3339(d["decided_at"]) or "")
            for d in decisions
            if d["action"] in PUBLIC_ACTIONS
        ],
    )


def _issuer_columns(issuer: asyncpg.Record) -> dict[str, Any]:
    return {key: issuer[key] for key in ("legal_name", "country", "legal_form", "website", "screening")}


@router.get(
    "/impact/instruments/{symbol}/reports",
    response_model=ImpactReportPage,
    responses=ERRORS,
    summary="A listed instrument's impact history, newest period first",
)
async def list_reports(
    symbol: str,
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=40, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ImpactReportPage:
    before: tuple[date, int] | None = None
    if cursor is not None:
        match = REPORT_CURSOR.fullmatch(cursor)
        try:
            before = (date.fromisoformat(match[1]), int(match[2])) if match else None
        except ValueError:
            before = None
        if before is None:
            raise ApiError(422, "INVALID_CURSOR", "cursor must be the next_cursor of a previous page")
    async with pool_of(request).acquire() as conn:
        listing = await _public_listing(conn, symbol)
        rows = await store.reports_of(conn, symbol, before, limit + 1)
        page = rows[:limit]
        views = await _report_views(conn, listing, page)
    last = page[-1] if page else None
    return ImpactReportPage(
        symbol=symbol,
        reports=views,
        next_cursor=f"{last['period_end'].isoformat()}.{last['report_id']}" if last and len(rows) > limit else None,
    )
