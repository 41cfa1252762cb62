"""Benchmark: the matching engine alone, on a seeded mix of 1,000,000 commands (`--quick`: 100,000).

Claims (issue 3), each printed PASS or FAIL:
  - at least 250,000 commands/s through `Engine.apply`;
  - at least 0.5 of a bare reference loop on the same commands, measured in the same run: `BareBook`, a minimal
    dict-of-levels price-time book (no events, no holds, no validation) that does the same matching;
  - per-command latency p99 under 20 us (time.perf_counter_ns around each apply; the timer's own cost is printed);
  - at most 400 bytes of memory per resting order;
  - with 1,000,000 resting orders (`--quick`: 100,000) preloaded away from the touch, throughput within 20 % of the
    same mix on a book of about 1,000 resting orders.

The mix (benchmarks/workload.py): 10 instruments, 1,000 funded accounts (listing, deposits and issuance first, not
timed); ~60 % limit orders near the touch, 25 % cancels of live orders, 10 % marketable orders, 5 % amends.
Throughput runs are repeated and the best and median are shown: other processes share the machine, and the best
run is the one they disturbed least. The wall clock is the judge; CPU time is printed next to it, and per-command
CPU time (thread_time_ns) next to the wall-clock latencies. The workload list is frozen out of the garbage
collector's reach (gc.freeze) before any run: a server does not hold a million pending commands. Every run (engine
and bare loop alike) uses the collector as the sequencer runs it (api/collector.py: young passes every 50,000 net new
objects, not 700; the engine makes no cyclic garbage); the latencies are also printed under CPython's default
collector, for comparison.

Run: ``python -m benchmarks.engine [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import tracemalloc
from array import array
from collections.abc import Callable, Sequence
from heapq import heappop, heappush

from api import collector
from benchmarks._report import json_line, machine, percentile, table, verdict
from benchmarks.workload import (
    ACCOUNTS,
    TS0_US,
    apply_all,
    count_outcomes,
    deep_book,
    mixed_commands,
    setup_commands,
    shift_order_ids,
)
from exchange.commands import AmendOrder, CancelOrder, Command, PlaceOrder
from exchange.engine import Engine
from exchange.orders import OrderType, Side, TimeInForce

SEED = 20251129
TARGET_RATE = 250_000
TARGET_BARE_RATIO = 0.5
TARGET_P99_US = 20.0
TARGET_BYTES_PER_ORDER = 400
TARGET_DEEP_RATIO = 0.8


# ---------------------------------------------------------------------------------------------- the bare loop

_ACCOUNT, _BUY, _PRICE, _REMAINING, _QUANTITY, _SYMBOL = range(6)


class _BareSide:
    __slots__ = ("levels", "heap", "is_buy")

    def __init__(self, is_buy: bool) -> None:
        self.levels: dict[int, dict[int, list]] = {}  # price -> {order id: order}, in time priority
        self.heap: list[int] = []  # best first: bids negated; stale prices are dropped when met
        self.is_buy = is_buy


class BareBook:
    """The reference: price-time matching and nothing else, on the same commands as the engine.

    Orders are numbered as the engine numbers them (one id per accepted order) and a taker meeting its own account's
    order stops, like the engine's default self-trade prevention, so both end with the same resting orders. Prices
    of market orders are ignored (the workload never sweeps beyond the touch it saw)."""

    def __init__(self) -> None:
        self.sides: dict[tuple[str, bool], _BareSide] = {}
        self.orders: dict[int, list] = {}
        self.next_order_id = 1
        self.trades = 0

    def _side(self, symbol: str, is_buy: bool) -> _BareSide:
        side = self.sides.get((symbol, is_buy))
        if side is None:
            side = self.sides[(symbol, is_buy)] = _BareSide(is_buy)
        return side

    def apply(self, command: Command) -> None:
        kind = type(command)
        if kind is PlaceOrder:
            order_id = self.next_order_id
            self.next_order_id += 1
            is_buy = command.side is Side.BUY
            order = [command.account, is_buy, command.price, command.quantity, command.quantity, command.symbol]
            limit = command.price if command.type is OrderType.LIMIT else None
            if self._match(order, limit) and limit is not None and command.tif is TimeInForce.GTC:
                self._rest(order_id, order)
        elif kind is CancelOrder:
            order = self.orders.pop(command.order_id)
            self._unlink(command.order_id, order)
        elif kind is AmendOrder:
            order = self.orders[command.order_id]
            price = order[_PRICE] if command.price is None else command.price
            quantity = order[_QUANTITY] if command.quantity is None else command.quantity
            remaining = quantity - (order[_QUANTITY] - order[_REMAINING])
            side = self._side(order[_SYMBOL], order[_BUY])
            if price == order[_PRICE] and remaining <= order[_REMAINING]:
                order[_REMAINING] = remaining
                order[_QUANTITY] = quantity
                return
            del self.orders[command.order_id]
            self._unlink(command.order_id, order)
            order[_PRICE], order[_REMAINING], order[_QUANTITY] = price, remaining, quantity
            if self._match(order, price):
                self._rest(command.order_id, order)
        # Setup commands (listings, deposits, issuance) mean nothing to a bare book.

    def _match(self, taker: list, limit: int | None) -> bool:
        """Trade `taker` against the opposite side; return whether a remainder is left to rest."""
        is_buy = taker[_BUY]
        opposite = self._side(taker[_SYMBOL], not is_buy)
        levels, heap = opposite.levels, opposite.heap
        orders = self.orders
        account = taker[_ACCOUNT]
        while taker[_REMAINING] and heap:
            price = heap[0] if is_buy else -heap[0]
            level = levels.get(price)
            if level is None:
                heappop(heap)
                continue
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            while level:
                maker_id = next(iter(level))
                maker = level[maker_id]
                if maker[_ACCOUNT] == account:
                    return False  # self-trade: the incoming order is cancelled
                quantity = min(taker[_REMAINING], maker[_REMAINING])
                maker[_REMAINING] -= quantity
                taker[_REMAINING] -= quantity
                self.trades += 1
                if maker[_REMAINING] == 0:
                    del level[maker_id]
                    del orders[maker_id]
                if taker[_REMAINING] == 0:
                    break
            if not level:
                del levels[price]
                heappop(heap)
        return taker[_REMAINING] > 0

    def _rest(self, order_id: int, order: list) -> None:
        side = self._side(order[_SYMBOL], order[_BUY])
        price = order[_PRICE]
        level = side.levels.get(price)
        if level is None:
            level = side.levels[price] = {}
            heappush(side.heap, -price if side.is_buy else price)
        level[order_id] = order
        self.orders[order_id] = order

    def _unlink(self, order_id: int, order: list) -> None:
        side = self._side(order[_SYMBOL], order[_BUY])
        level = side.levels[order[_PRICE]]
        del level[order_id]
        if not level:
            del side.levels[order[_PRICE]]  # its heap entry goes when it reaches the top


# ---------------------------------------------------------------------------------------------- measurements


def fresh_engine(preload: Sequence[Command] = (), accounts: Sequence[str] = ACCOUNTS) -> tuple[Engine, int]:
    engine = Engine()
    seq = apply_all(engine, setup_commands(accounts=accounts), 1)
    seq = apply_all(engine, preload, seq)
    return engine, seq


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `run`, after a full collection so no earlier garbage is paid for."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def engine_run(
    commands: Sequence[Command], preload: Sequence[Command] = (), accounts: Sequence[str] = ACCOUNTS
) -> tuple[float, float, Engine]:
    """(wall seconds, CPU seconds, the engine) of `commands` applied after the setup and `preload` (not timed)."""
    engine, first = fresh_engine(preload, accounts)

    def run() -> None:
        apply = engine.apply
        seq = first
        for command in commands:
            apply(seq, TS0_US + seq, command)
            seq += 1

    wall, cpu = timed(run)
    return wall, cpu, engine


def bare_run(commands: Sequence[Command]) -> tuple[float, float, BareBook]:
    book = BareBook()

    def run() -> None:
        apply = book.apply
        for command in commands:
            apply(command)

    wall, cpu = timed(run)
    return wall, cpu, book


def latencies_ns(
    commands: Sequence[Command],
    accounts: Sequence[str] = ACCOUNTS,
    clock: Callable[[], int] = time.perf_counter_ns,
    thresholds: tuple[int, int, int] | None = None,
) -> tuple[array, int, int]:
    """Per-command latency of `Engine.apply` in ns by `clock`, plus (rejected commands, trades) of that run; with
    `thresholds`, the garbage collector runs with those instead of the benchmark's own for that run."""
    if thresholds is not None:
        kept = gc.get_threshold()
        gc.set_threshold(*thresholds)
        try:
            return latencies_ns(commands, accounts, clock)
        finally:
            gc.set_threshold(*kept)
    engine, seq = fresh_engine((), accounts)
    samples = array("q", bytes(8 * len(commands)))
    apply = engine.apply
    rejected = trades = 0
    gc.collect()
    for n, command in enumerate(commands):
        started = clock()
        events = apply(seq, TS0_US + seq, command)
        samples[n] = clock() - started
        seq += 1
        r, t = count_outcomes((events,))
        rejected += r
        trades += t
    return samples, rejected, trades


def timer_overhead_ns(count: int = 200_000, clock: Callable[[], int] = time.perf_counter_ns) -> int:
    """Median reading of a `clock` pair with nothing between them."""
    samples = array("q", bytes(8 * count))
    for n in range(count):
        started = clock()
        samples[n] = clock() - started
    return int(statistics.median(samples))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bytes_per_resting_order(count: int, accounts: Sequence[str] = ACCOUNTS) -> tuple[float, float]:
    """(traced Python allocations, RSS growth) per order when `count` orders come to rest in a set-up engine."""
    orders = deep_book(count, seed=SEED + 1, accounts=accounts)
    engine, seq = fresh_engine((), accounts)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    apply_all(engine, orders, seq)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(engine.orders) == count, "every order of the deep book rests"
    del engine
    gc.collect()
    engine, seq = fresh_engine((), accounts)
    gc.collect()
    before = rss_bytes()
    apply_all(engine, orders, seq)
    gc.collect()
    grown = rss_bytes() - before
    return traced / count, grown / count


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 commands, a 100,000-order deep book")
    parser.add_argument("--commands", type=int, help="commands in the mix (default 1,000,000; quick 100,000)")
    parser.add_argument("--deep", type=int, help="resting orders preloaded for the deep run (default as --commands)")
    parser.add_argument("--repeats", type=int, help="throughput runs per variant (default 3; quick 1)")
    parser.add_argument("--accounts", type=int, default=len(ACCOUNTS), help="funded accounts (default 1,000)")
    args = parser.parse_args()
    accounts = ACCOUNTS[: args.accounts]
    count = args.commands or (100_000 if args.quick else 1_000_000)
    deep = args.deep or count
    repeats = args.repeats or (1 if args.quick else 3)
    memory_orders = min(count, 20_000 if args.quick else 100_000)

    print(f"engine benchmark: {count:,} mixed commands, {deep:,}-order deep book; {machine()}")
    started = time.perf_counter()
    commands = mixed_commands(count, seed=SEED, accounts=accounts)
    # The workload is the harness's, not the exchange's: keep the collector from re-walking its million commands.
    default_thresholds = gc.get_threshold()
    collector.settle_for_trading()
    print(f"  garbage collector as the sequencer runs it: {collector.describe()}")
    kinds: dict[str, int] = {}
    for command in commands:
        name = type(command).__name__
        if type(command) is PlaceOrder:
            name = "PlaceOrder marketable" if command.type is OrderType.MARKET or command.tif is TimeInForce.IOC else "PlaceOrder limit"
        kinds[name] = kinds.get(name, 0) + 1
    print(f"  workload generated in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{k} {v / count:.1%}" for k, v in sorted(kinds.items())))

    engine_walls, engine_cpus, bare_walls = [], [], []
    engine_resting = bare_resting = bare_trades = 0
    for _ in range(repeats):
        wall, cpu, engine = engine_run(commands, accounts=accounts)
        engine_walls.append(wall)
        engine_cpus.append(cpu)
        engine_resting = len(engine.orders)
        del engine
        wall, _, book = bare_run(commands)
        bare_walls.append(wall)
        bare_resting, bare_trades = len(book.orders), book.trades
        del book
    samples, rejected, trades = latencies_ns(commands, accounts)
    overhead = timer_overhead_ns()
    ordered = sorted(samples)
    default_ordered = sorted(latencies_ns(commands, accounts, thresholds=default_thresholds)[0])
    cpu_samples, _, _ = latencies_ns(commands, accounts, time.thread_time_ns)
    cpu_overhead = timer_overhead_ns(clock=time.thread_time_ns)
    cpu_ordered = sorted(cpu_samples)
    del samples, cpu_samples
    traced_per_order, rss_per_order = bytes_per_resting_order(memory_orders, accounts)

    preload = deep_book(deep, seed=SEED + 2, accounts=accounts)
    deep_commands = list(shift_order_ids(commands, deep))
    deep_walls, deep_resting = [], 0
    for _ in range(repeats):
        gc.collect()
        wall, _, engine = engine_run(deep_commands, preload, accounts=accounts)
        deep_walls.append(wall)
        deep_resting = len(engine.orders)
        del engine

    best_engine = rate(count, min(engine_walls))
    best_bare = rate(count, min(bare_walls))
    best_deep = rate(count, min(deep_walls))
    ratio = best_engine / best_bare
    deep_ratio = best_deep / best_engine
    p50, p99, p999 = (percentile(ordered, q) / 1_000 for q in (50, 99, 99.9))
    memory = max(traced_per_order, rss_per_order)

    rows = [
            ("engine, shallow book", f"{best_engine:>12,.0f} commands/s best, {rate(count, statistics.median(engine_walls)):,.0f} median of {repeats}; {rate(count, min(engine_cpus)):,.0f} per CPU-second"),
            ("bare reference loop", f"{best_bare:>12,.0f} commands/s best, {rate(count, statistics.median(bare_walls)):,.0f} median"),
            ("engine / bare", f"{ratio:>12.3f}"),
            (f"engine, {deep:,} resting away", f"{best_deep:>12,.0f} commands/s best, {rate(count, statistics.median(deep_walls)):,.0f} median"),
            ("deep / shallow", f"{deep_ratio:>12.3f}"),
            ("latency p50 / p99 / p99.9", f"{p50:>8.2f} / {p99:.2f} / {p999:.2f} us (max {ordered[-1] / 1_000:,.0f} us)"),
            ("timer overhead (included above)", f"{overhead:>8} ns per perf_counter_ns() pair"),
            (
                "latency with CPython's default collector",
                " / ".join(f"{percentile(default_ordered, q) / 1_000:.2f}" for q in (50, 99, 99.9))
                + f" us (thresholds {'/'.join(map(str, default_thresholds))})",
            ),
            (
                "CPU time per command p50 / p99 / p99.9",
                " / ".join(f"{percentile(cpu_ordered, q) / 1_000:.2f}" for q in (50, 99, 99.9))
                + f" us (thread_time_ns: not inflated by other processes; its own pair reads {cpu_overhead} ns)",
            ),
            (f"memory per resting order ({memory_orders:,})", f"{traced_per_order:>8.0f} B traced (tracemalloc), {rss_per_order:.0f} B RSS growth"),
            ("resting at the end: engine / bare", f"{engine_resting:,} / {bare_resting:,} (deep run: {deep_resting:,})"),
            ("trades / rejected commands", f"{trades:,} (bare {bare_trades:,} fills) / {rejected:,}"),
    ]
    table("results", rows)
    if engine_resting != bare_resting or rejected or deep_resting != engine_resting + deep:
        raise SystemExit("the engine, the bare loop and the deep run disagree: the comparison would be meaningless")
    print("targets")
    verdict(f">= {TARGET_RATE:,} commands/s", best_engine >= TARGET_RATE, f"{best_engine:,.0f}")
    verdict(f">= {TARGET_BARE_RATIO} of the bare loop", ratio >= TARGET_BARE_RATIO, f"{ratio:.3f}")
    verdict(f"p99 < {TARGET_P99_US:g} us", p99 < TARGET_P99_US, f"{p99:.2f} us")
    verdict(f"<= {TARGET_BYTES_PER_ORDER} bytes per resting order", memory <= TARGET_BYTES_PER_ORDER, f"{memory:.0f} B (larger of traced and RSS)")
    verdict("deep book within 20 % of shallow", deep_ratio >= TARGET_DEEP_RATIO, f"{deep_ratio:.3f}")
    json_line("engine", "commands_per_s", best_engine, "commands/s", best_bare, ratio)


if __name__ == "__main__":
    main()
