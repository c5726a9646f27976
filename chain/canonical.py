"""Canonical JSON (RFC 8785) for the ledger's grammar, through the C JSON encoder.

The grammar (ledger spec, section 1): objects with string keys, arrays, strings, integers within
the I-JSON range (magnitude at most 2**53 - 1), booleans and null; no floats; nested at most
:data:`MAX_BODY_DEPTH` deep. For it, RFC 8785 is the standard library's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8:

- strings are escaped alike (RFC 8785 3.2.2.2): only ``"``, ``\\`` and the controls U+0000 to
  U+001F, those as ``\\b \\t \\n \\f \\r`` or lowercase ``\\u00xx``; nothing else (not ``/``,
  not U+007F, not non-ASCII) is escaped;
- integers in the I-JSON range are their decimal digits in both (RFC 8785 3.2.2.3);
- keys sorted by code point equal keys sorted by UTF-16 code unit (RFC 8785 3.2.3) unless a key
  holds a character above U+FFFF (its surrogates sort below U+E000..U+FFFF in UTF-16). Such a
  character is a 4-byte UTF-8 sequence (lead byte F0 to F4): any in the output sends the value
  to the reference encoder (the ``rfc8785`` package).

What the C encoder does not check is checked on its output or by one comparison, all at C speed:
floats (read back as floats), NaN and infinities (refused by the encoder), integers that may be
beyond 2**53 - 1 (patterns over the output), nesting (counting brackets), non-string keys (the
read-back copy differs from the input). Anything doubtful takes the reference path, which
validates value by value and raises the precise :class:`MalformedError`; property tests hold
the two equal.

:class:`FrozenObject` is the read-only view an entry gives of its body: it wraps the entry's own
private copy and freezes lazily, one level per access (nested objects as views, arrays as
tuples), instead of freezing and thawing the whole tree.
"""

from __future__ import annotations

import json
import json.encoder
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import rfc8785

from .errors import MalformedError

__all__ = ["MAX_BODY_DEPTH", "MAX_INTEGER", "FrozenObject", "JSONValue"]

MAX_BODY_DEPTH: Final = 32
"""Deepest nesting of arrays and objects allowed in an entry."""
MAX_INTEGER: Final = 2**53 - 1
"""Largest integer magnitude (I-JSON range, RFC 8785)."""

JSONValue: TypeAlias = bool | int | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None

# A 4-byte UTF-8 sequence: a character above U+FFFF, where code-point order and UTF-16 order part.
_ASTRAL: Final = re.compile(rb"[\xf0-\xf4]")
# A number that may be beyond 2**53 - 1 = 9007199254740991 (16 digits): 17 digits or more, or
# 16 starting with 9, where a number may start (searched in b"[" + output, for a bare number).
# Inside a string this can match too (then the reference path decides); it cannot miss a number.
_BIG_NUMBER: Final = re.compile(rb"[:,\[]-?(?:9[0-9]{15}|[0-9]{17})")
# Quicker first look: no run of 17 digits and no number starting with 9 (times in microseconds
# have 16 digits starting with 1 until the year 2255) means no number beyond 2**53 - 1.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_SEVENTEEN_DIGITS: Final = b"0" * 17
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST: Final = re.compile(rb"[\[{][^\[\]{}]*[\]}]")


# --------------------------------------------------------------------------------------------
# Read-only views


class FrozenObject(Mapping[str, "JSONValue"]):
    """A read-only JSON object: nested objects read as :class:`FrozenObject`, arrays as tuples.

    Wraps a private ``dict`` that nothing else holds (an entry's own copy of its body), so it is
    deeply immutable without copying the tree: each read freezes only what it returns. Equality
    is that of the frozen values (a nested array equals a tuple, as with ``MappingProxyType``).
    ``FrozenObject(mapping)`` validates and copies ``mapping`` (:class:`MalformedError`).
    """

    __slots__ = ("_canonical", "_data")

    _data: dict[str, Any]
    _canonical: bytes | None

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        if not isinstance(mapping, Mapping):
            raise MalformedError("a JSON object must be a mapping")
        data, copy = canonical_copy(mapping, 0)
        self._data = copy
        self._canonical = data

    @classmethod
    def _wrap(cls, data: dict[str, Any], canonical: bytes | None) -> FrozenObject:
        view = object.__new__(cls)
        view._data = data
        view._canonical = canonical
        return view

    def __getitem__(self, key: str) -> JSONValue:
        value: JSONValue = _view(self._data[key])
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key`` (frozen), or ``default``."""
        try:
            value = self._data[key]
        except KeyError:
            return default
        return _view(value)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if type(other) is FrozenObject:
            return self._data == other._data
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self) | dict(other)

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(other) | dict(self)

    def copy(self) -> dict[str, JSONValue]:
        """A shallow ``dict`` of the frozen values (as ``MappingProxyType.copy``)."""
        return dict(self)

    def __repr__(self) -> str:
        return f"FrozenObject({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenObject], tuple[dict[str, Any]]]:
        return FrozenObject, (self._data,)


def _view(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return FrozenObject._wrap(value, None)
    if kind is list:
        return tuple(map(_view, value))
    return value


def frozen_body(data: dict[str, Any], canonical: bytes) -> FrozenObject:
    """The view of a private, already validated body ``data`` whose canonical bytes are known."""
    return FrozenObject._wrap(data, canonical)


# --------------------------------------------------------------------------------------------
# Reference path: validate value by value (precise errors), encode with the rfc8785 package


def freeze(value: Any, depth: int) -> JSONValue:
    """Validate ``value`` as the ledger's JSON at nesting ``depth`` and return a frozen copy.

    Raises :class:`MalformedError` naming what is wrong (float, integer range, key type, lone
    surrogate, depth, a type that is not JSON).
    """
    if depth > MAX_BODY_DEPTH:
        raise MalformedError(f"entry nested deeper than {MAX_BODY_DEPTH}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise MalformedError("integer outside the I-JSON range")
        return int(value)
    if isinstance(value, float):
        raise MalformedError("floats are not allowed (money is integer minor units)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedError("string is not valid Unicode") from exc
        return str(value)
    if isinstance(value, FrozenObject):
        value = value._data
    if isinstance(value, Mapping):
        frozen: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedError("object keys must be strings")
            try:
                key.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise MalformedError("object key is not valid Unicode") from exc
            frozen[key] = freeze(item, depth + 1)
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        return tuple(freeze(item, depth + 1) for item in value)
    raise MalformedError(f"{type(value).__name__} is not a JSON value")


def thaw(value: JSONValue) -> Any:
    """A plain, mutable copy (dicts and lists) of a frozen value."""
    if isinstance(value, FrozenObject):
        value = value._data
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    return value


def reference_canonical(value: Any, depth: int) -> tuple[bytes, Any]:
    """Validate (:func:`freeze`) and encode with the ``rfc8785`` package; bytes and a plain copy."""
    plain = thaw(freeze(value, depth))
    try:
        return rfc8785.dumps(plain), plain
    except (ValueError, TypeError) as exc:  # rfc8785.CanonicalizationError is a ValueError
        raise MalformedError(f"not canonicalisable: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Fast path: the C encoder, checked on its output


def _default(value: object) -> object:
    if type(value) is FrozenObject:
        return value._data
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _make_encode() -> Callable[[Any], str]:
    make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # pragma: no cover - no C accelerator: the same encoding in Python
        return json.JSONEncoder(
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
            separators=(",", ":"),
            default=_default,
            check_circular=False,
        ).encode
    # CPython's C encoder, one shot: no circularity markers (RecursionError instead), default,
    # strings as ensure_ascii=False, no indent, ":" and ",", sort_keys, no skipkeys, no NaN.
    encoder = make_encoder(
        None, _default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode: Final = _make_encode()


class _FloatSeen(Exception):
    pass


def _float_seen(text: str) -> Any:
    raise _FloatSeen


_read_back: Final = json.JSONDecoder(parse_float=_float_seen).decode
_read: Final = json.JSONDecoder().decode


def _nesting_fits(data: bytes, depth: int) -> bool:
    """Whether every value inside ``data`` (encoded at ``depth``) is at most MAX_BODY_DEPTH deep.

    Conservative: ``False`` sends the value to the reference path, which decides exactly.
    """
    if depth + data.count(b"[") + data.count(b"{") <= MAX_BODY_DEPTH:
        return True
    structure = _STRING.sub(b"0", data)
    levels = 0
    while True:
        structure, found = _INNERMOST.subn(b"0", structure)
        if not found:
            return True
        levels += 1
        if depth + levels > MAX_BODY_DEPTH:
            return False


def _numbers_fit(data: bytes) -> bool:
    """Whether no number in ``data`` can be beyond 2**53 - 1 (conservative)."""
    if not (
        _SEVENTEEN_DIGITS in data.translate(_DIGITS_AS_ZERO)
        or b":9" in data
        or b",9" in data
        or b"[9" in data
        or b"-9" in data  # also in strings ("lot-9"): then the pattern decides
        or data[:1] == b"9"
    ):
        return True
    return _BIG_NUMBER.search(b"[" + data) is None


def _output_fits(data: bytes, depth: int) -> bool:
    return (
        (data.isascii() or _ASTRAL.search(data) is None)
        and _numbers_fit(data)
        and _nesting_fits(data, depth)
    )


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` is, type by exact type, in the grammar at ``depth`` (conservative).

    None, bools, strings, integers within the I-JSON range, and lists, tuples and dicts of those
    with string keys, no container deeper than MAX_BODY_DEPTH - 1. Quicker than reading the
    output back for small values; anything else (subclasses, other mappings) answers ``False``.
    """
    kind = type(value)
    if kind is dict:
        if depth >= MAX_BODY_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str or not _plain_item(item, depth):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_BODY_DEPTH:
            return False
        return all(_plain_item(item, depth) for item in value)
    return _plain_item(value, depth - 1)


def _plain_item(item: Any, depth: int) -> bool:
    """:func:`_plain` for a member of a container at ``depth`` (scalars without recursion)."""
    kind = type(item)
    if kind is str or kind is bool or item is None:
        return True
    if kind is int:
        return bool(-MAX_INTEGER <= item <= MAX_INTEGER)
    if kind is dict or kind is list or kind is tuple:
        return _plain(item, depth + 1)
    return False


def canonical_trusted(value: Any, depth: int) -> bytes:
    """RFC 8785 bytes of ``value`` known to hold only JSON types with string keys and no floats.

    For values read by ``json.loads`` (floats and constants refused) or held by a
    :class:`FrozenObject`. Integer range and nesting are still checked (:class:`MalformedError`).
    """
    try:
        data = _encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        return reference_canonical(value, depth)[0]
    if _output_fits(data, depth):
        return data
    return reference_canonical(value, depth)[0]


def canonical_copy(value: Any, depth: int) -> tuple[bytes, Any]:
    """RFC 8785 bytes of any ``value`` at nesting ``depth``, and a private plain copy of it.

    Raises :class:`MalformedError` if ``value`` is not in the ledger's JSON grammar.
    """
    if type(value) is FrozenObject:
        # Validated when made and never changed: its data can be shared.
        return canonical(value, depth), value._data
    try:
        text = _encode(value)
        data = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        return reference_canonical(value, depth)
    if _plain(value, depth):
        # Types checked one by one: only key order (astral characters) may still differ.
        if data.isascii() or _ASTRAL.search(data) is None:
            return data, _read(text)
        return reference_canonical(value, depth)
    if _output_fits(data, depth):
        # Other mappings, subclasses, views inside: read the output back and compare.
        try:
            copy = _read_back(text)
            same = bool(copy == value)
        except (_FloatSeen, RecursionError, TypeError, ValueError):
            same = False
        if same:
            return data, copy
    return reference_canonical(value, depth)


def canonical(value: Any, depth: int = 0) -> bytes:
    """RFC 8785 bytes of any ``value`` at ``depth`` (:class:`MalformedError` if not JSON)."""
    if type(value) is FrozenObject:
        # Validated when made; a view inside a body is as deep as its body allowed.
        held = value._canonical
        if held is not None and _nesting_fits(held, depth):
            return held
        return canonical_trusted(value._data, depth)
    if _plain(value, depth):
        # Types checked one by one: only strings (lone surrogates) and key order may still fail.
        try:
            data = _encode(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
            return reference_canonical(value, depth)[0]
        if data.isascii() or _ASTRAL.search(data) is None:
            return data
        return reference_canonical(value, depth)[0]
    return canonical_copy(value, depth)[0]
