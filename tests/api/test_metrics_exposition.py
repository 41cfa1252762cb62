"""`GET /metrics`: the Prometheus text format, counting committed market activity, sequencer health and HTTP traffic."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api.metrics import CONTENT_TYPE, Counter, Histogram
from api.sequencer import SequencerUnavailable
from api.settings import Settings
from exchange.commands import CancelOrder, Deposit, IssueSecurities, ListInstrument
from exchange.events import OrderAccepted
from exchange.orders import Side
from tests.exchange.factories import equity, limit
from tests.support import running_app

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, refusing any line that is not a comment or a well-formed sample."""
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        labels = frozenset((m["key"], m["value"]) for m in LABEL.finditer(match["labels"] or ""))
        samples[match["name"], labels] = float(match["value"])
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


# -- the exposition format ---------------------------------------------------------------------------------------


def test_label_values_are_escaped() -> None:
    counter = Counter("odd_total", "Odd labels.", ("reason",))
    counter.inc('say "hi"\\\n')
    assert counter.render()[-1] == 'odd_total{reason="say \\"hi\\"\\\\\\n"} 1'


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    histogram = Histogram("size", "Sizes.", (1.0, 5.0))
    for value in (1, 3, 3, 9):
        histogram.observe(value)
    assert histogram.render()[2:] == [
        'size_bucket{le="1.0"} 1',
        'size_bucket{le="5.0"} 3',
        'size_bucket{le="+Inf"} 4',
        "size_sum 16.0",
        "size_count 4",
    ]


def test_an_unlabelled_counter_is_exposed_at_zero_before_anything_happens() -> None:
    assert Counter("nothing_yet_total", "Nothing.").render()[-1] == "nothing_yet_total 0"


# -- what the exchange exposes -----------------------------------------------------------------------------------


async def test_metrics_answer_in_the_prometheus_text_format_without_a_key(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/metrics")
    assert (response.status_code, response.headers["content-type"]) == (200, CONTENT_TYPE)
    assert "# TYPE exchange_trades_total counter" in response.text.splitlines()


async def test_market_activity_is_counted_after_commit(api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
    submit = api_app.state.sequencer.submit
    await submit(ListInstrument(equity("ACME")), "ops")
    await submit(Deposit("buyer", "EUR", 10_000), "ops")
    await submit(IssueSecurities("seller", "ACME", 100), "ops")
    sell = await submit(limit("seller", Side.SELL, 10, 100), "seller")
    await submit(limit("buyer", Side.BUY, 4, 100), "buyer")  # trades 4 against the sell
    await submit(limit("buyer", Side.BUY, 1_000, 100), "buyer")  # needs 100 000 cents: refused
    resting = next(e for e in sell.events if isinstance(e, OrderAccepted)).order_id
    await submit(CancelOrder("seller", resting), "seller")

    samples = await scrape(api_client)
    assert sample(samples, "exchange_orders_accepted_total") == 2
    assert sample(samples, "exchange_trades_total") == 1
    assert sample(samples, "exchange_rejects_total", reason="INSUFFICIENT_FUNDS") == 1
    assert sample(samples, "exchange_cancels_total", reason="user") == 1
    assert sample(samples, "exchange_commands_total", type="PlaceOrder", outcome="committed") == 3
    assert sample(samples, "exchange_commands_total", type="CancelOrder", outcome="committed") == 1
    assert sample(samples, "exchange_last_seq") == 7


async def test_every_committed_batch_records_its_size_and_commit_time(
    api_app: FastAPI, api_client: httpx.AsyncClient
) -> None:
    for amount in (1, 2, 3):
        await api_app.state.sequencer.submit(Deposit("alice", "EUR", amount), "ops")
    samples = await scrape(api_client)
    batches = sample(samples, "exchange_committed_batches_total")
    assert batches >= 1
    assert sample(samples, "exchange_batch_size_count") == batches
    assert sample(samples, "exchange_batch_size_sum") == 3  # commands, however they were batched
    assert sample(samples, "exchange_commit_seconds_count") == batches
    assert sample(samples, "exchange_commit_seconds_bucket", le="+Inf") == batches


async def test_sequencer_health_is_exposed(api_client: httpx.AsyncClient) -> None:
    samples = await scrape(api_client)
    assert sample(samples, "exchange_sequencer_state", state="running") == 1
    assert sample(samples, "exchange_sequencer_state", state="recovering") == 0
    assert sample(samples, "exchange_inbox_depth") == 0
    assert sample(samples, "exchange_inbox_capacity") == 10_000
    assert sample(samples, "exchange_websocket_clients") == 0


async def test_http_requests_are_counted_by_route_template_and_status(api_client: httpx.AsyncClient) -> None:
    await api_client.get("/healthz")
    await api_client.get("/v1/participants/someone")  # no key: 401
    await api_client.get("/no/such/path/1")
    await api_client.get("/no/such/path/2")
    samples = await scrape(api_client)
    assert sample(samples, "exchange_http_requests_total", method="GET", route="/healthz", status="200") == 1
    participant = {"method": "GET", "route": "/v1/participants/{participant_id}", "status": "401"}
    assert sample(samples, "exchange_http_requests_total", **participant) == 1
    assert sample(samples, "exchange_http_requests_total", method="GET", route="<unmatched>", status="404") == 2
    assert sample(samples, "exchange_http_request_duration_seconds_count", method="GET", route="/healthz") == 1


@pytest.fixture
async def bare_app(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with no components running: no sequencer, no market data hub."""
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var")
    async with running_app(settings, components=[]) as running:
        yield running


async def test_metrics_answer_before_the_sequencer_runs(bare_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = bare_app
    samples = await scrape(client)
    assert {state: sample(samples, "exchange_sequencer_state", state=state) for state in ("starting", "running")} == {
        "starting": 0,
        "running": 0,
    }
    assert ("exchange_inbox_depth", frozenset()) not in samples


async def test_websocket_clients_are_read_from_the_market_data_hub(
    bare_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = bare_app
    app.state.marketdata = SimpleNamespace(ws_clients=3)
    assert sample(await scrape(client), "exchange_websocket_clients") == 3


async def test_refused_commands_are_counted_by_outcome(api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
    sequencer = api_app.state.sequencer
    await sequencer.stop()
    with pytest.raises(SequencerUnavailable):
        await sequencer.submit(Deposit("alice", "EUR", 1), "ops")
    samples = await scrape(api_client)
    assert sample(samples, "exchange_commands_total", type="Deposit", outcome="unavailable") == 1
    assert sample(samples, "exchange_sequencer_state", state="stopped") == 1
