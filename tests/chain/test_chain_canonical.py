"""Canonical JSON through the C encoder: byte for byte the ``rfc8785`` package on the grammar.

The fast path (``chain.canonical``) and the reference (the ``rfc8785`` package after a value by
value check) must agree on every value: the same bytes, or both refuse. Strings mix controls,
escapes, non-ASCII, private-use characters (U+E000 to U+FFFF) and astral ones (above U+FFFF),
whose order differs between code points and UTF-16 code units; integers sit at the I-JSON
bounds; nesting at the depth limit.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from chain_kit import BASE_TIME_US, PROPERTY, actor_key
from hypothesis import assume, given
from hypothesis import strategies as st

from chain import (
    MAX_BODY_DEPTH,
    EntryType,
    FrozenObject,
    MalformedError,
    build_entry,
    canonical_json,
    leaf_hash,
    parse_entry,
    sign_actor,
)
from chain.canonical import MAX_INTEGER, canonical_copy, freeze, reference_canonical

VECTORS = Path(__file__).parent / "vectors" / "entries_v1.json"

SPECIAL = [
    "\x00", "\x01", "\x07", "\b", "\t", "\n", "\x0b", "\f", "\r", "\x1f", "\x7f", '"', "\\",
    "/", "\u00e9", "\u2028", "\u2029", "\ufeff", "\ud7ff", "\ue000", "\uf8ff", "\ufb01",
    "\uffff", "\U00010000", "\U0001d11e", "\U0001f600", "\U0010ffff", "{", "[", "]", "}",
    ":", ",", "9", "0",
]  # fmt: skip
CHARACTERS = st.sampled_from(SPECIAL) | st.characters(codec="utf-8")
TEXT = st.text(CHARACTERS, max_size=12)
KEYS = st.text(st.sampled_from(["a", "b", "\ue000", "\uffff", "\U00010000", "\U0001f600", "\u00e9"])
               | CHARACTERS, max_size=4)  # fmt: skip
INTEGERS = st.sampled_from(
    [0, -1, 1, MAX_INTEGER, -MAX_INTEGER, 9000000000000000, 8999999999999999,
     1795000712000000, 10**15, -(10**15)]
) | st.integers(-MAX_INTEGER, MAX_INTEGER)  # fmt: skip
LEAVES = st.none() | st.booleans() | INTEGERS | TEXT
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(KEYS, children, max_size=5)
    ),
    max_leaves=30,
)
BODIES = st.dictionaries(KEYS, VALUES, max_size=6)
# Values outside the grammar, to plant anywhere in a good value.
BAD = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([MAX_INTEGER + 1, -MAX_INTEGER - 1, 2**64, 10**17, 9007199254740992])
    | st.sampled_from(["\ud800", "x\udfffy", b"bytes", {1, 2}, object()])
    | st.builds(lambda key: {key: 1}, st.sampled_from([1, 1.5, True, None, (1,)]))
)


def _outcome(function: Any, value: Any, depth: int) -> bytes | None:
    try:
        return bytes(function(value, depth)[0])
    except MalformedError:
        return None


def _nest(value: Any, levels: int, *, in_object: bool = False) -> Any:
    for _ in range(levels):
        value = {"k": value} if in_object else [value]
    return value


@PROPERTY
@given(VALUES)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@PROPERTY
@given(BODIES, st.integers(min_value=0, max_value=3))
def test_fast_path_equals_reference_path(body: dict[str, Any], depth: int) -> None:
    data, copy = canonical_copy(body, depth)
    assert data == reference_canonical(body, depth)[0] == rfc8785.dumps(body)
    assert copy == json.loads(data)
    assert isinstance(copy, dict) and copy is not body


@PROPERTY
@given(BODIES, BAD, st.data())
def test_values_outside_the_grammar_are_refused_by_both(
    body: dict[str, Any], bad: Any, data: st.DataObject
) -> None:
    # Plant the bad value at a random place: a new key at some nesting, or inside a list.
    target: Any = body
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        inner: Any = {} if data.draw(st.booleans()) else []
        if isinstance(target, dict):
            target[data.draw(KEYS)] = inner
        else:
            target.append(inner)
        target = inner
    if isinstance(target, dict):
        target[data.draw(KEYS)] = bad
    else:
        target.append(bad)
    with pytest.raises(MalformedError):
        canonical_copy(body, 0)
    with pytest.raises(MalformedError):
        reference_canonical(body, 0)
    with pytest.raises(MalformedError):
        canonical_json(body)


@pytest.mark.parametrize("in_object", [False, True])
@pytest.mark.parametrize("levels", range(MAX_BODY_DEPTH - 4, MAX_BODY_DEPTH + 3))
@pytest.mark.parametrize("leaf", [1, [], {}, "[[[[{{{{", "]]}}"])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_nesting_limit_as_the_reference(
    in_object: bool, levels: int, leaf: Any, depth: int
) -> None:
    value = _nest(leaf, levels, in_object=in_object)
    expected = _outcome(reference_canonical, value, depth)
    assert _outcome(canonical_copy, value, depth) == expected
    if expected is not None:
        assert expected == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        MAX_INTEGER, -MAX_INTEGER, MAX_INTEGER + 1, -MAX_INTEGER - 1, 9000000000000000,
        8999999999999999, 99999999999999999, 10**16, [9007199254740992], {"a": -9007199254740992},
        "9007199254740992", {"9007199254740992": "99999999999999999999"}, [1, 9999999999999999],
    ],
)  # fmt: skip
def test_integer_bounds_as_the_reference(value: Any) -> None:
    expected = _outcome(reference_canonical, value, 0)
    assert _outcome(canonical_copy, value, 0) == expected
    if isinstance(value, int):
        assert (expected is None) == (abs(value) > MAX_INTEGER)


def test_utf16_key_order_differs_from_code_point_order() -> None:
    # U+1F600 is D83D DE00 in UTF-16: before U+E000 there, after it by code point.
    value: dict[str, Any] = {"\ue000": 1, "\U0001f600": 2, "a": {"\uffff": 3, "\U00010000": 4}}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).decode() == (
        '{"a":{"\U00010000":4,"\uffff":3},"\U0001f600":2,"\ue000":1}'
    )
    assert json.dumps(value, sort_keys=True, ensure_ascii=False) != canonical_json(value).decode()


def test_string_escapes() -> None:
    text = "".join(chr(code) for code in range(0x20)) + '\x7f"\\/\u2028\U0001f600\u00e9'
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\x7f\\"\\\\/\u2028\U0001f600\u00e9"'
    )
    assert canonical_json(text) == rfc8785.dumps(text) == expected.encode("utf-8")


def _entry_for(body: dict[str, Any], seq: int = 3) -> Any:
    kind = EntryType.DOCUMENT
    actor = sign_actor(kind, body, "k\u00e9\U0001f600", actor_key())
    return build_entry(seq=seq, prev=b"\x33" * 32, time_us=BASE_TIME_US + seq, entry_type=kind,
                       body=body, actor=actor)  # fmt: skip


@PROPERTY
@given(BODIES)
def test_entries_are_encoded_once_as_rfc8785(body: dict[str, Any]) -> None:
    entry = _entry_for(body)
    data = entry.to_bytes()
    assert data == rfc8785.dumps(entry.to_json())
    assert entry.signed_message() == b"gavel/document/v1\n" + rfc8785.dumps(body)
    assert entry.body == freeze(body, 1)  # the frozen view reads as the old frozen copy
    parsed = parse_entry(data)
    assert parsed == entry and parsed.to_bytes() == data
    assert parsed.signed_message() == entry.signed_message()
    assert build_entry(seq=3, prev=b"\x33" * 32, time_us=BASE_TIME_US + 3,
                       entry_type=EntryType.DOCUMENT, body=parsed.body,
                       actor=parsed.actor).to_bytes() == data  # fmt: skip


@PROPERTY
@given(BODIES, st.sampled_from(["ascii", "code-points", "spaces", "reversed"]))
def test_other_encodings_of_an_entry_are_refused(body: dict[str, Any], how: str) -> None:
    entry = _entry_for(body)
    document = entry.to_json()
    if how == "ascii":  # non-ASCII escaped as \uXXXX
        other = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    elif how == "code-points":  # keys in code-point order, not UTF-16 order
        other = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    elif how == "spaces":
        other = rfc8785.dumps(document).replace(b'":', b'": ', 1)
    else:
        other = json.dumps(
            {key: document[key] for key in reversed(sorted(document))},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    assume(other != entry.to_bytes())
    with pytest.raises(MalformedError):
        parse_entry(other)


def test_body_is_a_read_only_view() -> None:
    body: dict[str, Any] = {"a": [1, {"b": [2, 3]}], "c": {"d": None}}
    entry = _entry_for(body)
    view = entry.body
    assert isinstance(view, FrozenObject)
    assert view["a"] == (1, FrozenObject({"b": [2, 3]}))
    assert view["a"][1]["b"] == (2, 3)
    assert view.get("c") == {"d": None} and view.get("missing", 7) == 7
    assert dict(view) == {"a": view["a"], "c": view["c"]}
    assert view | {"e": 1} == {"a": view["a"], "c": view["c"], "e": 1}
    with pytest.raises(TypeError):
        view["a"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        view["c"]["d"] = 1  # type: ignore[index]
    body["a"][1]["b"].append(4)  # the caller's dict is not the entry's
    assert entry.body["a"][1]["b"] == (2, 3)
    entry.to_json()["body"]["a"].append(5)  # nor is to_json's
    assert len(entry.body["a"]) == 2
    with pytest.raises(MalformedError):
        FrozenObject({"x": 1.5})
    with pytest.raises(TypeError):
        hash(view)


def test_entries_made_before_still_parse_to_the_same_bytes() -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["entries"]
    assert len(vectors) == 30
    for vector in vectors:
        data = base64.b64decode(vector["entry"])
        entry = parse_entry(data)
        assert entry.to_bytes() == data
        assert entry.leaf_hash() == leaf_hash(data) == base64.b64decode(vector["leaf_hash"])
        assert entry.signed_message() == base64.b64decode(vector["actor_message"])
        rebuilt = build_entry(seq=entry.seq, prev=entry.prev, time_us=entry.time_us,
                              entry_type=entry.type, body=json.loads(data)["body"],
                              actor=entry.actor)  # fmt: skip
        assert rebuilt.to_bytes() == data == rfc8785.dumps(json.loads(data))
