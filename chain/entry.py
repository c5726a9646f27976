"""Ledger entries: one canonical JSON object (RFC 8785) per leaf of the tree.

Fields (ledger spec, section 1)::

    {"actor": {"kid": ..., "sig": base64}, "body": {...}, "prev": base64 | "",
     "seq": n, "t": "2026-11-25T11:17:05.123456Z", "type": "bid", "v": "gavel/entry/v1"}

- ``seq`` is the leaf index, ``prev`` the base64 leaf hash of entry ``seq - 1`` (empty for 0): a
  hash chain inside the tree; ``t`` the server ingress time, RFC 3339 UTC with exactly six
  fractional digits (held as integer microseconds, :func:`format_time` / :func:`parse_time`).
- ``actor.sig`` is the acting party's Ed25519 signature over ``b"gavel/<type>/v1\\n" + JCS(body)``
  (:func:`actor_message`); ``actor.kid`` names the key, which the caller resolves.
- No floats anywhere (money is integer minor units plus a currency), integers within the
  I-JSON range, at most 16 KiB, nesting at most 32 deep.

The log builds entries with :func:`build_entry` (or :class:`Entry` and :func:`sign_actor`) and
stores :meth:`Entry.to_bytes`; a notary or auditor calls :func:`parse_entry` on stored bytes
(it rejects anything non-canonical, so each entry has exactly one encoding and one leaf hash),
then :func:`verify_chain` and :func:`verify_actor`. The meaning of ``body`` per type is checked by
the auction rules, not here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import (
    MAX_BODY_DEPTH,
    MAX_INTEGER,
    FrozenObject,
    JSONValue,
    canonical,
    canonical_copy,
    canonical_trusted,
    frozen_body,
)
from .errors import ActorSignatureError, EntryError, MalformedError, TooLargeError
from .hashing import HASH_SIZE, leaf_hash

__all__ = [
    "ENTRY_VERSION",
    "MAX_BODY_DEPTH",
    "MAX_ENTRY_BYTES",
    "MAX_TIME_US",
    "Actor",
    "Entry",
    "EntryType",
    "FrozenObject",
    "JSONValue",
    "actor_message",
    "build_entry",
    "canonical_json",
    "format_time",
    "parse_entry",
    "parse_time",
    "sign_actor",
    "verify_actor",
    "verify_chain",
    "verify_successor",
]

ENTRY_VERSION: Final = "gavel/entry/v1"
MAX_ENTRY_BYTES: Final = 16 * 1024
"""Entries larger than this (canonical bytes) are rejected."""
MAX_KID_LENGTH: Final = 256
MAX_SEQ: Final = MAX_INTEGER
"""Largest ``seq`` (I-JSON integer range, RFC 8785)."""
MAX_TIME_US: Final = 253402300799999999
"""9999-12-31T23:59:59.999999Z in microseconds since the epoch."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_TIME_PATTERN = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})Z"
)
_FIELDS = frozenset({"v", "seq", "prev", "t", "type", "body", "actor"})
_ACTOR_FIELDS = frozenset({"kid", "sig"})
_KID_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VERSION_TAIL = b'","v":"' + ENTRY_VERSION.encode("ascii") + b'"}'


class EntryType(StrEnum):
    """The entry types of the ledger spec (section 1)."""

    HOUSE = "house"
    LOT = "lot"
    LOT_STATE = "lot_state"
    IDV = "idv"
    REGISTRATION = "registration"
    BID = "bid"
    SALE = "sale"
    DEPOSIT = "deposit"
    STREAM_SEGMENT = "stream_segment"
    DOCUMENT = "document"
    KEY = "key"
    NOTARY_SET = "notary_set"
    REVEAL = "reveal"


# --------------------------------------------------------------------------------------------
# Time


def format_time(time_us: int) -> str:
    """Format integer microseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if isinstance(time_us, bool) or not isinstance(time_us, int):
        raise MalformedError("time must be integer microseconds")
    if not 0 <= time_us <= MAX_TIME_US:
        raise MalformedError("time out of range (1970 to 9999)")
    moment = _EPOCH + timedelta(microseconds=time_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """Parse RFC 3339 UTC with exactly six fractional digits and ``Z``; return microseconds.

    Rejects other offsets, other precisions, leap seconds and impossible dates
    (:class:`MalformedError`).
    """
    if not isinstance(text, str) or len(text) != 27:
        raise MalformedError("time must look like 2026-11-25T11:17:05.123456Z")
    match = _TIME_PATTERN.fullmatch(text)
    if match is None:
        raise MalformedError("time must look like 2026-11-25T11:17:05.123456Z")
    year, month, day, hour, minute, second, micro = (int(part) for part in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise MalformedError("time is not a valid date and time") from exc
    time_us = (moment - _EPOCH) // _ONE_MICROSECOND
    if not 0 <= time_us <= MAX_TIME_US:
        raise MalformedError("time before 1970")
    return time_us


# --------------------------------------------------------------------------------------------
# JSON values


def canonical_json(value: JSONValue) -> bytes:
    """Return the RFC 8785 (JCS) encoding of a JSON value without floats.

    Raises :class:`MalformedError` for floats, out-of-range integers, non-string keys, lone
    surrogates or nesting deeper than :data:`MAX_BODY_DEPTH`.
    """
    return canonical(value, 0)


def actor_message(entry_type: EntryType | str, body: Mapping[str, JSONValue]) -> bytes:
    """What the actor signs: ``b"gavel/<type>/v1\\n" + JCS(body)`` (domain separated by type)."""
    kind = EntryType(entry_type) if not isinstance(entry_type, EntryType) else entry_type
    return b"gavel/" + kind.value.encode("ascii") + b"/v1\n" + canonical_json(body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, size: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError(f"{what} is not base64") from exc
    if len(raw) != size or _b64(raw) != text:
        raise MalformedError(f"{what} must be {size} bytes of canonical base64")
    return raw


# --------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: key id ``kid`` (resolved by the caller) and the 64-byte Ed25519 ``sig``."""

    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not 1 <= len(self.kid) <= MAX_KID_LENGTH:
            raise MalformedError("actor kid must be 1 to 256 characters")
        if _KID_CONTROL.search(self.kid) is not None:
            raise MalformedError("actor kid contains a control character")
        try:
            self.kid.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedError("actor kid is not valid Unicode") from exc
        if not isinstance(self.sig, bytes) or len(self.sig) != 64:
            raise MalformedError("actor sig must be a 64-byte Ed25519 signature")


def _check_position(seq: Any, prev: Any, time_us: Any) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise MalformedError("seq must be an integer")
    if not 0 <= seq <= MAX_SEQ:
        raise MalformedError("seq out of range")
    if not isinstance(prev, bytes):
        raise MalformedError("prev must be bytes")
    if seq == 0 and prev != b"":
        raise MalformedError("entry 0 has an empty prev")
    if seq > 0 and len(prev) != HASH_SIZE:
        raise MalformedError("prev must be the 32-byte leaf hash of the previous entry")
    if isinstance(time_us, bool) or not isinstance(time_us, int):
        raise MalformedError("time must be integer microseconds")
    if not 0 <= time_us <= MAX_TIME_US:
        raise MalformedError("time out of range (1970 to 9999)")


def _entry_bytes(
    seq: int, prev: bytes, t: str, kind: EntryType, body: bytes, actor: Actor
) -> bytes:
    """The RFC 8785 encoding of an entry from its parts (keys in UTF-16 order, all ASCII)."""
    return b"".join(
        (
            b'{"actor":{"kid":',
            json.encoder.encode_basestring(actor.kid).encode("utf-8"),  # no controls in a kid
            b',"sig":"',
            base64.b64encode(actor.sig),
            b'"},"body":',
            body,
            b',"prev":"',
            base64.b64encode(prev),
            b'","seq":',
            str(seq).encode("ascii"),
            b',"t":"',
            t.encode("ascii"),
            b'","type":"',
            kind.value.encode("ascii"),
            _VERSION_TAIL,
        )
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry, validated and deep-frozen at construction.

    ``prev`` is the 32-byte leaf hash of entry ``seq - 1`` (``b""`` for ``seq == 0``);
    ``time_us`` the server ingress time in microseconds; ``body`` a read-only JSON object
    (:class:`FrozenObject`: nested objects read as read-only views, arrays as tuples).
    The canonical bytes are made once, here. Raises :class:`MalformedError` /
    :class:`TooLargeError`.
    """

    seq: int
    prev: bytes
    time_us: int
    type: EntryType
    body: Mapping[str, JSONValue] = field(hash=False)
    actor: Actor
    _encoded: bytes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_position(self.seq, self.prev, self.time_us)
        try:
            kind = EntryType(self.type)
        except ValueError as exc:
            raise MalformedError("unknown entry type") from exc
        object.__setattr__(self, "type", kind)
        if not isinstance(self.body, Mapping):
            raise MalformedError("body must be a JSON object")
        body_bytes, body = canonical_copy(self.body, 1)
        object.__setattr__(self, "body", frozen_body(body, body_bytes))
        if not isinstance(self.actor, Actor):
            raise MalformedError("actor must be an Actor")
        encoded = _entry_bytes(
            self.seq, self.prev, format_time(self.time_us), kind, body_bytes, self.actor
        )
        if len(encoded) > MAX_ENTRY_BYTES:
            raise TooLargeError(f"entry larger than {MAX_ENTRY_BYTES} bytes")
        object.__setattr__(self, "_encoded", encoded)

    @property
    def t(self) -> str:
        """The ``t`` field as RFC 3339 text."""
        return format_time(self.time_us)

    def to_json(self) -> dict[str, Any]:
        """The entry as plain JSON-able Python objects (fresh, mutable copies)."""
        return {
            "v": ENTRY_VERSION,
            "seq": self.seq,
            "prev": _b64(self.prev) if self.prev else "",
            "t": format_time(self.time_us),
            "type": self.type.value,
            "body": json.loads(canonical(self.body, 1)),
            "actor": {"kid": self.actor.kid, "sig": _b64(self.actor.sig)},
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes: store and hash exactly these."""
        return self._encoded

    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of :meth:`to_bytes`; the next entry's ``prev``."""
        return leaf_hash(self._encoded)

    def signed_message(self) -> bytes:
        """The message ``actor.sig`` must sign (:func:`actor_message`)."""
        return actor_message(self.type, self.body)


def sign_actor(
    entry_type: EntryType | str,
    body: Mapping[str, JSONValue],
    kid: str,
    private_key: Ed25519PrivateKey,
) -> Actor:
    """Sign ``body`` for ``entry_type`` as the acting party (a client or the house does this)."""
    return Actor(kid, private_key.sign(actor_message(entry_type, body)))


def build_entry(
    *,
    seq: int,
    prev: bytes,
    time_us: int,
    entry_type: EntryType | str,
    body: Mapping[str, JSONValue],
    actor: Actor,
) -> Entry:
    """Build an entry from its parts (the actor signature is made beforehand by the actor).

    The log sets ``seq`` to the next leaf index and ``prev`` to the previous leaf hash, then
    stores :meth:`Entry.to_bytes`.
    """
    try:
        kind = EntryType(entry_type)
    except ValueError as exc:
        raise MalformedError("unknown entry type") from exc
    return Entry(seq, prev, time_us, kind, body, actor)


def _reject_float(text: str) -> Any:
    raise MalformedError("floats are not allowed (money is integer minor units)")


def _reject_constant(text: str) -> Any:
    raise MalformedError(f"{text} is not JSON")


_read_entry: Final = json.JSONDecoder(
    parse_float=_reject_float, parse_constant=_reject_constant
).decode


def parse_entry(data: bytes) -> Entry:
    """Parse stored or received entry bytes into an :class:`Entry`. Bounded and strict.

    Requires UTF-8, at most 16 KiB, no floats, no duplicate keys, exactly the entry fields, and
    the RFC 8785 canonical encoding (re-encoding must give the same bytes). Raises
    :class:`MalformedError` / :class:`TooLargeError`. The caller then checks position and chain
    (:func:`verify_chain`) and the actor's signature (:func:`verify_actor`).

    The body is encoded once, from the parsed values, and the entry's bytes rebuilt around it
    must equal ``data``: a duplicate key, an escape RFC 8785 does not make, a number written
    otherwise or whitespace all change those bytes. The body is kept as parsed (no copy).
    """
    if not isinstance(data, bytes | bytearray):
        raise MalformedError("entry must be bytes")
    if len(data) > MAX_ENTRY_BYTES:
        raise TooLargeError(f"entry larger than {MAX_ENTRY_BYTES} bytes")
    data = bytes(data)
    try:
        value = _read_entry(data.decode("utf-8"))
    except MalformedError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise MalformedError("entry is not valid JSON") from exc
    if type(value) is not dict or value.keys() != _FIELDS:
        raise MalformedError(
            "entry must be an object with exactly v, seq, prev, t, type, body, actor"
        )
    if value["v"] != ENTRY_VERSION:
        raise MalformedError(f"entry version must be {ENTRY_VERSION}")
    seq = value["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise MalformedError("seq must be an integer")
    prev_text = value["prev"]
    prev = b"" if prev_text == "" else _unb64(prev_text, HASH_SIZE, "prev")
    time_text = value["t"]
    if not isinstance(time_text, str):
        raise MalformedError("t must be a string")
    time_us = parse_time(time_text)
    entry_type = value["type"]
    if not isinstance(entry_type, str):
        raise MalformedError("type must be a string")
    try:
        kind = EntryType(entry_type)
    except ValueError as exc:
        raise MalformedError("unknown entry type") from exc
    body = value["body"]
    if type(body) is not dict:
        raise MalformedError("body must be an object")
    fields = value["actor"]
    if type(fields) is not dict or fields.keys() != _ACTOR_FIELDS:
        raise MalformedError("actor must be an object with exactly kid and sig")
    if not isinstance(fields["kid"], str):
        raise MalformedError("actor kid must be a string")
    actor = Actor(fields["kid"], _unb64(fields["sig"], 64, "actor sig"))
    _check_position(seq, prev, time_us)
    body_bytes = canonical_trusted(body, 1)
    # parse_time accepted exactly the text format_time(time_us) gives: reuse it.
    if _entry_bytes(seq, prev, time_text, kind, body_bytes, actor) != data:
        raise MalformedError("entry is not in canonical (RFC 8785) form")
    entry = object.__new__(Entry)
    for name, part in (
        ("seq", seq),
        ("prev", prev),
        ("time_us", time_us),
        ("type", kind),
        ("body", frozen_body(body, body_bytes)),
        ("actor", actor),
        ("_encoded", data),
    ):
        object.__setattr__(entry, name, part)
    return entry


def verify_actor(entry: Entry, public_key: bytes) -> None:
    """Check ``entry.actor.sig`` under ``public_key`` (32-byte Ed25519), the key of ``kid``.

    The caller resolves ``entry.actor.kid`` to a key that was valid at ``entry.seq`` (key
    entries earlier in the log) before calling. Raises :class:`ActorSignatureError`.
    """
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise ActorSignatureError("actor public key must be 32 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            entry.actor.sig, entry.signed_message()
        )
    except InvalidSignature as exc:
        raise ActorSignatureError(
            f"actor signature of entry {entry.seq} does not verify for kid {entry.actor.kid!r}"
        ) from exc


def verify_chain(prev_entry_leaf_hash: bytes | None, entry: Entry) -> None:
    """Check ``entry.prev`` against the leaf hash of the entry before it.

    Pass ``None`` (or ``b""``) for ``seq == 0``. The caller recomputes
    ``prev_entry_leaf_hash`` from the stored bytes of entry ``seq - 1``. Raises
    :class:`EntryError`.
    """
    expected = prev_entry_leaf_hash or b""
    if entry.seq == 0:
        if expected:
            raise EntryError("entry 0 cannot follow another entry")
        return
    if len(expected) != HASH_SIZE:
        raise EntryError(f"entry {entry.seq} needs the leaf hash of entry {entry.seq - 1}")
    if entry.prev != expected:
        raise EntryError(f"entry {entry.seq}: prev is not the leaf hash of entry {entry.seq - 1}")


def verify_successor(previous: Entry | None, entry: Entry) -> None:
    """Check that ``entry`` directly follows ``previous`` (``None`` for the first entry).

    ``seq`` is one more, ``prev`` is the previous leaf hash and time does not go backwards.
    Raises :class:`EntryError`. A notary calls it for each new entry it mirrors.
    """
    if previous is None:
        if entry.seq != 0:
            raise EntryError(f"the first entry has seq {entry.seq}, not 0")
        verify_chain(None, entry)
        return
    if entry.seq != previous.seq + 1:
        raise EntryError(f"entry {entry.seq} does not follow entry {previous.seq}")
    verify_chain(previous.leaf_hash(), entry)
    if entry.time_us < previous.time_us:
        raise EntryError(f"entry {entry.seq}: time goes backwards")
