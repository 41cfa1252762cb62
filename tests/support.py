"""Helpers for tests that run the app in-process (no server, no socket) or as a real server process."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Sequence

import httpx
from fastapi import FastAPI

from api.app import create_app
from api.lifecycle import Component
from api.settings import Settings


@contextlib.asynccontextmanager
async def started_app(settings: Settings, components: Sequence[Component] | None = None) -> AsyncIterator[FastAPI]:
    """`create_app(settings)` with its lifespan entered (as a server would before taking requests)."""
    app = create_app(settings, components=components)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """An httpx client calling `app` in-process; use as `async with client_for(app) as client:`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://exchange.test")


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, components: Sequence[Component] | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """`started_app` and a `client_for` it, together."""
    async with started_app(settings, components) as app, client_for(app) as client:
        yield app, client


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
