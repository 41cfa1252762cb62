"""The API benchmark's load generator: keep-alive HTTP/1.1 connections, one request in flight on each, and the CPU
each party used meanwhile.

It runs in a process of its own (`drive` is the entry point, picklable for a process pool) and is written to cost
as little CPU as possible: pre-encoded requests, asyncio protocols instead of an HTTP client library, uvloop when it is
installed. Answers must carry a Content-Length (uvicorn always sends one for these). Latency is measured from the
moment a request is written to the moment its whole answer has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path


def http_post(host: str, port: int, path: str, token: str, body: bytes) -> bytes:
    """One pre-encoded HTTP/1.1 keep-alive request."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------------------------------------------- CPU accounting


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds used so far by the server, each PostgreSQL process, this process and the whole machine."""

    server: float
    postgres: dict[int, float]  # the scratch database's backends, by pid: they come and go, only their growth counts
    loader: float
    machine_busy: float
    machine_total: float


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds used between two samples."""

    server: float
    postgres: float
    loader: float
    machine_busy: float
    machine_total: float


def cpu_used(before: CpuSample, after: CpuSample) -> CpuUse:
    postgres = sum(seconds - before.postgres.get(pid, 0.0) for pid, seconds in after.postgres.items())
    return CpuUse(
        after.server - before.server,
        postgres,
        after.loader - before.loader,
        after.machine_busy - before.machine_busy,
        after.machine_total - before.machine_total,
    )


def _process_cpu(pid: int | str) -> tuple[str, float]:
    """(command name, user + system CPU seconds) of a process, from /proc; ("", 0.0) if it is not readable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0.0
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serves_database(pid: str, database: str) -> bool:
    """Whether a PostgreSQL backend serves `database` (its title: `postgres: USER DATABASE HOST(PORT) STATE`)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return f" {database} " in title


def cpu_sample(server_pid: int, database: str) -> CpuSample:
    """Read from /proc (Linux); elsewhere only this process's own CPU time is known and the rest reads 0.

    PostgreSQL counts the backends of `database` only: the server may be shared with other work."""
    postgres: dict[int, float] = {}
    busy = total = 0.0
    with contextlib.suppress(OSError, ValueError, AttributeError):
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                name, seconds = _process_cpu(entry.name)
                if name == "postgres" and _serves_database(entry.name, database):
                    postgres[int(entry.name)] = seconds
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        total = sum(fields) / tick
        busy = total - (fields[3] + fields[4]) / tick  # idle and iowait are not busy
    return CpuSample(_process_cpu(server_pid)[1], postgres, time.process_time(), busy, total)


# ---------------------------------------------------------------------------------------------------- the load process


@dataclass(frozen=True, slots=True)
class LoadSpec:
    host: str
    port: int
    requests: list[list[bytes]]  # per connection
    seconds: float
    warmup: float
    server_pid: int
    database: str  # whose PostgreSQL backends' CPU to count


@dataclass(slots=True)
class LoadResult:
    seconds: float
    ok: int  # 2xx answers that arrived in the window
    statuses: dict[int, int]  # every answer in the window, by status
    latencies: list[float]  # of the 2xx answers in the window, seconds, sorted
    cpu: CpuUse
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with one request in flight; answers need a Content-Length (uvicorn sends it)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(ConnectionError("an answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def run_load(spec: LoadSpec) -> LoadResult:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(_Connection, spec.host, spec.port))[1] for _ in range(len(spec.requests))
    ]
    clock = time.perf_counter
    window_start = clock() + spec.warmup
    window_end = window_start + spec.seconds
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    samples: list[CpuSample] = []

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, window_start - clock()))
        samples.append(cpu_sample(spec.server_pid, spec.database))
        await asyncio.sleep(max(0.0, window_end - clock()))
        samples.append(cpu_sample(spec.server_pid, spec.database))

    async def client(connection: _Connection, requests: list[bytes]) -> None:
        n = 0
        while (sent := clock()) < window_end:
            try:
                status = await connection.request(requests[n % len(requests)])
            except ConnectionError as error:
                failures.append(str(error))
                return
            n += 1
            answered = clock()
            if window_start <= answered <= window_end:
                statuses[status] += 1
                if 200 <= status < 300:
                    latencies.append(answered - sent)

    await asyncio.gather(sampler(), *(client(c, r) for c, r in zip(connections, spec.requests, strict=True)))
    for connection in connections:
        assert connection.transport is not None
        connection.transport.close()
    latencies.sort()
    return LoadResult(spec.seconds, len(latencies), dict(statuses), latencies, cpu_used(*samples), failures)


def drive(spec: LoadSpec) -> LoadResult:
    """Entry point of the load process: the whole load, on uvloop when it is installed."""
    try:
        import uvloop

        return uvloop.run(run_load(spec))
    except ImportError:
        return asyncio.run(run_load(spec))


def merged(results: Sequence[LoadResult]) -> LoadResult:
    """Several windows as one: counts, times and CPU added up, latencies pooled."""
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    cpu = CpuUse(*(sum(getattr(r.cpu, f.name) for r in results) for f in fields(CpuUse)))
    return LoadResult(
        sum(r.seconds for r in results),
        sum(r.ok for r in results),
        dict(statuses),
        sorted(latency for r in results for latency in r.latencies),
        cpu,
        [failure for r in results for failure in r.failures],
    )
