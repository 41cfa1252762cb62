"""A living demo market: `exchange demo`, or `exchange serve --demo`, fills an empty exchange with three impact issuers
and a market in their securities, so that a newcomer sees prices, depth and trades rather than an empty list.

- Cooperativa Sociale Il Girasole (social cooperative): shares GIRASOLE; work integration through recycling.
- Abitare Solidale Impresa Sociale (impresa sociale): bond ABITARE30, 3.5 % annual, social housing in Milan.
- Comunità Energetica Valle Verde SB (società benefit): shares VALLEVERDE; a renewable-energy community.

Each issuer has its record, an eligible screening, an application with a full impact profile, and an approval; the
instruments are opened, issued to their issuers, who offer them on the book; four funded investors buy (trades) and
leave bids; the cooperative's last impact report is assured and the energy community's awaits its assessor.

Everything goes through the real API (an in-process client of the running app) and so through the sequencer and the
journal: the demo is a replayable history like any other. Only the first operator is made directly in the database,
as `exchange keys create` does. Seeding is idempotent: if the demo issuers exist it only issues fresh keys for the
demo participants, since keys are stored hashed and cannot be shown again.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from api.auth import InvestorCategory, Role, create_key, create_participant
from api.lifecycle import Component
from api.settings import Settings

log = logging.getLogger("exchange.demo")

OPERATOR = "demo-operator"
INVESTOR = "demo-investor"
ASSESSOR = "demo-assessor"
INVESTORS = (INVESTOR, "demo-anna", "demo-bruno", "demo-chiara")
ISSUERS = ("coop-girasole", "abitare-solidale", "cer-valleverde")
SHOWN_KEYS = (OPERATOR, INVESTOR, "coop-girasole", ASSESSOR)


class DemoError(RuntimeError):
    """A demo step was refused by the API (the message carries the answer)."""


class DemoOutcome(StrEnum):
    SEEDED = "seeded"
    ALREADY_PRESENT = "already_present"  # the demo issuers exist: only fresh keys were issued
    NOT_EMPTY = "not_empty"  # other instruments are listed and the demo was asked for an empty exchange only


@dataclass(slots=True)
class DemoResult:
    outcome: DemoOutcome
    keys: dict[str, str] = field(default_factory=dict)  # participant id -> API key (shown once)
    symbols: tuple[str, ...] = ("GIRASOLE", "ABITARE30", "VALLEVERDE")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _document(kind: str, url: str, title: str) -> dict[str, str]:
    # The hash stands in for the published file's: a demo has no files.
    return {"kind": kind, "title": title, "url": url, "sha256": _sha256(url)}


# ---------------------------------------------------------------------------------------------------- the market


def _issuer_records(today: date) -> dict[str, dict[str, Any]]:
    diligence = (today - timedelta(days=120)).isoformat()
    return {
        "coop-girasole": {
            "legal_name": "Cooperativa Sociale Il Girasole",
            "country": "IT",
            "legal_form": "social_cooperative",
            "registration_id": "IT02468101214",
            "website": "https://girasole.example.org",
            "evidence": {"target_population_share": "62", "excluded_sectors": [], "last_due_diligence": diligence},
        },
        "abitare-solidale": {
            "legal_name": "Abitare Solidale Impresa Sociale S.r.l.",
            "country": "IT",
            "legal_form": "impresa_sociale",
            "registration_id": "IT13579111315",
            "website": "https://abitaresolidale.example.org",
            "evidence": {"target_population_share": "85", "excluded_sectors": [], "last_due_diligence": diligence},
        },
        "cer-valleverde": {
            "legal_name": "Comunità Energetica Valle Verde S.p.A. Società Benefit",
            "country": "IT",
            "legal_form": "societa_benefit",
            "registration_id": "IT11223344556",
            "website": "https://valleverde-energia.example.org",
            "evidence": {"target_population_share": "40", "excluded_sectors": [], "last_due_diligence": diligence},
        },
    }


def _applications(today: date) -> dict[str, dict[str, Any]]:
    # Calendars relative to today, so the demo is current whenever it is run: the cooperative reported for last year
    # (its first due date this June), the energy community for the last half-year, the bond reports from next spring.
    first_due_girasole = date(today.year, 6, 30)
    first_due_valleverde = today + timedelta(days=60)
    issue = date(today.year - 1, 1, 15)
    return {
        "coop-girasole": {
            "symbol": "GIRASOLE",
            "kind": "equity",
            "currency": "EUR",
            "equity": {"shares_outstanding": "200000", "nominal": "25"},
            "trading": {
                "tick_size": "0.01",
                "lot_size": 1,
                "reference_price": "25.00",
                "price_band_percent": "20",
                "maker_fee_bps": 5,
                "taker_fee_bps": 10,
            },
            "impact": {
                "sdgs": [8, 10, 12],
                "indicators": [
                    _indicator("PI3687", "Disadvantaged workers employed", "people", "48", "75", today.year + 2),
                    _indicator("OI1479", "Waste diverted from landfill", "t", "1850", "3000", today.year + 2),
                    _indicator("PI5238", "Workers moving on to open-market jobs", "people", "6", "15", today.year + 2),
                ],
                "theory_of_change": (
                    "People far from the labour market (former prisoners, people recovering from addiction, long-term "
                    "unemployed) get paid work in collecting and sorting recyclable waste, with a tutor and training. "
                    "Income, skills and a work record make an open-market job reachable; the recycled material keeps "
                    "waste out of landfill. New capital buys a second sorting line and 25 more jobs."
                ),
                "documents": [
                    _document("prospectus", "https://girasole.example.org/prospectus.pdf", "Prospectus"),
                    _document("articles", "https://girasole.example.org/statuto.pdf", "Statuto"),
                ],
            },
            "reporting": {"frequency": "annual", "first_due": first_due_girasole.isoformat()},
        },
        "abitare-solidale": {
            "symbol": "ABITARE30",
            "kind": "bond",
            "currency": "EUR",
            "bond": {
                "nominal": "100",
                "coupon_rate": "3.5",
                "coupon_frequency": 1,
                "day_count": "30/360",
                "issue_date": issue.isoformat(),
                "maturity_date": date(issue.year + 5, 1, 15).isoformat(),
                "redemption_price": "100",
            },
            "trading": {"tick_size": "0.01", "lot_size": 1, "reference_price": "100.00", "price_band_percent": "5"},
            "impact": {
                "sdgs": [1, 10, 11],
                "indicators": [
                    _indicator("PI7852", "Affordable homes provided", "homes", "0", "120", issue.year + 3),
                    _indicator("PI2822", "Rent as a share of household income", "%", "45", "30", issue.year + 3),
                ],
                "theory_of_change": (
                    "Vacant buildings in Milan's outskirts are bought and refurbished as homes let at 30 % below "
                    "market rent to low-income families and young workers, with a social manager on site. Lower rent "
                    "frees income for everything else; mixed tenancies and shared spaces rebuild a neighbourhood."
                ),
                "documents": [
                    _document("prospectus", "https://abitaresolidale.example.org/prospetto.pdf", "Prospetto")
                ],
            },
            "reporting": {"frequency": "semiannual", "first_due": (today + timedelta(days=150)).isoformat()},
        },
        "cer-valleverde": {
            "symbol": "VALLEVERDE",
            "kind": "equity",
            "currency": "EUR",
            "equity": {"shares_outstanding": "500000", "nominal": "1"},
            "trading": {
                "tick_size": "0.01",
                "lot_size": 10,
                "reference_price": "10.00",
                "price_band_percent": "20",
                "maker_fee_bps": 5,
                "taker_fee_bps": 10,
            },
            "impact": {
                "sdgs": [7, 11, 13],
                "indicators": [
                    _indicator("OI6697", "Renewable energy generated", "MWh", "1200", "4500", today.year + 3),
                    _indicator("PI1748", "GHG emissions avoided", "tCO2e", "310", "1150", today.year + 3),
                    _indicator("PI4060", "Households in energy poverty supported", "households", "35", "200",
                               today.year + 3),
                ],
                "theory_of_change": (
                    "Roof-top solar on schools, farms and apartment blocks is shared by the community's members; the "
                    "incentive on shared energy funds bill support for households in energy poverty. Every MWh made "
                    "locally replaces grid power from gas."
                ),
                "documents": [
                    _document("prospectus", "https://valleverde-energia.example.org/prospectus.pdf", "Prospectus"),
                    _document("impact_report", "https://valleverde-energia.example.org/baseline.pdf", "Baseline"),
                ],
            },
            "reporting": {"frequency": "semiannual", "first_due": first_due_valleverde.isoformat()},
        },
    }


def _indicator(code: str, name: str, unit: str, baseline: str, target: str, year: int) -> dict[str, str]:
    return {
        "code": code,
        "name": name,
        "unit": unit,
        "baseline": baseline,
        "target": target,
        "target_date": date(year, 12, 31).isoformat(),
    }


# (symbol, seller, [(price, quantity)]) the issuers offer; (account, symbol, side, price, quantity) the investors send.
_ISSUER_OFFERS = (
    ("GIRASOLE", "coop-girasole", (("25.00", "400"), ("25.20", "300"), ("25.50", "500"), ("26.00", "800"))),
    ("ABITARE30", "abitare-solidale", (("100.00", "300"), ("100.40", "400"), ("100.80", "600"))),
    ("VALLEVERDE", "cer-valleverde", (("10.00", "1500"), ("10.10", "1000"), ("10.25", "2000"))),
)
_INVESTOR_ORDERS = (
    # buyers lift the issuers' offers: these are the first trades
    (INVESTOR, "GIRASOLE", "buy", "25.00", "150"),
    ("demo-anna", "GIRASOLE", "buy", "25.20", "320"),
    ("demo-bruno", "ABITARE30", "buy", "100.00", "200"),
    (INVESTOR, "ABITARE30", "buy", "100.40", "150"),
    ("demo-chiara", "VALLEVERDE", "buy", "10.00", "900"),
    (INVESTOR, "VALLEVERDE", "buy", "10.10", "800"),
    # a secondary trade between investors
    ("demo-anna", "GIRASOLE", "sell", "25.10", "100"),
    ("demo-bruno", "GIRASOLE", "buy", "25.10", "60"),
    # resting bids below and a few investor offers between the issuers' levels
    ("demo-bruno", "GIRASOLE", "buy", "24.80", "200"),
    ("demo-chiara", "GIRASOLE", "buy", "24.50", "350"),
    (INVESTOR, "GIRASOLE", "buy", "24.20", "100"),
    ("demo-anna", "ABITARE30", "buy", "99.60", "250"),
    ("demo-chiara", "ABITARE30", "buy", "99.20", "400"),
    ("demo-bruno", "ABITARE30", "sell", "100.60", "50"),
    ("demo-anna", "VALLEVERDE", "buy", "9.95", "1200"),
    ("demo-bruno", "VALLEVERDE", "buy", "9.80", "2500"),
    ("demo-chiara", "VALLEVERDE", "sell", "10.20", "300"),
)
# Investors' cash, and the issuers' own cash account at the venue (sell orders hold the fee bound in cash).
_FUNDING = {
    INVESTOR: "50000.00",
    "demo-anna": "60000.00",
    "demo-bruno": "80000.00",
    "demo-chiara": "80000.00",
    "coop-girasole": "2500.00",
    "abitare-solidale": "5000.00",
    "cer-valleverde": "2500.00",
}


# ---------------------------------------------------------------------------------------------------- seeding


class _Api:
    """The running app's own API, in process, with the demo's keys."""

    def __init__(self, client: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    async def call(self, method: str, path: str, who: str | None, body: Any = None, ok: tuple[int, ...] = (200, 201)):
        headers = {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}
        response = await self.client.request(method, path, json=body, headers=headers)
        if response.status_code not in ok:
            raise DemoError(f"{method} {path} {body} answered {response.status_code}: {response.text}")
        return response.json()


async def _demo_exists(app: FastAPI) -> bool:
    async with app.state.pg_pool.acquire() as conn:
        found = await conn.fetchval("SELECT count(*) FROM issuers WHERE issuer_id = ANY($1)", list(ISSUERS))
    return bool(found)


async def _fresh_keys(app: FastAPI, participants: tuple[str, ...]) -> dict[str, str]:
    keys = {}
    async with app.state.pg_pool.acquire() as conn:
        for participant in participants:
            _, keys[participant] = await create_key(conn, participant, "demo")
    return keys


async def seed_demo(app: FastAPI, today: date | None = None, *, only_if_empty: bool = False) -> DemoResult:
    """Fill the exchange run by `app` (lifespan entered, sequencer running) with the demo market, once.

    `only_if_empty`: leave an exchange that already lists instruments alone (the start-up flag's behaviour, so that
    `serve --demo` can never mix demo securities into a real market).
    """
    today = today or datetime.now(UTC).date()
    if await _demo_exists(app):
        return DemoResult(DemoOutcome.ALREADY_PRESENT, await _fresh_keys(app, SHOWN_KEYS))
    if only_if_empty and app.state.sequencer.engine.instruments:
        return DemoResult(DemoOutcome.NOT_EMPTY)
    async with app.state.pg_pool.acquire() as conn:
        await create_participant(conn, OPERATOR, "Demo market operations", Role.OPERATOR)
    keys = await _fresh_keys(app, (OPERATOR,))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.exchange") as client:
        api = _Api(client, keys)
        await _participants(api)
        await _listings(api, today)
        await _trading(api)
        await _impact_reports(api, today)
    return DemoResult(DemoOutcome.SEEDED, {who: keys[who] for who in SHOWN_KEYS})


async def _participants(api: _Api) -> None:
    records = [(who, who.removeprefix("demo-").title() + " (demo investor)", Role.INVESTOR) for who in INVESTORS]
    records += [(who, who, Role.ISSUER) for who in ISSUERS]
    records.append((ASSESSOR, "Impact Assurance S.r.l. (demo)", Role.ASSESSOR))
    for participant_id, name, role in records:
        body: dict[str, Any] = {"participant_id": participant_id, "name": name, "role": role.value}
        if role is Role.INVESTOR:
            body["category"] = InvestorCategory.PROFESSIONAL.value
        await api.call("POST", "/v1/participants", OPERATOR, body)
        key = await api.call("POST", f"/v1/participants/{participant_id}/keys", OPERATOR, {"label": "demo"})
        api.keys[participant_id] = key["api_key"]


async def _listings(api: _Api, today: date) -> None:
    records = _issuer_records(today)
    applications = _applications(today)
    for issuer in ISSUERS:
        await api.call("PUT", f"/v1/issuers/{issuer}", issuer, records[issuer])
        await api.call(
            "POST",
            f"/v1/issuers/{issuer}/screening",
            OPERATOR,
            {"result": "eligible", "reason": "Statute, accounts and social due diligence reviewed; no excluded sector"},
        )
        application = await api.call("POST", "/v1/listing-applications", issuer, applications[issuer])
        await api.call(
            "POST",
            f"/v1/listing-applications/{application['id']}/approve",
            OPERATOR,
            {"reason": "Eligible issuer, prospectus approved, impact profile complete"},
        )


async def _trading(api: _Api) -> None:
    for investor, amount in _FUNDING.items():
        await api.call("POST", "/v1/deposits", OPERATOR, {"account": investor, "currency": "EUR", "amount": amount})
    for symbol, issuer, offers in _ISSUER_OFFERS:
        await api.call("POST", f"/v1/instruments/{symbol}/state", OPERATOR, {"state": "open", "reason": "demo"})
        issued = sum(int(quantity) for _, quantity in offers)
        issuance = {"account": issuer, "quantity": str(issued)}
        await api.call("POST", f"/v1/instruments/{symbol}/issuance", OPERATOR, issuance)
        for price, quantity in offers:
            await _order(api, issuer, symbol, "sell", price, quantity)
    for account, symbol, side, price, quantity in _INVESTOR_ORDERS:
        await _order(api, account, symbol, side, price, quantity)


async def _order(api: _Api, account: str, symbol: str, side: str, price: str, quantity: str) -> None:
    body = {"symbol": symbol, "side": side, "type": "limit", "price": price, "quantity": quantity}
    await api.call("POST", "/v1/orders", account, body)


async def _impact_reports(api: _Api, today: date) -> None:
    last_year = today.year - 1
    girasole = await api.call(
        "POST",
        "/v1/listings/GIRASOLE/impact-reports",
        "coop-girasole",
        {
            "period_start": date(last_year, 1, 1).isoformat(),
            "period_end": date(last_year, 12, 31).isoformat(),
            "values": [
                {"code": "PI3687", "value": "54"},
                {"code": "OI1479", "value": "2140.5"},
                {"code": "PI5238", "value": "9"},
            ],
            "document": {
                "url": f"https://girasole.example.org/bilancio-sociale-{last_year}.pdf",
                "sha256": _sha256(f"girasole {last_year}"),
            },
            "summary": "Six more people in work, nine moved on to open-market jobs; a record year for recycling.",
        },
    )
    await api.call(
        "POST",
        f"/v1/impact-reports/{girasole['id']}/assurance",
        ASSESSOR,
        {
            "level": "limited",
            "statement": "Employment figures agreed to payroll records; tonnages to weighbridge tickets. Nothing came "
            "to our attention suggesting the indicators are materially misstated.",
        },
    )
    half_end = date(today.year, 6, 30) if today.month > 6 else date(today.year - 1, 12, 31)
    half_start = date(half_end.year, 1, 1) if half_end.month == 6 else date(half_end.year, 7, 1)
    await api.call(
        "POST",
        "/v1/listings/VALLEVERDE/impact-reports",
        "cer-valleverde",
        {
            "period_start": half_start.isoformat(),
            "period_end": half_end.isoformat(),
            "values": [
                {"code": "OI6697", "value": "1410"},
                {"code": "PI1748", "value": "362"},
                {"code": "PI4060", "value": "58"},
            ],
            "document": {
                "url": f"https://valleverde-energia.example.org/impatto-{half_end.isoformat()}.pdf",
                "sha256": _sha256(f"valleverde {half_end}"),
            },
            "summary": "Two new school roofs connected; 23 more households receive bill support.",
        },
    )


# ---------------------------------------------------------------------------------------------------- showing it


def welcome(result: DemoResult, base_url: str) -> str:
    """What to tell the newcomer: the keys and a few commands to try."""
    if result.outcome is DemoOutcome.NOT_EMPTY:
        return "Demo market not created: the exchange already lists instruments (run `exchange demo` to add it)."
    heading = (
        "Demo market created"
        if result.outcome is DemoOutcome.SEEDED
        else "Demo market already present; fresh demo keys issued"
    )
    investor_key = result.keys.get(INVESTOR, "<key>")
    order = '{"symbol":"GIRASOLE","side":"buy","price":"24.90","quantity":"10"}'
    lines = [
        f"{heading}: {', '.join(result.symbols)}.",
        "Orders are taken in trading phases (the calendar: Mon-Fri 08:00-17:35 Europe/Rome; EXCHANGE_SCHEDULE=off "
        "leaves the market open).",
        "API keys (shown once; stored hashed):",
        *(f"  {who:<18} {key}" for who, key in result.keys.items()),
        "Try:",
        f"  curl -s {base_url}/v1/instruments",
        f"  curl -s {base_url}/v1/markets/GIRASOLE/book",
        f"  curl -s '{base_url}/v1/impact/instruments?sdg=7'",
        f"  curl -s {base_url}/v1/impact/instruments/GIRASOLE",
        f"  curl -s -H 'Authorization: Bearer {investor_key}' {base_url}/v1/balances",
        f"  curl -s -H 'Authorization: Bearer {investor_key}' -H 'Content-Type: application/json' "
        f"-d '{order}' {base_url}/v1/orders",
        f"  Docs: {base_url}/docs",
    ]
    return "\n".join(lines)


def base_url(settings: Settings) -> str:
    """Where the newcomer reaches the server this process runs (or will run)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def add_demo_component(app: FastAPI, settings: Settings) -> None:
    """Seed the demo at start-up (`exchange serve --demo`): after the sequencer and market data, before the trading
    calendar, which must not change states while the demo opens its instruments and trades.

    A failed demo is logged and leaves the exchange serving: the demo is a convenience, never a reason to be down.
    """

    async def start(app: FastAPI) -> None:
        try:
            result = await seed_demo(app, only_if_empty=True)
        except Exception:
            log.exception("the demo market could not be created")
            return
        print(welcome(result, base_url(settings)), file=sys.stderr, flush=True)

    components: list[Component] = app.state.components
    names = [component.name for component in components]
    at = names.index("schedule") if "schedule" in names else len(components)
    components.insert(at, Component("demo", start))
