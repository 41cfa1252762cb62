"""The engine makes no cyclic garbage: whatever it drops is freed by reference counting at once.

This is what lets the exchange process collect cycles rarely (api/collector.py): the collector's passes could only
ever find garbage made by something else. A cycle left behind (an order still linked to a level it left, a level
still pointing at orders) would also be a leak of the book's own bookkeeping.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from exchange.engine import Engine
from tests.exchange.factories import START_US, RandomSession, absolute_expiry
from tests.exchange.test_engine_determinism import instruments, live
from tests.exchange.trading_day import run_day


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_long_random_session_with_auctions_leaves_no_cyclic_garbage(collector_off: None) -> None:
    engine = Engine()
    session = RandomSession(20261129, instruments(), call_phases=True, live_orders=lambda: live(engine))
    now = START_US
    seq = 0
    for command in session.opening():
        seq += 1
        engine.apply(seq, now, command)
    for _ in range(6_000):
        pause, command = session.next()
        now += pause
        seq += 1
        engine.apply(seq, now, absolute_expiry(command, now))

    assert gc.collect() == 0


def test_a_whole_trading_day_with_offers_and_distributions_leaves_no_cyclic_garbage(collector_off: None) -> None:
    day = run_day()

    assert gc.collect() == 0
    assert day.engine.orders is not None  # the engine itself stays alive: it is the running process's state
