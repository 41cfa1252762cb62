"""Data access for issuers, listing applications, listing decisions and impact reports (migration 0005_issuers).

Plain SQL on an asyncpg connection; the caller owns the transaction. Functions return records or plain values and
raise `ApiError` only for conflicts the database detects (a symbol already applied for, a report period taken).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from api.errors import ApiError
from api.listing_models import ApplicationRequest, IssuerRequest

ISSUER_COLUMNS = (
    "issuer_id, legal_name, country, legal_form, registration_id, website, target_population_share, "
    "excluded_sectors, last_due_diligence, screening, screening_reason, screened_by, screened_at, created_at, "
    "updated_at"
)
APPLICATION_COLUMNS = (
    "a.application_id, a.issuer_id, a.symbol, a.kind, a.currency, a.terms, a.sdgs, a.theory_of_change, "
    "a.report_frequency, a.first_report_due, a.grace_days, a.status, a.submitted_by, a.submitted_at, a.decided_at, "
    "a.listed_seq"
)
DECISION_COLUMNS = "decision_id, issuer_id, application_id, symbol, action, reason, decided_by, decided_at, seq"
REPORT_COLUMNS = (
    "report_id, application_id, symbol, period_start, period_end, summary, document_url, document_sha256, "
    "published_by, published_at"
)


def terms_of(record: asyncpg.Record) -> dict[str, Any]:
    """The stored listing terms of an application: {"equity", "bond", "trading"} (asyncpg hands jsonb as text)."""
    terms = record["terms"]
    return json.loads(terms) if isinstance(terms, str) else dict(terms)


# ---------------------------------------------------------------------------------------------------- issuers


async def upsert_issuer(conn: asyncpg.Connection, issuer_id: str, body: IssuerRequest) -> tuple[asyncpg.Record, bool]:
    """Create or replace the issuer's record; (record, created). Any change sends the screening back to pending."""
    evidence = body.evidence
    row = await conn.fetchrow(
        f"""
        INSERT INTO issuers AS i (issuer_id, legal_name, country, legal_form, registration_id, website,
                                  target_population_share, excluded_sectors, last_due_diligence)
        VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9)
        ON CONFLICT (issuer_id) DO UPDATE SET
            legal_name = EXCLUDED.legal_name, country = EXCLUDED.country, legal_form = EXCLUDED.legal_form,
            registration_id = EXCLUDED.registration_id, website = EXCLUDED.website,
            target_population_share = EXCLUDED.target_population_share,
            excluded_sectors = EXCLUDED.excluded_sectors, last_due_diligence = EXCLUDED.last_due_diligence,
            screening = CASE WHEN {_CHANGED} THEN 'pending' ELSE i.screening END,
            screening_reason = CASE WHEN {_CHANGED} THEN '' ELSE i.screening_reason END,
            screened_by = CASE WHEN {_CHANGED} THEN NULL ELSE i.screened_by END,
            screened_at = CASE WHEN {_CHANGED} THEN NULL ELSE i.screened_at END,
            updated_at = CASE WHEN {_CHANGED} THEN now() ELSE i.updated_at END
        RETURNING {ISSUER_COLUMNS}, (xmax = 0) AS created
        """,
        issuer_id,
        body.legal_name,
        body.country,
        body.legal_form.value,
        body.registration_id,
        body.website,
        evidence.target_population_share,
        [sector.value for sector in evidence.excluded_sectors],
        evidence.last_due_diligence,
    )
    assert row is not None
    return row, row["created"]


_CHANGED = (
    "(i.legal_name, i.country, i.legal_form, i.registration_id, i.website, i.target_population_share, "
    "i.excluded_sectors, i.last_due_diligence) IS DISTINCT FROM (EXCLUDED.legal_name, EXCLUDED.country, "
    "EXCLUDED.legal_form, EXCLUDED.registration_id, EXCLUDED.website, EXCLUDED.target_population_share, "
    "EXCLUDED.excluded_sectors, EXCLUDED.last_due_diligence)"
)


async def get_issuer(conn: asyncpg.Connection, issuer_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {ISSUER_COLUMNS} FROM issuers WHERE issuer_id = $1{lock}", issuer_id)


async def list_issuers(
    conn: asyncpg.Connection, legal_form: str | None, after: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ISSUER_COLUMNS} FROM issuers WHERE ($1::text IS NULL OR legal_form = $1) "
        "AND ($2::text IS NULL OR issuer_id > $2) ORDER BY issuer_id LIMIT $3",
        legal_form,
        after,
        limit,
    )


async def listed_symbols(conn: asyncpg.Connection, issuer_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = await conn.fetch(
        "SELECT issuer_id, symbol FROM listing_applications WHERE status = 'approved' AND issuer_id = ANY($1) "
        "ORDER BY symbol",
        list(issuer_ids),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["issuer_id"], []).append(row["symbol"])
    return found


async def record_screening(
    conn: asyncpg.Connection, issuer_id: str, result: str, reason: str, operator: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"UPDATE issuers SET screening = $2, screening_reason = $3, screened_by = $4, screened_at = now() "
        f"WHERE issuer_id = $1 RETURNING {ISSUER_COLUMNS}",
        issuer_id,
        result,
        reason,
        operator,
    )
    assert row is not None
    await insert_decision(conn, issuer_id, None, None, f"screen_{result}", reason, operator, None)
    return row


# ---------------------------------------------------------------------------------------------------- applications


async def insert_application(
    conn: asyncpg.Connection, issuer_id: str, body: ApplicationRequest, submitted_by: str
) -> int:
    terms = {
        "equity": None if body.equity is None else body.equity.model_dump(mode="json"),
        "bond": None if body.bond is None else body.bond.model_dump(mode="json"),
        "trading": body.trading.model_dump(mode="json"),
    }
    try:
        application_id = await conn.fetchval(
            "INSERT INTO listing_applications (issuer_id, symbol, kind, currency, terms, sdgs, theory_of_change, "
            "report_frequency, first_report_due, submitted_by) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10) RETURNING application_id",
            issuer_id,
            body.symbol,
            body.kind.value,
            body.currency,
            json.dumps(terms, sort_keys=True),
            body.impact.sdgs,
            body.impact.theory_of_change,
            body.reporting.frequency.value,
            body.reporting.first_due,
            submitted_by,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "SYMBOL_TAKEN", f"{body.symbol} is already applied for or listed", {"symbol": body.symbol}
        ) from None
    await conn.executemany(
        "INSERT INTO impact_indicators (application_id, code, position, name, unit, baseline, target, target_date) "
        "VALUES ($1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8)",
        [
            (application_id, i.code, n, i.name, i.unit, i.baseline, i.target, i.target_date)
            for n, i in enumerate(body.impact.indicators)
        ],
    )
    await conn.executemany(
        "INSERT INTO listing_documents (application_id, position, kind, title, url, sha256) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        [(application_id, n, d.kind.value, d.title, d.url, d.sha256) for n, d in enumerate(body.impact.documents)],
    )
    return int(application_id)


async def get_application(
    conn: asyncpg.Connection, application_id: int, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {APPLICATION_COLUMNS} FROM listing_applications a WHERE a.application_id = $1{lock}", application_id
    )


async def listing_of(conn: asyncpg.Connection, symbol: str, *, for_update: bool = False) -> asyncpg.Record | None:
    """The approved application that listed `symbol` (None: not listed through an application)."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {APPLICATION_COLUMNS} FROM listing_applications a WHERE a.symbol = $1 AND a.status = 'approved'"
        f"{lock}",
        symbol,
    )


async def list_applications(
    conn: asyncpg.Connection, issuer_id: str | None, status: str | None, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {APPLICATION_COLUMNS} FROM listing_applications a WHERE ($1::text IS NULL OR a.issuer_id = $1) "
        "AND ($2::text IS NULL OR a.status = $2) AND ($3::bigint IS NULL OR a.application_id < $3) "
        "ORDER BY a.application_id DESC LIMIT $4",
        issuer_id,
        status,
        before,
        limit,
    )


@dataclass(frozen=True, slots=True)
class ProfileParts:
    """The impact profile rows of some applications, by application id."""

    indicators: dict[int, list[asyncpg.Record]]
    documents: dict[int, list[asyncpg.Record]]


async def profile_parts(conn: asyncpg.Connection, application_ids: Sequence[int]) -> ProfileParts:
    ids = list(application_ids)
    indicators: dict[int, list[asyncpg.Record]] = {i: [] for i in ids}
    documents: dict[int, list[asyncpg.Record]] = {i: [] for i in ids}
    for row in await conn.fetch(
        "SELECT application_id, code, name, unit, baseline, target, target_date FROM impact_indicators "
        "WHERE application_id = ANY($1) ORDER BY application_id, position",
        ids,
    ):
        indicators[row["application_id"]].append(row)
    for row in await conn.fetch(
        "SELECT application_id, kind, title, url, sha256 FROM listing_documents WHERE application_id = ANY($1) "
        "ORDER BY application_id, position",
        ids,
    ):
        documents[row["application_id"]].append(row)
    return ProfileParts(indicators, documents)


async def mark_decided(conn: asyncpg.Connection, application_id: int, status: str, listed_seq: int | None) -> None:
    await conn.execute(
        "UPDATE listing_applications SET status = $2, decided_at = now(), listed_seq = $3 WHERE application_id = $1",
        application_id,
        status,
        listed_seq,
    )


async def set_grace_days(conn: asyncpg.Connection, application_id: int, grace_days: int) -> None:
    await conn.execute(
        "UPDATE listing_applications SET grace_days = $2 WHERE application_id = $1", application_id, grace_days
    )


async def listed_seq_of(conn: asyncpg.Connection, symbol: str) -> int | None:
    """The journal record that listed `symbol`, from its InstrumentListed event."""
    return await conn.fetchval(
        "SELECT seq FROM events WHERE kind = 'InstrumentListed' AND symbol = $1 ORDER BY seq LIMIT 1", symbol
    )


# ---------------------------------------------------------------------------------------------------- decisions


async def insert_decision(
    conn: asyncpg.Connection,
    issuer_id: str,
    application_id: int | None,
    symbol: str | None,
    action: str,
    reason: str,
    decided_by: str,
    seq: int | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO listing_decisions (issuer_id, application_id, symbol, action, reason, decided_by, seq) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {DECISION_COLUMNS}",
        issuer_id,
        application_id,
        symbol,
        action,
        reason,
        decided_by,
        seq,
    )
    assert row is not None
    return row


async def decisions_of_applications(
    conn: asyncpg.Connection, application_ids: Sequence[int]
) -> dict[int, list[asyncpg.Record]]:
    found: dict[int, list[asyncpg.Record]] = {i: [] for i in application_ids}
    for row in await conn.fetch(
        f"SELECT {DECISION_COLUMNS} FROM listing_decisions WHERE application_id = ANY($1) ORDER BY decision_id",
        list(application_ids),
    ):
        found[row["application_id"]].append(row)
    return found


async def decisions_of_symbol(
    conn: asyncpg.Connection, symbol: str, before: int | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {DECISION_COLUMNS} FROM listing_decisions WHERE symbol = $1 "
        "AND ($2::bigint IS NULL OR decision_id < $2) ORDER BY decision_id DESC LIMIT $3",
        symbol,
        before,
        limit,
    )


# ---------------------------------------------------------------------------------------------------- impact reports


async def overlapping_report(
    conn: asyncpg.Connection, application_id: int, start: date, end: date
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT report_id, period_start, period_end FROM impact_reports WHERE application_id = $1 "
        "AND period_start <= $3 AND period_end >= $2 LIMIT 1",
        application_id,
        start,
        end,
    )


async def insert_report(
    conn: asyncpg.Connection,
    listing: asyncpg.Record,
    start: date,
    end: date,
    summary: str,
    document_url: str,
    document_sha256: str,
    values: Sequence[tuple[str, str]],
    published_by: str,
) -> int:
    report_id = await conn.fetchval(
        "INSERT INTO impact_reports (application_id, symbol, period_start, period_end, summary, document_url, "
        "document_sha256, published_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING report_id",
        listing["application_id"],
        listing["symbol"],
        start,
        end,
        summary,
        document_url,
        document_sha256,
        published_by,
    )
    await conn.executemany(
        "INSERT INTO impact_report_values (report_id, application_id, code, value) VALUES ($1, $2, $3, $4::numeric)",
        [(report_id, listing["application_id"], code, value) for code, value in values],
    )
    return int(report_id)


async def get_report(conn: asyncpg.Connection, report_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {REPORT_COLUMNS} FROM impact_reports WHERE report_id = $1", report_id)


async def reports_of(
    conn: asyncpg.Connection, symbol: str, before: tuple[date, int] | None, limit: int
) -> list[asyncpg.Record]:
    """A listing's reports, newest period first; `before` is the (period_end, report_id) of the last one seen."""
    end, report_id = before if before is not None else (None, None)
    return await conn.fetch(
        f"SELECT {REPORT_COLUMNS} FROM impact_reports WHERE symbol = $1 "
        "AND ($2::date IS NULL OR (period_end, report_id) < ($2, $3)) "
        "ORDER BY period_end DESC, report_id DESC LIMIT $4",
        symbol,
        end,
        report_id,
        limit,
    )


@dataclass(frozen=True, slots=True)
class ReportParts:
    values: dict[int, dict[str, Decimal]]
    assurances: dict[int, asyncpg.Record]


async def report_parts(conn: asyncpg.Connection, report_ids: Sequence[int]) -> ReportParts:
    ids = list(report_ids)
    values: dict[int, dict[str, Decimal]] = {i: {} for i in ids}
    for row in await conn.fetch(
        "SELECT report_id, code, value FROM impact_report_values WHERE report_id = ANY($1)", ids
    ):
        values[row["report_id"]][row["code"]] = row["value"]
    assurances = {
        row["report_id"]: row
        for row in await conn.fetch(
            "SELECT report_id, assessor_id, level, statement, assured_at FROM impact_assurances "
            "WHERE report_id = ANY($1)",
            ids,
        )
    }
    return ReportParts(values, assurances)


async def insert_assurance(
    conn: asyncpg.Connection, report_id: int, assessor_id: str, level: str, statement: str
) -> asyncpg.Record:
    try:
        row = await conn.fetchrow(
            "INSERT INTO impact_assurances (report_id, assessor_id, level, statement) VALUES ($1, $2, $3, $4) "
            "RETURNING report_id, assessor_id, level, statement, assured_at",
            report_id,
            assessor_id,
            level,
            statement,
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "ALREADY_ASSURED", f"impact report {report_id} is already assured") from None
    assert row is not None
    return row


@dataclass(frozen=True, slots=True)
class ReportingFacts:
    """What the reporting calendar needs about one listing's reports."""

    published: int
    last_assured: asyncpg.Record | None  # report_id, period_start, period_end, assured_at, level


async def reporting_facts(conn: asyncpg.Connection, application_ids: Sequence[int]) -> dict[int, ReportingFacts]:
    ids = list(application_ids)
    counts = {
        row["application_id"]: row["n"]
        for row in await conn.fetch(
            "SELECT application_id, count(*) AS n FROM impact_reports WHERE application_id = ANY($1) "
            "GROUP BY application_id",
            ids,
        )
    }
    assured = {
        row["application_id"]: row
        for row in await conn.fetch(
            "SELECT DISTINCT ON (r.application_id) r.application_id, r.report_id, r.period_start, r.period_end, "
            "a.assured_at, a.level FROM impact_reports r JOIN impact_assurances a USING (report_id) "
            "WHERE r.application_id = ANY($1) ORDER BY r.application_id, r.period_end DESC, r.report_id DESC",
            ids,
        )
    }
    return {i: ReportingFacts(counts.get(i, 0), assured.get(i)) for i in ids}


async def listings_matching(
    conn: asyncpg.Connection, sdg: int | None, legal_form: str | None, kind: str | None, after: str | None
) -> list[asyncpg.Record]:
    """Approved listings (with their issuer) by goal, legal form and kind, by symbol after `after`."""
    return await conn.fetch(
        f"SELECT {APPLICATION_COLUMNS}, i.legal_name, i.country, i.legal_form, i.website, i.screening "
        "FROM listing_applications a JOIN issuers i USING (issuer_id) WHERE a.status = 'approved' "
        "AND ($1::smallint IS NULL OR a.sdgs @> ARRAY[$1::smallint]) "
        "AND ($2::text IS NULL OR i.legal_form = $2) AND ($3::text IS NULL OR a.kind = $3) "
        "AND ($4::text IS NULL OR a.symbol > $4) ORDER BY a.symbol",
        sdg,
        legal_form,
        kind,
        after,
    )
