"""Canonical byte encoding of commands and events, and decoding of commands.

The journal stores commands in this form, the hash chain hashes these bytes, and replay compares events in this form,
so the encoding must never depend on anything but the values: a JSON array `[type name, field values in declaration
order]`, enums as their values, dates as ISO strings, nested dataclasses as nested arrays, compact separators, ASCII.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import types
import typing
from collections.abc import Callable
from datetime import date
from enum import Enum
from typing import Any

from exchange import commands, declared, events
from exchange.instrument import BondTerms, Instrument

def _is_record(obj: object) -> bool:
    """A dataclass (commands, instruments) or a NamedTuple (events)."""
    return isinstance(obj, type) and (
        dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields"))
    )


def _field_names(cls: type) -> tuple[str, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return tuple(cls._fields)  # type: ignore[attr-defined]


_TYPES: dict[str, type] = {}
for _module in (commands, events):
    for _name in dir(_module):
        _obj = getattr(_module, _name)
        if _is_record(_obj) and _obj.__module__ == _module.__name__:
            _TYPES[_name] = _obj
_TYPES["Instrument"] = Instrument
_TYPES["BondTerms"] = BondTerms

_FIELDS: dict[type, tuple[str, ...]] = {cls: _field_names(cls) for cls in _TYPES.values()}


class DecodeError(ValueError):
    """The bytes are not a canonical encoding of a known command or event."""


def to_plain(value: Any) -> Any:
    """The JSON-ready form of a value (recursively)."""
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, Enum):
            return value.value
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    cls = type(value)
    fields = _FIELDS.get(cls)
    if fields is not None:
        return [cls.__name__, *(to_plain(getattr(value, name)) for name in fields)]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    raise TypeError(f"cannot encode {cls.__name__}")


# Events are flat records of ints, strs, bools, None and str-valued enums, which `json` writes as their values: they
# skip the generic walk (the same bytes, about twice as fast; events are encoded on the hot path of every command).
# Flat commands (every field an int, str, bool, None or str-valued enum) are read with one C-level attrgetter.
_FLAT: frozenset[type] = frozenset(cls for cls in _TYPES.values() if hasattr(cls, "_fields"))
_SCALARS = (int, str, bool, type(None))


def _is_flat_hint(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_is_flat_hint(arg) for arg in typing.get_args(hint))
    return isinstance(hint, type) and (issubclass(hint, _SCALARS) or (issubclass(hint, Enum) and issubclass(hint, str)))


_FLAT_GETTERS: dict[type, Any] = {}
for _cls, _names in _FIELDS.items():
    if _cls not in _FLAT and _names and all(_is_flat_hint(h) for h in declared.field_hints(_cls).values()):
        _FLAT_GETTERS[_cls] = operator.attrgetter(*_names) if len(_names) > 1 else (
            lambda v, _n=_names[0]: (getattr(v, _n),)
        )
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def encode(value: Any) -> bytes:
    """Canonical bytes of a command or event."""
    cls = type(value)
    if cls in _FLAT:
        return _dumps([cls.__name__, *value]).encode("ascii")
    getter = _FLAT_GETTERS.get(cls)
    if getter is not None:
        return _dumps([cls.__name__, *getter(value)]).encode("ascii")
    return _dumps(to_plain(value)).encode("ascii")


def _converter(hint: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _converter(options[0]) if len(options) == 1 else (lambda v: v)
        return lambda v: None if v is None else inner(v)
    if origin is dict:
        return lambda v: dict(v)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            members = hint._value2member_map_  # a dict lookup: calling the enum class is ten times slower

            def member(value: Any, _members: dict = members, _enum: type = hint) -> Any:
                found = _members.get(value) if isinstance(value, str) else None
                if found is None:
                    raise DecodeError(f"{value!r} is not a {_enum.__name__}")
                return found

            return member
        if hint is date:
            return date.fromisoformat
        if hint in _FIELDS:
            return _from_plain
        if hint is bool:
            return _strict(bool)
        if hint is int:
            return _strict(int)
        if hint is str:
            return _strict(str)
    return lambda v: v


def _strict(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise DecodeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return check


_CONVERTERS: dict[type, tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _converters(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    found = _CONVERTERS.get(cls)
    if found is None:
        hints = declared.field_hints(cls)
        found = tuple((name, _converter(hints[name])) for name in _FIELDS[cls])
        _CONVERTERS[cls] = found
    return found


def _from_plain(plain: Any) -> Any:
    if not isinstance(plain, list) or not plain or not isinstance(plain[0], str):
        raise DecodeError("expected [type, fields...]")
    cls = _TYPES.get(plain[0])
    if cls is None:
        raise DecodeError(f"unknown type {plain[0]!r}")
    converters = _converters(cls)
    # Fields are only ever appended, with defaults: a record written before a field existed decodes with its default,
    # so journals stay replayable across versions.
    if not 0 < len(plain) <= len(converters) + 1:
        raise DecodeError(f"{plain[0]} has at most {len(converters)} fields, got {len(plain) - 1}")
    try:
        # Positional: fields are declared in the order they are encoded (and appended ones take their defaults).
        return cls(*[convert(v) for (_, convert), v in zip(converters, plain[1:], strict=False)])
    except (ValueError, TypeError, AssertionError) as exc:
        raise DecodeError(f"invalid {plain[0]}: {exc}") from exc


def decode(data: bytes) -> Any:
    """The command or event whose canonical bytes these are."""
    try:
        plain = json.loads(data)
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc
    return _from_plain(plain)
