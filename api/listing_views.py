"""Response bodies built from the stored rows of issuers, applications, decisions and impact reports.

Numbers leave as plain decimal strings (never exponents), timestamps as RFC 3339 UTC with microseconds, ids as
strings. Who decided is shown to operators, regulators and the issuer concerned, never to the public.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from api.impact_calendar import ReportFrequency, ReportingStatus, reporting_status
from api.listing_models import (
    ApplicationStatus,
    ApplicationView,
    AssuranceLevel,
    AssuranceView,
    AssuredReportRef,
    DecisionView,
    Document,
    DocumentKind,
    EligibilityEvidence,
    EquityTerms,
    ExcludedSector,
    ImpactProfileView,
    ImpactReportingView,
    ImpactReportView,
    IndicatorView,
    IssuerSummary,
    IssuerView,
    LegalForm,
    ReportDocument,
    ReportedValueView,
    ReportingCalendarView,
    ScreeningResult,
    ScreeningView,
)
from api.listings_store import ProfileParts, ReportingFacts, ReportParts, terms_of
from api.routes.operator import BondTermsRequest
from exchange.instrument import InstrumentKind


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decimal_text(value: Decimal) -> str:
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def issuer_view(row: asyncpg.Record, listings: list[str]) -> IssuerView:
    return IssuerView(
        issuer_id=row["issuer_id"],
        legal_name=row["legal_name"],
        country=row["country"],
        legal_form=LegalForm(row["legal_form"]),
        registration_id=row["registration_id"],
        website=row["website"],
        screening=ScreeningView(
            result=ScreeningResult(row["screening"]),
            reason=row["screening_reason"],
            screened_at=rfc3339(row["screened_at"]),
            evidence=EligibilityEvidence.model_construct(
                target_population_share=decimal_text(row["target_population_share"]),
                excluded_sectors=[ExcludedSector(s) for s in row["excluded_sectors"]],
                last_due_diligence=row["last_due_diligence"],
            ),
        ),
        listings=listings,
        created_at=rfc3339(row["created_at"]) or "",
        updated_at=rfc3339(row["updated_at"]) or "",
    )


def issuer_summary(row: asyncpg.Record) -> IssuerSummary:
    return IssuerSummary(
        issuer_id=row["issuer_id"],
        legal_name=row["legal_name"],
        country=row["country"],
        legal_form=LegalForm(row["legal_form"]),
        website=row["website"],
        screening=ScreeningResult(row["screening"]),
    )


def decision_view(row: asyncpg.Record, *, show_operator: bool) -> DecisionView:
    return DecisionView(
        id=str(row["decision_id"]),
        action=row["action"],
        reason=row["reason"],
        decided_by=row["decided_by"] if show_operator else None,
        decided_at=rfc3339(row["decided_at"]) or "",
        symbol=row["symbol"],
        application_id=None if row["application_id"] is None else str(row["application_id"]),
        seq=row["seq"],
    )


def profile_view(row: asyncpg.Record, parts: ProfileParts) -> ImpactProfileView:
    application_id = row["application_id"]
    return ImpactProfileView(
        sdgs=list(row["sdgs"]),
        indicators=[
            IndicatorView(
                code=i["code"],
                name=i["name"],
                unit=i["unit"],
                baseline=decimal_text(i["baseline"]),
                target=decimal_text(i["target"]),
                target_date=i["target_date"].isoformat(),
            )
            for i in parts.indicators.get(application_id, [])
        ],
        theory_of_change=row["theory_of_change"],
        documents=[
            Document.model_construct(kind=DocumentKind(d["kind"]), title=d["title"], url=d["url"], sha256=d["sha256"])
            for d in parts.documents.get(application_id, [])
        ],
    )


def instrument_terms(row: asyncpg.Record) -> tuple[EquityTerms | None, BondTermsRequest | None, dict[str, Any]]:
    terms = terms_of(row)
    equity = None if terms.get("equity") is None else EquityTerms.model_construct(**terms["equity"])
    bond = None if terms.get("bond") is None else BondTermsRequest.model_validate(terms["bond"])
    return equity, bond, dict(terms.get("trading") or {})


def application_view(
    row: asyncpg.Record, parts: ProfileParts, decisions: list[asyncpg.Record], *, show_operator: bool
) -> ApplicationView:
    equity, bond, trading = instrument_terms(row)
    return ApplicationView(
        id=str(row["application_id"]),
        issuer_id=row["issuer_id"],
        symbol=row["symbol"],
        kind=InstrumentKind(row["kind"]),
        currency=row["currency"],
        status=ApplicationStatus(row["status"]),
        equity=equity,
        bond=bond,
        trading=trading,
        impact=profile_view(row, parts),
        reporting=ReportingCalendarView(
            frequency=ReportFrequency(row["report_frequency"]),
            first_due=row["first_report_due"].isoformat(),
            grace_days=row["grace_days"],
        ),
        submitted_at=rfc3339(row["submitted_at"]) or "",
        decided_at=rfc3339(row["decided_at"]),
        listed_seq=row["listed_seq"],
        decisions=[decision_view(d, show_operator=show_operator) for d in decisions],
    )


def status_of(row: asyncpg.Record, facts: ReportingFacts, today: date) -> ReportingStatus:
    return reporting_status(
        row["first_report_due"], ReportFrequency(row["report_frequency"]), row["grace_days"], facts.published, today
    )


def reporting_view(row: asyncpg.Record, facts: ReportingFacts, today: date) -> ImpactReportingView:
    status = status_of(row, facts, today)
    assured = facts.last_assured
    return ImpactReportingView(
        status=status.state.value,
        frequency=ReportFrequency(row["report_frequency"]),
        next_due=status.next_due.isoformat(),
        grace_ends=status.grace_ends.isoformat(),
        grace_days=row["grace_days"],
        reports_published=status.reports_published,
        last_assured_report=None
        if assured is None
        else AssuredReportRef(
            report_id=str(assured["report_id"]),
            period_start=assured["period_start"].isoformat(),
            period_end=assured["period_end"].isoformat(),
            assured_at=rfc3339(assured["assured_at"]) or "",
            level=AssuranceLevel(assured["level"]),
        ),
    )


def target_met(value: Decimal, baseline: Decimal, target: Decimal) -> bool:
    """Whether `value` reached `target`, in the direction the target lies from the baseline (up or down)."""
    return value >= target if target >= baseline else value <= target


def report_view(row: asyncpg.Record, indicators: list[asyncpg.Record], parts: ReportParts) -> ImpactReportView:
    report_id = row["report_id"]
    reported = parts.values.get(report_id, {})
    assurance = parts.assurances.get(report_id)
    return ImpactReportView(
        id=str(report_id),
        symbol=row["symbol"],
        period_start=row["period_start"].isoformat(),
        period_end=row["period_end"].isoformat(),
        summary=row["summary"],
        document=ReportDocument.model_construct(url=row["document_url"], sha256=row["document_sha256"]),
        values=[
            ReportedValueView(
                code=i["code"],
                name=i["name"],
                unit=i["unit"],
                value=decimal_text(reported[i["code"]]),
                baseline=decimal_text(i["baseline"]),
                target=decimal_text(i["target"]),
                target_date=i["target_date"].isoformat(),
                target_met=target_met(reported[i["code"]], i["baseline"], i["target"]),
            )
            for i in indicators
            if i["code"] in reported
        ],
        published_at=rfc3339(row["published_at"]) or "",
        assurance=None
        if assurance is None
        else AssuranceView(
            assessor_id=assurance["assessor_id"],
            level=AssuranceLevel(assurance["level"]),
            statement=assurance["statement"],
            assured_at=rfc3339(assurance["assured_at"]) or "",
        ),
    )
