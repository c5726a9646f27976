"""Ledger entries: canonical JSON, times, actor signatures, the hash chain."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import rfc8785
from chain_kit import BASE_TIME_US, FUZZ, PROPERTY, actor_key, make_entries
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from chain import (
    MAX_ENTRY_BYTES,
    MAX_TIME_US,
    ActorSignatureError,
    ChainError,
    Entry,
    EntryError,
    EntryType,
    MalformedError,
    TooLargeError,
    actor_message,
    build_entry,
    canonical_json,
    format_time,
    leaf_hash,
    parse_entry,
    parse_time,
    sign_actor,
    verify_actor,
    verify_chain,
    verify_successor,
)

PUBLIC_KEY = actor_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _entry(seq: int = 0, body: dict[str, Any] | None = None, **changes: Any) -> Entry:
    body = {"lot": "L-7", "amount": 125_000, "currency": "EUR"} if body is None else body
    fields: dict[str, Any] = {
        "seq": seq,
        "prev": b"" if seq == 0 else b"\x11" * 32,
        "time_us": BASE_TIME_US,
        "entry_type": EntryType.BID,
        "body": body,
        "actor": sign_actor(EntryType.BID, body, "bidder-1", actor_key()),
    }
    fields.update(changes)
    return build_entry(**fields)


def test_entry_encoding_is_canonical_json() -> None:
    entry = _entry(3)
    data = entry.to_bytes()
    assert data == rfc8785.dumps(json.loads(data))
    decoded = json.loads(data)
    assert list(decoded) == sorted(decoded)
    assert decoded["v"] == "gavel/entry/v1"
    assert decoded["seq"] == 3
    assert decoded["t"] == format_time(BASE_TIME_US)
    assert decoded["type"] == "bid"
    assert set(decoded["actor"]) == {"kid", "sig"}
    assert parse_entry(data) == entry
    assert entry.leaf_hash() == leaf_hash(data)


def test_every_spec_type_is_known() -> None:
    spec_types = {
        "house", "lot", "lot_state", "idv", "registration", "bid", "sale", "deposit",
        "stream_segment", "key", "notary_set",
    }  # fmt: skip
    # The spec lists types "at least"; `document` anchors a lot's documents (SHA-256 only),
    # `reveal` opens a lot's sealed proxy maxima at its close (docs/ledger.md).
    assert {kind.value for kind in EntryType} == spec_types | {"document", "reveal"}
    for kind in EntryType:
        entry = _entry(0, entry_type=kind, actor=sign_actor(kind, {"x": 1}, "k", actor_key()),
                       body={"x": 1})  # fmt: skip
        assert parse_entry(entry.to_bytes()).type is kind
        verify_actor(entry, PUBLIC_KEY)


def test_actor_signature_is_domain_separated_by_type() -> None:
    body = {"amount": 1}
    assert actor_message(EntryType.BID, body) == b'gavel/bid/v1\n{"amount":1}'
    entry = _entry(0, body=body)
    verify_actor(entry, PUBLIC_KEY)
    # The same signature presented on a sale entry fails.
    moved = build_entry(seq=0, prev=b"", time_us=BASE_TIME_US, entry_type=EntryType.SALE,
                        body=body, actor=entry.actor)  # fmt: skip
    with pytest.raises(ActorSignatureError):
        verify_actor(moved, PUBLIC_KEY)
    # Another body with the same signature fails.
    with pytest.raises(ActorSignatureError):
        verify_actor(_entry(0, body={"amount": 2}, actor=entry.actor), PUBLIC_KEY)
    # Another key fails.
    other = actor_key("someone else").public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with pytest.raises(ActorSignatureError):
        verify_actor(entry, other)
    with pytest.raises(ActorSignatureError):
        verify_actor(entry, b"short")


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("1970-01-01T00:00:00.000000Z", 0),
        ("2026-11-25T11:17:05.123456Z", 1795605425123456),
        ("9999-12-31T23:59:59.999999Z", MAX_TIME_US),
        ("2024-02-29T00:00:00.000001Z", 1709164800000001),
    ],
)
def test_time_format(text: str, micros: int) -> None:
    assert parse_time(text) == micros
    assert format_time(micros) == text


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T11:17:05.12345Z",
        "2026-11-25T11:17:05.1234567Z",
        "2026-11-25T11:17:05Z",
        "2026-11-25T11:17:05.123456+00:00",
        "2026-11-25T11:17:05.123456z",
        "2026-11-25t11:17:05.123456Z",
        "2026-11-25 11:17:05.123456Z",
        "2026-02-30T11:17:05.123456Z",
        "2025-02-29T00:00:00.000000Z",
        "2026-11-25T24:00:00.000000Z",
        "2026-11-25T23:59:60.000000Z",
        "1969-12-31T23:59:59.999999Z",
        "0000-01-01T00:00:00.000000Z",
        "\uff12026-11-25T11:17:05.123456Z",
        "",
    ],
)
def test_bad_times_are_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_time(text)


@PROPERTY
@given(st.integers(min_value=0, max_value=MAX_TIME_US))
def test_time_round_trip(micros: int) -> None:
    text = format_time(micros)
    assert len(text) == 27 and text.endswith("Z")
    assert parse_time(text) == micros


def test_times_out_of_range() -> None:
    for value in (-1, MAX_TIME_US + 1):
        with pytest.raises(MalformedError):
            format_time(value)
    with pytest.raises(MalformedError):
        format_time(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 1.5},
        {"amount": 100.0},
        {"nested": [{"deep": [0.1]}]},
        {"amount": float("nan")},
        {"amount": 2**53},
        {"amount": -(2**53)},
        {1: "non-string key"},
        {"bad": "\ud800"},
        {"\udfff": 1},
        {"set": {1, 2}},
        {"bytes": b"x"},
    ],
)
def test_bodies_without_json_meaning_are_rejected(body: dict[Any, Any]) -> None:
    with pytest.raises(MalformedError):
        _entry(0, body=body, actor=_entry(0).actor)
    with pytest.raises(MalformedError):
        canonical_json(body)


def test_depth_and_size_bounds() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(MalformedError):
        _entry(0, body={"deep": deep}, actor=_entry(0).actor)
    with pytest.raises(TooLargeError):
        _entry(0, body={"blob": "x" * MAX_ENTRY_BYTES}, actor=_entry(0).actor)
    with pytest.raises(TooLargeError):
        parse_entry(b" " * (MAX_ENTRY_BYTES + 1))


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": -1},
        {"seq": True},
        {"seq": 2**53},
        {"seq": 0, "prev": b"\x11" * 32},
        {"seq": 1, "prev": b""},
        {"seq": 1, "prev": b"\x11" * 31},
        {"entry_type": "auction_open"},
        {"time_us": -5},
    ],
)
def test_invalid_entries_cannot_be_built(changes: dict[str, Any]) -> None:
    body = {"amount": 1}
    fields: dict[str, Any] = {
        "seq": 1,
        "prev": b"\x11" * 32,
        "time_us": BASE_TIME_US,
        "entry_type": EntryType.BID,
        "body": body,
        "actor": sign_actor(EntryType.BID, body, "bidder-1", actor_key()),
    }
    fields.update(changes)
    with pytest.raises(MalformedError):
        build_entry(**fields)


GOOD = json.loads(_entry(5).to_bytes())


def _variant(**changes: Any) -> bytes:
    document = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is ...:
            del document[key]
        else:
            document[key] = value
    return rfc8785.dumps(document)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        _variant(v="gavel/entry/v2"),
        _variant(v=...),
        _variant(extra=1),
        _variant(seq="5"),
        _variant(seq=True),
        _variant(seq=-5),
        _variant(prev="not base64!"),
        _variant(prev="EREREREREREREREREREREREREREREREREREREREREREq"),  # 33 bytes
        _variant(prev=""),  # seq 5 needs a prev
        _variant(t="2026-11-25T11:17:05Z"),
        _variant(t=12345),
        _variant(type="auction_open"),
        _variant(type=1),
        _variant(body=[]),
        _variant(body="x"),
        _variant(actor={"kid": "a"}),
        _variant(actor={"kid": "a", "sig": GOOD["actor"]["sig"], "x": 1}),
        _variant(actor={"kid": 1, "sig": GOOD["actor"]["sig"]}),
        _variant(actor={"kid": "", "sig": GOOD["actor"]["sig"]}),
        _variant(actor={"kid": "a\nb", "sig": GOOD["actor"]["sig"]}),
        _variant(actor={"kid": "a", "sig": "AAAA"}),
        _variant(actor=[]),
        # Non-canonical encodings of the good entry.
        json.dumps(GOOD).encode(),
        rfc8785.dumps(GOOD) + b"\n",
        b" " + rfc8785.dumps(GOOD),
        b"\xef\xbb\xbf" + rfc8785.dumps(GOOD),
        rfc8785.dumps(GOOD).replace(b'"lot"', b'"\\u006cot"'),
        rfc8785.dumps(GOOD).replace(b'"amount":', b'"amount":1,"amount":'),
        rfc8785.dumps(GOOD).replace(b'"amount":125000', b'"amount":125000.0'),
        rfc8785.dumps(GOOD).replace(b'"amount":125000', b'"amount":1.25e5'),
        rfc8785.dumps(GOOD).replace(b'"amount":125000', b'"amount":NaN'),
        rfc8785.dumps(GOOD).replace(b'"amount":125000', b'"amount":Infinity'),
        rfc8785.dumps(GOOD).replace(b'"amount":125000', b'"amount":-0'),
        rfc8785.dumps(GOOD).replace(b'"L-7"', b'"\\ud800"'),
        rfc8785.dumps(GOOD).decode().encode("utf-16"),
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b"\xff\xfe",
    ],
)
def test_malformed_entry_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_entry(data)


def test_chain_links() -> None:
    entries = make_entries(4)
    verify_chain(None, entries[0])
    verify_chain(b"", entries[0])
    verify_successor(None, entries[0])
    for previous, entry in itertools.pairwise(entries):
        verify_chain(leaf_hash(previous.to_bytes()), entry)
        verify_successor(previous, entry)
    with pytest.raises(EntryError):
        verify_chain(entries[1].leaf_hash(), entries[0])
    with pytest.raises(EntryError):
        verify_chain(entries[0].leaf_hash(), entries[2])  # skips an entry
    with pytest.raises(EntryError):
        verify_chain(None, entries[1])
    with pytest.raises(EntryError):
        verify_successor(entries[0], entries[2])
    with pytest.raises(EntryError):
        verify_successor(None, entries[1])
    earlier = build_entry(
        seq=1, prev=entries[0].leaf_hash(), time_us=entries[0].time_us - 1,
        entry_type=entries[1].type, body=entries[1].body, actor=entries[1].actor,
    )  # fmt: skip
    with pytest.raises(EntryError):
        verify_successor(entries[0], earlier)


def test_entry_is_deep_frozen() -> None:
    body = {"list": [1, {"a": 2}]}
    entry = _entry(0, body=body, actor=_entry(0).actor)
    body["list"].append(3)
    assert entry.to_json()["body"] == {"list": [1, {"a": 2}]}
    with pytest.raises(TypeError):
        entry.body["list"] = []  # type: ignore[index]
    with pytest.raises(AttributeError):
        entry.seq = 9  # type: ignore[misc]


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTY
@given(
    body=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6),
    seq=st.integers(min_value=0, max_value=2**53 - 1),
    time_us=st.integers(min_value=0, max_value=MAX_TIME_US),
    kind=st.sampled_from(list(EntryType)),
    kid=st.text(min_size=1, max_size=40).filter(
        lambda k: all(ord(c) >= 0x20 and c != "\x7f" for c in k)
    ),
)
def test_entries_round_trip(
    body: dict[str, Any], seq: int, time_us: int, kind: EntryType, kid: str
) -> None:
    try:
        kid.encode("utf-8")
        actor = sign_actor(kind, body, kid, actor_key())
    except (MalformedError, UnicodeEncodeError):
        return  # lone surrogates in generated text are not JSON
    entry = build_entry(seq=seq, prev=b"" if seq == 0 else b"\x22" * 32, time_us=time_us,
                        entry_type=kind, body=body, actor=actor)  # fmt: skip
    data = entry.to_bytes()
    parsed = parse_entry(data)
    assert parsed == entry and parsed.to_bytes() == data
    verify_actor(parsed, PUBLIC_KEY)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_entry_parser(data: bytes) -> None:
    try:
        entry = parse_entry(data)
    except ChainError:
        return
    assert entry.to_bytes() == data


ENTRY_BYTES = _entry(5).to_bytes()


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(ENTRY_BYTES) - 1),
    value=st.integers(min_value=0, max_value=255),
)
def test_fuzz_mutated_entries(position: int, value: int) -> None:
    mutated = bytearray(ENTRY_BYTES)
    mutated[position] = value
    try:
        entry = parse_entry(bytes(mutated))
    except ChainError:
        return
    assert entry.to_bytes() == bytes(mutated)
    if bytes(mutated) != ENTRY_BYTES:
        try:
            verify_actor(entry, PUBLIC_KEY)
        except ActorSignatureError:
            return
        # Only changes outside the signed body and type can keep the signature valid.
        assert entry.body == _entry(5).body and entry.type == EntryType.BID


@FUZZ
@given(st.text(max_size=40))
def test_fuzz_time_parser(text: str) -> None:
    try:
        micros = parse_time(text)
    except ChainError:
        return
    assert format_time(micros) == text
