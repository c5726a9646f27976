"""Fuzzing the websocket client protocol: `auction.protocol.parse_client_message`.

Documented: it raises `ProtocolViolation` only (close code 1009 for an oversize frame, 4000
otherwise). Inputs: raw bytes and text; near-valid messages (each message type, a bid signed
like a browser's) mutated structurally (fields dropped, duplicated with another value, given
any JSON value, NaN/Infinity, huge or negative numbers, deep nesting, wrong types, extra
keys) and then byte by byte. A parsed message must keep the contract the adapter relies on
(types, ranges, printable identifiers) and its bid signature check must answer a bool.
"""

from __future__ import annotations

import base64
import json
import math

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fuzz_kit import Fuzzers, bounded, mutated, run_fuzzer
from hypothesis import strategies as st

from auction import protocol as p
from auction.rules import MAX_AMOUNT

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes_raw()
ACCOUNT = "acct-fuzz"


def _signed_bid(kind: str = "bid") -> dict[str, object]:
    request: dict[str, object] = {
        "lot": "lot-1",
        "kind": kind,
        "amount": 1_000_000,
        "currency": "CNY",
        "idempotency_key": "k-1",
    }
    signature = KEY.sign(p.signed_bytes({"account": ACCOUNT} | request))
    return {"type": "bid", "sig": base64.b64encode(signature).decode()} | request


VALID: tuple[dict[str, object], ...] = (
    {"type": "hello", "v": 1, "session": "s" * 43},
    {"type": "hello", "v": 1},
    {"type": "time", "t0": 1_795_000_000_000.5},
    {"type": "subscribe", "lot": "lot-1", "since_seq": 12},
    {"type": "unsubscribe", "lot": "lot-1"},
    {"type": "ping"},
    _signed_bid(),
    _signed_bid("max"),
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
).map(json.dumps)

RAW_VALUES = st.sampled_from(
    [
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "-0",
        "0.0",
        "1E2",
        "1.5",
        "-1",
        "0",
        "true",
        "null",
        "[]",
        "{}",
        '""',
        '"\\ud800"',
        '"\\u0000"',
        '"lot\\n1"',
        '"\\u202e"',
        '"CN1"',
        '"cny"',
        '"U$D"',
        '"   "',
        '"====="',
        '"' + "A" * 600 + '"',
        str(MAX_AMOUNT),
        str(MAX_AMOUNT + 1),
        str(2**63),
        str(2**64 + 1),
        "9" * 4000,
        "[" * 3000 + "]" * 3000,
        '{"a":' * 1000 + "1" + "}" * 1000,
    ]
)


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A valid message's fields, then 1..4 structural changes, written as JSON text (which
    allows duplicate keys and non-standard constants)."""
    message = draw(st.sampled_from(VALID))
    pairs = [(json.dumps(key), json.dumps(value)) for key, value in message.items()]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.integers(min_value=0, max_value=5))
        i = draw(st.integers(min_value=0, max_value=len(pairs) - 1)) if pairs else 0
        if op == 0 and pairs:
            del pairs[i]
        elif op in (1, 2) and pairs:
            value = draw(RAW_VALUES if op == 1 else JSON_VALUES)
            if draw(st.booleans()):
                pairs[i] = (pairs[i][0], value)
            else:
                pairs.append((pairs[i][0], value))  # a duplicate key
        elif op == 3:
            pairs.append((json.dumps(draw(st.text(max_size=10))), draw(JSON_VALUES)))
        elif op == 4 and pairs:
            pairs[i] = (pairs[i][0].upper(), pairs[i][1])
        else:
            pairs.reverse()
    text = "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        text = f"[{text}]"
    return text


FRAMES = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=600),
    near_valid(),
    near_valid().map(str.encode),
    mutated([json.dumps(message).encode() for message in VALID]),
    st.just("x" * (p.MAX_FRAME_BYTES + 1)),
)


def check_client_message(frame: str | bytes) -> None:
    """`parse_client_message` raises `ProtocolViolation` only, and what it returns is sound."""
    with bounded(1.0, "parse_client_message"):
        try:
            message = p.parse_client_message(frame)
        except p.ProtocolViolation as exc:
            assert exc.close_code in (p.CLOSE_TOO_BIG, p.CLOSE_PROTOCOL)
            assert isinstance(exc.message, str) and exc.message
            return
    assert len(frame) <= p.MAX_FRAME_BYTES
    if isinstance(message, p.Hello):
        assert type(message.version) is int
        assert message.session is None or (
            len(message.session) <= 512 and message.session.isprintable()
        )
    elif isinstance(message, p.TimeRequest):
        assert type(message.t0) in (int, float) and math.isfinite(message.t0)
        assert 0 <= message.t0 < 1e16
    elif isinstance(message, p.Subscribe):
        assert type(message.since_seq) is int and message.since_seq >= 0
        assert 0 < len(message.lot) <= 128 and message.lot.isprintable()
    elif isinstance(message, p.Unsubscribe):
        assert 0 < len(message.lot) <= 128 and message.lot.isprintable()
    elif isinstance(message, p.BidRequest):
        assert message.kind in ("bid", "max")
        assert type(message.amount) is int and 0 < message.amount <= MAX_AMOUNT
        assert len(message.currency) == 3
        assert all("A" <= c <= "Z" for c in message.currency), message.currency
        for text in (message.lot, message.idempotency_key):
            assert 0 < len(text) <= 128 and text.isprintable()
        assert isinstance(message.signature, bytes)
        valid = p.verify_bid_signature(message, ACCOUNT, PUBLIC)
        assert isinstance(valid, bool)
        assert len(message.fingerprint()) == 64
    else:
        assert isinstance(message, p.Ping)


FUZZERS: Fuzzers = {"websocket message": (FRAMES, check_client_message)}


def test_fuzz_websocket_messages() -> None:
    run_fuzzer(FUZZERS, "websocket message", 500)


def test_the_valid_seeds_parse_and_the_bids_verify() -> None:
    for message in VALID:
        parsed = p.parse_client_message(json.dumps(message))
        if isinstance(parsed, p.BidRequest):
            assert p.verify_bid_signature(parsed, ACCOUNT, PUBLIC)


def test_currency_must_be_three_letters() -> None:
    for currency in ("U$D", "A1B", "AB ", "ÄBC"):
        frame = json.dumps(_signed_bid() | {"currency": currency})
        try:
            p.parse_client_message(frame)
        except p.ProtocolViolation as exc:
            assert exc.close_code == p.CLOSE_PROTOCOL
        else:
            raise AssertionError(f"currency {currency!r} was accepted")
