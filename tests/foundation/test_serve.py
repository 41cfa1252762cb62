"""`exchange serve` as a real process on the embedded PostgreSQL: ready within seconds, data kept between
runs, and SIGINT (Ctrl-C) or SIGTERM stop both the server and the embedded PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ledger.postgres import EmbeddedPostgres, asyncpg_dsn
from tests.support import free_port

pytestmark = pytest.mark.slow

READY_WITHIN_SECONDS = 30


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="exchange-serve-"))
    yield base / "var"
    EmbeddedPostgres(base / "var" / "pgdata").stop()  # in case a failed test left it running
    shutil.rmtree(base, ignore_errors=True)


def _start_server(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("EXCHANGE_")}
    env["EXCHANGE_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env, cwd=data_dir.parent,  # away from any .env in the checkout
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _wait_ready(port: int, process: subprocess.Popen[str]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_WITHIN_SECONDS:
        assert process.poll() is None, process.stderr.read() if process.stderr else "server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"not ready within {READY_WITHIN_SECONDS} s")


def _stop(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    """Send `sig`, wait for the exit; returns the exit status and the server's log."""
    process.send_signal(sig)
    _, log = process.communicate(timeout=30)
    return process.returncode, log


async def _instance_id(pgdata: Path) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(EmbeddedPostgres(pgdata).url))
    try:
        return str(await conn.fetchval("SELECT value FROM exchange_meta WHERE key = 'instance_id'"))
    finally:
        await conn.close()


async def test_serve_becomes_ready_keeps_its_data_and_stops_postgres_on_signals(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"

    port = free_port()
    first = _start_server(data_dir, port)
    _wait_ready(port, first)
    instance = await _instance_id(pgdata)
    status, log = _stop(first, signal.SIGINT)
    assert status == 0
    assert "Application shutdown complete" in log
    assert not EmbeddedPostgres(pgdata).is_running
    assert not (pgdata / "postmaster.pid").exists()

    port = free_port()
    second = _start_server(data_dir, port)
    _wait_ready(port, second)
    assert await _instance_id(pgdata) == instance  # same database: the data directory was reused
    status, log = _stop(second, signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended.
    assert status in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log
    assert not EmbeddedPostgres(pgdata).is_running
