"""A whole trading day through a real server process: the operator lists an equity and a bond, registers participants,
credits cash and issues securities; investors trade through an opening auction and continuous trading (resting orders
on both sides, crossing and partial fills, IOC, FOK, post-only, amend, cancel, cancel-all, market orders), through a
halt and its resumption, to the close; then cash is withdrawn. Every trader also listens on the WebSocket.

Afterwards, for every trader: the balances the API shows equal what its own fills, deposits, withdrawals and issuance
make, and equal the ledger (which balances to zero); each fill carries the fee the listing sets; the public WebSocket
book (snapshot plus deltas, an unbroken chain of sequence numbers) rebuilds the REST book; the private `orders` channel
delivered each fill to exactly its two parties; and no public trade, book or ticker names a participant.

(The operator API offers no end-of-day command: DAY-order expiry runs from the trading calendar, which is off here; the
day ends with the operator closing the market.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from api.auth import Role, create_key, create_participant
from ledger.entries import Bucket
from ledger.postgres import asyncpg_dsn, create_database, drop_database
from ledger.queries import balances_of, negative_participant_balances, reconcile_balances, trial_balance
from tests.conftest import _RUN_TAG, _test_numbers  # the suite's database names, cleaned up after killed runs
from tests.e2e.server import ServerProcess
from tests.support import free_port

pytestmark = pytest.mark.slow

INVESTORS = {"inv-alice": "professional", "inv-bob": "professional", "inv-carol": "retail", "inv-dave": "professional"}
ISSUER = "coopco-issuer"
TRADERS = (*INVESTORS, ISSUER)
SYMBOLS = ("COOP", "GREEN")
FEES_BPS = {"COOP": (5, 10), "GREEN": (2, 4)}  # (maker, taker)
CENT = Decimal("0.01")
WAIT_S = 10.0
# The opening auction's, five in continuous COOP trading, two in GREEN, one after the halt (see `_trade`).
TRADES_OF_THE_DAY = 9


# ---------------------------------------------------------------------------------------------------- the WebSocket


class Feed:
    """One WebSocket connection and every message it received, read by a background task."""

    def __init__(self, connection: ClientConnection, owner: str | None) -> None:
        self.connection = connection
        self.owner = owner
        self.messages: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.connection:
                assert isinstance(text, str)
                self.raw.append(text)
                self.messages.append(json.loads(text))
                self._arrived.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def wait_for(self, found: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        async with asyncio.timeout(WAIT_S):
            while not found(self.messages):
                self._arrived.clear()
                await self._arrived.wait()
        assert found(self.messages), what

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def open_public_feed(url: str) -> Feed:
    feed = Feed(await connect(url), None)
    for symbol in SYMBOLS:
        for channel in ("book", "trades", "ticker"):
            await feed.send({"op": "subscribe", "channel": channel, "symbol": symbol})
    await feed.wait_for(
        lambda messages: sum(m.get("type") == "snapshot" for m in messages) == 2 * 3, "public snapshots"
    )
    return feed


async def open_orders_feed(url: str, owner: str, key: str) -> Feed:
    feed = Feed(await connect(url), owner)
    await feed.send({"op": "auth", "key": key})
    await feed.send({"op": "subscribe", "channel": "orders"})
    await feed.wait_for(
        lambda messages: any(m.get("type") == "subscribed" and m.get("channel") == "orders" for m in messages),
        f"{owner} subscribed to orders",
    )
    return feed


# ---------------------------------------------------------------------------------------------------- the day


@dataclass(slots=True)
class Day:
    """What the day did and what everybody saw of it."""

    server: ServerProcess
    dsn: str
    keys: dict[str, str]
    deposits: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    withdrawals: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    issued: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    auction_seqs: set[int] = field(default_factory=set)
    public: Feed | None = None
    private: dict[str, Feed] = field(default_factory=dict)
    fills: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # GET /v1/fills of each trader
    trades: list[dict[str, Any]] = field(default_factory=list)  # the regulator's view: both sides of every trade
    books: dict[str, dict[str, Any]] = field(default_factory=dict)  # GET /v1/markets/{symbol}/book at the end
    balances: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # GET /v1/balances at the end
    public_rest: list[str] = field(default_factory=list)  # bodies of the public market-data answers at the end

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def expect(response: httpx.Response, status: int, /, **fields: Any) -> dict[str, Any]:
    """The answer has `status` and these top-level fields (an error: its code as `code=`)."""
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    body = response.json()
    found = body["error"] if status >= 400 else body
    for name, value in fields.items():
        assert same(found[name], value), (name, found[name], value, body)
    return body


def same(found: Any, expected: Any) -> bool:
    """Equal, decimals by value: the API writes "10.2" for 10.20."""
    if isinstance(found, str) and isinstance(expected, str) and expected[:1].isdigit():
        return Decimal(found) == Decimal(expected)
    return bool(found == expected)


async def _bootstrap(dsn: str) -> dict[str, str]:
    """The first operator and the regulator are made in the database, as `exchange participants add` would."""
    conn = await asyncpg.connect(dsn)
    try:
        keys = {}
        for participant, role in (("ops", Role.OPERATOR), ("watchdog", Role.REGULATOR)):
            await create_participant(conn, participant, participant.title(), role)
            keys[participant] = (await create_key(conn, participant))[1]
        return keys
    finally:
        await conn.close()


async def _register(client: httpx.AsyncClient, day: Day) -> None:
    ops = day.headers("ops")
    for participant, category in INVESTORS.items():
        body = {"participant_id": participant, "name": participant, "role": "investor", "category": category}
        expect(await client.post("/v1/participants", json=body, headers=ops), 201)
    body = {"participant_id": ISSUER, "name": "Coop Co", "role": "issuer"}
    expect(await client.post("/v1/participants", json=body, headers=ops), 201)
    for participant in TRADERS:
        key = expect(await client.post(f"/v1/participants/{participant}/keys", json={}, headers=ops), 201)
        day.keys[participant] = key["api_key"]


async def _list(client: httpx.AsyncClient, day: Day) -> None:
    ops = day.headers("ops")
    maker, taker = FEES_BPS["COOP"]
    equity = {
        "symbol": "COOP", "kind": "equity", "currency": "EUR", "tick_size": "0.01", "lot_size": 1,
        "reference_price": "10.00", "price_band_percent": "20", "maker_fee_bps": maker, "taker_fee_bps": taker,
        "trading_state": "pre_open",
    }
    expect(await client.post("/v1/instruments", json=equity, headers=ops), 201, trading_state="pre_open")
    maker, taker = FEES_BPS["GREEN"]
    bond = {
        "symbol": "GREEN", "kind": "bond", "currency": "EUR", "tick_size": "0.01", "lot_size": 1,
        "reference_price": "101.00", "price_band_percent": "10", "maker_fee_bps": maker, "taker_fee_bps": taker,
        "trading_state": "open", "issuer": ISSUER,
        "bond": {
            "nominal": "100", "coupon_rate": "4", "coupon_frequency": 2, "day_count": "30/360",
            "issue_date": "2024-01-15", "maturity_date": "2031-01-15",
        },
    }
    expect(await client.post("/v1/instruments", json=bond, headers=ops), 201, trading_state="open")


async def _fund(client: httpx.AsyncClient, day: Day) -> None:
    ops = day.headers("ops")
    for participant, amount in (
        ("inv-alice", "50000.00"), ("inv-bob", "20000.00"), ("inv-carol", "5000.00"), ("inv-dave", "30000.00"),
        (ISSUER, "1000.00"),
    ):
        body = {"account": participant, "currency": "EUR", "amount": amount}
        expect(await client.post("/v1/deposits", json=body, headers=ops), 201)
        day.deposits[participant] += Decimal(amount)
    issuance = (("COOP", "inv-bob", 1000), ("COOP", "inv-dave", 500), ("GREEN", ISSUER, 2000))
    for symbol, participant, quantity in issuance:
        body = {"account": participant, "quantity": str(quantity)}
        expect(await client.post(f"/v1/instruments/{symbol}/issuance", json=body, headers=ops), 201)
        day.issued[(participant, symbol)] += quantity
    # Carol is a retail investor: she must read and acknowledge the risk warning before her first order.
    profile = {"category": "retail", "declared_assets": "40000.00"}
    expect(await client.put("/v1/investor-profiles/inv-carol", json=profile, headers=ops), 200, category="retail")


async def _order(client: httpx.AsyncClient, day: Day, who: str, status: int = 201, **order: Any) -> dict[str, Any]:
    body = {"symbol": "COOP", **order}
    return expect(await client.post("/v1/orders", json=body, headers=day.headers(who)), status)


async def _set_state(client: httpx.AsyncClient, day: Day, symbol: str, state: str) -> int:
    response = await client.post(
        f"/v1/instruments/{symbol}/state", json={"state": state, "reason": "e2e"}, headers=day.headers("ops")
    )
    return int(expect(response, 200, state=state)["seq"])


async def _trade(client: httpx.AsyncClient, day: Day) -> None:
    ops = day.headers("ops")

    # Opening auction: orders collect in pre_open and uncross at one price when the market opens.
    alice_bid = await _order(client, day, "inv-alice", side="buy", quantity="100", price="10.05")
    await _order(client, day, "inv-bob", side="sell", quantity="60", price="9.95")
    dave_ask = await _order(client, day, "inv-dave", side="sell", quantity="30", price="10.10")
    day.auction_seqs.add(await _set_state(client, day, "COOP", "open"))
    opened = await client.get(f"/v1/orders/{alice_bid['id']}", headers=day.headers("inv-alice"))
    expect(opened, 200, filled_quantity="60", remaining_quantity="40", status="partially_filled")

    # Continuous trading: a crossing sell partly fills the resting bid at the bid's price.
    taken = await _order(client, day, "inv-bob", side="sell", quantity="20", price="10.00")
    assert taken["status"] == "filled" and [Decimal(f["price"]) for f in taken["fills"]] == [Decimal("10.05")]
    assert taken["fills"][0]["liquidity"] == "taker"

    # Carol may not trade before acknowledging the risk warning.
    warned = await _order(client, day, "inv-carol", 403, side="buy", quantity="10", price="10.10", time_in_force="IOC")
    assert warned["error"]["code"] == "RISK_WARNING_REQUIRED"
    expect(await client.post("/v1/me/risk-warning", headers=day.headers("inv-carol")), 201, acknowledged=True)
    ioc = await _order(client, day, "inv-carol", side="buy", quantity="10", price="10.10", time_in_force="IOC")
    assert ioc["status"] == "filled" and ioc["filled_quantity"] == "10"
    # IOC: what does not fill at once is cancelled.
    ioc = await _order(client, day, "inv-carol", side="buy", quantity="50", price="10.10", time_in_force="IOC")
    assert (ioc["filled_quantity"], ioc["remaining_quantity"], ioc["status"]) == ("20", "0", "cancelled")
    done = await client.get(f"/v1/orders/{dave_ask['id']}", headers=day.headers("inv-dave"))
    expect(done, 200, status="filled", filled_quantity="30")

    # FOK: all at once or nothing.
    fok = {"side": "sell", "price": "10.00", "time_in_force": "FOK"}
    expect(await client.post("/v1/orders", json={"symbol": "COOP", "quantity": "100", **fok},
                             headers=day.headers("inv-dave")), 400, code="FOK_NOT_FILLABLE")
    fok_fill = await _order(client, day, "inv-dave", quantity="20", **fok)
    assert fok_fill["status"] == "filled" and same(fok_fill["fills"][0]["price"], "10.05")

    # Post-only: refused when it would take liquidity, rests otherwise.
    bob_ask = await _order(client, day, "inv-bob", side="sell", quantity="50", price="10.20")
    taking = await _order(client, day, "inv-alice", 400, side="buy", quantity="10", price="10.20", post_only=True)
    assert taking["error"]["code"] == "WOULD_TAKE_LIQUIDITY"
    maker_bid = await _order(client, day, "inv-alice", side="buy", quantity="10", price="10.00", post_only=True)
    assert maker_bid["status"] == "new"

    # Amend: less quantity keeps priority; a new price loses it. Then a buyer takes part of the amended order.
    amend = f"/v1/orders/{bob_ask['id']}"
    expect(await client.patch(amend, json={"quantity": "40"}, headers=day.headers("inv-bob")), 200,
           remaining_quantity="40", price="10.20")
    expect(await client.patch(amend, json={"price": "10.15"}, headers=day.headers("inv-bob")), 200,
           remaining_quantity="40", price="10.15")
    partial = await _order(client, day, "inv-dave", side="buy", quantity="15", price="10.15")
    assert partial["status"] == "filled" and same(partial["fills"][0]["price"], "10.15")

    # Cancel, and a second cancel of the same order is a conflict.
    cancel = f"/v1/orders/{maker_bid['id']}"
    expect(await client.delete(cancel, headers=day.headers("inv-alice")), 200, status="cancelled")
    expect(await client.delete(cancel, headers=day.headers("inv-alice")), 409, code="ORDER_ALREADY_DONE")

    # The bond: the issuer sells on the market; buyers pay the price plus accrued interest.
    await _order(client, day, ISSUER, symbol="GREEN", side="sell", quantity="500", price="101.50")
    bond_fill = await _order(client, day, "inv-alice", symbol="GREEN", side="buy", quantity="100", price="101.50")
    assert bond_fill["status"] == "filled" and Decimal(bond_fill["fills"][0]["accrued_interest"]) > 0
    await _order(client, day, "inv-carol", symbol="GREEN", side="buy", quantity="5", price="101.60")
    dave_bond_bid = await _order(client, day, "inv-dave", symbol="GREEN", side="buy", quantity="50", price="101.00")
    assert dave_bond_bid["status"] == "new"

    # A halt: no new orders, cancels still allowed; then trading resumes.
    low_bid = await _order(client, day, "inv-alice", side="buy", quantity="5", price="9.80")
    await _set_state(client, day, "COOP", "halted")
    halted = await _order(client, day, "inv-carol", 503, side="buy", quantity="1", price="10.15")
    assert halted["error"]["code"] == "INSTRUMENT_HALTED"
    low_cancel = await client.delete(f"/v1/orders/{low_bid['id']}", headers=day.headers("inv-alice"))
    expect(low_cancel, 200, status="cancelled")
    await _set_state(client, day, "COOP", "open")
    market = await _order(client, day, "inv-dave", side="buy", type="market", quantity="5", time_in_force="IOC")
    assert market["status"] == "filled" and same(market["fills"][0]["price"], "10.15")
    await _order(client, day, "inv-alice", side="buy", quantity="25", price="9.90")
    await _order(client, day, "inv-alice", side="buy", quantity="15", price="9.85")

    # Cancel-all: by symbol, and everything.
    bob_cancelled = expect(await client.delete("/v1/orders", params={"symbol": "COOP"},
                                               headers=day.headers("inv-bob")), 200)
    assert bob_cancelled["cancelled"] == [bob_ask["id"]]
    dave_cancelled = expect(await client.delete("/v1/orders", headers=day.headers("inv-dave")), 200)
    assert dave_cancelled["cancelled"] == [dave_bond_bid["id"]]

    # The close ends the day; cash leaves the exchange (never more than is available).
    await _set_state(client, day, "COOP", "closed")
    for participant, amount in (("inv-alice", "1000.00"), ("inv-bob", "19000.00"), ("inv-carol", "100.50")):
        body = {"account": participant, "currency": "EUR", "amount": amount}
        expect(await client.post("/v1/withdrawals", json=body, headers=ops), 201)
        day.withdrawals[participant] += Decimal(amount)
    too_much = {"account": "inv-carol", "currency": "EUR", "amount": "1000000.00"}
    expect(await client.post("/v1/withdrawals", json=too_much, headers=ops), 400, code="INSUFFICIENT_FUNDS")


async def _collect(client: httpx.AsyncClient, day: Day) -> None:
    """What the REST API says at the end, once every feed has caught up with it."""
    for symbol in SYMBOLS:
        book = expect(await client.get(f"/v1/markets/{symbol}/book", params={"depth": 1000}), 200)
        day.books[symbol] = book
        assert day.public is not None
        await day.public.wait_for(lambda messages, s=symbol, seq=book["seq"]: _last_book_seq(messages, s) == seq,
                                  f"the {symbol} book feed reaches seq {book['seq']}")
        for path in ("book", "trades", "ticker", "candles"):
            day.public_rest.append((await client.get(f"/v1/markets/{symbol}/{path}")).text)
    for trader in TRADERS:
        day.fills[trader] = expect(
            await client.get("/v1/fills", params={"limit": 500}, headers=day.headers(trader)), 200
        )["fills"]
        balances = expect(await client.get("/v1/balances", headers=day.headers(trader)), 200)["balances"]
        day.balances[trader] = {view["asset"]: view for view in balances}
        count = len(day.fills[trader])
        await day.private[trader].wait_for(
            lambda messages, n=count: sum(m.get("type") == "fill" for m in messages) >= n, f"{trader}'s fills"
        )
    day.trades = expect(
        await client.get("/v1/regulator/trades", params={"limit": 1000}, headers=day.headers("watchdog")), 200
    )["trades"]


def book_messages(messages: list[dict[str, Any]], symbol: str) -> list[dict[str, Any]]:
    """The `book` snapshots and updates of `symbol`, in arrival order (not the subscription's acknowledgment)."""
    return [
        m for m in messages
        if m.get("channel") == "book" and m.get("symbol") == symbol and m.get("type") in ("snapshot", "update")
    ]


def _last_book_seq(messages: list[dict[str, Any]], symbol: str) -> int | None:
    book = book_messages(messages, symbol)
    return book[-1]["seq"] if book else None


@pytest.fixture(scope="module")
async def day(
    database_server_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Day]:
    name = f"exch_test_{_RUN_TAG}_{next(_test_numbers)}"
    url = await create_database(database_server_url, name, template=migrated_template)
    dsn = asyncpg_dsn(url)
    server = ServerProcess(url, free_port(), Path(tmp_path_factory.mktemp("trading-day")))
    try:
        keys = await _bootstrap(dsn)
        server.start()
        day = Day(server, dsn, keys)
        ws_url = f"ws://127.0.0.1:{server.port}/v1/ws"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
            await _register(client, day)
            await _list(client, day)
            day.public = await open_public_feed(ws_url)
            for trader in TRADERS:
                day.private[trader] = await open_orders_feed(ws_url, trader, day.keys[trader])
            await _fund(client, day)
            await _trade(client, day)
            await _collect(client, day)
        try:
            yield day
        finally:
            for feed in [day.public, *day.private.values()]:
                if feed is not None:
                    await feed.close()
    finally:
        server.stop()
        await drop_database(database_server_url, name)


# ---------------------------------------------------------------------------------------------------- expectations


def fee(cash: Decimal, bps: int) -> Decimal:
    return (cash * bps / 10_000).quantize(CENT, rounding=ROUND_HALF_EVEN)


def expected_balances(day: Day, trader: str) -> dict[str, Decimal]:
    """Totals per asset from the trader's own fills, deposits, withdrawals and issuance."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    totals["EUR"] += day.deposits[trader] - day.withdrawals[trader]
    for (owner, symbol), quantity in day.issued.items():
        if owner == trader:
            totals[symbol] += quantity
    for fill in day.fills[trader]:
        cash, accrued, paid_fee = Decimal(fill["cash"]), Decimal(fill["accrued_interest"]), Decimal(fill["fee"])
        quantity = Decimal(fill["quantity"])
        if fill["side"] == "buy":
            totals["EUR"] -= cash + accrued + paid_fee
            totals[fill["symbol"]] += quantity
        else:
            totals["EUR"] += cash + accrued - paid_fee
            totals[fill["symbol"]] -= quantity
    return dict(totals)


def _private_fills(day: Day) -> list[tuple[str, dict[str, Any]]]:
    return [(owner, m) for owner, feed in day.private.items() for m in feed.messages if m.get("type") == "fill"]


def test_every_trader_traded_and_both_instruments_traded(day: Day) -> None:
    assert all(day.fills[trader] for trader in TRADERS)
    assert {trade["symbol"] for trade in day.trades} == set(SYMBOLS)
    assert len(day.trades) == TRADES_OF_THE_DAY


def test_each_traders_balances_equal_their_deposits_withdrawals_issuance_and_fills(day: Day) -> None:
    for trader in TRADERS:
        expected = expected_balances(day, trader)
        served = {asset: Decimal(view["total"]) for asset, view in day.balances[trader].items()}
        assert {a: q for a, q in served.items() if q} == {a: q for a, q in expected.items() if q}, trader


def test_securities_held_are_the_remaining_quantity_of_open_sell_orders(day: Day) -> None:
    # After the close only the issuer's bond offer rests on the sell side (everyone else's sells filled or cancelled).
    assert day.balances[ISSUER]["GREEN"]["held"] == "395"
    for trader in INVESTORS:
        for symbol in SYMBOLS:
            view = day.balances[trader].get(symbol)
            assert view is None or view["held"] == "0", (trader, view)


def test_every_fill_carries_the_listings_fee_for_its_side_and_the_exact_cash(day: Day) -> None:
    fills = [fill for trader in TRADERS for fill in day.fills[trader]]
    assert len(fills) == 2 * len(day.trades) > 0
    for fill in fills:
        maker_bps, taker_bps = FEES_BPS[fill["symbol"]]
        auction = fill["seq"] in day.auction_seqs  # in an auction nobody takes liquidity: both pay the maker rate
        bps = maker_bps if auction or fill["liquidity"] == "maker" else taker_bps
        cash = Decimal(fill["price"]) * Decimal(fill["quantity"])  # COOP in euros; GREEN in percent of EUR 100
        assert Decimal(fill["cash"]) == cash, fill
        assert Decimal(fill["fee"]) == fee(cash, bps), fill
        assert (Decimal(fill["accrued_interest"]) > 0) == (fill["symbol"] == "GREEN"), fill


def test_every_trade_has_one_maker_and_one_taker_in_continuous_trading(day: Day) -> None:
    by_trade: dict[str, list[str]] = defaultdict(list)
    for trader in TRADERS:
        for fill in day.fills[trader]:
            if fill["seq"] not in day.auction_seqs:
                by_trade[fill["trade_id"]].append(fill["liquidity"])
    assert by_trade and all(sorted(sides) == ["maker", "taker"] for sides in by_trade.values())


def test_the_opening_auction_uncrossed_into_one_trade_charged_the_maker_rate_on_both_sides(day: Day) -> None:
    auction_fills = [f for t in TRADERS for f in day.fills[t] if f["seq"] in day.auction_seqs]
    assert sorted(f["side"] for f in auction_fills) == ["buy", "sell"]
    assert len({f["trade_id"] for f in auction_fills}) == 1 and len({f["price"] for f in auction_fills}) == 1
    assert Decimal("9.95") <= Decimal(auction_fills[0]["price"]) <= Decimal("10.05")
    maker_bps = FEES_BPS["COOP"][0]
    assert all(Decimal(f["fee"]) == fee(Decimal(f["cash"]), maker_bps) for f in auction_fills)


def test_amendments_say_whether_the_order_kept_its_time_priority(day: Day) -> None:
    amended = [m for m in day.private["inv-bob"].messages if m.get("type") == "amended"]
    assert [(Decimal(m["price"]), m["quantity"], m["priority_kept"]) for m in amended] == [
        (Decimal("10.20"), "40", True),
        (Decimal("10.15"), "40", False),
    ]


def test_auction_fills_say_both_sides_were_makers(day: Day) -> None:
    auction_fills = [f for t in TRADERS for f in day.fills[t] if f["seq"] in day.auction_seqs]
    assert [f["liquidity"] for f in auction_fills] == ["maker", "maker"]


def test_buyer_and_seller_of_a_bond_trade_exchange_the_same_accrued_interest(day: Day) -> None:
    accrued: dict[str, set[str]] = defaultdict(set)
    for trader in TRADERS:
        for fill in day.fills[trader]:
            if fill["symbol"] == "GREEN":
                accrued[fill["trade_id"]].add(fill["accrued_interest"])
    assert len(accrued) == 2 and all(len(amounts) == 1 for amounts in accrued.values())


async def test_the_balances_served_equal_the_ledger_and_the_ledger_balances_to_zero(day: Day) -> None:
    conn = await asyncpg.connect(day.dsn)
    try:
        for trader in TRADERS:
            ledger = await balances_of(conn, trader)
            for asset, view in day.balances[trader].items():
                available = ledger.get((asset, Bucket.AVAILABLE), 0)
                held = ledger.get((asset, Bucket.HELD), 0)
                scale = 1 if asset in SYMBOLS else 100
                assert Decimal(view["available"]) * scale == available, (trader, asset)
                assert Decimal(view["held"]) * scale == held, (trader, asset)
            assets_in_ledger = {asset for (asset, bucket), amount in ledger.items() if amount}
            assert assets_in_ledger <= set(day.balances[trader]), trader
        assert set((await trial_balance(conn)).values()) == {0}
        assert await reconcile_balances(conn) == []
        assert await negative_participant_balances(conn) == []
    finally:
        await conn.close()


def test_the_websocket_book_snapshot_and_deltas_rebuild_the_rest_book(day: Day) -> None:
    assert day.public is not None
    for symbol in SYMBOLS:
        levels: dict[str, dict[str, tuple[str, int]]] = {"buy": {}, "sell": {}}
        for message in book_messages(day.public.messages, symbol):
            if message["type"] == "snapshot":
                levels = {
                    "buy": {lv["price"]: (lv["quantity"], lv["order_count"]) for lv in message["bids"]},
                    "sell": {lv["price"]: (lv["quantity"], lv["order_count"]) for lv in message["asks"]},
                }
            for change in message.get("changes", []):
                side = levels[change["side"]]
                if Decimal(change["quantity"]) == 0:
                    side.pop(change["price"], None)
                else:
                    side[change["price"]] = (change["quantity"], change["order_count"])
        rest = day.books[symbol]
        rebuilt_bids = sorted(levels["buy"].items(), key=lambda item: -Decimal(item[0]))
        rebuilt_asks = sorted(levels["sell"].items(), key=lambda item: Decimal(item[0]))
        assert [(p, q, n) for p, (q, n) in rebuilt_bids] == [
            (lv["price"], lv["quantity"], lv["order_count"]) for lv in rest["bids"]
        ], symbol
        assert [(p, q, n) for p, (q, n) in rebuilt_asks] == [
            (lv["price"], lv["quantity"], lv["order_count"]) for lv in rest["asks"]
        ], symbol
        assert rest["bids"] or rest["asks"], f"{symbol}: an empty book proves little"


def test_book_updates_form_an_unbroken_chain_of_sequence_numbers(day: Day) -> None:
    assert day.public is not None
    for symbol in SYMBOLS:
        book = book_messages(day.public.messages, symbol)
        assert book[0]["type"] == "snapshot" and len(book) > 1
        for previous, update in zip(book, book[1:], strict=False):
            assert update["type"] == "update" and update["prev_seq"] == previous["seq"] < update["seq"]


def test_the_orders_channel_delivered_each_fill_to_exactly_its_two_parties(day: Day) -> None:
    received: dict[str, list[str]] = defaultdict(list)
    for owner, message in _private_fills(day):
        assert message["account"] == owner
        received[message["trade_id"]].append(owner)
    assert len(day.trades) == TRADES_OF_THE_DAY
    for trade in day.trades:
        assert sorted(received[trade["trade_id"]]) == sorted([trade["buyer"], trade["seller"]]), trade
    assert set(received) == {trade["trade_id"] for trade in day.trades}


def test_each_traders_fills_on_the_orders_channel_equal_their_fills_over_rest(day: Day) -> None:
    keys = ("trade_id", "order_id", "symbol", "side", "price", "quantity", "liquidity", "cash", "fee")
    for trader in TRADERS:
        pushed = sorted((tuple(m[k] for k in keys) for o, m in _private_fills(day) if o == trader))
        served = sorted(tuple(f[k] for k in keys) for f in day.fills[trader])
        assert pushed == served, trader


def test_the_private_channel_never_carries_another_participants_order_events(day: Day) -> None:
    for owner, feed in day.private.items():
        accounts = {m["account"] for m in feed.messages if m.get("channel") == "orders" and "account" in m}
        assert accounts <= {owner}, owner


def test_public_trades_books_and_tickers_never_name_a_participant(day: Day) -> None:
    assert day.public is not None
    public_texts = [*day.public.raw, *day.public_rest]
    assert any('"trades"' in text for text in public_texts)
    for participant in TRADERS:
        leaks = [text[:200] for text in public_texts if participant in text]
        assert leaks == [], participant
    for message in day.public.messages:
        for trade in message.get("trades", []):
            assert set(trade) == {"trade_id", "seq", "price", "quantity", "aggressor", "time"}
