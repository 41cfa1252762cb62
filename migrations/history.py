"""Statements of earlier migrations, read back from their files.

A migration that replaces a function or trigger of an earlier one must put it back, word for word, on downgrade.
Reading the statement from the earlier file (its `UPGRADE` tuple) keeps one copy of it; a copy pasted into the later
migration could drift from what was really installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).with_name("versions")


def _load(revision_file: str) -> ModuleType:
    path = VERSIONS / revision_file
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def statements_of(revision_file: str, *beginnings: str) -> list[str]:
    """The one statement of `revision_file`'s `UPGRADE` that begins with each of `beginnings`, in their order."""
    upgrade: tuple[str, ...] = _load(revision_file).UPGRADE
    found = []
    for beginning in beginnings:
        matches = [s for s in upgrade if s.strip().startswith(beginning)]
        assert len(matches) == 1, f"{revision_file} has {len(matches)} statements beginning {beginning!r}, not one"
        found.append(matches[0])
    return found


def as_replacement(statement: str) -> str:
    """A `CREATE FUNCTION` statement as `CREATE OR REPLACE FUNCTION`, to put a function back without dropping it."""
    assert statement.lstrip().startswith("CREATE FUNCTION"), statement[:80]
    return statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
