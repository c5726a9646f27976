"""The client protocol's messages (`docs/protocol.md`): parsing and limits (sans-I/O).

The websocket adapter feeds raw frames in and sends what comes out; nothing here
touches a socket, a clock or the database. Parse failures raise `ProtocolViolation`
carrying the close code the adapter must use.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from ..errors import BadInput
from ..verify import BidMalformed, SignedBid

VERSION: Final = 1

MAX_FRAME_BYTES: Final = 4096

CLOSE_NORMAL: Final = 1000

CLOSE_TOO_BIG: Final = 1009

CLOSE_PROTOCOL: Final = 4000

CLOSE_VERSION: Final = 4001

CLOSE_UNAUTHORIZED: Final = 4003

CLOSE_ABUSE: Final = 4008

CLOSE_REPLACED: Final = 4009


class ProtocolViolation(BadInput):
    """The peer broke the protocol; close the connection with `close_code`."""

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.message = message


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    session: str | None


@dataclass(frozen=True, slots=True)
class TimeRequest:
    t0: int | float


@dataclass(frozen=True, slots=True)
class Subscribe:
    lot: str
    since_seq: int


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    lot: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = Hello | TimeRequest | Subscribe | Unsubscribe | Ping | SignedBid


def _field(message: dict[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    if name not in message:
        if optional:
            return None
        raise ProtocolViolation(CLOSE_PROTOCOL, f"missing field {name!r}")
    value = message[name]
    if value is None and optional:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ProtocolViolation(CLOSE_PROTOCOL, f"{name!r} must be an integer")
    if kind is not int and not isinstance(value, kind):
        raise ProtocolViolation(CLOSE_PROTOCOL, f"{name!r} must be a {kind.__name__}")
    return value


def _short_text(message: dict[str, Any], name: str, limit: int = 128) -> str:
    value = _field(message, name, str)
    if not value or len(value) > limit or not value.isprintable():
        raise ProtocolViolation(CLOSE_PROTOCOL, f"{name!r} must be 1..{limit} printable chars")
    return str(value)


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """One websocket text frame → a typed message. Raises `ProtocolViolation` only."""
    size = len(frame)
    if isinstance(frame, str) and size * 4 > MAX_FRAME_BYTES:  # may need up to 4 bytes a char
        size = len(frame.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        raise ProtocolViolation(CLOSE_TOO_BIG, f"frames are at most {MAX_FRAME_BYTES} bytes")
    try:
        message = json.loads(frame, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolViolation(CLOSE_PROTOCOL, "not valid JSON") from exc
    if not isinstance(message, dict):
        raise ProtocolViolation(CLOSE_PROTOCOL, "a message is a JSON object")
    kind = message.get("type")
    if kind == "hello":
        version = _field(message, "v", int)
        session = _field(message, "session", str, optional=True)
        if session is not None and (len(session) > 512 or not session.isprintable()):
            raise ProtocolViolation(CLOSE_PROTOCOL, "malformed session")
        return Hello(version, session)
    if kind == "time":
        t0 = message.get("t0")
        if isinstance(t0, bool) or not isinstance(t0, (int, float)) or not 0 <= t0 < 1e16:
            raise ProtocolViolation(CLOSE_PROTOCOL, "'t0' must be a number of milliseconds")
        return TimeRequest(t0)
    if kind == "subscribe":
        since = _field(message, "since_seq", int, optional=True) or 0
        if since < 0:
            raise ProtocolViolation(CLOSE_PROTOCOL, "'since_seq' must be ≥ 0")
        return Subscribe(_short_text(message, "lot"), since)
    if kind == "unsubscribe":
        return Unsubscribe(_short_text(message, "lot"))
    if kind == "ping":
        return Ping()
    if kind == "bid":
        fields = {name: _field(message, name, str) for name in ("lot", "kind", "currency")}
        amount = _field(message, "amount", int)
        idempotency_key = _field(message, "idempotency_key", str)
        try:
            signature = base64.b64decode(_field(message, "sig", str), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolViolation(CLOSE_PROTOCOL, "'sig' must be base64") from exc
        try:
            return SignedBid(
                amount=amount, idempotency_key=idempotency_key, signature=signature, **fields
            )
        except BidMalformed as exc:  # the terms are checked once, by the value
            raise ProtocolViolation(CLOSE_PROTOCOL, exc.message) from exc
    raise ProtocolViolation(CLOSE_PROTOCOL, f"unknown message type {kind!r}")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def time_reply(t0: int | float, server_time_us: int) -> dict[str, Any]:
    """Rules C15: the server's half of the NTP-like exchange."""
    return {"type": "time", "t0": t0, "server_time_us": server_time_us}
