"""The shared entry-verification pipeline (auction/verify/pipeline.py), step by step, without
a log: each check raises EntryRejected naming its numbered step and entry, or passes."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_kit import house_key

from auction.verify import (
    ActorKeys,
    EntryRejected,
    Step,
    check_actor,
    check_house,
    check_time,
    signed_message,
)
from chain import Ed25519Signer, EntryType, build_entry, format_time, sign_actor

ORIGIN = "auction.example.org/log"
HOUSE = Ed25519Signer(ORIGIN, house_key())
OTHER = Ed25519Signer(ORIGIN, house_key("stranger"))
ROTATED = Ed25519Signer("actors-2027", house_key("actors 2027"))
T = 1_800_000_000_000_000


def house_body(signer: Ed25519Signer = HOUSE, origin: str = ORIGIN) -> dict[str, Any]:
    return {"v": 1, "origin": origin, "name": "Gavel", "vkey": signer.vkey}


def rejected(check: Any, *args: Any, **options: Any) -> EntryRejected:
    with pytest.raises(EntryRejected) as raised:
        check(*args, **options)
    return raised.value


def test_steps_are_numbered_once() -> None:
    assert [step.label for step in Step] == [
        "1 parse",
        "2 chain",
        "3 roots",
        "4 log signatures",
        "5 quorum",
        "6 consistency",
        "7 actor signatures",
        "8 replay",
        "9 time bounds",
        "10 receipts",
    ]


def test_the_house_entry_gives_the_first_actor_keys() -> None:
    keys = check_house(0, "house", house_body(), ORIGIN, [HOUSE.verifier])
    assert keys is not None and keys.resolve(HOUSE.verifier.vkey) == (HOUSE.public_key,)
    assert check_house(5, "bid", {}, ORIGIN, [HOUSE.verifier]) is None


@pytest.mark.parametrize(
    ("seq", "kind", "body", "message"),
    [
        (0, "bid", {}, "entry 0 is a bid entry, not house"),
        (0, "house", house_body(origin="elsewhere.example"), "names origin 'elsewhere.example'"),
        (0, "house", house_body(OTHER), "not the log key in the policy"),
        (0, "house", {"origin": ORIGIN, "vkey": 7}, "house vkey must be a vkey string"),
        (9, "house", house_body(), "only entry 0 is the house entry"),
    ],
)
def test_house_entry_rules(seq: int, kind: str, body: dict[str, Any], message: str) -> None:
    error = rejected(check_house, seq, kind, body, ORIGIN, [HOUSE.verifier])
    assert (error.step, error.seq) == (Step.LOG_SIGNATURES, seq)
    assert message in error.message


def test_key_entries_change_the_keys_from_the_next_entry() -> None:
    keys = ActorKeys((HOUSE.verifier,))
    rotated = keys.after(3, "key", {"vkey": ROTATED.vkey, "revoke": [HOUSE.verifier.name]})
    assert keys.resolve(ORIGIN) == (HOUSE.public_key,)  # immutable: the old set is unchanged
    assert rotated.resolve(ORIGIN) == () and rotated.resolve("actors-2027")
    assert rotated == ActorKeys((ROTATED.verifier,))
    assert keys.after(4, "bid", {"vkey": ROTATED.vkey}) is keys
    error = rejected(rotated.candidates, 5, ORIGIN)
    assert (error.step, error.seq) == (Step.ACTOR_SIGNATURES, 5)
    bad = rejected(keys.after, 6, "key", {"vkey": ROTATED.vkey, "revoke": "all"})
    assert (bad.step, bad.seq) == (Step.ACTOR_SIGNATURES, 6)


def test_an_actor_signature_verifies_under_one_of_the_named_keys() -> None:
    body = {"v": 1, "lot": "lot-1"}
    entry = build_entry(
        seq=1,
        prev=b"\0" * 32,
        time_us=T,
        entry_type=EntryType.LOT_STATE,
        body=body,
        actor=sign_actor(EntryType.LOT_STATE, body, ORIGIN, house_key()),
    )
    message = signed_message(entry.type.value, entry.to_bytes())
    assert message == entry.signed_message()
    keys = (OTHER.public_key, HOUSE.public_key)
    check_actor(1, ORIGIN, keys, entry.actor.sig, message)
    error = rejected(check_actor, 1, ORIGIN, (OTHER.public_key,), entry.actor.sig, message)
    assert (error.step, error.seq) == (Step.ACTOR_SIGNATURES, 1)


@pytest.mark.parametrize(
    ("kind", "t_us", "body", "message"),
    [
        ("bid", T - 1, {}, "earlier than the previous entry's t"),
        ("bid", T + 3_000_000, {}, "3.000 s ahead of the verifier's clock"),
        ("lot", T, {"created": format_time(T + 1)}, "lot time is after the entry's t"),
        ("idv", T, {"ingress": format_time(T + 1)}, "idv time is after the entry's t"),
        ("idv", T, {"ingress": 12}, "stated time is not a string"),
        ("idv", T, {"ingress": "yesterday"}, "unreadable time in body"),
    ],
)
def test_time_bounds(kind: str, t_us: int, body: dict[str, Any], message: str) -> None:
    error = rejected(check_time, 4, kind, t_us, body, previous_t_us=T, now_us=T, skew_us=2_000_000)
    assert (error.step, error.seq) == (Step.TIME_BOUNDS, 4)
    assert message in error.message


def test_times_within_bounds_pass() -> None:
    check_time(4, "bid", T, {"ingress": format_time(T + 5)}, previous_t_us=T, now_us=T, skew_us=0)
    check_time(4, "lot", T, {"created": format_time(T)}, previous_t_us=T, now_us=None, skew_us=0)
