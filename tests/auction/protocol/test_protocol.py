"""The client protocol's pure core: every malformed message is a typed violation with the
close code docs/protocol.md names; signatures, rate limits and idempotency."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auction import protocol as p

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()


def bid_frame(account: str = "acct-1", **overrides: object) -> str:
    request = {
        "lot": "lot-1",
        "kind": "bid",
        "amount": 1_000_000,
        "currency": "CNY",
        "idempotency_key": "k-1",
    } | overrides
    payload = {"account": account} | {
        k: request[k] for k in ("lot", "kind", "amount", "currency", "idempotency_key")
    }
    signature = KEY.sign(p.signed_bytes(payload))
    return json.dumps({"type": "bid", "sig": base64.b64encode(signature).decode()} | request)


def test_signed_bid_verifies_and_any_change_breaks_it() -> None:
    request = p.parse_client_message(bid_frame())
    assert isinstance(request, p.BidRequest)
    assert p.verify_bid_signature(request, "acct-1", PUBLIC)
    assert not p.verify_bid_signature(request, "acct-2", PUBLIC)  # another account
    forged = json.loads(bid_frame())
    forged["amount"] += 1
    assert not p.verify_bid_signature(p.parse_client_message(json.dumps(forged)), "acct-1", PUBLIC)  # type: ignore[arg-type]
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not p.verify_bid_signature(request, "acct-1", other)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", p.CLOSE_PROTOCOL),
        ("[1, 2]", p.CLOSE_PROTOCOL),
        ('{"type": "dance"}', p.CLOSE_PROTOCOL),
        ('{"type": "hello"}', p.CLOSE_PROTOCOL),
        ('{"type": "hello", "v": "1"}', p.CLOSE_PROTOCOL),
        ('{"type": "subscribe", "lot": "", "since_seq": 0}', p.CLOSE_PROTOCOL),
        ('{"type": "subscribe", "lot": "x", "since_seq": -1}', p.CLOSE_PROTOCOL),
        ('{"type": "time", "t0": NaN}', p.CLOSE_PROTOCOL),
        ("x" * (p.MAX_FRAME_BYTES + 1), p.CLOSE_TOO_BIG),
    ],
)
def test_malformed_messages(frame: str, code: int) -> None:
    with pytest.raises(p.ProtocolViolation) as info:
        p.parse_client_message(frame)
    assert info.value.close_code == code


@pytest.mark.parametrize(
    "override",
    [
        {"amount": 1.5},
        {"amount": -5},
        {"amount": 10**16},
        {"amount": True},
        {"kind": "sell"},
        {"currency": "cny"},
        {"idempotency_key": ""},
        {"lot": "x" * 200},
    ],
)
def test_malformed_bids(override: dict[str, object]) -> None:
    frame = json.loads(bid_frame())
    frame.update(override)
    with pytest.raises(p.ProtocolViolation):
        p.parse_client_message(json.dumps(frame))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.text(max_size=600),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_fuzz_parser_raises_only_protocol_violations(frame: str | bytes) -> None:
    try:
        p.parse_client_message(frame)
    except p.ProtocolViolation:
        pass


def test_token_bucket_limits_bursts_and_refills() -> None:
    bucket = p.TokenBucket(rate=10, burst=10, now_us=0)
    assert all(bucket.take(0) for _ in range(10))
    assert not bucket.take(0)
    assert bucket.take(100_000)  # 0.1 s later: one more token
    assert not bucket.take(100_000)


def test_idempotency_new_resend_conflict_and_capacity() -> None:
    index = p.IdempotencyIndex(capacity=2)
    first = p.parse_client_message(bid_frame())
    assert isinstance(first, p.BidRequest)
    assert index.check("a", first) == ("new", None)
    index.reserve("a", first)
    assert index.check("a", first) == ("resend", None)  # still pending
    index.complete("a", first, {"type": "ack", "result": "accepted"})
    assert index.check("a", first) == ("resend", {"type": "ack", "result": "accepted"})
    changed = p.parse_client_message(bid_frame(amount=2_000_000))
    assert isinstance(changed, p.BidRequest)
    assert index.check("a", changed)[0] == "conflict"
    assert index.check("b", first)[0] == "new"  # keys are per account
    for n in range(3):
        other = p.parse_client_message(bid_frame(idempotency_key=f"k-x{n}"))
        assert isinstance(other, p.BidRequest)
        index.reserve("a", other)
    assert index.check("a", first)[0] == "new"  # forgotten: bounded memory


def test_time_reply_echoes_t0() -> None:
    assert p.time_reply(123.5, 99) == {"type": "time", "t0": 123.5, "server_time_us": 99}
