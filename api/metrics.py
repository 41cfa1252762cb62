"""Operational metrics in the Prometheus text format (version 0.0.4) at `GET /metrics`.

What is measured, and where it comes from:
- market activity (orders accepted, trades, rejects by reason, cancels by reason), batch sizes and commit latency:
  a sequencer listener, called after every commit (so only committed facts are counted);
- commands by type and outcome (committed, backpressure, unavailable, commit_failed): the listener only sees events,
  so the metrics component wraps this process's `sequencer.submit` to see each command and how it ended;
- inbox depth, sequencer state, last sequence number, WebSocket clients: read when scraped;
- HTTP requests by method, route template and status, and their duration: `api.observe.ObserveMiddleware`. Routes are labelled
  by their template (`/v1/participants/{participant_id}`), never the raw path, to keep the label set bounded.

`/metrics` needs no API key, as Prometheus scrapers expect; it reveals volumes but no participant. Do NOT expose it
publicly: bind it to an internal network or block `/metrics` at the reverse proxy.

The format is written here by hand (about a hundred lines) rather than with `prometheus_client`, to keep the
dependency set small; it is the documented text exposition format: HELP and TYPE lines, `name{label="value"} value`,
histograms as cumulative `_bucket{le=...}` series plus `_sum` and `_count`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from api.sequencer import Backpressure, CommitFailed, Outcome, Sequencer, SequencerState, SequencerUnavailable
from exchange.commands import Command
from exchange.events import CommandRejected, Event, OrderAccepted, OrderCancelled, Trade

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "<unmatched>"  # one label for every path no route knows (404s), however many there are

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000)
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

Labels = tuple[str, ...]


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, labelnames: Sequence[str], labels: Sequence[str], value: float) -> str:
    if not labelnames:
        return f"{name} {_number(value)}"
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(labelnames, labels, strict=True))
    return f"{name}{{{pairs}}} {_number(value)}"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


@dataclass(slots=True)
class Counter:
    name: str
    help: str
    labelnames: Labels = ()
    values: dict[Labels, int] = field(default_factory=dict)

    def inc(self, *labels: str, amount: int = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def value(self, *labels: str) -> int:
        return self.values.get(labels, 0)

    def render(self) -> list[str]:
        lines = _header(self.name, "counter", self.help)
        if not self.labelnames and not self.values:
            self.values[()] = 0  # an unlabelled counter exists from the start, at 0
        for labels in sorted(self.values):
            lines.append(_series(self.name, self.labelnames, labels, self.values[labels]))
        return lines


@dataclass(slots=True)
class _HistogramSeries:
    bucket_counts: list[int]
    sum: float = 0.0
    count: int = 0


@dataclass(slots=True)
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    labelnames: Labels = ()
    series: dict[Labels, _HistogramSeries] = field(default_factory=dict)

    def observe(self, value: float, *labels: str) -> None:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = _HistogramSeries([0] * len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                found.bucket_counts[i] += 1
                break
        found.sum += value
        found.count += 1

    def count(self, *labels: str) -> int:
        found = self.series.get(labels)
        return 0 if found is None else found.count

    def render(self) -> list[str]:
        lines = _header(self.name, "histogram", self.help)
        if not self.labelnames and not self.series:
            self.series[()] = _HistogramSeries([0] * len(self.buckets))
        bucket_names = (*self.labelnames, "le")
        for labels in sorted(self.series):
            found = self.series[labels]
            cumulative = 0
            for bound, in_bucket in zip(self.buckets, found.bucket_counts, strict=True):
                cumulative += in_bucket
                lines.append(_series(f"{self.name}_bucket", bucket_names, (*labels, _number(bound)), cumulative))
            lines.append(_series(f"{self.name}_bucket", bucket_names, (*labels, "+Inf"), found.count))
            lines.append(_series(f"{self.name}_sum", self.labelnames, labels, found.sum))
            lines.append(_series(f"{self.name}_count", self.labelnames, labels, found.count))
        return lines


def _gauge(name: str, help_text: str, samples: Iterable[tuple[Labels, float]], labelnames: Labels = ()) -> list[str]:
    lines = _header(name, "gauge", help_text)
    lines.extend(_series(name, labelnames, labels, value) for labels, value in samples)
    return lines


class ExchangeMetrics:
    """Counters fed by the sequencer and the HTTP middleware; gauges read from the app when scraped."""

    def __init__(self) -> None:
        self.orders_accepted = Counter("exchange_orders_accepted_total", "Orders accepted by the engine (committed).")
        self.trades = Counter("exchange_trades_total", "Trades (fills between two orders) committed.")
        self.rejects = Counter("exchange_rejects_total", "Commands rejected by the engine, by reason.", ("reason",))
        self.cancels = Counter(
            "exchange_cancels_total", "Order quantity taken off without trading, by reason.", ("reason",)
        )
        self.commands = Counter(
            "exchange_commands_total",
            "Commands submitted to the sequencer, by command type and outcome.",
            ("type", "outcome"),
        )
        self.batch_size = Histogram(
            "exchange_batch_size", "Commands per committed sequencer batch.", tuple(map(float, BATCH_SIZE_BUCKETS))
        )
        self.commit_seconds = Histogram(
            "exchange_commit_seconds", "Time to commit one batch to PostgreSQL, in seconds.", COMMIT_SECONDS_BUCKETS
        )
        self.http_requests = Counter(
            "exchange_http_requests_total", "HTTP requests, by method, route template and status.",
            ("method", "route", "status"),
        )
        self.http_seconds = Histogram(
            "exchange_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template, in seconds.",
            HTTP_SECONDS_BUCKETS,
            ("method", "route"),
        )
        self._batches_seen = 0

    # -- the sequencer side ----------------------------------------------------------------------------

    def on_commit(self, sequencer: Sequencer, events: list[Event]) -> None:
        """Count one committed command's events; the first command of each new batch also records the batch."""
        if sequencer.committed_batches != self._batches_seen:
            # Listeners run synchronously right after the batch's commit, so these are that batch's figures.
            self._batches_seen = sequencer.committed_batches
            self.batch_size.observe(float(sequencer.last_batch_size))
            if sequencer.commit_seconds:
                self.commit_seconds.observe(sequencer.commit_seconds[-1])
        for event in events:
            kind = type(event)
            if kind is Trade:
                self.trades.inc()
            elif kind is OrderAccepted:
                self.orders_accepted.inc()
            elif kind is CommandRejected:
                self.rejects.inc(event.reason.value)  # type: ignore[union-attr]
            elif kind is OrderCancelled:
                self.cancels.inc(event.reason.value)  # type: ignore[union-attr]

    def counting_submit(
        self, submit: Callable[[Command, str], Awaitable[Outcome]]
    ) -> Callable[[Command, str], Awaitable[Outcome]]:
        """`submit` that also counts each command by type and by how it ended."""
        commands = self.commands

        async def counted(command: Command, sender: str) -> Outcome:
            kind = type(command).__name__
            try:
                outcome = await submit(command, sender)
            except Backpressure:
                commands.inc(kind, "backpressure")
                raise
            except SequencerUnavailable:
                commands.inc(kind, "unavailable")
                raise
            except CommitFailed:
                commands.inc(kind, "commit_failed")
                raise
            commands.inc(kind, "committed")
            return outcome

        return counted

    # -- the HTTP side ---------------------------------------------------------------------------------

    def on_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.inc(method, route, str(status))
        self.http_seconds.observe(seconds, method, route)

    # -- exposition ------------------------------------------------------------------------------------

    def render(self, app: FastAPI) -> str:
        state = app.state
        sequencer: Sequencer | None = getattr(state, "sequencer", None)
        lines: list[str] = []
        for metric in (self.orders_accepted, self.trades, self.rejects, self.cancels, self.commands):
            lines.extend(metric.render())
        lines.extend(self.batch_size.render())
        lines.extend(self.commit_seconds.render())
        current = sequencer.state if sequencer is not None else None
        lines.extend(
            _gauge(
                "exchange_sequencer_state",
                "1 for the state the sequencer is in, 0 for the others.",
                (((s.value,), 1 if s is current else 0) for s in SequencerState),
                ("state",),
            )
        )
        if sequencer is not None:
            lines.extend(_gauge("exchange_inbox_depth", "Commands waiting in the sequencer inbox.",
                                [((), sequencer.inbox.qsize())]))
            lines.extend(_gauge("exchange_inbox_capacity", "Size of the sequencer inbox (beyond it: 429).",
                                [((), sequencer.inbox.maxsize)]))
            lines.extend(_gauge("exchange_last_batch_size", "Commands in the last committed batch.",
                                [((), sequencer.last_batch_size)]))
            lines.extend(_gauge("exchange_last_seq", "Sequence number of the last committed command.",
                                [((), sequencer.last_seq)]))
            lines.extend(_header("exchange_committed_batches_total", "counter", "Batches committed."))
            lines.append(_series("exchange_committed_batches_total", (), (), sequencer.committed_batches))
            failed_help = "Batches whose commit failed (fail-stop)."
            lines.extend(_header("exchange_failed_batches_total", "counter", failed_help))
            lines.append(_series("exchange_failed_batches_total", (), (), sequencer.failed_batches))
        lines.extend(_gauge("exchange_websocket_clients", "WebSocket clients connected.",
                            [((), _websocket_clients(app))]))
        lines.extend(self.http_requests.render())
        lines.extend(self.http_seconds.render())
        return "\n".join(lines) + "\n"


def _websocket_clients(app: FastAPI) -> int:
    clients = getattr(getattr(app.state, "marketdata", None), "ws_clients", 0)
    if isinstance(clients, int):
        return clients
    try:
        return len(clients)
    except TypeError:
        return 0


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (unauthenticated: keep it off the public network)",
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics_of(request.app).render(request.app), media_type=CONTENT_TYPE)


def metrics_of(app: FastAPI) -> ExchangeMetrics:
    found = getattr(app.state, "metrics", None)
    if found is None:
        found = app.state.metrics = ExchangeMetrics()
    return found


def install(app: FastAPI) -> None:
    """Add the `/metrics` route (call from `create_app`, before the app starts). HTTP requests are counted by
    `api.observe.ObserveMiddleware`, which `create_app` adds with `metrics_of(app)`."""
    metrics_of(app)
    app.include_router(router)


async def start_metrics(app: FastAPI) -> None:
    """Component start: listen to the sequencer's commits and count the commands it is given."""
    metrics = metrics_of(app)
    sequencer: Sequencer = app.state.sequencer
    sequencer.subscribe(lambda _seq, _ts_us, events: metrics.on_commit(sequencer, events))
    sequencer.submit = metrics.counting_submit(sequencer.submit)  # type: ignore[method-assign]
