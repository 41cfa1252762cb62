"""Issuers, listing applications with their impact profiles, operators' listing decisions, and impact reports.

These are business records written by the API in ordinary transactions, not engine state: what changes trading (the
listing itself, suspensions, resumptions, delistings) goes through the sequencer and the journal, and the decision
rows here point at the journal record (`seq`) that carried it.

- `issuers`: one per issuer participant; legal identity and the eligibility screening with its evidence.
- `listing_applications`: an issuer's application for an equity or a bond: the listing terms as submitted (JSON of
  decimal strings, turned into the core's integers only at approval), the SDGs served, the theory of change and the
  reporting calendar. An approved application IS the listing of its symbol.
- `impact_indicators`, `listing_documents`: the rest of the impact profile (IRIS+-style indicators; documents as URL +
  SHA-256).
- `listing_decisions`: every operator decision with who, when and why; append-only.
- `impact_reports`, `impact_report_values`, `impact_assurances`: periodic impact reports (indicator values for a
  period, with the report document's hash) and the external assessor's assurance of each; all append-only.

Revision ID: 0005_issuers
Revises: 0004_participants
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_issuers"
down_revision: str | Sequence[str] | None = "0004_participants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("listing_decisions", "impact_reports", "impact_report_values", "impact_assurances")
LEGAL_FORMS = ("impresa_sociale", "societa_benefit", "social_cooperative", "impact_commitment_company", "non_profit")
SHA256 = "'^[0-9a-f]{64}$'"
URL = "'^https?://[^[:space:]]+$'"


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE issuers (
            issuer_id                text PRIMARY KEY REFERENCES participants (participant_id),
            legal_name               text NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 300),
            country                  text NOT NULL CHECK (country ~ '^[A-Z]{{2}}$'),
            legal_form               text NOT NULL CHECK (legal_form IN {_in(LEGAL_FORMS)}),
            registration_id          text NOT NULL CHECK (length(registration_id) BETWEEN 1 AND 64),
            website                  text NOT NULL CHECK (website ~ {URL}),
            target_population_share  numeric NOT NULL CHECK (target_population_share BETWEEN 0 AND 100),
            excluded_sectors         text[] NOT NULL DEFAULT '{{}}',
            last_due_diligence       date NOT NULL,
            screening                text NOT NULL DEFAULT 'pending'
                                     CHECK (screening IN ('pending', 'eligible', 'ineligible')),
            screening_reason         text NOT NULL DEFAULT '',
            screened_by              text REFERENCES participants (participant_id),
            screened_at              timestamptz,
            created_at               timestamptz NOT NULL DEFAULT now(),
            updated_at               timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX issuers_legal_form_idx ON issuers (legal_form, issuer_id)")
    op.execute(
        """
        CREATE TABLE listing_applications (
            application_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            issuer_id         text NOT NULL REFERENCES issuers (issuer_id),
            symbol            text NOT NULL CHECK (symbol ~ '^[A-Z0-9][A-Z0-9._-]{0,31}$'),
            kind              text NOT NULL CHECK (kind IN ('equity', 'bond')),
            currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            terms             jsonb NOT NULL,
            sdgs              smallint[] NOT NULL CHECK (
                                  cardinality(sdgs) BETWEEN 1 AND 17
                                  AND sdgs <@ '{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17}'::smallint[]
                              ),
            theory_of_change  text NOT NULL CHECK (length(theory_of_change) BETWEEN 1 AND 5000),
            report_frequency  text NOT NULL CHECK (report_frequency IN ('annual', 'semiannual', 'quarterly')),
            first_report_due  date NOT NULL,
            grace_days        integer NOT NULL DEFAULT 90 CHECK (grace_days BETWEEN 0 AND 730),
            status            text NOT NULL DEFAULT 'submitted' CHECK (status IN ('submitted', 'approved', 'rejected')),
            submitted_by      text NOT NULL REFERENCES participants (participant_id),
            submitted_at      timestamptz NOT NULL DEFAULT now(),
            decided_at        timestamptz,
            listed_seq        bigint REFERENCES journal (seq),
            CHECK ((status = 'submitted') = (decided_at IS NULL)),
            CHECK ((status = 'approved') = (listed_seq IS NOT NULL))
        )
        """
    )
    # One live application or listing per symbol; a rejected application frees its symbol.
    op.execute(
        "CREATE UNIQUE INDEX listing_applications_symbol_idx ON listing_applications (symbol) "
        "WHERE status <> 'rejected'"
    )
    op.execute("CREATE INDEX listing_applications_issuer_idx ON listing_applications (issuer_id, application_id)")
    op.execute("CREATE INDEX listing_applications_sdgs_idx ON listing_applications USING gin (sdgs)")
    op.execute(
        """
        CREATE TABLE impact_indicators (
            application_id  bigint NOT NULL REFERENCES listing_applications (application_id),
            code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9._-]{1,32}$'),
            position        smallint NOT NULL CHECK (position >= 0),
            name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            unit            text NOT NULL CHECK (length(unit) BETWEEN 1 AND 50),
            baseline        numeric NOT NULL,
            target          numeric NOT NULL,
            target_date     date NOT NULL,
            PRIMARY KEY (application_id, code),
            UNIQUE (application_id, position)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE listing_documents (
            application_id  bigint NOT NULL REFERENCES listing_applications (application_id),
            position        smallint NOT NULL CHECK (position >= 0),
            kind            text NOT NULL CHECK (kind IN ('prospectus', 'impact_report', 'articles', 'other')),
            title           text NOT NULL DEFAULT '',
            url             text NOT NULL CHECK (url ~ {URL}),
            sha256          text NOT NULL CHECK (sha256 ~ {SHA256}),
            PRIMARY KEY (application_id, position)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE listing_decisions (
            decision_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            issuer_id       text NOT NULL REFERENCES issuers (issuer_id),
            application_id  bigint REFERENCES listing_applications (application_id),
            symbol          text,
            action          text NOT NULL CHECK (action IN (
                                'screen_eligible', 'screen_ineligible', 'approve', 'reject',
                                'suspend', 'resume', 'delist', 'set_grace_period')),
            reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
            decided_by      text NOT NULL REFERENCES participants (participant_id),
            decided_at      timestamptz NOT NULL DEFAULT now(),
            seq             bigint REFERENCES journal (seq)
        )
        """
    )
    op.execute("CREATE INDEX listing_decisions_symbol_idx ON listing_decisions (symbol, decision_id)")
    op.execute("CREATE INDEX listing_decisions_issuer_idx ON listing_decisions (issuer_id, decision_id)")
    op.execute(
        f"""
        CREATE TABLE impact_reports (
            report_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            application_id   bigint NOT NULL REFERENCES listing_applications (application_id),
            symbol           text NOT NULL,
            period_start     date NOT NULL,
            period_end       date NOT NULL CHECK (period_end >= period_start),
            summary          text NOT NULL DEFAULT '' CHECK (length(summary) <= 5000),
            document_url     text NOT NULL CHECK (document_url ~ {URL}),
            document_sha256  text NOT NULL CHECK (document_sha256 ~ {SHA256}),
            published_by     text NOT NULL REFERENCES participants (participant_id),
            published_at     timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX impact_reports_symbol_idx ON impact_reports (symbol, report_id)")
    op.execute(
        """
        CREATE TABLE impact_report_values (
            report_id       bigint NOT NULL REFERENCES impact_reports (report_id),
            application_id  bigint NOT NULL,
            code            text NOT NULL,
            value           numeric NOT NULL,
            PRIMARY KEY (report_id, code),
            FOREIGN KEY (application_id, code) REFERENCES impact_indicators (application_id, code)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE impact_assurances (
            report_id    bigint PRIMARY KEY REFERENCES impact_reports (report_id),
            assessor_id  text NOT NULL REFERENCES participants (participant_id),
            level        text NOT NULL CHECK (level IN ('limited', 'reasonable')),
            statement    text NOT NULL CHECK (length(statement) BETWEEN 1 AND 5000),
            assured_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # journal_forbid_change() comes from 0003_journal: UPDATE, DELETE and TRUNCATE raise.
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION journal_forbid_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION journal_forbid_change()"
        )


def downgrade() -> None:
    for table in (
        "impact_assurances",
        "impact_report_values",
        "impact_reports",
        "listing_decisions",
        "listing_documents",
        "impact_indicators",
        "listing_applications",
        "issuers",
    ):
        op.execute(f"DROP TABLE {table}")
