"""The pure matching core: instruments, orders, books, matching, auctions, risk and events (no I/O, no clock).

Its hot modules are compiled with mypyc when the project is installed (see setup.py); the compiled modules are the
same typed source, built into C extensions that sit next to it. When any of them is missing or older than its source
(an edit since the last install) the whole core is imported from source instead, with a warning, so that a stale
build never shadows an edit and compiled and interpreted modules never mix. EXCHANGE_PURE=1 forces the source.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path

# setup.py compiles exactly these (it reads this tuple from this file).
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

_HERE = Path(__file__).resolve().parent


def _built(name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def _compiled_state() -> tuple[bool, str | None]:
    """(use the compiled modules, why not when there are some but they cannot be used)."""
    if os.environ.get("EXCHANGE_PURE", "") not in ("", "0"):
        return False, None
    built = {name: _built(name) for name in COMPILED_MODULES}
    if not any(built.values()):
        return False, None
    # mypyc puts the code of all the modules in one shared library beside the package (`<hash>__mypyc...`); each
    # module's own extension is a small shim that an incremental build may leave untouched.
    shared = [path.stat().st_mtime for path in _HERE.parent.glob("*__mypyc.*")]
    for name, path in built.items():
        if path is None:
            return False, f"exchange/{name} has no compiled module while others have"
        built_at = max([path.stat().st_mtime, *shared])
        if built_at < (_HERE / f"{name}.py").stat().st_mtime:
            return False, f"exchange/{name}.py changed after it was compiled"
    return True, None


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Imports the compiled modules of the core from their `.py` source, ignoring the C extensions beside them."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")


COMPILED, _stale_reason = _compiled_state()
if not COMPILED:
    sys.meta_path.insert(0, _SourceFirst())
    if _stale_reason is not None:
        warnings.warn(
            f"running the matching core from source (slower): {_stale_reason}; "
            "rebuild it with `pip install -e .` (./scripts/test and ./scripts/run do this by themselves)",
            RuntimeWarning,
            stacklevel=2,
        )
