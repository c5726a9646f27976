"""The one JSON body reader of the REST API (docs/protocol.md §1 "Request bodies").

Every `/api/` route that takes a body reads it with `read_json_body(request)`, so malformed
input is refused once, here, with the documented error shape and never reaches a route:

* at most `MAX_BODY_BYTES` bytes (declared or streamed): `413 TOO_LARGE`;
* strict UTF-8 (no byte-order mark, no encoded surrogates): `400 BAD_ENCODING`;
* JSON (RFC 8259) whose top level is an object: `400 MALFORMED`;
* nested at most `MAX_DEPTH` arrays/objects deep: `400 TOO_DEEP`;
* no lone surrogate (`"\\ud800"`) in any key or string, no NUL or other C0 control character
  outside the JSON whitespace the parser already drops: `400 BAD_TEXT`;
* integers of at most `MAX_INTEGER_DIGITS` digits, no `NaN`/`Infinity`, no float beyond the
  double range: `400 BAD_NUMBER`.

`parse_json_body(raw)` is the pure part (bytes in, an object or an `auction.errors.BadInput`
out), fuzzed by `tests/test_fuzz_rest.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from aiohttp import web

from ..errors import Malformed, TimedOut, TooLarge
from .limits import BODY_TIMEOUT_S

#: The largest request body any REST route accepts (bytes).
MAX_BODY_BYTES = 16_384
#: The deepest nesting of arrays and objects a body may have (the top-level object is 1).
MAX_DEPTH = 8
#: The most digits a JSON integer may have (2^63 has 19).
MAX_INTEGER_DIGITS = 19

_SURROGATE_OR_CONTROL = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]")


class _Number(ValueError):
    pass


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _Number(f"an integer of {digits} digits (at most {MAX_INTEGER_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 64:
        raise _Number("a number of more than 64 characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Number(f"{text[:20]} is beyond the range of numbers")
    return value


def _constant(text: str) -> Any:
    raise _Number(f"{text} is not a number JSON allows")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body (empty: `{}`); raise `BadInput` (`Malformed`, `TooLarge`) for
    anything the module docstring lists."""
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(
            f"the request body is not UTF-8 (byte {exc.start})", code="BAD_ENCODING"
        ) from None
    if text.startswith("\ufeff"):
        raise Malformed("the request body starts with a byte-order mark", code="BAD_ENCODING")
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise Malformed(
            f"the request body is nested {depth} deep (at most {MAX_DEPTH})", code="TOO_DEEP"
        )
    try:
        body = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except _Number as exc:
        raise Malformed(f"the request body has {exc}", code="BAD_NUMBER") from None
    except (ValueError, RecursionError):
        raise Malformed("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Malformed("the request body must be a JSON object")
    _check_text(body)
    return body


def _depth(text: str) -> int:
    """The deepest nesting of `[`/`{` outside strings (counted before parsing, so that a
    3,000-deep body never reaches the recursive decoder)."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check_text(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _text_ok(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _text_ok(key)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


def _text_ok(text: str) -> None:
    found = _SURROGATE_OR_CONTROL.search(text)
    if found is not None:
        char = found.group()
        what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise Malformed(
            f"a text of the request body has {what} (U+{ord(char):04X})", code="BAD_TEXT"
        )


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """Read and decode the body of `request` (see `parse_json_body`), reading at most
    `MAX_BODY_BYTES + 1` bytes whatever the client declared, for at most `BODY_TIMEOUT_S`
    seconds (`408 TIMEOUT`)."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise TooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while total <= MAX_BODY_BYTES:
                chunk = await request.content.read(MAX_BODY_BYTES + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except TimeoutError:
        raise TimedOut(
            f"the request body did not arrive within {BODY_TIMEOUT_S:g} seconds"
        ) from None
    return parse_json_body(b"".join(chunks))


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "parse_json_body",
    "read_json_body",
]
