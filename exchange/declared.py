"""The declared field types of the records the codec writes (commands, events, instruments), read from their source.

`typing.get_type_hints` reads `__annotations__`, which a class compiled by mypyc keeps only in erased form (a field
declared `int | None` reports `type`). The codec needs the declared types (to decode enums, dates, nested records and
to check scalars strictly), so it reads them here, from the annotations as written in the module's source, and gets
the same answer whether the core runs compiled or from source.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

_BY_MODULE: dict[str, dict[str, dict[str, str]]] = {}


def _source_of(module_name: str) -> Path:
    location = Path(sys.modules[module_name].__file__ or "")
    # A compiled module is `name.cpython-311-x86_64-linux-gnu.so`; its source `name.py` ships beside it.
    return location.with_name(location.name.split(".", 1)[0] + ".py")


def _class_annotations(module_name: str) -> dict[str, dict[str, str]]:
    """Per top-level class of the module: field name -> annotation text, in declaration order."""
    found = _BY_MODULE.get(module_name)
    if found is None:
        tree = ast.parse(_source_of(module_name).read_text(encoding="utf-8"))
        found = {
            node.name: {
                statement.target.id: ast.unparse(statement.annotation)
                for statement in node.body
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            }
            for node in tree.body
            if isinstance(node, ast.ClassDef)
        }
        _BY_MODULE[module_name] = found
    return found


def field_hints(cls: type) -> dict[str, Any]:
    """Field name -> declared type of a top-level dataclass or NamedTuple, evaluated in its module (as
    `typing.get_type_hints` would evaluate the same strings)."""
    annotations = _class_annotations(cls.__module__).get(cls.__name__)
    if annotations is None:
        raise TypeError(f"{cls.__module__}.{cls.__name__} is not a top-level class of its module's source")
    namespace = vars(sys.modules[cls.__module__])
    return {name: eval(text, namespace) for name, text in annotations.items()}  # noqa: S307 - our own source
