"""Commands, events and lot rules to and from plain JSON-ready values, and back.

`encode(value)` gives a dict with a `"type"` key naming the class; `decode(dict)` rebuilds the
frozen value (running its validation), or raises `CodecError`. Enums travel as their values,
frozensets as sorted lists, tuples as lists. Only registered types decode.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any

from .commands import COMMAND_TYPES
from .config import LotRules, SoftClose
from .errors import CodecError, RulesError
from .events import EVENT_TYPES
from .increments import Fixed, Ladder, Table

REGISTRY: dict[str, type] = {
    cls.__name__: cls
    for cls in (*COMMAND_TYPES, *EVENT_TYPES, LotRules, SoftClose, Fixed, Table, Ladder)
}


def encode(value: Any) -> Any:
    """A JSON-ready rendering of a command, event, rules value or plain value."""
    names = _field_names(type(value))  # type: ignore[arg-type]
    if names is not None:
        out: dict[str, Any] = {"type": type(value).__name__}
        for name in names:
            item = getattr(value, name)
            # fast path for the scalars that make up most of every command and event
            out[name] = item if type(item) in _SCALARS else encode(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(encode(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise CodecError(f"cannot encode {type(value).__name__}")


_SCALARS = frozenset({int, str, bool, type(None)})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type (cached: `dataclasses.fields` is slow), or None."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def decode(data: Any) -> Any:
    """Rebuild a registered value from `encode`'s output. Raises `CodecError`."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise CodecError("expected an object with a 'type'")
    cls = REGISTRY.get(data["type"])
    if cls is None:
        raise CodecError(f"unknown type {data['type']!r}")
    return _build(cls, data)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names - {"type"}
    if unknown:
        raise CodecError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    for name in names:
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{cls.__name__}.{name}")
    try:
        return cls(**kwargs)
    except RulesError:
        raise
    except (TypeError, ValueError) as exc:
        raise CodecError(f"{cls.__name__}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        if isinstance(value, dict) and "type" in value:
            return decode(value)
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except CodecError:
                continue
        raise CodecError(f"{where}: {value!r} fits none of {options}")
    if origin is frozenset:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise CodecError(f"{where}: expected a list")
        return frozenset(_convert(inner, v, where) for v in value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise CodecError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise CodecError(f"{where}: expected {len(args)} items")
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError as exc:
            raise CodecError(f"{where}: {exc}") from exc
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise CodecError(f"{where}: expected an object")
        return decode(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise CodecError(f"{where}: expected a boolean")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"{where}: expected an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise CodecError(f"{where}: expected a string")
        return value
    if hint is type(None):
        if value is not None:
            raise CodecError(f"{where}: expected null")
        return None
    if hint is typing.Any:
        return value
    raise CodecError(f"{where}: unsupported type {hint!r}")
