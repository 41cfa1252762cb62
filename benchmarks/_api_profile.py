"""Where the exchange server's time goes: py-spy's sampled stacks (or cProfile's statistics) summed by task, by stage
of an order's path within each task, by module and by function.

A py-spy sample belongs to the first `Part` (task or callback) with a matching frame on its stack, so the parts add
up to 100%; within its part, to the first stage whose function is on the stack, or else to the part's rest. A sample
whose innermost Python frame is the event loop's `run` was in the loop's C code (uvloop). cProfile keeps no stacks,
so from it parts and stages are made of each function's own time alone.
"""

from __future__ import annotations

import pstats
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    filename: str


@dataclass(frozen=True, slots=True)
class Part:
    """A task or callback of the server. A sample belongs to the first part with a frame matching one of `frames`
    (so parts add up to 100%); within its part, to the first stage on its stack, or else to `rest`."""

    label: str
    frames: tuple[tuple[str, str], ...]  # (part of the file path, function name or "" for any)
    stages: tuple[tuple[str, str, str], ...] = ()  # (label, part of the file path, function name or "")
    rest: str = ""


PARTS: tuple[Part, ...] = (
    Part(
        "sequencer task (one batch after another)",
        # `_commit` runs as a task of its own (the batch's transaction), so it is named here too.
        (("api/sequencer.py", "_process"), ("api/sequencer.py", "_run"), ("api/sequencer.py", "_commit"),
         ("/exchange/", ""), ("/ledger/", "")),
        (
            ("Engine.apply (matching, risk)", "exchange/engine.py", "apply"),
            ("codec.encode (canonical JSON of commands, events)", "exchange/codec.py", "encode"),
            ("JournalRecord.next (hash chain)", "ledger/journal.py", "next"),
            ("settlement.entries_for (ledger postings)", "ledger/settlement.py", "entries_for"),
            ("OrderProjection.apply", "ledger/projection.py", "apply"),
            ("BatchStore.write (rows -> asyncpg -> PostgreSQL)", "ledger/batch.py", "write"),
            ("transaction: pool acquire, BEGIN, COMMIT, release", "asyncpg/", ""),
            ("market data listener (after commit)", "api/marketdata.py", ""),
            ("metrics listener (after commit)", "api/metrics.py", ""),
        ),
        "rest: batching, event rows, answering the waiting requests",
    ),
    Part(
        "request tasks (the ASGI app, one task per request)",
        (("uvicorn/protocols/http/", "run_asgi"), ("uvicorn/middleware/", ""), ("starlette/", ""), ("fastapi/", ""),
         ("pydantic", ""), ("/api/", "")),
        (
            ("reading the body (Request.body/json)", "starlette/requests.py", ""),
            ("body -> PlaceOrderRequest (pydantic)", "fastapi/dependencies/utils.py", "request_body_to_args"),
            ("api.auth.authenticate (key cache, rate limit)", "api/auth.py", "authenticate"),
            ("other dependency solving (require, Request...)", "fastapi/dependencies/utils.py", "solve_dependencies"),
            ("order_view: projection fold, timestamps, OrderView", "api/routes/orders.py", "order_view"),
            ("_place_command: decimals -> integers, the command", "api/routes/orders.py", "_place_command"),
            ("fast path: body -> PlaceOrderRequest (model_validate_json)", "pydantic/", "model_validate_json"),
            ("fast path: auth.principal_for (key cache)", "api/auth.py", "principal_for"),
            ("fast path: ratelimit.take_token", "api/ratelimit.py", "take_token"),
            ("fast path: OrderView -> JSON (TypeAdapter.dump_json)", "pydantic/", "dump_json"),
            ("place_order's own work (command, submit; the wait costs nothing)", "api/routes/orders.py", "place_order"),
            ("orders.place's own work (idempotency, submit, fold)", "api/routes/orders.py", "place"),
            ("orders.cancel (load, submit, read back)", "api/routes/orders.py", "cancel"),
            ("serialize_response (OrderView -> JSON-able)", "fastapi/routing.py", "serialize_response"),
            ("JSONResponse.render (json.dumps of the answer)", "starlette/responses.py", "render"),
            ("RequestResponseCycle.send (answer to the socket)", "uvicorn/protocols/http/", "send"),
            ("access log (logging calls below the level)", "logging/", ""),
            ("fast path's own work (headers, body, dispatch, answer)", "api/fastpath.py", ""),
        ),
        "rest: observe middleware (request id, metrics, access log), Starlette's error middleware, FastAPI plumbing",
    ),  # fmt: skip
    Part(
        "HTTP protocol callbacks: parse requests, start tasks (uvicorn/httptools)", (("uvicorn/", ""), ("httptools", ""))
    ),
    Part("asyncpg protocol callbacks (replies from PostgreSQL)", (("asyncpg/", ""),)),
)
EVENT_LOOP = "event loop in C (uvloop: sockets, epoll, scheduling)"
OTHER = "other"


def _matches(frame: Frame, file_part: str, function: str) -> bool:
    """Whether `frame` is `function` (py-spy names methods `Class.method`) in a file whose path holds `file_part`."""
    return file_part in frame.filename and (
        not function or frame.function == function or frame.function.endswith("." + function)
    )


# The loop's own frames: a sample whose innermost Python frame is one of these was in the loop's C code.
EVENT_LOOP_FRAMES = frozenset(
    {"run", "Runner.run", "run_until_complete", "BaseEventLoop.run_until_complete", "run_forever"}
)


def _in_event_loop(leaf: Frame) -> bool:
    return leaf.function in EVENT_LOOP_FRAMES and any(p in leaf.filename for p in ("asyncio/", "uvicorn/", "uvloop"))


def _idle_worker(leaf: Frame) -> bool:
    """A thread pool's worker waiting for work (in C, so py-spy may not see it as idle): not server work."""
    return leaf.function == "_worker" and "concurrent/futures/thread.py" in leaf.filename


def part_and_stage(frames: Sequence[Frame]) -> tuple[str, str | None]:
    """The part a sample belongs to, and its stage within that part (None for a part without stages)."""
    if _in_event_loop(frames[-1]):
        return EVENT_LOOP, None
    for part in PARTS:
        if any(_matches(frame, file_part, function) for frame in frames for file_part, function in part.frames):
            for label, file_part, function in part.stages:
                if any(_matches(frame, file_part, function) for frame in frames):
                    return part.label, label
            return part.label, part.rest or None
    return OTHER, None


def leaf_module(filename: str) -> str:
    """A readable name for where a leaf frame's code lives: the project file, the package or the stdlib module."""
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    root = str(Path(__file__).resolve().parents[1]) + "/"
    if path.startswith(root):
        return path[len(root) :]
    if "/lib/python3" in path:
        rest = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib " + rest.split("/", 1)[0].removesuffix(".py")
    return path


def parse_py_spy_raw(text: str) -> list[tuple[list[Frame], int]]:
    """py-spy's `--format raw` output: one `frame;frame;... count` line per distinct stack (root first), each
    frame `function (file:line)`."""
    stacks = []
    for line in text.splitlines():
        stack_text, _, count = line.strip().rpartition(" ")
        if not stack_text:
            continue
        frames = []
        for part in stack_text.split(";"):
            function, _, location = part.partition(" (")
            frames.append(Frame(function, location.rstrip(")").rsplit(":", 1)[0]))
        stacks.append((frames, int(count)))
    return stacks


@dataclass(slots=True)
class Breakdown:
    """Where the server's time went: amounts (samples or seconds) by part (and stage within it), leaf module and leaf
    function. `stages` maps a part's label to its stages' amounts."""

    total: float
    unit: str
    parts: list[tuple[str, float]]
    stages: dict[str, list[tuple[str, float]]]
    modules: list[tuple[str, float]]
    functions: list[tuple[str, float]]


def _stage_lists(amounts: Counter[tuple[str, str]]) -> dict[str, list[tuple[str, float]]]:
    """Each part's stages in the order they are declared, the rest last, leaving out those with nothing."""
    lists: dict[str, list[tuple[str, float]]] = {}
    for part in PARTS:
        labels = [label for label, _, _ in part.stages] + ([part.rest] if part.rest else [])
        lists[part.label] = [
            (label, float(amounts[part.label, label])) for label in labels if amounts[part.label, label]
        ]
    return lists


def breakdown_from_stacks(stacks: Iterable[tuple[list[Frame], int]], top: int = 12) -> Breakdown:
    parts: Counter[str] = Counter()
    stages: Counter[tuple[str, str]] = Counter()
    modules: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        if _idle_worker(frames[-1]):
            continue
        total += count
        part, stage = part_and_stage(frames)
        parts[part] += count
        if stage is not None:
            stages[part, stage] += count
        leaf = frames[-1]
        module = EVENT_LOOP if part == EVENT_LOOP else leaf_module(leaf.filename)
        modules[module] += count
        functions[f"{leaf.function} ({module})"] += count
    return Breakdown(
        float(total),
        "samples",
        parts.most_common(),
        _stage_lists(stages),
        modules.most_common(top),
        functions.most_common(top),
    )


def breakdown_from_cprofile(stats_path: str, top: int = 12) -> Breakdown:
    """cProfile keeps no stacks: parts and stages here are from each function's OWN time alone (so asyncpg counts
    as a part of its own, and the "rest" of a part is the own time of its code that no stage names)."""
    stats = pstats.Stats(stats_path).stats  # type: ignore[attr-defined]
    parts: Counter[str] = Counter()
    stages: Counter[tuple[str, str]] = Counter()
    modules: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        frame = Frame(function, filename)
        if filename == "~":  # built-in functions, the loop's run methods among them
            part, stage = "built-in functions (the event loop's C code among them)", None
        elif "asyncpg/" in filename:
            part, stage = "asyncpg, all callers (cProfile keeps no stacks to place it)", None
        else:
            part, stage = part_and_stage([frame])
            part = "other: stdlib and libraries called from anywhere" if part == OTHER else part
        parts[part] += own
        if stage is not None:
            stages[part, stage] += own
        module = "built-ins" if filename == "~" else leaf_module(filename)
        modules[module] += own
        functions[f"{function} ({module})"] += own
    return Breakdown(
        sum(parts.values()),
        "s",
        parts.most_common(),
        _stage_lists(stages),
        modules.most_common(top),
        functions.most_common(top),
    )


def print_breakdown(breakdown: Breakdown, how: str, us_per_order: float | None) -> None:
    """Shares of the profiled time; with `us_per_order` (server CPU per answered order), microseconds per order."""
    total = breakdown.total or 1.0

    def line(amount: float, label: str, indent: int = 4) -> str:
        share = amount / total
        cost = f"{share * us_per_order:5.0f} us" if us_per_order else ""
        return f"{' ' * indent}{share:6.1%} {cost}  {label}"

    per_order = f"; {us_per_order:,.0f} us of server CPU per order in the measured run" if us_per_order else ""
    print(f"where the server's time goes ({how}{per_order})")
    print("  by task or callback, and by stage within it (each adds up to its total)")
    for label, amount in breakdown.parts:
        print(line(amount, label))
        for stage, stage_amount in breakdown.stages.get(label, []):
            print(line(stage_amount, stage, 8))
    print("  by module of the innermost Python frame (C code counts for the Python function that called it)")
    for label, amount in breakdown.modules:
        print(line(amount, label))
    print("  top functions by own time")
    for label, amount in breakdown.functions:
        print(line(amount, label[-100:]))


def find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")
