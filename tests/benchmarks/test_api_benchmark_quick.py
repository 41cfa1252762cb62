"""The API benchmark (benchmarks/api.py): its order mix, its raw baseline app, its load client, its reading of
profiles, and a tiny end-to-end run against a real server that ends with the one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchmarks._api_load import LoadSpec, http_post, run_load
from benchmarks._api_profile import EVENT_LOOP, PARTS, breakdown_from_stacks, parse_py_spy_raw
from benchmarks.api import CROSSING_SHARE, RAW_REPLY, REFERENCE_TICKS, RESTING_TICKS_AWAY, order_mix, raw_app

ROOT = Path(__file__).resolve().parents[2]
JSON_KEYS = {"benchmark", "metric", "value", "unit", "baseline", "ratio"}


def ticks(price: str) -> int:
    units, cents = price.split(".")
    return int(units) * 100 + int(cents)


def test_the_order_mix_rests_seven_orders_in_ten_and_crosses_three():
    orders = order_mix(seed=1, count=5_000)
    crossing = [o for o in orders if o["time_in_force"] == "IOC"]
    assert abs(len(crossing) / len(orders) - CROSSING_SHARE) < 0.03
    assert all(o["time_in_force"] in ("IOC", "GTC") and o["type"] == "limit" for o in orders)


def test_resting_orders_sit_on_their_own_side_of_the_reference_and_crossing_ones_go_through_it():
    for order in order_mix(seed=2, count=2_000):
        away = ticks(order["price"]) - REFERENCE_TICKS
        toward_the_other_side = away if order["side"] == "buy" else -away
        if order["time_in_force"] == "GTC":
            assert -RESTING_TICKS_AWAY <= toward_the_other_side <= -1
        else:
            assert toward_the_other_side == RESTING_TICKS_AWAY


def test_the_same_seed_gives_the_same_orders():
    assert order_mix(seed=3, count=300) == order_mix(seed=3, count=300)


async def test_the_raw_app_parses_the_body_and_answers_the_fixed_order():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=raw_app), base_url="http://raw.test") as client:
        answer = await client.post("/v1/orders", json=order_mix(seed=4, count=1)[0])
    assert answer.status_code == 201
    assert answer.content == RAW_REPLY
    assert answer.headers["content-type"] == "application/json"


async def test_the_raw_app_really_parses_json():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=raw_app), base_url="http://raw.test") as client:
        with pytest.raises(json.JSONDecodeError):
            await client.post("/v1/orders", content=b"{not json")


async def test_the_load_client_counts_answers_split_across_packets_by_status_within_its_window():
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            n += 1
            status, body = (b"429 Too Many Requests", b'{"e":1}') if n % 4 == 0 else (b"201 Created", b'{"ok":true}')
            reply = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            writer.write(reply[:20])  # the answer arrives in two pieces
            await writer.drain()
            await asyncio.sleep(0)
            writer.write(reply[20:])
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    requests = [[http_post("127.0.0.1", port, "/v1/orders", "t", b'{"a":1}')] for _ in range(3)]
    async with server:
        result = await run_load(LoadSpec("127.0.0.1", port, requests, 0.5, 0.1, os.getpid(), "no_such_database"))
    assert result.ok == result.statuses[201] > 0
    assert result.statuses[429] > 0
    assert len(result.latencies) == result.ok and result.latencies == sorted(result.latencies)
    assert result.failures == []


def stack(count: int, *frames: str) -> str:
    """One line of py-spy's raw output: `function@path` frames, root first, then the sample count."""
    return ";".join(f"{function} ({path}:1)" for function, path in (f.split("@") for f in frames)) + f" {count}"


ROOT_FRAMES = ("_run_module_as_main@<frozen runpy>", "Runner.run@/usr/lib/python3.11/asyncio/runners.py")
SEQUENCER = (*ROOT_FRAMES, "Sequencer._run@/w/api/sequencer.py", "Sequencer._process@/w/api/sequencer.py")
REQUEST = (*ROOT_FRAMES, "RequestResponseCycle.run_asgi@/v/site-packages/uvicorn/protocols/http/httptools_impl.py")
PY_SPY_RAW = "\n".join(
    [
        stack(10, *ROOT_FRAMES),
        stack(20, *SEQUENCER, "Engine.apply@/w/exchange/engine.py"),
        stack(30, *SEQUENCER, "BatchStore.write@/w/ledger/batch.py", "Connection.copy@/v/site-packages/asyncpg/c.py"),
        stack(25, *REQUEST, "place_order@/w/api/routes/orders.py", "order_view@/w/api/routes/orders.py"),
        stack(15, *REQUEST, "AccessLogMiddleware.__call__@/w/api/logging.py"),
        stack(40, "Thread.run@/usr/lib/python3.11/threading.py", "_worker@/lib/concurrent/futures/thread.py"),
    ]
)


def test_py_spy_samples_split_into_tasks_that_add_up_leaving_out_idle_worker_threads():
    breakdown = breakdown_from_stacks(parse_py_spy_raw(PY_SPY_RAW))
    parts = dict(breakdown.parts)
    sequencer, requests = PARTS[0].label, PARTS[1].label
    assert breakdown.total == 100
    assert parts == {sequencer: 50, requests: 40, EVENT_LOOP: 10}


def test_within_a_task_each_sample_counts_for_its_first_stage_or_the_rest():
    breakdown = breakdown_from_stacks(parse_py_spy_raw(PY_SPY_RAW))
    sequencer, requests = breakdown.stages[PARTS[0].label], dict(breakdown.stages[PARTS[1].label])
    assert sequencer == [("Engine.apply (matching, risk)", 20), ("BatchStore.write (rows -> asyncpg -> PostgreSQL)", 30)]
    assert requests["order_view: projection fold, timestamps, OrderView"] == 25
    assert requests[PARTS[1].rest] == 15


def test_the_benchmark_runs_the_exchange_and_the_raw_app_and_ends_with_its_json_line(database_server_url):
    env = {**os.environ, "DATABASE_URL": database_server_url}
    finished = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.api", "--quick", "--seconds", "1", "--rounds", "1", "--warmup", "0.5",
            "--connections", "8", "--profile-seconds", "1.5", "--profiler", "cprofile",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-3000:]
    assert "where the server's time goes (cProfile" in finished.stdout
    last = json.loads(finished.stdout.strip().splitlines()[-1])
    assert set(last) == JSON_KEYS
    assert (last["benchmark"], last["metric"], last["unit"]) == ("api", "http_orders_per_s", "orders/s")
    assert last["value"] > 0 and last["baseline"] > 0
    assert abs(last["ratio"] - last["value"] / last["baseline"]) < 1e-3
