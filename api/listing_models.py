"""Request and response bodies for issuers, listing applications, impact profiles and impact reports.

Numbers are decimal strings, as everywhere in the API. Listing parameters (tick, lot, fees, band, ...) are the
operator's `ListingRequest` fields, so an application carries exactly what a direct listing would and approval turns
it into the same core instrument (`api.routes.operator.instrument_from_listing`).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt, StrictStr, create_model, field_validator, model_validator

from api.impact_calendar import ReportFrequency
from api.routes.operator import BondTermsRequest, Currency, ListingRequest
from api.schemas import DecimalText, StrictModel, Symbol
from exchange.instrument import InstrumentKind, TradingState

# Control characters are unreadable in listings and NUL cannot be stored in PostgreSQL text; long texts keep
# line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SIGNED_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?$")

Url = Annotated[
    StrictStr,
    Field(max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$", examples=["https://example.org/p.pdf"]),
]
Sha256 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the document, 64 hex digits.")]
IndicatorCode = Annotated[
    StrictStr, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$", examples=["PI4060"], description="e.g. an IRIS+ metric id")
]
SignedDecimalText = Annotated[
    StrictStr, Field(max_length=40, examples=["120", "-3.5"], description="A decimal string, optionally negative.")
]
Reason = Annotated[StrictStr, Field(min_length=1, max_length=1000)]


def line_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def paragraph_text(value: str) -> str:
    if _CONTROL_EXCEPT_LINES.search(value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def signed_decimal(value: str) -> str:
    if not SIGNED_DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal string of digits with an optional sign and point, e.g. \"-3.5\"")
    return value


# ---------------------------------------------------------------------------------------------------- issuers


class LegalForm(StrEnum):
    """Legal forms of impact issuers (Italian law, the model market)."""

    IMPRESA_SOCIALE = "impresa_sociale"  # D.Lgs. 112/2017
    SOCIETA_BENEFIT = "societa_benefit"  # L. 208/2015
    SOCIAL_COOPERATIVE = "social_cooperative"  # L. 381/1991
    IMPACT_COMMITMENT_COMPANY = "impact_commitment_company"  # an ordinary company with a binding impact commitment
    NON_PROFIT = "non_profit"


class ExcludedSector(StrEnum):
    WEAPONS = "weapons"
    TOBACCO = "tobacco"
    GAMBLING = "gambling"
    FOSSIL_FUELS = "fossil_fuels"
    ADULT_ENTERTAINMENT = "adult_entertainment"
    PREDATORY_LENDING = "predatory_lending"


class ScreeningResult(StrEnum):
    PENDING = "pending"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"


class EligibilityEvidence(StrictModel):
    target_population_share: DecimalText = Field(
        description="Percent of the activity (revenue or beneficiaries) going to the target population, 0-100."
    )
    excluded_sectors: list[ExcludedSector] = Field(
        default_factory=list,
        max_length=len(ExcludedSector),
        description="Excluded sectors the issuer has any activity in; empty when none.",
    )
    last_due_diligence: date = Field(description="Date of the last social due diligence.")

    @field_validator("target_population_share")
    @classmethod
    def _percent(cls, value: str) -> str:
        if not SIGNED_DECIMAL.fullmatch(value) or value.startswith("-"):
            raise ValueError("must be a decimal string such as \"82.5\"")
        if Decimal(value) > 100:
            raise ValueError("must be at most 100")
        return value

    @field_validator("excluded_sectors")
    @classmethod
    def _distinct(cls, value: list[ExcludedSector]) -> list[ExcludedSector]:
        if len(set(value)) != len(value):
            raise ValueError("each sector at most once")
        return sorted(value)


class IssuerRequest(StrictModel):
    legal_name: StrictStr = Field(min_length=1, max_length=300)
    country: StrictStr = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. IT")
    legal_form: LegalForm
    registration_id: StrictStr = Field(min_length=1, max_length=64, description="e.g. the Italian codice fiscale")
    website: Url
    evidence: EligibilityEvidence

    @field_validator("legal_name", "registration_id")
    @classmethod
    def _texts(cls, value: str) -> str:
        return line_text(value)


class ScreeningRequest(StrictModel):
    result: ScreeningResult = Field(description="eligible or ineligible")
    reason: Reason

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return paragraph_text(value)

    @field_validator("result")
    @classmethod
    def _decided(cls, value: ScreeningResult) -> ScreeningResult:
        if value is ScreeningResult.PENDING:
            raise ValueError("a screening decides: eligible or ineligible")
        return value


class ScreeningView(BaseModel):
    result: ScreeningResult
    reason: str
    screened_at: str | None
    evidence: EligibilityEvidence


class IssuerView(BaseModel):
    issuer_id: str
    legal_name: str
    country: str
    legal_form: LegalForm
    registration_id: str
    website: str
    screening: ScreeningView
    listings: list[str] = Field(description="Symbols of the issuer's approved listings.")
    created_at: str
    updated_at: str


class IssuerPage(BaseModel):
    issuers: list[IssuerView]
    next_cursor: str | None


class IssuerSummary(BaseModel):
    issuer_id: str
    legal_name: str
    country: str
    legal_form: LegalForm
    website: str
    screening: ScreeningResult


# ---------------------------------------------------------------------------------------------------- applications


class EquityTerms(StrictModel):
    shares_outstanding: DecimalText = Field(description="Whole number of shares outstanding.")
    nominal: DecimalText = Field(description="Nominal value of one share in the currency (\"0\": no par value).")


# The listing parameters of an application are the operator's ListingRequest fields less those the application fixes
# itself (symbol, kind, currency, bond terms) or the exchange decides (the issuer is the applicant, a new listing starts
# in pre_open): one definition, so the two ways to list can never drift apart.
_FIXED_BY_APPLICATION = frozenset({"symbol", "kind", "currency", "issuer", "trading_state", "bond"})
TradingTerms = create_model(  # type: ignore[call-overload]
    "TradingTerms",
    __base__=StrictModel,
    __doc__="Trading parameters: tick, lot, quantity limits, reference price, price band, fees, auctions.",
    **{
        name: (field.annotation, field)
        for name, field in ListingRequest.model_fields.items()
        if name not in _FIXED_BY_APPLICATION
    },
)


class Indicator(StrictModel):
    code: IndicatorCode
    name: StrictStr = Field(min_length=1, max_length=200, examples=["Disadvantaged workers employed"])
    unit: StrictStr = Field(min_length=1, max_length=50, examples=["people", "MWh", "tCO2e"])
    baseline: SignedDecimalText
    target: SignedDecimalText
    target_date: date

    @field_validator("name", "unit")
    @classmethod
    def _texts(cls, value: str) -> str:
        return line_text(value)
    @field_validator("baseline", "target")
    @classmethod
    def _numbers(cls, value: str) -> str:
        return signed_decimal(value)


class DocumentKind(StrEnum):
    PROSPECTUS = "prospectus"
    IMPACT_REPORT = "impact_report"
    ARTICLES = "articles"
    OTHER = "other"


class Document(StrictModel):
    kind: DocumentKind
    title: StrictStr = Field(default="", max_length=200)
    url: Url
    sha256: Sha256

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return line_text(value) if value else value


class ImpactProfile(StrictModel):
    sdgs: list[Annotated[StrictInt, Field(ge=1, le=17)]] = Field(
        min_length=1, max_length=17, description="UN Sustainable Development Goals served, 1-17.", examples=[[7, 13]]
    )
    indicators: list[Indicator] = Field(min_length=1, max_length=50)
    theory_of_change: StrictStr = Field(min_length=1, max_length=5000)
    documents: list[Document] = Field(min_length=1, max_length=20, description="At least the prospectus.")

    @field_validator("theory_of_change")
    @classmethod
    def _toc(cls, value: str) -> str:
        return paragraph_text(value)

    @field_validator("sdgs")
    @classmethod
    def _distinct_goals(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each goal at most once")
        return sorted(value)

    @model_validator(mode="after")
    def _consistent(self) -> ImpactProfile:
        codes = [indicator.code for indicator in self.indicators]
        if len(set(codes)) != len(codes):
            raise ValueError("indicator codes must be distinct")
        if not any(document.kind is DocumentKind.PROSPECTUS for document in self.documents):
            raise ValueError("the documents must include the prospectus")
        return self


class ReportingCalendar(StrictModel):
    frequency: ReportFrequency = ReportFrequency.ANNUAL
    first_due: date = Field(description="The first impact report is due on this date.")


class ApplicationRequest(StrictModel):
    symbol: Symbol
    kind: InstrumentKind
    currency: Currency
    equity: EquityTerms | None = Field(default=None, description="Required for an equity.")
    bond: BondTermsRequest | None = Field(default=None, description="Required for a bond.")
    trading: TradingTerms  # type: ignore[valid-type]
    impact: ImpactProfile
    reporting: ReportingCalendar


class DecisionRequest(StrictModel):
    reason: Reason

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return paragraph_text(value)


class ResumeRequest(DecisionRequest):
    state: TradingState = Field(
        default=TradingState.OPEN,
        description="The state trading resumes in: open, pre_open, opening_auction or closed.",
    )


class GracePeriodRequest(DecisionRequest):
    reason: Annotated[StrictStr, Field(min_length=1, max_length=900)]  # recorded as "<days> days: <reason>"
    grace_days: StrictInt = Field(ge=0, le=730, description="Days after a due date before a report is overdue.")


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class DecisionView(BaseModel):
    id: str
    action: str
    reason: str
    decided_by: str | None = Field(description="The operator; hidden from the public.")
    decided_at: str
    symbol: str | None
    application_id: str | None
    seq: int | None = Field(description="The journal record that carried a trading change.")


class DecisionPage(BaseModel):
    decisions: list[DecisionView]
    next_cursor: str | None


class IndicatorView(BaseModel):
    code: str
    name: str
    unit: str
    baseline: str
    target: str
    target_date: str


class ImpactProfileView(BaseModel):
    sdgs: list[int]
    indicators: list[IndicatorView]
    theory_of_change: str
    documents: list[Document]


class ReportingCalendarView(BaseModel):
    frequency: ReportFrequency
    first_due: str
    grace_days: int


class ApplicationView(BaseModel):
    id: str
    issuer_id: str
    symbol: str
    kind: InstrumentKind
    currency: str
    status: ApplicationStatus
    equity: EquityTerms | None
    bond: BondTermsRequest | None
    trading: dict[str, Any]
    impact: ImpactProfileView
    reporting: ReportingCalendarView
    submitted_at: str
    decided_at: str | None
    listed_seq: int | None
    decisions: list[DecisionView]


class ApplicationPage(BaseModel):
    applications: list[ApplicationView]
    next_cursor: str | None


class TradingStateChangeView(BaseModel):
    symbol: str
    trading_state: TradingState
    seq: int
    decision: DecisionView


# ---------------------------------------------------------------------------------------------------- impact reports


class IndicatorValue(StrictModel):
    code: IndicatorCode
    value: SignedDecimalText

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        return signed_decimal(value)


class ReportDocument(StrictModel):
    url: Url
    sha256: Sha256


class ImpactReportRequest(StrictModel):
    period_start: date
    period_end: date
    values: list[IndicatorValue] = Field(min_length=1, max_length=50)
    document: ReportDocument
    summary: StrictStr = Field(default="", max_length=5000)

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        return paragraph_text(value) if value else value

    @model_validator(mode="after")
    def _consistent(self) -> ImpactReportRequest:
        if self.period_end < self.period_start:
            raise ValueError("period_end must not come before period_start")
        codes = [v.code for v in self.values]
        if len(set(codes)) != len(codes):
            raise ValueError("each indicator at most once")
        return self


class AssuranceLevel(StrEnum):
    LIMITED = "limited"
    REASONABLE = "reasonable"


class AssuranceRequest(StrictModel):
    level: AssuranceLevel = AssuranceLevel.LIMITED
    statement: StrictStr = Field(min_length=1, max_length=5000)

    @field_validator("statement")
    @classmethod
    def _statement(cls, value: str) -> str:
        return paragraph_text(value)


class AssuranceView(BaseModel):
    assessor_id: str
    level: AssuranceLevel
    statement: str
    assured_at: str


class ReportedValueView(BaseModel):
    code: str
    name: str
    unit: str
    value: str
    baseline: str
    target: str
    target_date: str
    target_met: bool = Field(description="The value reached the target (in the direction from baseline to target).")


class ImpactReportView(BaseModel):
    id: str
    symbol: str
    period_start: str
    period_end: str
    summary: str
    document: ReportDocument
    values: list[ReportedValueView]
    published_at: str
    assurance: AssuranceView | None


class ImpactReportPage(BaseModel):
    symbol: str
    reports: list[ImpactReportView] = Field(description="Newest period first.")
    next_cursor: str | None


class AssuredReportRef(BaseModel):
    report_id: str
    period_start: str
    period_end: str
    assured_at: str
    level: AssuranceLevel


class ImpactReportingView(BaseModel):
    status: str = Field(description="current or overdue")
    frequency: ReportFrequency
    next_due: str
    grace_ends: str = Field(description="Last day a report for next_due is on time; overdue after it.")
    grace_days: int
    reports_published: int
    last_assured_report: AssuredReportRef | None


class ImpactInstrumentSummary(BaseModel):
    symbol: str
    kind: InstrumentKind
    currency: str
    trading_state: str | None = Field(description="As the market sees it now; None before the engine has it.")
    issuer: IssuerSummary
    sdgs: list[int]
    impact_reporting: ImpactReportingView


class ImpactInstrumentPage(BaseModel):
    instruments: list[ImpactInstrumentSummary]
    next_cursor: str | None


class ListingEventView(BaseModel):
    action: str
    reason: str
    time: str


class ImpactInstrumentView(ImpactInstrumentSummary):
    equity: EquityTerms | None
    bond: BondTermsRequest | None
    impact: ImpactProfileView
    latest_reports: list[ImpactReportView] = Field(description="Up to 5, newest period first; page the rest.")
    listing_events: list[ListingEventView] = Field(description="Approval, suspensions, resumptions, delisting.")
