"""Keyset paging over SQL: optional filters become numbered query parameters, a page asks for one row more than it
shows, and the next cursor is the key of the last row shown when there was more.

Keyset rather than OFFSET: a page costs the same at the millionth order as at the first, and rows appended while a
client pages (the market keeps trading) never shift or repeat what it already saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

Row = TypeVar("Row")


@dataclass(slots=True)
class Filters:
    """The WHERE clause of a query and its parameters, numbered in the order they are added."""

    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        """A new parameter holding `value`: its placeholder (`$n`)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, template: str, value: Any = None) -> None:
        """Filter by `template` with `value` as its parameter (`{0}` in the template, as often as needed); nothing
        when `value` is None. A template without `{0}` is a fixed condition."""
        if "{0}" not in template:
            self.clauses.append(template)
        elif value is not None:
            self.clauses.append(template.format(self.param(value)))

    def where(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def split_page(rows: Sequence[Row], limit: int, key: Callable[[Row], str]) -> tuple[list[Row], str | None]:
    """The rows to show of a query that asked for `limit + 1`, and the next cursor (None on the last page)."""
    page = list(rows[:limit])
    return page, (key(page[-1]) if len(rows) > limit and page else None)
