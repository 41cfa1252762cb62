"""The regulator's window on the exchange: every order, trade, order event, ledger entry and journal record, page by
page or exported as JSON lines, and the verify and replay checks on demand. Role `regulator` only (not even the
operator: the regulator watches the operator too).

Reads come from PostgreSQL (committed data). Pages go oldest first with an opaque cursor (a keyset on the order id,
the trade id or the (seq, index) pair), never an offset. Journal records and events are shown as stored, canonical
bytes included, so that anyone can recompute the hash chain: `hash = sha256(prev_hash || [seq,ts_us,sender,command])`.

`POST /v1/regulator/verify` and `/replay` run `exchange verify --json` / `exchange replay --json` in a child process on
a connection of its own: a replay is CPU-bound for as long as the journal is long, and must never stall the
sequencer, which shares this process's event loop. One check runs at a time per server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictInt, StrictStr

import api
from api.auth import Principal, Role, require
from api.commands import engine_of
from api.errors import ApiError, ErrorEnvelope
from api.keyset import Filters, split_page
from api.routes.orders import ORDER_SELECT, format_amount, order_view
from api.schemas import OrderPage, OrderView, StrictModel, timestamp
from api.units import minor_to_cash, ticks_to_price
from exchange.engine import Engine
from exchange.instrument import Instrument

router = APIRouter(prefix="/v1/regulator", tags=["regulator"])
REGULATOR = require(Role.REGULATOR)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorEnvelope} for code in (401, 403, 409, 422, 503)}

MAX_PAGE = 1_000
EXPORT_PAGE = 1_000
MAX_SEQ = 2**62

AccountQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9@][a-z0-9_.\-]*$")]
SymbolQuery = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z0-9][A-Z0-9._\-]*$")]
IdCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page")
]
PairCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,18}:[0-9]{1,9}$", description="`next_cursor` of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


# ---------------------------------------------------------------------------------------------------- views


class TradeView(BaseModel):
    trade_id: str
    seq: int
    time: str | None
    symbol: str
    price: str
    quantity: str
    aggressor: str
    buy_order_id: str
    sell_order_id: str
    buyer: str
    seller: str
    currency: str
    cash: str
    accrued_interest: str
    buyer_fee: str
    seller_fee: str


class TradePage(BaseModel):
    trades: list[TradeView]
    next_cursor: str | None


class EventView(BaseModel):
    seq: int
    index: int
    time: str | None
    kind: str
    symbol: str | None
    account: str | None
    order_id: str | None
    trade_id: str | None
    body: str = Field(description="The event's canonical encoding (integers: ticks, units, minor units), as stored.")


class EventPage(BaseModel):
    events: list[EventView]
    next_cursor: str | None


class AccountView(BaseModel):
    owner: str
    bucket: str


class LegView(BaseModel):
    leg: int
    debit: AccountView
    credit: AccountView
    asset: str
    amount: str


class EntryView(BaseModel):
    seq: int
    index: int
    kind: str
    time: str
    order_id: str | None
    trade_id: str | None
    legs: list[LegView]


class EntryPage(BaseModel):
    entries: list[EntryView]
    next_cursor: str | None


class JournalView(BaseModel):
    seq: int
    ts_us: int = Field(description="Exchange time in microseconds since the epoch, as hashed.")
    time: str
    sender: str
    command: str = Field(description="The command's canonical encoding, as stored and hashed.")
    prev_hash: str
    hash: str


class JournalPage(BaseModel):
    records: list[JournalView]
    next_cursor: str | None


class PublishedHead(StrictModel):
    seq: StrictInt = Field(ge=1, le=MAX_SEQ)
    hash: StrictStr = Field(pattern=r"^[0-9a-f]{64}$")


class VerifyRequest(StrictModel):
    published_head: PublishedHead | None = Field(
        default=None, description="A chain head published earlier: fail unless the journal still holds it."
    )


class ReplayRequest(StrictModel):
    to_seq: StrictInt | None = Field(default=None, ge=0, le=MAX_SEQ, description="Default: the whole journal.")


# ---------------------------------------------------------------------------------------------------- helpers


def _pool(request: Request) -> asyncpg.Pool:
    pool = getattr(request.app.state, "pg_pool", None)
    if pool is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    return pool


def _instrument(engine: Engine, symbol: str) -> Instrument:
    instrument = engine.instruments.get(symbol)
    if instrument is None:  # listed in a batch the engine has not recovered yet
        raise ApiError(
            503, "ENGINE_RECOVERING", "the exchange is still rebuilding its instruments", {}, {"Retry-After": "1"}
        )
    return instrument


def _pair(cursor: str | None) -> tuple[int, int]:
    if cursor is None:
        return 0, -1
    seq, idx = cursor.split(":")
    return int(seq), int(idx)


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def trade_view(instrument: Instrument, row: Any) -> TradeView:
    decimals = instrument.currency_decimals
    return TradeView(
        trade_id=str(row["trade_id"]),
        seq=row["seq"],
        time=timestamp(row["ts_us"]),
        symbol=row["symbol"],
        price=ticks_to_price(instrument, row["price"]),
        quantity=str(row["quantity"]),
        aggressor=row["aggressor"],
        buy_order_id=str(row["buy_order_id"]),
        sell_order_id=str(row["sell_order_id"]),
        buyer=row["buyer"],
        seller=row["seller"],
        currency=row["currency"],
        cash=minor_to_cash(row["cash"], decimals),
        accrued_interest=minor_to_cash(row["accrued"], decimals),
        buyer_fee=minor_to_cash(row["buyer_fee"], decimals),
        seller_fee=minor_to_cash(row["seller_fee"], decimals),
    )


def event_view(row: Any) -> EventView:
    return EventView(
        seq=row["seq"],
        index=row["idx"],
        time=timestamp(row["ts_us"]),
        kind=row["kind"],
        symbol=row["symbol"],
        account=row["account"],
        order_id=_id(row["order_id"]),
        trade_id=_id(row["trade_id"]),
        body=row["body"],
    )


def journal_view(row: Any) -> JournalView:
    return JournalView(
        seq=row["seq"],
        ts_us=row["ts_us"],
        time=timestamp(row["ts_us"]) or "",
        sender=row["sender"],
        command=row["command"],
        prev_hash=bytes(row["prev_hash"]).hex(),
        hash=bytes(row["hash"]).hex(),
    )


_TRADES = "SELECT * FROM trades"
_EVENTS = (
    "SELECT e.seq, e.idx, j.ts_us, e.kind, e.symbol, e.account, e.order_id, e.trade_id, e.body "
    "FROM events e JOIN journal j ON j.seq = e.seq"
)
_JOURNAL = "SELECT seq, ts_us, sender, command, prev_hash, hash FROM journal"
_ENTRIES_OF_KEYS = """
SELECT e.seq, e.idx, e.kind, (extract(epoch FROM e.ts) * 1000000)::bigint AS ts_us, e.order_id, e.trade_id
  FROM ledger_entries e JOIN unnest($1::bigint[], $2::int[]) AS k(seq, idx) ON e.seq = k.seq AND e.idx = k.idx
 ORDER BY e.seq, e.idx
"""
_LEGS_OF_KEYS = """
SELECT l.seq, l.idx, l.leg, d.owner AS debit_owner, d.bucket AS debit_bucket, c.owner AS credit_owner,
       c.bucket AS credit_bucket, l.asset, l.amount
  FROM ledger_legs l
  JOIN unnest($1::bigint[], $2::int[]) AS k(seq, idx) ON l.seq = k.seq AND l.idx = k.idx
  JOIN ledger_accounts d ON d.id = l.debit_account_id
  JOIN ledger_accounts c ON c.id = l.credit_account_id
 ORDER BY l.seq, l.idx, l.leg
"""
# The entries touching an owner's accounts: each account, on each side, gives its first page after the cursor from an
# index range scan (as in ledger.queries.statement); the first page of their union is the answer.
_ENTRY_KEYS_OF_OWNER = """
WITH accounts AS (SELECT id FROM ledger_accounts WHERE owner = $1 AND ($2::text IS NULL OR asset = $2)),
candidates AS (
    SELECT k.seq, k.idx FROM accounts a, LATERAL (
        SELECT DISTINCT l.seq, l.idx FROM ledger_legs l
         WHERE l.debit_account_id = a.id AND (l.seq, l.idx) > ($3, $4) AND l.seq <= $6
         ORDER BY l.seq, l.idx LIMIT $5) k
    UNION
    SELECT k.seq, k.idx FROM accounts a, LATERAL (
        SELECT DISTINCT l.seq, l.idx FROM ledger_legs l
         WHERE l.credit_account_id = a.id AND (l.seq, l.idx) > ($3, $4) AND l.seq <= $6
         ORDER BY l.seq, l.idx LIMIT $5) k
)
SELECT seq, idx FROM candidates ORDER BY seq, idx LIMIT $5
"""
_ENTRY_KEYS_OF_ASSET = """
SELECT DISTINCT seq, idx FROM ledger_legs WHERE asset = $1 AND (seq, idx) > ($2, $3) AND seq <= $5
 ORDER BY seq, idx LIMIT $4
"""
_ENTRY_KEYS = "SELECT seq, idx FROM ledger_entries WHERE (seq, idx) > ($1, $2) AND seq <= $4 ORDER BY seq, idx LIMIT $3"


async def _entries(
    conn: asyncpg.Connection,
    engine: Engine,
    after: tuple[int, int],
    limit: int,
    owner: str | None = None,
    asset: str | None = None,
    to_seq: int = MAX_SEQ,
) -> list[EntryView]:
    if owner is not None:
        keys = await conn.fetch(_ENTRY_KEYS_OF_OWNER, owner, asset, after[0], after[1], limit, to_seq)
    elif asset is not None:
        keys = await conn.fetch(_ENTRY_KEYS_OF_ASSET, asset, after[0], after[1], limit, to_seq)
    else:
        keys = await conn.fetch(_ENTRY_KEYS, after[0], after[1], limit, to_seq)
    if not keys:
        return []
    seqs = [k["seq"] for k in keys]
    idxs = [k["idx"] for k in keys]
    entries = await conn.fetch(_ENTRIES_OF_KEYS, seqs, idxs)
    legs: dict[tuple[int, int], list[LegView]] = {}
    for leg in await conn.fetch(_LEGS_OF_KEYS, seqs, idxs):
        legs.setdefault((leg["seq"], leg["idx"]), []).append(
            LegView(
                leg=leg["leg"],
                debit=AccountView(owner=leg["debit_owner"], bucket=leg["debit_bucket"]),
                credit=AccountView(owner=leg["credit_owner"], bucket=leg["credit_bucket"]),
                asset=leg["asset"],
                amount=format_amount(engine, leg["asset"], leg["amount"]),
            )
        )
    return [
        EntryView(
            seq=e["seq"],
            index=e["idx"],
            kind=e["kind"],
            time=timestamp(e["ts_us"]) or "",
            order_id=_id(e["order_id"]),
            trade_id=_id(e["trade_id"]),
            legs=legs.get((e["seq"], e["idx"]), []),
        )
        for e in entries
    ]


# ---------------------------------------------------------------------------------------------------- paged reads


@router.get("/orders", response_model=OrderPage, responses=ERRORS, summary="Every order, oldest first")
async def regulator_orders(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    account: AccountQuery = None,
    symbol: SymbolQuery = None,
    cursor: IdCursor = None,
    limit: Limit = 100,
) -> OrderPage:
    engine = engine_of(request)
    filters = Filters()
    filters.add("account = {0}", account)
    filters.add("symbol = {0}", symbol)
    filters.add("order_id > {0}", None if cursor is None else int(cursor))
    sql = f"{ORDER_SELECT}{filters.where()} ORDER BY order_id LIMIT {filters.param(limit + 1)}"
    async with _pool(request).acquire() as conn:
        rows = await conn.fetch(sql, *filters.args)
    page, next_cursor = split_page(rows, limit, lambda r: str(r["order_id"]))
    views: list[OrderView] = [order_view(_instrument(engine, r["symbol"]), r) for r in page]
    return OrderPage(orders=views, next_cursor=next_cursor)


@router.get("/trades", response_model=TradePage, responses=ERRORS, summary="Every trade with both sides, oldest first")
async def regulator_trades(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    account: AccountQuery = None,
    symbol: SymbolQuery = None,
    cursor: IdCursor = None,
    limit: Limit = 100,
) -> TradePage:
    engine = engine_of(request)
    filters = Filters()
    filters.add("(buyer = {0} OR seller = {0})", account)
    filters.add("symbol = {0}", symbol)
    filters.add("trade_id > {0}", None if cursor is None else int(cursor))
    sql = f"{_TRADES}{filters.where()} ORDER BY trade_id LIMIT {filters.param(limit + 1)}"
    async with _pool(request).acquire() as conn:
        rows = await conn.fetch(sql, *filters.args)
    page, next_cursor = split_page(rows, limit, lambda r: str(r["trade_id"]))
    return TradePage(trades=[trade_view(_instrument(engine, r["symbol"]), r) for r in page], next_cursor=next_cursor)


def _events_query(
    account: str | None, symbol: str | None, order_id: int | None, kind: str | None, after: tuple[int, int], limit: int
) -> tuple[str, list[Any]]:
    """A page of events matching the filters, in (seq, idx) order after `after`.

    A Trade event names no single account or order (it has a buyer and a seller, a buy and a sell order), so when
    the filter is an account or an order, the trades of that account or order are found in `trades` and their events
    added: each part is a keyset scan limited to one page, and the page is the first `limit` of both.
    """
    own = Filters(["(e.seq, e.idx) > ($1, $2)"], [after[0], after[1], limit])
    # The trades part reads the same parameters: both filters number into one list.
    traded = Filters(["(e.seq, e.idx) > ($1, $2)", "t.seq >= $1"], own.args)
    for column, value in (("account", account), ("symbol", symbol), ("kind", kind), ("order_id", order_id)):
        if value is not None:
            placeholder = own.param(value)
            own.add(f"e.{column} = {placeholder}")
            if column == "account":
                traded.add(f"(t.buyer = {placeholder} OR t.seller = {placeholder})")
            elif column == "order_id":
                traded.add(f"(t.buy_order_id = {placeholder} OR t.sell_order_id = {placeholder})")
            elif column == "symbol":
                traded.add(f"t.symbol = {placeholder}")
    first = f"({_EVENTS}{own.where()} ORDER BY e.seq, e.idx LIMIT $3)"
    if (account is None and order_id is None) or kind not in (None, "Trade"):
        return f"SELECT * FROM {first} page ORDER BY seq, idx", own.args
    trades = (
        "(SELECT e.seq, e.idx, j.ts_us, e.kind, e.symbol, e.account, e.order_id, e.trade_id, e.body FROM trades t "
        "JOIN events e ON e.seq = t.seq AND e.trade_id = t.trade_id AND e.kind = 'Trade' "
        f"JOIN journal j ON j.seq = e.seq{traded.where()} ORDER BY e.seq, e.idx LIMIT $3)"
    )
    return f"SELECT * FROM ({first} UNION ALL {trades}) page ORDER BY seq, idx LIMIT $3", own.args


@router.get("/events", response_model=EventPage, responses=ERRORS, summary="Every order event (audit trail), in order")
async def regulator_events(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    account: AccountQuery = None,
    symbol: SymbolQuery = None,
    order_id: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    kind: Annotated[str | None, Query(pattern=r"^[A-Za-z]{1,40}$", description="e.g. OrderAccepted, Trade")] = None,
    cursor: PairCursor = None,
    limit: Limit = 100,
) -> EventPage:
    after = _pair(cursor)
    sql, args = _events_query(account, symbol, None if order_id is None else int(order_id), kind, after, limit + 1)
    async with _pool(request).acquire() as conn:
        rows = await conn.fetch(sql, *args)
    page, next_cursor = split_page(rows, limit, lambda r: f"{r['seq']}:{r['idx']}")
    return EventPage(events=[event_view(r) for r in page], next_cursor=next_cursor)


@router.get(
    "/ledger/entries", response_model=EntryPage, responses=ERRORS, summary="Ledger entries with their legs, in order"
)
async def regulator_ledger_entries(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    account: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z0-9@][a-z0-9_.\-]*$", description="Owner ('@venue' too)")
    ] = None,
    asset: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z0-9][A-Z0-9._\-]*$")] = None,
    cursor: PairCursor = None,
    limit: Limit = 100,
) -> EntryPage:
    engine = engine_of(request)
    async with _pool(request).acquire() as conn:
        entries = await _entries(conn, engine, _pair(cursor), limit + 1, account, asset)
    page, next_cursor = split_page(entries, limit, lambda e: f"{e.seq}:{e.index}")
    return EntryPage(entries=page, next_cursor=next_cursor)


@router.get("/journal", response_model=JournalPage, responses=ERRORS, summary="Journal records with their hashes")
async def regulator_journal(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    cursor: IdCursor = None,
    limit: Limit = 100,
) -> JournalPage:
    after = int(cursor) if cursor is not None else 0
    async with _pool(request).acquire() as conn:
        rows = await conn.fetch(f"{_JOURNAL} WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit + 1)
    page, next_cursor = split_page(rows, limit, lambda r: str(r["seq"]))
    return JournalPage(records=[journal_view(r) for r in page], next_cursor=next_cursor)


# ---------------------------------------------------------------------------------------------------- export

ExportKind = Literal["journal", "events", "trades", "ledger"]
Page = Callable[[asyncpg.Connection, Any], Awaitable[tuple[list[BaseModel], Any]]]


_FIRST_TRADE_FROM = (
    "SELECT trade_id FROM events WHERE seq >= $1 AND seq <= $2 AND kind = 'Trade' ORDER BY seq, idx LIMIT 1"
)
_LAST_TRADE_TO = (
    "SELECT trade_id FROM events WHERE seq >= $1 AND seq <= $2 AND kind = 'Trade' ORDER BY seq DESC, idx DESC LIMIT 1"
)


async def _exporter(
    conn: asyncpg.Connection, kind: ExportKind, engine: Engine | None, from_seq: int, to_seq: int
) -> tuple[Page, Any]:
    """A function giving the next page of `kind` in [from_seq, to_seq] after a position, and the first position."""

    async def journal(conn: asyncpg.Connection, after: int) -> tuple[list[BaseModel], Any]:
        rows = await conn.fetch(
            f"{_JOURNAL} WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3", after, to_seq, EXPORT_PAGE
        )
        return [journal_view(r) for r in rows], (rows[-1]["seq"] if rows else None)

    async def events(conn: asyncpg.Connection, after: tuple[int, int]) -> tuple[list[BaseModel], Any]:
        rows = await conn.fetch(
            f"{_EVENTS} WHERE (e.seq, e.idx) > ($1, $2) AND e.seq <= $3 ORDER BY e.seq, e.idx LIMIT $4",
            after[0],
            after[1],
            to_seq,
            EXPORT_PAGE,
        )
        return [event_view(r) for r in rows], ((rows[-1]["seq"], rows[-1]["idx"]) if rows else None)

    async def trades(conn: asyncpg.Connection, after: int) -> tuple[list[BaseModel], Any]:
        assert engine is not None
        rows = await conn.fetch(
            f"{_TRADES} WHERE trade_id > $1 AND trade_id <= $2 ORDER BY trade_id LIMIT $3",
            after,
            last_trade,
            EXPORT_PAGE,
        )
        views = [trade_view(_instrument(engine, r["symbol"]), r) for r in rows]
        return views, (rows[-1]["trade_id"] if rows else None)

    async def ledger(conn: asyncpg.Connection, after: tuple[int, int]) -> tuple[list[BaseModel], Any]:
        assert engine is not None
        entries = await _entries(conn, engine, after, EXPORT_PAGE, to_seq=to_seq)
        return entries, ((entries[-1].seq, entries[-1].index) if entries else None)

    if kind == "journal":
        return journal, from_seq - 1
    if kind == "events":
        return events, (from_seq, -1)
    if kind == "ledger":
        return ledger, (from_seq, -1)
    # trades has no index on seq, but trade ids grow with it: the seq range is a range of trade ids, found from the
    # first and last Trade events of the range (index scans on the events' primary key).
    first_trade = await conn.fetchval(_FIRST_TRADE_FROM, from_seq, to_seq)
    last_trade = await conn.fetchval(_LAST_TRADE_TO, from_seq, to_seq) or 0
    return trades, (first_trade - 1 if first_trade is not None else last_trade)


@router.get(
    "/export",
    responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object per line."}},
    summary="A seq range of the journal, events, trades or ledger as JSON lines (streamed)",
)
async def regulator_export(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    kind: Annotated[ExportKind, Query()],
    from_seq: Annotated[int, Query(ge=1, le=MAX_SEQ)] = 1,
    to_seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="Default: the last committed seq.")] = None,
) -> StreamingResponse:
    pool = _pool(request)
    engine = engine_of(request) if kind in ("trades", "ledger") else None
    if to_seq is not None and to_seq < from_seq:
        raise ApiError(
            422, "INVALID_RANGE", "to_seq must not be before from_seq", {"from_seq": from_seq, "to_seq": to_seq}
        )
    async with pool.acquire() as conn:
        if to_seq is None:
            to_seq = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM journal"))
        next_page, position = await _exporter(conn, kind, engine, from_seq, to_seq)

    async def lines() -> AsyncIterator[bytes]:
        after = position
        while True:
            # One pooled connection per page: a slow reader never holds a connection for the whole export.
            async with pool.acquire() as conn:
                views, after = await next_page(conn, after)
            if views:
                yield b"".join(view.model_dump_json().encode() + b"\n" for view in views)
            if len(views) < EXPORT_PAGE or after is None:
                return

    filename = f"{kind}-{from_seq}-{to_seq}.jsonl"
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Export-To-Seq": str(to_seq)},
    )


# ---------------------------------------------------------------------------------------------------- checks


def _audit_lock(request: Request) -> asyncio.Lock:
    lock = getattr(request.app.state, "regulator_audit_lock", None)
    if lock is None:
        lock = request.app.state.regulator_audit_lock = asyncio.Lock()
    return lock


async def _run_check(request: Request, arguments: list[str]) -> dict[str, Any]:
    """Run `exchange <arguments> --json` in a child process against this server's database; its JSON report."""
    database_url = getattr(request.app.state, "database_url", None)
    if database_url is None:
        raise ApiError(503, "NOT_READY", "the exchange is starting")
    lock = _audit_lock(request)
    if lock.locked():
        raise ApiError(409, "AUDIT_IN_PROGRESS", "a verify or replay is already running; retry when it is done", {},
                       {"Retry-After": "5"})
    environment = dict(os.environ)
    environment["DATABASE_URL"] = database_url
    project = str(Path(api.__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (project, environment.get("PYTHONPATH")) if p)
    async with lock:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            *arguments,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        try:
            out, err = await process.communicate()
        finally:
            if process.returncode is None:  # the caller went away: do not leave the check running
                process.kill()
                await process.wait()
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if process.returncode not in (0, 1) or not isinstance(report, dict):
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
        raise ApiError(503, "AUDIT_FAILED", "the check could not run to its end", {"reason": detail[0][:500]})
    return report


@router.post("/verify", responses=ERRORS, summary="Verify the hash chain and the ledger; the report and chain head")
async def regulator_verify(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    body: VerifyRequest | None = None,
) -> dict[str, Any]:
    arguments = ["verify"]
    if body is not None and body.published_head is not None:
        arguments += ["--expect-head", f"{body.published_head.seq}:{body.published_head.hash}"]
    return await _run_check(request, arguments)


@router.post("/replay", responses=ERRORS, summary="Replay the journal through a fresh engine and compare everything")
async def regulator_replay(
    request: Request,
    _: Annotated[Principal, Depends(REGULATOR)],
    body: ReplayRequest | None = None,
) -> dict[str, Any]:
    arguments = ["replay"]
    if body is not None and body.to_seq is not None:
        arguments += ["--to-seq", str(body.to_seq)]
    return await _run_check(request, arguments)
