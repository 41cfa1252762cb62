"""How the exchange process runs Python's cyclic garbage collector while it trades.

The engine makes no cyclic garbage: every object it drops is freed by its reference count the moment it is dropped
(tests/exchange/test_engine_garbage.py). The cyclic collector can only ever find garbage made elsewhere (the web
framework, asyncio), yet with CPython's default thresholds it starts a young-generation pass every 700 net new objects,
which in the sequencer means several passes inside every batch, each one a pause of the engine. So, once the engine
is rebuilt:

- everything alive then lives as long as the process: `gc.freeze()` moves it out of every future pass;
- the young generation is collected every `YOUNG_THRESHOLD` net new objects instead of 700, and the older ones as
  usual relative to it. Cycles made by the rest of the process are still collected, only in fewer, larger passes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)


def settle_for_trading() -> None:
    """Call once the long-lived state is built (after recovery): freeze it and collect rarely from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def describe() -> str:
    young, middle, old = gc.get_threshold()
    return f"thresholds {young}/{middle}/{old}, {gc.get_freeze_count():,} objects frozen"
