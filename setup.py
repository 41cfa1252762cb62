"""Build hook: compiles the hot path of the matching core with mypyc (C extensions built from the typed source).

The engine, books, orders, balances and the codec are plain, typed Python; mypyc turns them into C extensions that
run the same code about twice as fast (see benchmarks/engine.py). Everything else stays interpreted. Set
EXCHANGE_COMPILE=0 to install without a C compiler: the core then runs as pure Python, identically but slower.
`exchange/__init__.py` falls back to the pure-Python source by itself when a compiled module is older than its
source, so an edit is never shadowed by a stale build.
"""

from __future__ import annotations

import os

from setuptools import setup

# Keep in step with exchange.COMPILED_MODULES (checked by tests/exchange/test_compiled_core.py).
COMPILED_MODULES = (
    "accounts",
    "book",
    "codec",
    "commands",
    "engine",
    "events",
    "fees",
    "instrument",
    "orders",
    "rejects",
    "rounding",
)


def _extensions() -> list:
    if os.environ.get("EXCHANGE_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    # Assertions stay in: they are the core's cheap invariant checks (TIGER_STYLE), not debug aids.
    return mypycify(
        ["--ignore-missing-imports", *(f"exchange/{name}.py" for name in COMPILED_MODULES)],
        opt_level="3",
        strip_asserts=False,
    )


setup(ext_modules=_extensions())
