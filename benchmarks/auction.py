"""Benchmark: uncross a 100,000-order call auction (price determination + allocation).

Claim: ``determine_price`` followed by ``allocate`` on 100,000 orders takes under 200 ms and within 5x of
the time Python's ``sorted()`` needs just to order those same orders by (price, priority), measured in the
same run. The input is UNSORTED (orders shuffled, priorities a random permutation), so the measured time
includes all the sorting the uncrossing does; a second row shows the same book handed over as the engine
holds it (each side sorted by price, then priority), for information only.

The book: seeded random, half bids and half asks, limits normally distributed around 100.00 (10,000 ticks)
with the bids' centre 10 ticks above the asks' so the sides overlap, quantities 1-1,000, about 2% market
orders on each side. Run: ``python -m benchmarks.auction [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from collections.abc import Callable

from exchange.auction import AuctionOrder, allocate, determine_price

ORDERS = 100_000
CENTRE = 10_000
SPREAD_TICKS = 40
OVERLAP_TICKS = 10
MARKET_SHARE = 0.02
SEED = 20240607


def make_book(count: int, seed: int) -> tuple[list[AuctionOrder], list[AuctionOrder], int]:
    rng = random.Random(seed)
    priorities = list(range(count))
    rng.shuffle(priorities)
    bids: list[AuctionOrder] = []
    asks: list[AuctionOrder] = []
    for order_id in range(count):
        is_buy = order_id % 2 == 0
        if rng.random() < MARKET_SHARE:
            price = None
        else:
            centre = CENTRE + OVERLAP_TICKS // 2 if is_buy else CENTRE - OVERLAP_TICKS // 2
            price = round(rng.gauss(centre, SPREAD_TICKS))
        order = AuctionOrder(order_id, price, rng.randint(1, 1_000), priorities[order_id])
        (bids if is_buy else asks).append(order)
    rng.shuffle(bids)
    rng.shuffle(asks)
    return bids, asks, CENTRE


def as_engine_holds(bids: list[AuctionOrder], asks: list[AuctionOrder]) -> tuple[list, list]:
    """Each side by price (best first, market orders ahead) then time priority."""
    buy_key = lambda o: (0, 0, o.priority) if o.price is None else (1, -o.price, o.priority)  # noqa: E731
    sell_key = lambda o: (0, 0, o.priority) if o.price is None else (1, o.price, o.priority)  # noqa: E731
    return sorted(bids, key=buy_key), sorted(asks, key=sell_key)


def timings_ms(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, fastest) wall time of ``action`` in milliseconds."""
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (same 100,000-order book)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 11

    bids, asks, reference = make_book(ORDERS, SEED)
    orders = bids + asks
    sorted_bids, sorted_asks = as_engine_holds(bids, asks)

    uncrossing = determine_price(bids, asks, reference)
    executions = allocate(bids, asks, uncrossing)
    if allocate(sorted_bids, sorted_asks, determine_price(sorted_bids, sorted_asks, reference)) != executions:
        raise SystemExit("presorted and unsorted input gave different executions")

    rows = {
        "determine_price (unsorted orders)": lambda: determine_price(bids, asks, reference),
        "allocate (unsorted orders)": lambda: allocate(bids, asks, uncrossing),
        "uncross = determine_price + allocate (unsorted)": lambda: allocate(
            bids, asks, determine_price(bids, asks, reference)
        ),
        "uncross, orders presorted as the engine holds": lambda: allocate(
            sorted_bids, sorted_asks, determine_price(sorted_bids, sorted_asks, reference)
        ),
        "baseline: sorted() by (price, priority)": lambda: sorted(
            orders, key=lambda o: (-1 if o.price is None else o.price, o.priority)
        ),
    }
    measured = {name: timings_ms(action, repeats) for name, action in rows.items()}
    uncross_ms = measured["uncross = determine_price + allocate (unsorted)"][0]
    sort_ms = measured["baseline: sorted() by (price, priority)"][0]
    ratio = uncross_ms / sort_ms

    print(f"call auction uncrossing, {ORDERS:,} orders, {repeats} runs each")
    print(
        f"  auction price {uncrossing.price} ({uncrossing.rule}), volume {uncrossing.volume:,}, "
        f"surplus {uncrossing.surplus:+,}, {len(executions):,} executions"
    )
    print(f"  {'step':<48} {'median ms':>10} {'best ms':>9}")
    for name, (median, fastest) in measured.items():
        print(f"  {name:<48} {median:>10.1f} {fastest:>9.1f}")
    print(f"  ratio uncross / sort (medians): {ratio:.2f}x (target <= 5x, and uncross < 200 ms)")
    print(json.dumps({
        "benchmark": "auction",
        "metric": "uncross_ms",
        "value": round(uncross_ms, 2),
        "unit": "ms",
        "baseline": round(sort_ms, 2),
        "ratio": round(ratio, 3),
    }))


if __name__ == "__main__":
    main()
