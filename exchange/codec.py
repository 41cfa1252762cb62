"""Canonical byte encoding of commands and events, and decoding of commands.

The journal stores commands in this form, the hash chain hashes these bytes, and replay compares events in this form,
so the encoding must never depend on anything but the values: a JSON array `[type name, field values in declaration
order]`, enums as their values, dates as ISO strings, nested dataclasses as nested arrays, compact separators, ASCII.
"""

from __future__ import annotations

import dataclasses
import json
import json.encoder
import json.scanner
import operator
import types
import typing
from collections.abc import Callable, Sequence
from datetime import date
from enum import Enum
from typing import Any, Final

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
# The C function `json` itself escapes strings with when `ensure_ascii` is on.
_escape: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _flat_json(name: str, values: Sequence[Any]) -> str | None:
    """`_dumps([name, *values])` for a flat record, written directly: the same text, byte for byte, without the
    encoder's Python-level wrapper around its C core (`JSONEncoder.encode` -> `iterencode` -> join). None when a value
    is not a plain scalar (the caller then uses `_dumps`)."""
    parts = [_escape(name)]
    for value in values:
        if value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        elif type(value) is int:
            parts.append(str(value))
        elif isinstance(value, str):  # str-valued enums included: json writes a str subclass as its text
            parts.append(_escape(value))
        else:
            return None
    return "[" + ",".join(parts) + "]"


def _flat_bytes(name: str, values: Sequence[Any]) -> bytes:
    text = _flat_json(name, values)
    return (text if text is not None else _dumps([name, *values])).encode("ascii")


def encode(value: Any) -> bytes:
    """Canonical bytes of a command or event."""
    cls = type(value)
    if cls in _FLAT:
        return _flat_bytes(cls.__name__, value)
    getter = _FLAT_GETTERS.get(cls)
    if getter is not None:
        return _flat_bytes(cls.__name__, getter(value))
    return _dumps(to_plain(value)).encode("ascii")


# How each field decodes: its kind, whether None is allowed, and for an enum its members by value. A loop over these
# codes (compiled, native integer comparisons) costs a fraction of a converter function called per field.
# Final: compiled, each is a C constant; a plain module global would be a dict lookup at every comparison.
_ANY: Final = 0
_INT: Final = 1
_STR: Final = 2
_BOOL: Final = 3
_ENUM: Final = 4
_DATE: Final = 5
_RECORD: Final = 6
_DICT: Final = 7
FieldSpec = tuple[int, bool, dict[Any, Any] | None]


def _field_spec(hint: Any) -> FieldSpec:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) != 1:
            return (_ANY, True, None)
        kind, _, members = _field_spec(options[0])
        return (kind, True, members)
    if origin is dict:
        return (_DICT, False, None)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return (_ENUM, False, hint._value2member_map_)  # a dict lookup: calling the enum class is ten times slower
        if hint is date:
            return (_DATE, False, None)
        if hint in _FIELDS:
            return (_RECORD, False, None)
        if hint is bool:
            return (_BOOL, False, None)
        if hint is int:
            return (_INT, False, None)
        if hint is str:
            return (_STR, False, None)
    return (_ANY, False, None)


_SPECS: dict[type, tuple[FieldSpec, ...]] = {}


def _specs(cls: type) -> tuple[FieldSpec, ...]:
    found = _SPECS.get(cls)
    if found is None:
        hints = declared.field_hints(cls)
        found = tuple(_field_spec(hints[name]) for name in _FIELDS[cls])
        _SPECS[cls] = found
    return found


_KIND_NAMES = {_INT: "int", _STR: "str", _BOOL: "bool"}


def _field(spec: FieldSpec, value: Any) -> Any:
    kind, optional, members = spec
    if value is None and (optional or kind == _ANY):
        return None
    if kind == _INT or kind == _STR or kind == _BOOL:
        expected = int if kind == _INT else str if kind == _STR else bool
        if type(value) is not expected:
            raise DecodeError(f"expected {_KIND_NAMES[kind]}, got {type(value).__name__}")
        return value
    if kind == _ENUM:
        assert members is not None
        found = members.get(value) if isinstance(value, str) else None
        if found is None:
            raise DecodeError(f"{value!r} is not a {type(next(iter(members.values()))).__name__}")
        return found
    if kind == _DATE:
        if not isinstance(value, str):
            raise DecodeError(f"expected an ISO date, got {type(value).__name__}")
        return date.fromisoformat(value)
    if kind == _RECORD:
        return _from_plain(value)
    if kind == _DICT:
        if not isinstance(value, dict):
            raise DecodeError(f"expected an object, got {type(value).__name__}")
        return dict(value)
    return value


def _from_plain(plain: Any) -> Any:
    if not isinstance(plain, list) or not plain or not isinstance(plain[0], str):
        raise DecodeError("expected [type, fields...]")
    cls = _TYPES.get(plain[0])
    if cls is None:
        raise DecodeError(f"unknown type {plain[0]!r}")
    specs = _specs(cls)
    # Fields are only ever appended, with defaults: a record written before a field existed decodes with its default,
    # so journals stay replayable across versions.
    if not 0 < len(plain) <= len(specs) + 1:
        raise DecodeError(f"{plain[0]} has at most {len(specs)} fields, got {len(plain) - 1}")
    try:
        # Positional: fields are declared in the order they are encoded (and appended ones take their defaults).
        values = []
        for position in range(1, len(plain)):
            values.append(_field(specs[position - 1], plain[position]))
        return cls(*values)
    except (ValueError, TypeError, AssertionError) as exc:
        raise DecodeError(f"invalid {plain[0]}: {exc}") from exc


# The C scanner behind `json.loads`, called directly: canonical bytes are ASCII with no whitespace, so the encoding
# detection and whitespace skipping that `json.loads` wraps around it (in Python) are not needed.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # (typeshed: takes a decoder)


def decode(data: bytes) -> Any:
    """The command or event whose canonical bytes these are."""
    try:
        text = data.decode("ascii")
        plain, end = _scan(text, 0)
    except StopIteration as exc:
        raise DecodeError(f"no JSON value at {exc.value}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DecodeError(str(exc)) from exc
    if end != len(text):
        raise DecodeError(f"extra data at {end}")
    return _from_plain(plain)
