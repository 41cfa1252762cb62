"""Public market data over REST: instruments, books, trades, tickers and candles, with no key and no participant named.

The market is set up by submitting core commands to the running sequencer (the one writer), as the operator routes do.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.sequencer import CommitFailed, Outcome
from api.settings import Settings
from exchange.commands import (
    CancelOrder,
    Command,
    Deposit,
    IssueSecurities,
    ListInstrument,
    PlaceOrder,
    SetTradingState,
)
from exchange.events import OrderAccepted
from exchange.instrument import BondTerms, DayCount, Instrument, InstrumentKind, TradingState
from exchange.orders import OrderType, Side, TimeInForce
from tests.support import running_app

INVESTORS = ("inv-alice", "inv-bob", "inv-carol")
T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z


def equity(symbol: str = "ACME", *, state: TradingState = TradingState.OPEN) -> Instrument:
    """Cents on a EUR share, reference price 10.00, a 10 % band, fees 5/10 bps; no issuer, so anyone may be issued."""
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.EQUITY,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=1_000,
        reference_price=1_000,
        maker_fee_bps=5,
        taker_fee_bps=10,
        state=state,
    )


def bond(symbol: str = "GREEN27") -> Instrument:
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.BOND,
        currency="EUR",
        currency_decimals=2,
        tick_size="0.01",
        tick_value=1,
        lot_size=1,
        min_quantity=1,
        max_quantity=1_000_000,
        band_bps=500,
        reference_price=10_000,
        issuer="coop-verde",
        bond=BondTerms(
            nominal_minor=10_000,
            coupon_rate_ppm=31_250,
            coupon_frequency=2,
            day_count=DayCount.ACT_ACT,
            issue_date=date(2024, 3, 1),
            maturity_date=date(2029, 3, 1),
        ),
    )


async def submit(app: FastAPI, command: Command) -> Outcome:
    return await app.state.sequencer.submit(command, "@test")


async def open_market(app: FastAPI, instrument: Instrument | None = None) -> None:
    """List the instrument and give every investor cash and shares."""
    instrument = instrument or equity()
    await submit(app, ListInstrument(instrument))
    for account in INVESTORS:
        await submit(app, Deposit(account, "EUR", 100_000_000))
        await submit(app, IssueSecurities(account, instrument.symbol, 100_000))


async def limit(app: FastAPI, account: str, side: Side, quantity: int, price: int, symbol: str = "ACME") -> Outcome:
    return await submit(app, PlaceOrder(account, symbol, side, OrderType.LIMIT, quantity, price))


def order_id(outcome: Outcome) -> int:
    return next(e.order_id for e in outcome.events if isinstance(e, OrderAccepted))


@pytest.fixture
async def market(api_app: FastAPI) -> FastAPI:
    await open_market(api_app)
    return api_app


# ---------------------------------------------------------------------------------------------------- instruments


async def test_instruments_list_every_listed_instrument_with_its_terms(market: FastAPI, api_client: httpx.AsyncClient):
    await submit(market, ListInstrument(bond()))
    response = await api_client.get("/v1/instruments")
    assert response.status_code == 200
    instruments = response.json()["instruments"]
    assert [i["symbol"] for i in instruments] == ["ACME", "GREEN27"]
    acme = instruments[0]
    assert acme == {
        "symbol": "ACME",
        "kind": "equity",
        "currency": "EUR",
        "tick_size": "0.01",
        "lot_size": "1",
        "min_quantity": "1",
        "max_quantity": "1000000",
        "trading_state": "open",
        "reference_price": "10",
        "band": {"band_bps": 1000, "lower": "9", "upper": "11"},
        "fees": {"maker_bps": 5, "taker_bps": 10},
        "auction_only": False,
        "bond": None,
        "issuer": None,
    }


async def test_a_bond_shows_its_terms_and_issuer(market: FastAPI, api_client: httpx.AsyncClient):
    await submit(market, ListInstrument(bond()))
    response = await api_client.get("/v1/instruments/GREEN27")
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "bond"
    assert body["issuer"] == "coop-verde"
    assert body["reference_price"] == "100"
    assert body["bond"] == {
        "nominal": "100",
        "coupon_rate": "3.125",
        "coupon_frequency": 2,
        "day_count": "ACT/ACT",
        "issue_date": "2024-03-01",
        "maturity_date": "2029-03-01",
        "first_coupon_date": None,
        "redemption": "100",
    }


async def test_an_instrument_shows_its_committed_trading_state(market: FastAPI, api_client: httpx.AsyncClient):
    await submit(market, SetTradingState("ACME", TradingState.HALTED, "news pending"))
    body = (await api_client.get("/v1/instruments/ACME")).json()
    assert body["trading_state"] == "halted"


async def test_the_band_follows_the_reference_price_set_by_the_last_trade(
    market: FastAPI, api_client: httpx.AsyncClient
):
    await limit(market, "inv-alice", Side.SELL, 10, 1_050)
    await limit(market, "inv-bob", Side.BUY, 10, 1_050)
    body = (await api_client.get("/v1/instruments/ACME")).json()
    assert body["reference_price"] == "10.5"
    assert body["band"] == {"band_bps": 1000, "lower": "9.45", "upper": "11.55"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/instruments/NOPE",
        "/v1/markets/NOPE/book",
        "/v1/markets/NOPE/trades",
        "/v1/markets/NOPE/ticker",
        "/v1/markets/NOPE/candles",
    ],
)
async def test_an_unknown_symbol_answers_404_unknown_instrument(market: FastAPI, api_client: httpx.AsyncClient, path):
    response = await api_client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"


# ---------------------------------------------------------------------------------------------------- book


async def test_the_book_shows_aggregated_levels_best_first_and_the_seq_they_reflect(
    market: FastAPI, api_client: httpx.AsyncClient
):
    await limit(market, "inv-alice", Side.BUY, 10, 990)
    await limit(market, "inv-bob", Side.BUY, 5, 990)
    await limit(market, "inv-bob", Side.BUY, 7, 980)
    await limit(market, "inv-carol", Side.SELL, 3, 1_010)
    last = await limit(market, "inv-carol", Side.SELL, 4, 1_020)
    response = await api_client.get("/v1/markets/ACME/book")
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "ACME"
    assert body["seq"] == last.seq
    assert body["bids"] == [
        {"price": "9.9", "quantity": "15", "order_count": 2},
        {"price": "9.8", "quantity": "7", "order_count": 1},
    ]
    assert body["asks"] == [
        {"price": "10.1", "quantity": "3", "order_count": 1},
        {"price": "10.2", "quantity": "4", "order_count": 1},
    ]


async def test_the_book_seq_stays_at_the_last_command_that_changed_the_book(
    market: FastAPI, api_client: httpx.AsyncClient
):
    placed = await limit(market, "inv-alice", Side.BUY, 10, 990)
    await submit(market, Deposit("inv-alice", "EUR", 100))  # commits a later seq that leaves the book alone
    body = (await api_client.get("/v1/markets/ACME/book")).json()
    assert body["seq"] == placed.seq


async def test_depth_limits_the_levels_per_side(market: FastAPI, api_client: httpx.AsyncClient):
    for offset in range(5):
        await limit(market, "inv-alice", Side.BUY, 1, 990 - offset)
        await limit(market, "inv-bob", Side.SELL, 1, 1_010 + offset)
    body = (await api_client.get("/v1/markets/ACME/book", params={"depth": 2})).json()
    assert [level["price"] for level in body["bids"]] == ["9.9", "9.89"]
    assert [level["price"] for level in body["asks"]] == ["10.1", "10.11"]


@pytest.mark.parametrize("depth", ["0", "1001", "ten"])
async def test_a_depth_outside_1_to_1000_is_422(market: FastAPI, api_client: httpx.AsyncClient, depth):
    response = await api_client.get("/v1/markets/ACME/book", params={"depth": depth})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_a_cancelled_order_leaves_the_book(market: FastAPI, api_client: httpx.AsyncClient):
    placed = await limit(market, "inv-alice", Side.BUY, 10, 990)
    await submit(market, CancelOrder("inv-alice", order_id(placed)))
    body = (await api_client.get("/v1/markets/ACME/book")).json()
    assert body["bids"] == [] and body["asks"] == []


async def test_the_book_never_shows_a_command_whose_commit_failed(market: FastAPI, api_client: httpx.AsyncClient):
    sequencer = market.state.sequencer

    async def fail(_batch: object) -> None:
        raise OSError("disk full")

    sequencer.before_commit = fail
    with pytest.raises(CommitFailed):
        await limit(market, "inv-alice", Side.BUY, 10, 990)
    sequencer.before_commit = None
    for _ in range(200):  # the sequencer recovers from the journal, then takes commands again
        if sequencer.ready:
            break
        await asyncio.sleep(0.01)
    await limit(market, "inv-bob", Side.BUY, 3, 980)
    body = (await api_client.get("/v1/markets/ACME/book")).json()
    assert body["bids"] == [{"price": "9.8", "quantity": "3", "order_count": 1}]


# ---------------------------------------------------------------------------------------------------- trades


async def trade(app: FastAPI, quantity: int, price: int, aggressor: Side = Side.BUY) -> None:
    """inv-alice rests an order, inv-bob takes it completely."""
    await limit(app, "inv-alice", Side.SELL if aggressor is Side.BUY else Side.BUY, quantity, price)
    await limit(app, "inv-bob", aggressor, quantity, price)


async def test_trades_are_public_newest_first_with_the_aggressor_side(market: FastAPI, api_client: httpx.AsyncClient):
    await trade(market, 10, 1_000, Side.BUY)
    await trade(market, 4, 1_010, Side.SELL)
    response = await api_client.get("/v1/markets/ACME/trades")
    assert response.status_code == 200
    body = response.json()
    assert [(t["price"], t["quantity"], t["aggressor"]) for t in body["trades"]] == [
        ("10.1", "4", "sell"),
        ("10", "10", "buy"),
    ]
    assert set(body["trades"][0]) == {"trade_id", "seq", "price", "quantity", "aggressor", "time"}
    assert body["trades"][0]["time"].endswith("Z")
    assert body["next_cursor"] is None


async def test_trades_page_by_cursor_on_the_trade_id(market: FastAPI, api_client: httpx.AsyncClient):
    for i in range(5):
        await trade(market, 1 + i, 1_000)
    first = (await api_client.get("/v1/markets/ACME/trades", params={"limit": 2})).json()
    assert [t["quantity"] for t in first["trades"]] == ["5", "4"]
    page = {"limit": 2, "cursor": first["next_cursor"]}
    second = (await api_client.get("/v1/markets/ACME/trades", params=page)).json()
    assert [t["quantity"] for t in second["trades"]] == ["3", "2"]
    page = {"limit": 2, "cursor": second["next_cursor"]}
    third = (await api_client.get("/v1/markets/ACME/trades", params=page)).json()
    assert [t["quantity"] for t in third["trades"]] == ["1"]
    assert third["next_cursor"] is None


@pytest.mark.parametrize("params", [{"cursor": "abc"}, {"cursor": "-3"}, {"limit": "0"}, {"limit": "1001"}])
async def test_a_bad_trades_cursor_or_limit_is_422(market: FastAPI, api_client: httpx.AsyncClient, params):
    response = await api_client.get("/v1/markets/ACME/trades", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"INVALID_CURSOR", "VALIDATION_ERROR"}


# ---------------------------------------------------------------------------------------------------- ticker


async def test_the_ticker_shows_the_last_trade_the_best_prices_and_24h_statistics(
    market: FastAPI, api_client: httpx.AsyncClient
):
    await trade(market, 10, 1_000)
    await trade(market, 5, 1_030)
    await trade(market, 2, 990)
    await limit(market, "inv-carol", Side.BUY, 7, 980)
    await limit(market, "inv-carol", Side.SELL, 8, 1_040)
    response = await api_client.get("/v1/markets/ACME/ticker")
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "ACME"
    assert body["trading_state"] == "open"
    assert (body["last_price"], body["last_quantity"]) == ("9.9", "2")
    assert (body["best_bid"], body["best_bid_quantity"]) == ("9.8", "7")
    assert (body["best_ask"], body["best_ask_quantity"]) == ("10.4", "8")
    assert (body["open_24h"], body["high_24h"], body["low_24h"]) == ("10", "10.3", "9.9")
    assert (body["volume_24h"], body["trades_24h"]) == ("17", 3)
    assert body["indicative_auction"] is None
    assert body["seq"] == market.state.sequencer.last_seq


async def test_the_ticker_of_a_quiet_market_has_no_prices(market: FastAPI, api_client: httpx.AsyncClient):
    body = (await api_client.get("/v1/markets/ACME/ticker")).json()
    assert body["last_price"] is None and body["best_bid"] is None and body["open_24h"] is None
    assert (body["volume_24h"], body["trades_24h"]) == ("0", 0)


async def test_the_ticker_shows_the_indicative_auction_during_a_call_phase(
    market: FastAPI, api_client: httpx.AsyncClient
):
    await submit(market, SetTradingState("ACME", TradingState.OPENING_AUCTION))
    await limit(market, "inv-alice", Side.BUY, 10, 1_010)
    await limit(market, "inv-bob", Side.SELL, 6, 1_000)
    body = (await api_client.get("/v1/markets/ACME/ticker")).json()
    assert body["trading_state"] == "opening_auction"
    auction = body["indicative_auction"]
    assert auction["volume"] == "6" and auction["surplus"] == "4"
    assert auction["price"] in {"10", "10.1"}
    await submit(market, SetTradingState("ACME", TradingState.OPEN))
    body = (await api_client.get("/v1/markets/ACME/ticker")).json()
    assert body["indicative_auction"] is None
    assert body["last_quantity"] == "6"


# ---------------------------------------------------------------------------------------------------- candles


async def test_candles_bucket_trades_on_utc_epoch_aligned_intervals(api_app: FastAPI, api_client: httpx.AsyncClient):
    minute = 60_000_000
    base = T0 - T0 % minute + 10 * minute  # 2023-11-14T22:23:00Z
    now = {"us": base - minute}
    api_app.state.sequencer.clock = lambda: now["us"]  # exchange time as the test says (before anything is sequenced)
    await open_market(api_app)
    for at, price, quantity in [(0, 1_000, 1), (20, 1_020, 2), (40, 990, 3), (60, 1_005, 4), (200, 1_001, 5)]:
        now["us"] = base + at * 1_000_000
        await trade(api_app, quantity, price)
    response = await api_client.get(
        "/v1/markets/ACME/candles",
        params={"interval": "1m", "start": "2023-11-14T22:23:30Z", "end": "2023-11-14T22:30:00Z"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["start"] == "2023-11-14T22:23:00.000000Z"  # rounded down to its bucket
    fields = ("start", "open", "high", "low", "close", "volume", "trades")
    assert [tuple(c[f] for f in fields) for c in body["candles"]] == [
        ("2023-11-14T22:23:00.000000Z", "10", "10.2", "9.9", "9.9", "6", 3),
        ("2023-11-14T22:24:00.000000Z", "10.05", "10.05", "10.05", "10.05", "4", 1),
        ("2023-11-14T22:26:00.000000Z", "10.01", "10.01", "10.01", "10.01", "5", 1),
    ]
    assert set(body["candles"][0]) == set(fields)
    hourly = (
        await api_client.get(
            "/v1/markets/ACME/candles",
            params={"interval": "1h", "start": "2023-11-14T00:00:00Z", "end": "2023-11-15T00:00:00Z"},
        )
    ).json()
    assert [(c["start"], c["volume"], c["trades"]) for c in hourly["candles"]] == [
        ("2023-11-14T22:00:00.000000Z", "15", 5)
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"interval": "2m"}, "VALIDATION_ERROR"),
        ({"start": "yesterday"}, "VALIDATION_ERROR"),
        ({"start": "2023-11-15T00:00:00Z", "end": "2023-11-14T00:00:00Z"}, "INVALID_RANGE"),
        ({"interval": "1m", "start": "2023-01-01T00:00:00Z", "end": "2023-11-14T00:00:00Z"}, "TOO_MANY_CANDLES"),
    ],
)
async def test_a_bad_candle_request_is_422(market: FastAPI, api_client: httpx.AsyncClient, params, code):
    response = await api_client.get("/v1/markets/ACME/candles", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


# ---------------------------------------------------------------------------------------------------- privacy, restart


async def test_public_market_data_never_names_a_participant_and_needs_no_key(
    market: FastAPI, api_client: httpx.AsyncClient
):
    await trade(market, 10, 1_000)
    await limit(market, "inv-carol", Side.BUY, 7, 980)
    await limit(market, "inv-carol", Side.SELL, 8, 1_040)
    texts = []
    for path in [
        "/v1/instruments",
        "/v1/instruments/ACME",
        "/v1/markets/ACME/book",
        "/v1/markets/ACME/trades",
        "/v1/markets/ACME/ticker",
        "/v1/markets/ACME/candles",
    ]:
        response = await api_client.get(path)
        assert response.status_code == 200, path
        texts.append(response.text)
    for account in INVESTORS:
        assert all(account not in text for text in texts)
    assert all("order_id" not in text for text in texts)


async def test_the_market_picture_survives_a_restart(api_app: FastAPI, api_client: httpx.AsyncClient, tmp_path: Path):
    await open_market(api_app)
    await trade(api_app, 10, 1_000)
    await trade(api_app, 3, 1_020, Side.SELL)
    await limit(api_app, "inv-carol", Side.BUY, 7, 980)
    paths = ["/v1/markets/ACME/book", "/v1/markets/ACME/trades", "/v1/instruments"]
    before = [(await api_client.get(path)).json() for path in paths]
    ticker_before = (await api_client.get("/v1/markets/ACME/ticker")).json()
    await api_app.state.sequencer.stop()  # a restart: one writer per database, so the first one goes first
    settings = Settings(_env_file=None, database_url=api_app.state.settings.database_url, data_dir=tmp_path / "again")
    async with running_app(settings) as (_, client):
        after = [(await client.get(path)).json() for path in paths]
        ticker_after = (await client.get("/v1/markets/ACME/ticker")).json()
    assert after == before
    keep = ("last_price", "best_bid", "best_ask", "open_24h", "high_24h", "low_24h", "volume_24h", "trades_24h")
    assert {k: ticker_after[k] for k in keep} == {k: ticker_before[k] for k in keep}


async def test_an_auction_in_progress_shows_the_same_indicative_price_after_a_restart(
    api_app: FastAPI, api_client: httpx.AsyncClient, tmp_path: Path
):
    await open_market(api_app)
    await submit(api_app, SetTradingState("ACME", TradingState.OPENING_AUCTION))
    await limit(api_app, "inv-alice", Side.BUY, 10, 1_010)
    await limit(api_app, "inv-bob", Side.SELL, 6, 1_000)
    before = (await api_client.get("/v1/markets/ACME/ticker")).json()["indicative_auction"]
    await api_app.state.sequencer.stop()  # a restart: one writer per database, so the first one goes first
    settings = Settings(_env_file=None, database_url=api_app.state.settings.database_url, data_dir=tmp_path / "again")
    async with running_app(settings) as (_, client):
        after = (await client.get("/v1/markets/ACME/ticker")).json()["indicative_auction"]
    assert before is not None and after == before


async def test_openapi_documents_the_market_data_responses(api_client: httpx.AsyncClient):
    schemas = (await api_client.get("/openapi.json")).json()["components"]["schemas"]
    assert {"InstrumentView", "BookView", "PublicTradePage", "TickerView", "CandlesView"} <= set(schemas)
