"""Benchmark: HTTP order entry on the real server, committed to PostgreSQL, against a raw ASGI app (issue 6).

Claim: `POST /v1/orders` answered after commit reaches at least 0.35 of the orders/s of a raw ASGI app served by the
same stack (uvicorn with the same options, so uvloop and httptools when installed) that reads the same request,
`json.loads` its body and answers a fixed JSON reply of about the same size with the same headers. WebSocket order
entry is not offered by the exchange, so it is not measured.

How: a scratch database `bench_api_<pid>` (on DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres) is
migrated; the real exchange starts as `python -m api.cli serve` on a free port (EXCHANGE_SCHEDULE=off, rate limits
out of the way, log level warning); participants and keys are written straight to the database
(`api.auth.create_participant`/`create_key`), then an operator lists one equity and funds every trader with cash and
shares through the API. A SEPARATE load process (its own interpreter, uvloop when installed, a minimal keep-alive
HTTP/1.1 client over asyncio protocols, so that the generator costs as little CPU as possible) holds N connections
(64 by default), each one trader sending one order at a time: about 70% limit orders that rest away from the touch
and 30% IOC orders priced through the book (they trade against resting orders). The raw app runs beside it, driven by
the same load process with the very same requests and concurrency. Measured windows alternate between the two
servers (4 per server, 20 s in all per server; `--quick`: 2, 5 s), each after a short warm-up, so that both meet the
same background load; the answers that arrive within the windows are counted, with the latency of each.
ratio = exchange orders/s / raw requests/s.

Profile: while a further load run goes on against the exchange (not during the measured windows), py-spy samples
the server process when it is installed (a dev tool: `pip install py-spy`); otherwise the server is started through
this module with cProfile switched on for that run only (`--profiler cprofile`). The output says where the server's
CPU goes: by task (request tasks, the sequencer, the event loop...) and by stage of an order's path within each, in
shares and in microseconds per order; then by module and function (benchmarks/_api_profile.py).

CPU: the machine may have few cores; the load generator, the server, PostgreSQL (and other work on the machine) share
them. The run prints how much CPU each used during the measured windows, so the figures can be read for what they are.

Run: ``python -m benchmarks.api [--quick]`` (under 3 minutes; --quick under 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._api_load import LoadResult, LoadSpec, drive, http_post, merged
from benchmarks._api_profile import (
    Breakdown,
    breakdown_from_cprofile,
    breakdown_from_stacks,
    find_py_spy,
    parse_py_spy_raw,
    print_breakdown,
)
from benchmarks._report import json_line, machine, percentile, table, verdict

# This module is also imported by the raw server and the load process: the exchange's own modules, httpx and asyncpg
# are imported where they are used, so that those processes stay light.

BENCHMARK = "api"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_RATIO = 0.35
SEED = 20251206

SYMBOL = "IMPACT"
CURRENCY = "EUR"
TICK = "0.01"
REFERENCE_TICKS = 1_000  # 10.00 EUR
RESTING_TICKS_AWAY = 50  # resting orders sit 1..50 ticks from the reference, on their own side
CROSSING_SHARE = 0.30
MAX_QUANTITY = 10
CASH_PER_TRADER = "100000000.00"
SHARES_PER_TRADER = "1000000"
REQUESTS_PER_CONNECTION = 400  # each connection cycles through its own pre-encoded orders

# The raw app's reply: an order as the exchange answers it (same keys, about the same size).
RAW_REPLY = json.dumps(
    {
        "id": "123456",
        "client_order_id": None,
        "symbol": SYMBOL,
        "side": "buy",
        "type": "limit",
        "price": "9.95",
        "quantity": "5",
        "filled_quantity": "0",
        "remaining_quantity": "5",
        "average_price": None,
        "status": "new",
        "cancel_reason": None,
        "time_in_force": "GTC",
        "expire_at": None,
        "post_only": False,
        "self_trade_prevention": "cancel_newest",
        "created_at": "2025-12-06T10:00:00.000000Z",
        "updated_at": "2025-12-06T10:00:00.000000Z",
        "seq": 123456,
        "fills": [],
        "account": "trader-000",
    },
    separators=(",", ":"),
).encode()
RAW_HEADERS = [
    (b"content-length", str(len(RAW_REPLY)).encode()),
    (b"content-type", b"application/json"),
    (b"x-request-id", b"0" * 32),  # the exchange answers with a request id (32 hex digits) every time
]


# ---------------------------------------------------------------------------------------------------- the raw app


async def raw_app(scope: dict, receive: Callable, send: Callable) -> None:
    """The baseline: read the body, parse it as JSON, answer a fixed JSON document. Nothing else."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if body:
        json.loads(body)
    await send({"type": "http.response.start", "status": 201, "headers": RAW_HEADERS})
    await send({"type": "http.response.body", "body": RAW_REPLY})


def serve_raw(host: str, port: int) -> None:
    """uvicorn with the options `exchange serve` uses (loop and HTTP parser left on auto, as there)."""
    import uvicorn

    from api.logging import configure_logging

    configure_logging("warning")
    uvicorn.run(raw_app, host=host, port=port, log_config=None, access_log=False, lifespan="on", server_header=False)


def serve_exchange_profiled(stats_path: str, host: str, port: int) -> None:
    """`exchange serve`, with cProfile switched on by SIGUSR1 and off (stats written to `stats_path`) by SIGUSR2.

    Only for when py-spy is not there: the profiler runs during the profiling load only, never the measured one."""
    profile = cProfile.Profile()

    def start(signum: int, frame: object) -> None:
        profile.enable()

    def stop(signum: int, frame: object) -> None:
        profile.disable()
        profile.dump_stats(stats_path)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from api.cli import serve

    serve(host=host, port=port)


# ---------------------------------------------------------------------------------------------------- the orders


def order_mix(seed: int, count: int) -> list[dict[str, str]]:
    """`count` order bodies: ~70% GTC limits resting 1..50 ticks off the reference on their own side, ~30% IOC
    limits priced 50 ticks through it (they trade with whatever rests). Prices stay well inside the 20% band."""
    rng = random.Random(seed)
    orders = []
    for _ in range(count):
        side = rng.choice(("buy", "sell"))
        sign = -1 if side == "buy" else 1
        if rng.random() < CROSSING_SHARE:
            ticks, tif = REFERENCE_TICKS - sign * RESTING_TICKS_AWAY, "IOC"
        else:
            ticks, tif = REFERENCE_TICKS + sign * rng.randint(1, RESTING_TICKS_AWAY), "GTC"
        orders.append(
            {
                "symbol": SYMBOL,
                "side": side,
                "type": "limit",
                "price": f"{ticks // 100}.{ticks % 100:02d}",
                "quantity": str(rng.randint(1, MAX_QUANTITY)),
                "time_in_force": tif,
            }
        )
    return orders


def connection_requests(host: str, port: int, tokens: Sequence[str], connections: int, seed: int) -> list[list[bytes]]:
    """For each connection, the requests it cycles through; connection i trades as trader i mod len(tokens)."""
    return [
        [
            http_post(host, port, "/v1/orders", tokens[i % len(tokens)], json.dumps(order).encode())
            for order in order_mix(seed + i, REQUESTS_PER_CONNECTION)
        ]
        for i in range(connections)
    ]


# ---------------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process (its output in a log file), started and waited for until `ready()` says yes."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def start(self, ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout_s:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def answers_readyz(port: int) -> Callable[[], bool]:
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def accepts_connections(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            return False

    return ready


# ---------------------------------------------------------------------------------------------------- the market


@dataclass(frozen=True, slots=True)
class Market:
    operator_token: str
    trader_tokens: list[str]


async def make_participants(database_url: str, traders: int) -> Market:
    """An operator and `traders` professional investors, each with one key, written straight to the database."""
    import asyncpg

    from api.auth import InvestorCategory, Role, create_key, create_participant
    from ledger.postgres import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await create_participant(conn, "bench-operator", "Benchmark operator", Role.OPERATOR)
        _, operator = await create_key(conn, "bench-operator", "benchmark")
        tokens = []
        for n in range(traders):
            trader = f"trader-{n:03d}"
            await create_participant(conn, trader, f"Trader {n}", Role.INVESTOR, InvestorCategory.PROFESSIONAL)
            tokens.append((await create_key(conn, trader, "benchmark"))[1])
    finally:
        await conn.close()
    return Market(operator, tokens)


async def open_market(base_url: str, market: Market) -> None:
    """List the equity (open for trading, no fees, 20% band) and give every trader cash and shares."""
    import httpx

    headers = {"Authorization": f"Bearer {market.operator_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:
        listing = {
            "symbol": SYMBOL,
            "kind": "equity",
            "currency": CURRENCY,
            "tick_size": TICK,
            "lot_size": 1,
            "reference_price": f"{REFERENCE_TICKS // 100}.{REFERENCE_TICKS % 100:02d}",
            "price_band_percent": "20",
            "trading_state": "open",
        }
        answers = [await client.post("/v1/instruments", json=listing)]
        for n in range(len(market.trader_tokens)):
            trader = f"trader-{n:03d}"
            deposit = {"account": trader, "currency": CURRENCY, "amount": CASH_PER_TRADER}
            answers.append(await client.post("/v1/deposits", json=deposit))
            issuance = {"account": trader, "quantity": SHARES_PER_TRADER}
            answers.append(await client.post(f"/v1/instruments/{SYMBOL}/issuance", json=issuance))
        for answer in answers:
            if answer.status_code != 201:
                raise RuntimeError(f"setting up the market failed: {answer.status_code} {answer.text}")


def scrape(base_url: str) -> dict[str, float]:
    """The exchange's /metrics, summed per series name (labels dropped)."""
    import httpx

    totals: dict[str, float] = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=5.0).text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


# ---------------------------------------------------------------------------------------------------- the run


def server_url() -> str:
    return os.environ.get("DATABASE_URL", "").strip() or DEFAULT_SERVER


@contextlib.asynccontextmanager
async def scratch_database(server: str, name: str) -> AsyncIterator[str]:
    from ledger.migrate import upgrade_to_head_async
    from ledger.postgres import create_database, drop_database

    await drop_database(server, name)
    url = await create_database(server, name)
    try:
        await upgrade_to_head_async(url)
        yield url
    finally:
        await drop_database(server, name)


async def synchronous_commit(database_url: str) -> str:
    import asyncpg

    from ledger.postgres import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        commit, fsync = await conn.fetchval("SHOW synchronous_commit"), await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    return f"synchronous_commit={commit}, fsync={fsync} (server settings; the exchange sets nothing else)"


def describe(label: str, result: LoadResult) -> list[tuple[str, str]]:
    p50, p99 = (1000 * percentile(result.latencies, q) for q in (50, 99))
    others = {status: n for status, n in sorted(result.statuses.items()) if not 200 <= status < 300}
    figures = (
        f"{result.rate:>9,.0f} /s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   "
        f"({result.ok:,} answers in {result.seconds:g} s)"
    )
    rows = [(label, figures)]
    if others or result.failures:
        rows.append(("  not 2xx", f"{others} {'; '.join(result.failures[:3])}"))
    return rows


def cpu_row(label: str, result: LoadResult) -> tuple[str, str]:
    """CPU each party used in the window, in cores; "others" is whatever else ran on the machine meanwhile."""
    cpu, seconds = result.cpu, result.seconds
    cores = os.cpu_count() or 1
    busy = cpu.machine_busy * cores / cpu.machine_total if cpu.machine_total else float("nan")
    others = busy - (cpu.server + cpu.postgres + cpu.loader) / seconds
    return (
        f"  CPU in cores, {label}",
        f"server {cpu.server / seconds:.2f}, its PostgreSQL backends {cpu.postgres / seconds:.2f}, load generator "
        f"{cpu.loader / seconds:.2f}, other processes {max(0.0, others):.2f}  (machine: {busy:.2f} of {cores} busy)",
    )


@dataclass(slots=True)
class SequencerFigures:
    """The sequencer's counters (from /metrics), summed over the exchange's measured windows."""

    commands: float = 0.0
    batches: float = 0.0
    trades: float = 0.0
    commit_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, before: dict[str, float], after: dict[str, float], wall_seconds: float) -> None:
        def grown(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        self.commands += grown("exchange_batch_size_sum")
        self.batches += grown("exchange_batch_size_count")
        self.trades += grown("exchange_trades_total")
        self.commit_seconds += grown("exchange_commit_seconds_sum")
        self.wall_seconds += wall_seconds


async def run(args: argparse.Namespace) -> None:
    from ledger.postgres import database_url_for

    seconds = args.seconds or (5.0 if args.quick else 20.0)
    rounds = args.rounds or (2 if args.quick else 4)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    profile_seconds = args.profile_seconds if args.profile_seconds is not None else (2.0 if args.quick else 8.0)
    connections = args.connections
    py_spy = find_py_spy()
    profiler = args.profiler if args.profiler != "auto" else ("py-spy" if py_spy else "cprofile")
    if profile_seconds <= 0:
        profiler = "none"
    host = "127.0.0.1"
    server = server_url()
    name = f"bench_api_{os.getpid()}"
    print(
        f"api benchmark: {connections} connections, {seconds:g} s per server in {rounds} alternating windows "
        f"(each after a warm-up), ~{1 - CROSSING_SHARE:.0%} resting / {CROSSING_SHARE:.0%} crossing limit orders; "
        f"{machine()}"
    )
    if (os.cpu_count() or 1) <= 2:
        print(
            f"  NOTE: {os.cpu_count()} CPU(s): the load generator, the server and PostgreSQL (and anything else "
            "running) "
            "share them, so both figures are lower than with the load coming from another machine; the windows "
            "alternate so that both servers meet the same background load, and the CPU rows say who used what"
        )
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    breakdown: Breakdown | None = None
    profile_how = ""
    sequencer = SequencerFigures()
    exchange_windows: list[LoadResult] = []
    raw_windows: list[LoadResult] = []
    try:
        async with scratch_database(server, name) as url:
            durability = await synchronous_commit(url)
            market = await make_participants(url, args.traders or connections)
            port, raw_port = free_port(), free_port()
            env = {
                **os.environ,
                "DATABASE_URL": database_url_for(server, name),
                "EXCHANGE_DATA_DIR": str(workdir / "var"),
                "EXCHANGE_SCHEDULE": "off",
                "EXCHANGE_RATE_LIMIT_PER_SECOND": "1000000",
                "EXCHANGE_RATE_LIMIT_BURST": "1000000",
                "EXCHANGE_LOG_LEVEL": "warning",
            }
            stats_path = str(workdir / "server.pstats")
            if profiler == "cprofile":
                argv = [sys.executable, "-m", "benchmarks.api", "--serve-exchange-profiled", stats_path]
                argv += ["--port", str(port)]
            else:
                argv = [sys.executable, "-m", "api.cli", "serve", "--host", host, "--port", str(port)]
            exchange = Server("exchange", argv, env, port, workdir)
            raw_argv = [sys.executable, "-m", "benchmarks.api", "--serve-raw", "--port", str(raw_port)]
            raw = Server("raw-asgi", raw_argv, dict(os.environ), raw_port, workdir)
            base_url = f"http://{host}:{port}"
            try:
                exchange.start(answers_readyz(port))
                raw.start(accepts_connections(raw_port))
                await open_market(base_url, market)
                requests = connection_requests(host, port, market.trader_tokens, connections, SEED)
                raw_requests = connection_requests(host, raw_port, market.trader_tokens, connections, SEED)
                window = seconds / rounds
                for n in range(rounds):
                    first_warmup = warmup if n == 0 else min(warmup, 0.5)
                    before, started = scrape(base_url), time.perf_counter()
                    spec = LoadSpec(host, port, requests, window, first_warmup, exchange.pid, name)
                    exchange_windows.append(await loop.run_in_executor(pool, drive, spec))
                    sequencer.add(before, scrape(base_url), time.perf_counter() - started)
                    spec = LoadSpec(host, raw_port, raw_requests, window, first_warmup, raw.pid, name)
                    raw_windows.append(await loop.run_in_executor(pool, drive, spec))
                if profiler != "none":
                    profile_spec = LoadSpec(host, port, requests, profile_seconds, min(warmup, 0.5), exchange.pid, name)
                    breakdown, profile_how = await profile_exchange(
                        loop, pool, profile_spec, profiler, py_spy, exchange, stats_path, workdir, args.profile_output
                    )
            finally:
                exchange.stop()
                raw.stop()
    finally:
        pool.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    exchange_result, raw_result = merged(exchange_windows), merged(raw_windows)
    ratio = exchange_result.rate / raw_result.rate if raw_result.rate else 0.0
    exchange_us = 1e6 * exchange_result.cpu.server / max(1, exchange_result.ok)
    raw_us = 1e6 * raw_result.cpu.server / max(1, raw_result.ok)
    results = describe("HTTP order entry (exchange, ack after commit)", exchange_result)
    results.append(("  windows", "  ".join(f"{r.rate:,.0f}" for r in exchange_windows) + " orders/s"))
    batches = max(1.0, sequencer.batches)
    results.append((
        "  sequencer (warm-ups included)",
        f"{sequencer.commands:,.0f} commands in {sequencer.batches:,.0f} batches "
        f"(mean {sequencer.commands / batches:,.1f}), "
        f"{sequencer.trades:,.0f} trades; write + COMMIT {1000 * sequencer.commit_seconds / batches:.2f} ms per batch, "
        f"{sequencer.commit_seconds / max(1e-9, sequencer.wall_seconds):.0%} of the time",
    ))
    results.append(("  durability", durability))
    results.append(cpu_row("exchange windows", exchange_result))
    results.extend(describe("raw ASGI baseline (same stack, json.loads, fixed reply)", raw_result))
    results.append(("  windows", "  ".join(f"{r.rate:,.0f}" for r in raw_windows) + " requests/s"))
    results.append(cpu_row("raw windows", raw_result))
    results.append((
        "server CPU per answer",
        f"exchange {exchange_us:,.0f} us, raw {raw_us:,.0f} us: on a core of its own the exchange could answer at "
        f"most {1e6 / exchange_us:,.0f} orders/s, the raw app {1e6 / raw_us:,.0f}/s; so while both are CPU-bound the "
        f"ratio cannot exceed {raw_us / exchange_us:.3f}",
    ))
    results.append(("WebSocket order entry", "not offered by the exchange: not measured"))
    results.append(("ratio exchange / raw", f"{ratio:.3f}"))
    table("results", results)
    if breakdown is not None:
        print_breakdown(breakdown, profile_how, exchange_us)
    print("targets")
    verdict(
        f"HTTP order entry >= {TARGET_RATIO} of the raw ASGI app",
        ratio >= TARGET_RATIO,
        f"{exchange_result.rate:,.0f} / {raw_result.rate:,.0f} orders/s = {ratio:.3f}",
    )
    json_line(BENCHMARK, "http_orders_per_s", exchange_result.rate, "orders/s", raw_result.rate, ratio)


async def profile_exchange(
    loop: asyncio.AbstractEventLoop,
    pool: concurrent.futures.Executor,
    spec: LoadSpec,
    profiler: str,
    py_spy: str | None,
    exchange: Server,
    stats_path: str,
    workdir: Path,
    keep: str | None,
) -> tuple[Breakdown | None, str]:
    """Profile the exchange server during one more load run (after its warm-up); (breakdown, how it was made)."""
    load = loop.run_in_executor(pool, drive, spec)
    await asyncio.sleep(spec.warmup + 0.5)  # the load process starts, connects and warms up first
    if profiler == "py-spy":
        assert py_spy is not None
        raw_path = workdir / "py-spy.txt"
        sampled = max(1, int(spec.seconds) - 1)  # whole seconds, within the load's window
        record = await asyncio.create_subprocess_exec(
            py_spy, "record", "--pid", str(exchange.pid), "--duration", str(sampled),
            "--rate", "250", "--format", "raw", "--full-filenames", "--output", str(raw_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await record.communicate()
        await load
        if record.returncode != 0 or not raw_path.exists():
            print(f"  py-spy could not profile the server: {output.decode(errors='replace')[-500:]}")
            return None, ""
        if keep is not None:
            shutil.copyfile(raw_path, keep)
        stacks = parse_py_spy_raw(raw_path.read_text())
        how = f"py-spy sampling at 250 Hz for {sampled} s under the same load, active samples only"
        return breakdown_from_stacks(stacks), how
    os.kill(exchange.pid, signal.SIGUSR1)
    await asyncio.sleep(max(0.5, spec.seconds - 1))
    os.kill(exchange.pid, signal.SIGUSR2)
    await load
    for _ in range(50):
        if Path(stats_path).exists():
            if keep is not None:
                shutil.copyfile(stats_path, keep)
            how = f"cProfile in the server for {max(0.5, spec.seconds - 1):g} s under the same load"
            return breakdown_from_cprofile(stats_path), how
        await asyncio.sleep(0.1)
    print("  cProfile wrote no statistics")
    return None, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 s per server in 2 windows, 2 s profile (under 30 s in all)"
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per server, all windows (default 20; quick 5)")
    parser.add_argument("--warmup", type=float, help="load before each window, not counted (default 2; quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating windows per server (default 4; quick 2)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections, one order in flight each")
    parser.add_argument("--traders", type=int, help="funded traders (default: one per connection)")
    parser.add_argument(
        "--profile-seconds", type=float, help="length of the profiled run (default 8; quick 2; 0: none)"
    )
    parser.add_argument(
        "--profiler", choices=("auto", "py-spy", "cprofile", "none"), default="auto",
        help="auto: py-spy if installed, else cProfile inside the server",
    )  # fmt: skip
    parser.add_argument(
        "--profile-output", metavar="PATH", help="keep the profile: py-spy raw stacks or cProfile statistics"
    )
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-exchange-profiled", metavar="STATS", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_raw:
        serve_raw("127.0.0.1", args.port)
    elif args.serve_exchange_profiled:
        serve_exchange_profiled(args.serve_exchange_profiled, "127.0.0.1", args.port)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
