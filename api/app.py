"""Assembly of the FastAPI application: settings, lifespan, middleware, error handlers, routers.

`create_app()` is the one place where the pieces meet. To add a long-running part (the sequencer, a
market-data publisher), append a `Component` to `default_components()`; to add endpoints, include the
router in `_include_routers` (business routes live under `/v1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from api import health, marketdata, metrics, schedule, sequencer_errors, ws
from api.routes import market, operator, orders, participants
from api.errors import install_error_handlers
from api.lifecycle import Component, lifespan
from api.fastpath import OrderFastPath
from api.observe import ObserveMiddleware
from api.sequencer import start_sequencer, stop_sequencer
from api.settings import Settings, get_settings

API_PREFIX = "/v1"


def _version() -> str:
    try:
        return version("impact-exchange")
    except PackageNotFoundError:
        return "0.0.0"


def default_components(settings: Settings) -> list[Component]:
    """The components every exchange process runs, started in this order after migrations."""
    return [
        Component("sequencer", start_sequencer, stop_sequencer),
        Component("marketdata", marketdata.start_marketdata, marketdata.stop_marketdata),
        Component("metrics", metrics.start_metrics),
        # Last to start, first to stop: the trading calendar sends commands only while everything else runs.
        Component("schedule", schedule.start_schedule, schedule.stop_schedule),
    ]


def _include_routers(app: FastAPI) -> None:
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(operator.router)
    app.include_router(participants.router)
    app.include_router(market.router)
    app.include_router(ws.router)
    from api.routes import corporate  # primary offers, coupons, dividends, redemptions, investor profiles

    app.include_router(corporate.router)
    from api.routes import regulator  # the regulator's reads, exports and checks

    app.include_router(regulator.router)
    from api.routes import impact, issuers  # issuers, listing applications and decisions; impact reports and views

    app.include_router(issuers.router)
    app.include_router(impact.router)


def create_app(settings: Settings | None = None, *, components: Sequence[Component] | None = None) -> FastAPI:
    """Build the app. `components` replaces `default_components(settings)` (tests use it to run a subset)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Impact Exchange",
        summary="Trading and settlement core of a social-impact stock exchange.",
        version=_version(),
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # The exchange reports through its own Prometheus metrics and JSON logs, not OpenTelemetry. Left on, FastAPI
        # asks the (unconfigured) OpenTelemetry providers on every request whether to trace it, reading the
        # environment each time: a measurable share of an order's CPU (benchmarks/api.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.components = list(default_components(settings) if components is None else components)
    app.state.engine_ready = False
    app.state.startup_error = None
    install_error_handlers(app)
    sequencer_errors.install(app)
    metrics.install(app)
    _include_routers(app)
    # Added last = runs first: ObserveMiddleware (request id, access log, HTTP metrics) wraps everything, then the
    # order fast path answers the hot order routes before FastAPI's routing (same semantics: see api.fastpath).
    app.add_middleware(OrderFastPath, api=app)
    app.add_middleware(ObserveMiddleware, metrics=metrics.metrics_of(app))
    return app
