"""tlog-policy files and quorum rules."""

from __future__ import annotations

import pytest
from chain_kit import FUZZ, ORIGIN, PROPERTY, log_signer, seed
from hypothesis import given
from hypothesis import strategies as st

from chain import (
    NO_QUORUM,
    AllOf,
    AnyOf,
    ChainError,
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    MalformedError,
    Policy,
    PolicyError,
    PolicyLog,
    SignatureError,
    Threshold,
    TooLargeError,
    UnknownOriginError,
    WitnessRule,
    add_cosignatures,
    format_policy,
    parse_policy,
    sign_checkpoint,
)

WITNESSES = {
    name: CosignatureSigner.from_seed(f"{name.lower()}.witness.example", seed("witness " + name))
    for name in ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
}


def vkey(name: str) -> str:
    return WITNESSES[name].vkey


SPEC_EXAMPLE = f"""# The example of tlog-policy, with real keys.
log {log_signer().vkey} https://auction.example.org/gavel/

witness X1 {vkey("X1")}
witness X2 {vkey("X2")}
witness X3 {vkey("X3")}
group X-witnesses 2 X1 X2 X3

\twitness\tY1 {vkey("Y1")}   https://y1.example/
witness Y2 {vkey("Y2")}
witness Y3 {vkey("Y3")}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
""".encode()


def test_spec_example_policy() -> None:
    policy = parse_policy(SPEC_EXAMPLE)
    assert [log.url for log in policy.logs] == ["https://auction.example.org/gavel/"]
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert policy.witnesses[3].url == "https://y1.example/"
    assert isinstance(policy.quorum, AllOf)
    policy.evaluate({"X1", "X3", "Y2"})
    policy.evaluate({"X1", "X2", "X3", "Y1", "Y2", "Y3"})
    for names in [set(), {"X1", "Y1"}, {"X1", "X2"}, {"Y1", "Y2", "Y3", "X3"}]:
        with pytest.raises(PolicyError):
            policy.evaluate(names)
    assert parse_policy(format_policy(policy)) == policy


def test_quorum_none_and_single_witness() -> None:
    policy = parse_policy(f"log {log_signer().vkey}\nquorum none\n".encode())
    assert policy.quorum is NO_QUORUM
    policy.evaluate(set())
    single = parse_policy(f"witness W {vkey('X1')}\nquorum W\n".encode())
    single.evaluate({"W"})
    with pytest.raises(PolicyError):
        single.evaluate({"X1"})  # policy names, not key names
    assert parse_policy(format_policy(single)) == single


BAD_POLICIES = [
    "",  # no quorum
    "quorum X1\n",  # undefined
    f"witness X1 {vkey('X1')}\nquorum X1\nquorum X1\n",  # two quorum lines
    f"witness X1 {vkey('X1')}\nwitness X1 {vkey('X2')}\nquorum X1\n",  # duplicate name
    f"witness X1 {vkey('X1')}\nwitness X2 {vkey('X1')}\nquorum X1\n",  # duplicate key
    f"log {log_signer().vkey}\nlog {log_signer().vkey}\nquorum none\n",  # duplicate log
    f"witness none {vkey('X1')}\nquorum none\n",  # reserved name
    f"witness X1 {vkey('X1')}\ngroup G 1 none\nquorum G\n",  # none is no member
    f"witness X1 {vkey('X1')}\ngroup G 2 X1\nquorum G\n",  # k > n
    f"witness X1 {vkey('X1')}\ngroup G 0 X1\nquorum G\n",  # k < 1
    f"witness X1 {vkey('X1')}\ngroup G 01 X1\nquorum G\n",  # leading zero
    f"witness X1 {vkey('X1')}\ngroup G -1 X1\nquorum G\n",
    f"witness X1 {vkey('X1')}\ngroup G some X1\nquorum G\n",
    f"witness X1 {vkey('X1')}\ngroup G any\nquorum G\n",  # no members
    f"witness X1 {vkey('X1')}\ngroup G any X1 X1\nquorum G\n",  # member twice
    f"witness X1 {vkey('X1')}\ngroup G any X1\ngroup H any X1\nquorum H\n",  # member reused
    f"group G any X1\nwitness X1 {vkey('X1')}\nquorum G\n",  # used before defined
    f"witness X1 {vkey('X1')}\ngroup X1 any X1\nquorum X1\n",  # name clash with witness
    f"witness X1 {log_signer().vkey}\nquorum X1\n",  # witness with a log (0x01) key
    f"log {vkey('X1')}\nquorum none\n",  # log with a cosigner (0x04) key
    f"witness X1 {vkey('X1')} url extra\nquorum X1\n",  # too many fields
    f"log {log_signer().vkey} url extra\nquorum none\n",
    "log\nquorum none\n",
    "witness X1\nquorum none\n",
    "quorum\n",
    "quorum a b\n",
    "witness X1 not-a-vkey\nquorum none\n",
    "frobnicate\nquorum none\n",
    "quorum none\r\n",  # CR is a control character
    "quorum none\n\x00",
    "quorum none\n\x7f\n",
]


@pytest.mark.parametrize("text", BAD_POLICIES)
def test_bad_policies_are_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_policy(text.encode())


def test_comments_whitespace_and_opaque_octets() -> None:
    text = (
        b"   # comment with \xff\xfe octets\n"
        b"\t\n"
        + f"witness \xc3\xa9t\xc3\xa9 {vkey('X1')}\n".encode("latin-1")
        + b"quorum \xc3\xa9t\xc3\xa9"
    )
    policy = parse_policy(text)  # no final newline is accepted
    policy.evaluate({"\u00e9t\u00e9"})
    non_utf8 = f"witness \xff {vkey('X1')}\nquorum \xff\n".encode("latin-1")
    odd = parse_policy(non_utf8)
    assert format_policy(odd) == non_utf8
    assert parse_policy(format_policy(odd)) == odd


def test_policy_size_bound() -> None:
    with pytest.raises(TooLargeError):
        parse_policy(b"#" * (64 * 1024 + 1))


@PROPERTY
@given(
    k=st.integers(min_value=1, max_value=6),
    signed=st.sets(st.sampled_from(sorted(WITNESSES))),
)
def test_threshold_semantics(k: int, signed: set[str]) -> None:
    members = [WitnessRule(name, WITNESSES[name].verifier) for name in sorted(WITNESSES)]
    rule = Threshold("group", k, tuple(members))
    if len(signed) >= k:
        rule.evaluate(signed)
    else:
        with pytest.raises(PolicyError):
            rule.evaluate(signed)
    any_rule, all_rule = AnyOf("any", members), AllOf("all", members)
    assert any_rule.k == 1 and all_rule.k == 6
    if signed:
        any_rule.evaluate(signed)
    else:
        with pytest.raises(PolicyError):
            any_rule.evaluate(signed)
    if len(signed) == 6:
        all_rule.evaluate(signed)
    else:
        with pytest.raises(PolicyError):
            all_rule.evaluate(signed)


def test_rule_constructors_validate() -> None:
    member = WitnessRule("X1", WITNESSES["X1"].verifier)
    with pytest.raises(MalformedError):
        Threshold("g", 2, (member,))
    with pytest.raises(MalformedError):
        AnyOf("g", [])
    with pytest.raises(MalformedError):
        AllOf("g", [member, member])


def _demo_policy(k: int = 2) -> Policy:
    notaries = tuple(WitnessRule(n, WITNESSES[n].verifier) for n in ["X1", "X2", "X3"])
    group = Threshold("notaries", k, notaries)
    return Policy((PolicyLog(log_signer().verifier),), notaries, group, (group,))


def test_verify_checkpoint_is_fail_closed() -> None:
    policy = _demo_policy()
    assert parse_policy(format_policy(policy)) == policy
    checkpoint = Checkpoint(ORIGIN, 3, bytes(32))
    signed = sign_checkpoint(checkpoint, log_signer())
    body = checkpoint.text_bytes()
    cosign = {n: WITNESSES[n].cosign(body, 100) for n in WITNESSES}
    with pytest.raises(PolicyError):
        policy.verify_checkpoint(signed)
    with pytest.raises(PolicyError):
        policy.verify_checkpoint(add_cosignatures(signed, [cosign["X1"], cosign["Y1"]]))
    ok = policy.verify_checkpoint(add_cosignatures(signed, [cosign["X1"], cosign["X3"]]))
    assert policy.witness_names(ok) == {"X1", "X3"}
    # A failing cosignature by a policy witness fails the checkpoint even with a quorum.
    bad = WITNESSES["X2"].cosign(b"something else\n", 100)
    with pytest.raises(SignatureError):
        policy.verify_checkpoint(add_cosignatures(signed, [cosign["X1"], cosign["X3"], bad]))
    # Unknown origin.
    other = sign_checkpoint(
        Checkpoint("other.example/log", 3, bytes(32)), log_signer("other.example/log")
    )
    with pytest.raises(UnknownOriginError):
        policy.verify_checkpoint(other)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_policy_parser(data: bytes) -> None:
    try:
        parse_policy(data)
    except ChainError:
        pass


LINES = st.sampled_from(
    [
        f"witness X1 {vkey('X1')}",
        f"witness X2 {vkey('X2')}",
        f"log {log_signer().vkey}",
        "group G 1 X1 X2",
        "group G all X1",
        "group H any G X2",
        "quorum G",
        "quorum H",
        "quorum none",
        "# comment",
        "",
        "\t ",
    ]
)


@FUZZ
@given(st.lists(LINES, max_size=8))
def test_fuzz_policy_structure(lines: list[str]) -> None:
    try:
        policy = parse_policy("\n".join(lines).encode())
    except ChainError:
        return
    assert parse_policy(format_policy(policy)) == policy


def test_log_key_rotation_accepts_either_key() -> None:
    old_key = log_signer()
    new_key = Ed25519Signer.from_seed(ORIGIN, seed("rotated log key"))
    policy = parse_policy(f"log {old_key.vkey}\nlog {new_key.vkey}\nquorum none\n".encode())
    assert policy.log_verifiers(ORIGIN) == [old_key.verifier, new_key.verifier]
    checkpoint = Checkpoint(ORIGIN, 3, bytes(32))
    for signer in (old_key, new_key):
        opened = policy.verify_checkpoint(sign_checkpoint(checkpoint, signer))
        assert opened.log_signature.key_id == signer.key_id
    both = add_cosignatures(
        sign_checkpoint(checkpoint, old_key), [new_key.sign(checkpoint.text_bytes())]
    )
    policy.verify_checkpoint(both)
    stranger = Ed25519Signer.from_seed(ORIGIN, seed("not a log key"))
    with pytest.raises(SignatureError):
        policy.verify_checkpoint(sign_checkpoint(checkpoint, stranger))
    with pytest.raises(UnknownOriginError):
        policy.log_verifiers("other.example/log")
