"""The client protocol's pure core (`docs/protocol.md`): parsing, signatures, limits (sans-I/O).

The websocket adapter feeds raw frames in and sends what comes out; nothing here touches a
socket, a clock or the database. Parse failures raise `ProtocolViolation` carrying the close
code the adapter must use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import canonical_json

from .errors import BadInput
from .rules import MAX_AMOUNT

VERSION: Final = 1
MAX_FRAME_BYTES: Final = 4096
BID_REQUEST_PREFIX: Final = b"gavel/bid-request/v1\n"
_CURRENCY: Final = re.compile(r"[A-Z]{3}")

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


@dataclass(frozen=True, slots=True)
class BidRequest:
    """A signed bid or proxy maximum (`kind` is "bid" or "max")."""

    lot: str
    kind: str
    amount: int
    currency: str
    idempotency_key: str
    signature: bytes

    def signed_payload(self, account: str) -> dict[str, Any]:
        """The object the bidder signed (docs/protocol.md §2.4)."""
        return {
            "account": account,
            "amount": self.amount,
            "currency": self.currency,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "lot": self.lot,
        }

    def fingerprint(self) -> str:
        """Identifies the request's terms, to tell a resend from a conflicting reuse of a key."""
        terms = f"{self.lot}\n{self.kind}\n{self.amount}\n{self.currency}"
        return hashlib.sha256(terms.encode()).hexdigest()


ClientMessage = Hello | TimeRequest | Subscribe | Unsubscribe | Ping | BidRequest


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
        bid_kind = _field(message, "kind", str)
        if bid_kind not in ("bid", "max"):
            raise ProtocolViolation(CLOSE_PROTOCOL, "'kind' must be 'bid' or 'max'")
        amount = _field(message, "amount", int)
        if not 0 < amount <= MAX_AMOUNT:
            raise ProtocolViolation(CLOSE_PROTOCOL, "'amount' must be positive minor units")
        currency = _field(message, "currency", str)
        if not _CURRENCY.fullmatch(currency):
            raise ProtocolViolation(CLOSE_PROTOCOL, "'currency' must be an ISO 4217 code")
        try:
            signature = base64.b64decode(_field(message, "sig", str), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolViolation(CLOSE_PROTOCOL, "'sig' must be base64") from exc
        return BidRequest(
            lot=_short_text(message, "lot"),
            kind=bid_kind,
            amount=amount,
            currency=currency,
            idempotency_key=_short_text(message, "idempotency_key"),
            signature=signature,
        )
    raise ProtocolViolation(CLOSE_PROTOCOL, f"unknown message type {kind!r}")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def signed_bytes(payload: dict[str, Any]) -> bytes:
    """What a bidder's key signs: the prefix and the canonical JSON of the signed request."""
    return BID_REQUEST_PREFIX + canonical_json(payload)


def verify_bid_signature(request: BidRequest, account: str, public_key: bytes) -> bool:
    """True when the account's key signed exactly this request."""
    if len(request.signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            request.signature, signed_bytes(request.signed_payload(account))
        )
    except (InvalidSignature, ValueError):
        return False
    return True


class TokenBucket:
    """A per-session rate limit: `rate` tokens a second, bursts up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "updated_us")

    def __init__(self, rate: float, burst: float, now_us: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated_us = now_us

    def level(self, now_us: int) -> float:
        """The tokens there would be at `now_us` (nothing is taken)."""
        elapsed = max(0, now_us - self.updated_us) / 1_000_000
        return min(self.burst, self.tokens + elapsed * self.rate)

    def take(self, now_us: int) -> bool:
        self.tokens = self.level(now_us)
        self.updated_us = max(self.updated_us, now_us)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_s(self, now_us: int) -> float:
        """Seconds from `now_us` until a token is there (0: one is there now)."""
        missing = 1 - self.level(now_us)
        return 0.0 if missing <= 0 else missing / self.rate


class IdempotencyIndex:
    """Keys seen per (account, lot), with the fingerprint of their terms and the answer sent.

    `check` tells the adapter whether a request is new, a resend (answer with the stored ack)
    or a conflicting reuse. Answers are kept as their JSON text (a third of the dict's size).
    Bounded: the oldest keys are forgotten first (`capacity`), and `forget_lot` drops a closed
    lot's keys; the ledger keeps them all, so an auditor can still see every request.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, account: str, request: BidRequest) -> tuple[str, dict[str, Any] | None]:
        """("new", None), ("resend", ack or None if still pending) or ("conflict", None)."""
        key = (account, request.lot, request.idempotency_key)
        seen = self._seen.get(key)
        if seen is None:
            return "new", None
        fingerprint, ack = seen
        if fingerprint != request.fingerprint():
            return "conflict", None
        return "resend", None if ack is None else json.loads(ack)

    def reserve(self, account: str, request: BidRequest) -> None:
        self._store(account, request, None)

    def forget(self, account: str, request: BidRequest) -> None:
        """Drop a reserved key whose request never reached the engine (it failed before being
        stored), so that a resend is treated as new."""
        self._seen.pop((account, request.lot, request.idempotency_key), None)

    def complete(self, account: str, request: BidRequest, ack: dict[str, Any]) -> None:
        key = (account, request.lot, request.idempotency_key)
        if key in self._seen:
            self._seen[key] = (request.fingerprint(), json.dumps(ack, ensure_ascii=False))

    def remember(self, account: str, request: BidRequest, ack: dict[str, Any]) -> None:
        """Know a request answered before a restart (read back from the ledger)."""
        self._store(account, request, json.dumps(ack, ensure_ascii=False))

    def forget_lot(self, lot: str) -> int:
        """Drop every key of `lot` (it closed a while ago); returns how many."""
        keys = [key for key in self._seen if key[1] == lot]
        for key in keys:
            del self._seen[key]
        return len(keys)

    def _store(self, account: str, request: BidRequest, ack: str | None) -> None:
        key = (account, request.lot, request.idempotency_key)
        self._seen[key] = (request.fingerprint(), ack)
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


def time_reply(t0: int | float, server_time_us: int) -> dict[str, Any]:
    """Rules C15: the server's half of the NTP-like exchange."""
    return {"type": "time", "t0": t0, "server_time_us": server_time_us}
