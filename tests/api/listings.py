"""Test helpers for issuers and listings through the API: issuer records, applications, approval, impact reports."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import httpx

from tests.api.trading import Caller


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def issuer_body(legal_form: str = "social_cooperative", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "legal_name": "Cooperativa Sociale Il Girasole",
        "country": "IT",
        "legal_form": legal_form,
        "registration_id": "IT01234567890",
        "website": "https://girasole.example.org",
        "evidence": {
            "target_population_share": "78.5",
            "excluded_sectors": [],
            "last_due_diligence": "2025-03-31",
        },
    }
    body.update(changes)
    return body


def impact_profile(sdgs: list[int] | None = None) -> dict[str, Any]:
    return {
        "sdgs": sdgs or [8, 10],
        "indicators": [
            {
                "code": "PI3687",
                "name": "Disadvantaged workers employed",
                "unit": "people",
                "baseline": "40",
                "target": "60",
                "target_date": "2027-12-31",
            },
            {
                "code": "OI1479",
                "name": "Landfill waste",
                "unit": "t",
                "baseline": "120.5",
                "target": "80",
                "target_date": "2027-12-31",
            },
        ],
        "theory_of_change": "Paid work in recycling gives people far from the labour market skills and income.",
        "documents": [
            {
                "kind": "prospectus",
                "title": "Prospectus",
                "url": "https://girasole.example.org/prospectus.pdf",
                "sha256": sha256_of("prospectus"),
            }
        ],
    }


def equity_application(symbol: str = "GIRA", *, first_due: date | str = "2030-06-30", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": symbol,
        "kind": "equity",
        "currency": "EUR",
        "equity": {"shares_outstanding": "100000", "nominal": "25"},
        "trading": {
            "tick_size": "0.01",
            "lot_size": 1,
            "reference_price": "25.00",
            "price_band_percent": "20",
            "maker_fee_bps": 0,
            "taker_fee_bps": 0,
        },
        "impact": impact_profile(),
        "reporting": {"frequency": "annual", "first_due": str(first_due)},
    }
    body.update(changes)
    return body


def bond_application(
    symbol: str = "CASA28",
    *,
    issue_date: str = "2022-06-30",
    maturity_date: str = "2024-06-30",
    coupon_rate: str = "4",
    first_due: date | str = "2030-06-30",
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "kind": "bond",
        "currency": "EUR",
        "bond": {
            "nominal": "100",
            "coupon_rate": coupon_rate,
            "coupon_frequency": 1,
            "day_count": "30/360",
            "issue_date": issue_date,
            "maturity_date": maturity_date,
            "redemption_price": "100",
        },
        "trading": {"tick_size": "0.01", "lot_size": 1, "reference_price": "100.00", "price_band_percent": "10"},
        "impact": impact_profile([1, 11]),
        "reporting": {"frequency": "semiannual", "first_due": str(first_due)},
    }


async def register_issuer(client: httpx.AsyncClient, issuer: Caller, **changes: Any) -> dict[str, Any]:
    response = await client.put(
        f"/v1/issuers/{issuer.participant_id}", json=issuer_body(**changes), headers=issuer.headers
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def screen(client: httpx.AsyncClient, operator: Caller, issuer_id: str, result: str = "eligible") -> None:
    response = await client.post(
        f"/v1/issuers/{issuer_id}/screening",
        json={"result": result, "reason": "Statute and 2024 accounts checked"},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text


async def apply(client: httpx.AsyncClient, issuer: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/listing-applications", json=body, headers=issuer.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def approve(client: httpx.AsyncClient, operator: Caller, application_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/v1/listing-applications/{application_id}/approve",
        json={"reason": "Eligible issuer; prospectus approved"},
        headers=operator.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def list_through_application(
    client: httpx.AsyncClient, operator: Caller, issuer: Caller, body: dict[str, Any]
) -> dict[str, Any]:
    """Issuer record, eligible screening, application and approval: the instrument is listed in pre_open."""
    await register_issuer(client, issuer)
    await screen(client, operator, issuer.participant_id)
    application = await apply(client, issuer, body)
    return await approve(client, operator, application["id"])


def report_body(start: str = "2024-01-01", end: str = "2024-12-31", workers: str = "47") -> dict[str, Any]:
    return {
        "period_start": start,
        "period_end": end,
        "values": [{"code": "PI3687", "value": workers}, {"code": "OI1479", "value": "95.25"}],
        "document": {"url": "https://girasole.example.org/impact-2024.pdf", "sha256": sha256_of(f"report {end}")},
        "summary": "Seven more people in work; landfill waste down a fifth.",
    }


async def publish(client: httpx.AsyncClient, issuer: Caller, symbol: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/v1/listings/{symbol}/impact-reports", json=body, headers=issuer.headers)
    assert response.status_code == 201, response.text
    return response.json()
