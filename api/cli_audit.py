"""`exchange verify` and `exchange replay`: the regulator's checks of the exchange's history, from the command line.

`exchange verify` recomputes the journal's hash chain and checks the ledger (trial balance, balances against legs, no
negative participant); it prints the chain head to publish and exits 1 if anything is wrong. `exchange replay`
re-runs the journal through a fresh engine and compares every event, trade and posting with what was stored; it
exits 1 at the first divergence. `exchange replay --book SYMBOL` prints an order book as it stood at a seq or a
time instead. Both read only committed data, so they can run beside a live server, and find the database as
`exchange serve` does: `DATABASE_URL`, else the embedded PostgreSQL. `--json` prints the report as one JSON
document (the format `POST /v1/regulator/verify` and `/replay` answer with).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from pydantic import ValidationError

from api.settings import Settings
from ledger.postgres import asyncpg_dsn, resolved_database

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROGRESS_MIN_RECORDS = 20_000  # below this a replay takes about a second: no progress bar


def _settings() -> Settings:
    # Not api.cli.load_settings: api.cli imports this module to register the commands.
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(code=2) from exc


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `work` on a small pool to the configured database (embedded server started and stopped around it)."""
    settings = _settings()

    async def run(url: str) -> T:
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    with resolved_database(settings.database_url, settings.embedded_pgdata) as url:
        try:
            return asyncio.run(run(url))
        except asyncpg.UndefinedTableError as exc:
            typer.echo(f"error: the database has no exchange tables ({exc}); run `exchange migrate` first", err=True)
            raise typer.Exit(code=2) from exc
        except (OSError, asyncpg.PostgresError) as exc:
            typer.echo(f"error: cannot read the database: {exc}", err=True)
            raise typer.Exit(code=2) from exc


def _print_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=False))


def _parse_head(text: str) -> tuple[int, bytes]:
    seq, _, digest = text.partition(":")
    try:
        parsed = int(seq), bytes.fromhex(digest)
    except ValueError:
        parsed = (0, b"")
    if parsed[0] <= 0 or len(parsed[1]) != 32:
        raise typer.BadParameter("expected SEQ:HASH, the hash as 64 hex digits (as `exchange verify` prints)")
    return parsed


def verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    expect_head: Annotated[
        str | None,
        typer.Option(help="A head published earlier, SEQ:HASH; fail unless the journal still holds it."),
    ] = None,
) -> None:
    """Verify the journal's hash chain and the ledger's balances; print the chain head. Exit 1 on any problem."""
    from ledger.verify import verify

    expected = _parse_head(expect_head) if expect_head is not None else None
    report = _with_pool(lambda pool: verify(pool, expected))
    if as_json:
        _print_json(report.as_json())
    else:
        if report.chain_break is None:
            typer.echo(f"journal: {report.records} records, hash chain intact")
        else:
            typer.echo(f"journal: BROKEN at seq {report.chain_break.seq}: {report.chain_break.problem}")
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        if report.ok:
            typer.echo("ledger: trial balance zero for every asset; balances equal their legs; none negative")
        typer.echo(f"chain head: seq {report.head_seq} hash {report.head_hash or '-'}")
        typer.echo("OK" if report.ok else "FAILED")
    raise typer.Exit(code=0 if report.ok else 1)


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A rich progress bar on stderr for long replays, as (callback, close)."""
    if not enabled:
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} records/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task: list[Any] = []
    started: list[float] = []

    def update(done: int, total: int) -> None:
        if total < _PROGRESS_MIN_RECORDS:
            return
        if not task:
            progress.start()
            task.append(progress.add_task("replay", total=total, rate="-"))
            started.append(time.perf_counter())
        elapsed = time.perf_counter() - started[0]
        rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
        progress.update(task[0], completed=done, rate=rate)

    def close() -> None:
        if task:
            progress.stop()

    return update, close


def _rfc3339_us(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an RFC 3339 time such as 2026-03-01T09:30:00.000000Z") from exc
    if moment.tzinfo is None:
        raise typer.BadParameter("give the time with its offset (Z for UTC)")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def replay_command(
    to_seq: Annotated[
        int | None, typer.Option(min=0, help="Replay up to this seq (default: the whole journal).")
    ] = None,
    book: Annotated[
        str | None, typer.Option(help="Print this instrument's order book (at --at-seq/--at-time) instead.")
    ] = None,
    at_seq: Annotated[int | None, typer.Option(min=1, help="With --book: the book after this seq.")] = None,
    at_time: Annotated[
        str | None, typer.Option(help="With --book: the book at this RFC 3339 time, e.g. 2026-03-01T09:30:00Z.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report (or the book) as JSON.")] = False,
) -> None:
    """Replay the journal through a fresh engine and compare every event, trade and posting. Exit 1 on divergence."""
    if at_seq is not None and at_time is not None:
        raise typer.BadParameter("give --at-seq or --at-time, not both")
    if book is None and (at_seq is not None or at_time is not None):
        raise typer.BadParameter("--at-seq and --at-time go with --book SYMBOL")
    if book is not None:
        seq = at_seq if at_seq is not None else to_seq
        _print_book(book, seq, None if at_time is None else _rfc3339_us(at_time), as_json)
        return
    from ledger.replay import replay

    update, close = _progress_bar(not as_json and sys.stderr.isatty())
    try:
        report = _with_pool(lambda pool: replay(pool, to_seq, update))
    finally:
        close()
    if as_json:
        _print_json(report.as_json())
    else:
        typer.echo(
            f"replayed {report.records} records to seq {report.to_seq} in {report.seconds:.2f} s "
            f"({report.records_per_second:,.0f} records/s); compared {report.events} events, {report.trades} trades, "
            f"{report.entries} ledger entries, {report.legs} legs"
        )
        if report.divergence is None:
            typer.echo("identical")
        else:
            d = report.divergence
            typer.echo(f"DIVERGENCE at seq {d.seq} in {d.table}: {d.message}")
            for difference in d.fields:
                typer.echo(f"  {difference.field}: expected {difference.expected!r}, stored {difference.stored!r}")
            if not d.fields:
                for row in d.expected:
                    typer.echo(f"  expected {row}")
                for row in d.stored:
                    typer.echo(f"  stored   {row}")
    raise typer.Exit(code=0 if report.identical else 1)


def book_json(snapshot: Any) -> dict[str, Any]:
    """An order book snapshot (`ledger.replay.BookSnapshot`) with prices and quantities as decimal strings."""
    from api.schemas import timestamp
    from api.units import ticks_to_price

    instrument = snapshot.instrument

    def order(o: Any) -> dict[str, Any]:
        return {
            "order_id": str(o.order_id),
            "account": o.account,
            "side": o.side,
            "type": o.type,
            "price": ticks_to_price(instrument, o.price),
            "quantity": str(o.quantity),
            "remaining_quantity": str(o.remaining),
            "priority_seq": o.priority_seq,
        }

    def levels(side: Any) -> list[dict[str, Any]]:
        return [
            {
                "price": ticks_to_price(instrument, level.price),
                "quantity": str(level.quantity),
                "order_count": level.order_count,
                "orders": [order(o) for o in level.orders],
            }
            for level in side
        ]

    return {
        "symbol": snapshot.symbol,
        "seq": snapshot.seq,
        "time": timestamp(snapshot.ts_us) if snapshot.seq else None,
        "trading_state": snapshot.state.value,
        "bids": levels(snapshot.bids),
        "asks": levels(snapshot.asks),
        "auction_market_orders": [order(o) for o in snapshot.auction_market_orders],
    }


def _print_book(symbol: str, seq: int | None, at_ts_us: int | None, as_json: bool) -> None:
    from ledger.recovery import JournalCorrupt
    from ledger.replay import UnknownInstrument, book_at

    try:
        snapshot = _with_pool(lambda pool: book_at(pool, symbol, seq=seq, at_ts_us=at_ts_us))
    except UnknownInstrument as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    except JournalCorrupt as exc:
        typer.echo(f"error: the journal does not chain: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    document = book_json(snapshot)
    if as_json:
        _print_json(document)
        return
    moment = document["time"] or "before any record"
    typer.echo(f"{symbol} after seq {document['seq']} ({moment}), {document['trading_state']}")
    typer.echo(f"{'side':<5} {'price':>14} {'quantity':>14} {'orders':>6}   queue (order id account remaining)")
    for name, side in (("ask", reversed(document["asks"])), ("bid", document["bids"])):
        for level in side:
            queue = ", ".join(f"{o['order_id']} {o['account']} {o['remaining_quantity']}" for o in level["orders"])
            typer.echo(f"{name:<5} {level['price']:>14} {level['quantity']:>14} {level['order_count']:>6}   {queue}")
    for o in document["auction_market_orders"]:
        waiting = f"{o['order_id']} {o['account']} {o['remaining_quantity']}"
        typer.echo(f"market {o['side']} order {waiting} (waiting for the auction)")


def register_audit_commands(app: typer.Typer) -> None:
    """Add `verify` and `replay` to the `exchange` command line."""
    app.command("verify")(verify_command)
    app.command("replay")(replay_command)
