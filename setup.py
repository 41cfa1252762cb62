"""Build hook: compiles the hot path of the matching core with mypyc (C extensions built from the typed source).

The engine, books, orders, balances and the codec are plain, typed Python; mypyc turns them into C extensions that
run the same code about twice as fast (see benchmarks/engine.py). Everything else stays interpreted. Set
EXCHANGE_COMPILE=0 to install without a C compiler: the core then runs as pure Python, identically but slower.
`exchange/__init__.py` falls back to the pure-Python source by itself when a compiled module is older than its
source, so an edit is never shadowed by a stale build.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup


def _compiled_modules() -> tuple[str, ...]:
    """`exchange.COMPILED_MODULES`, read from the package's source (importing it here would import the core)."""
    tree = ast.parse(Path(__file__).with_name("exchange").joinpath("__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMPILED_MODULES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("exchange/__init__.py does not define COMPILED_MODULES")


def _extensions() -> list:
    if os.environ.get("EXCHANGE_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    # Assertions stay in: they are the core's cheap invariant checks (TIGER_STYLE), not debug aids.
    return mypycify(
        ["--ignore-missing-imports", *(f"exchange/{name}.py" for name in _compiled_modules())],
        opt_level="3",
        strip_asserts=False,
    )


setup(ext_modules=_extensions())
