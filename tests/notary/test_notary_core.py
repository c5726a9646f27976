"""The notary's pure core: the add-checkpoint parser, the tlog-witness decision table and the
content pipeline beyond the spec, without processes, sockets or an event loop."""

from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notary_kit import REPO, SimulatedLog, house_key

from auction.rules import SECOND
from chain import (
    EMPTY_ROOT,
    CosignatureSigner,
    Ed25519Signer,
    EntryType,
    MemoryTree,
    Note,
    build_entry,
    open_checkpoint,
    sign_actor,
)
from notary import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    AddCheckpoint,
    InconsistentCheckpointError,
    LedgerCursor,
    LogSignatureError,
    LogTrust,
    NotaryError,
    NotaryState,
    NotaryStateError,
    RefusedContentError,
    RequestError,
    RequestTooLargeError,
    SizeConflictError,
    UnknownLogError,
    check_envelope,
    cosign,
    format_add_checkpoint,
    parse_add_checkpoint,
    verify_increment,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOTARY = CosignatureSigner.from_seed("notary1.example.org", b"\x01" * 32)


def now_us() -> int:
    return int(time.time() * SECOND)


def trust_of(log: SimulatedLog) -> LogTrust:
    return LogTrust(log.origin, (log.signer.verifier,))


@dataclasses.dataclass
class Notary:
    """The core driven as the server drives it: state, cursor, co-signature."""

    log: SimulatedLog
    state: NotaryState
    cursor: LedgerCursor

    @classmethod
    def empty(cls, log: SimulatedLog) -> Notary:
        return cls(log, NotaryState(log.origin), LedgerCursor())

    def submit(self, body: bytes, log: SimulatedLog | None = None, now: int | None = None) -> bytes:
        """Run the whole decision on ``body``; on success persist (in memory) and return the
        cosignature line."""
        log = log or self.log
        accepted = check_envelope(parse_add_checkpoint(body), trust_of(self.log), self.state)
        compact = self.state.compact
        if accepted.grows:
            entries = [
                e.to_bytes() for e in log.entries[self.state.size : accepted.checkpoint.size]
            ]
            increment = verify_increment(
                self.state,
                accepted,
                entries,
                self.cursor,
                trust_of(self.log),
                now_us=now_us() if now is None else now,
            )
            compact = increment.compact
        signature, note = cosign(NOTARY, accepted, int(time.time()))
        checkpoint = accepted.checkpoint
        self.state = NotaryState(
            self.state.origin, checkpoint.size, checkpoint.root, compact, note, int(time.time())
        )
        return signature.to_line().encode()


@pytest.fixture(scope="module")
def grown() -> SimulatedLog:
    log = SimulatedLog()
    log.grow(300)
    return log


# --- the add-checkpoint body --------------------------------------------------------------


def test_body_round_trip(grown: SimulatedLog) -> None:
    body = grown.body(100)
    request = parse_add_checkpoint(body)
    assert request.old_size == 100
    assert list(request.proof) == grown.proof(100)
    assert request.checkpoint == grown.checkpoint()
    assert format_add_checkpoint(100, request.proof, request.checkpoint) == body
    assert parse_add_checkpoint(grown.body(0)).proof == ()


HASH = base64.b64encode(b"\x07" * 32)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "old"),
        (b"old 1", "old"),
        (b"old 01\n\ncp", "leading zeros"),
        (b"old -1\n\ncp", "leading zeros"),
        (b"old  1\n\ncp", "leading zeros"),
        (b"Old 1\n\ncp", "leading zeros"),
        (b"old 1\r\n\ncp", "leading zeros"),
        (b"old 99999999999999999999\n\ncp", "old"),
        (b"old 9223372036854775808\n\ncp", "out of range"),
        (b"old 1\n" + HASH + b"\n", "empty line"),
        (b"old 1\n" + HASH[:-4] + b"\n\ncp", "32 bytes"),
        (b"old 1\n" + HASH[:-1] + b"x\n\ncp", "base64"),
        (b"old 1\n" + HASH + b" \n\ncp", "proof line"),
        (b"old 1\n\n", "no checkpoint"),
        (b"old 1\n" + (HASH + b"\n") * (MAX_PROOF_LINES + 1) + b"\ncp", "more than 63"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message) as raised:
        parse_add_checkpoint(body)
    assert raised.value.http_status == 400
    assert not raised.value.evidence


def test_bounds() -> None:
    request = parse_add_checkpoint(b"old 7\n" + (HASH + b"\n") * MAX_PROOF_LINES + b"\ncp")
    assert len(request.proof) == MAX_PROOF_LINES
    with pytest.raises(RequestTooLargeError) as raised:
        parse_add_checkpoint(b"old 0\n\n" + b"x" * MAX_REQUEST_BYTES)
    assert raised.value.http_status == 413


@FUZZ
@given(st.binary(max_size=600))
def test_parser_raises_only_request_errors(data: bytes) -> None:
    try:
        parse_add_checkpoint(data)
    except RequestError:
        pass


@pytest.fixture(scope="module")
def small() -> tuple[SimulatedLog, NotaryState]:
    log = SimulatedLog(rounds=2)
    log.grow(20)
    notary = Notary.empty(log)
    notary.submit(log.body(0, 10))
    return log, notary.state


@FUZZ
@given(data=st.data())
def test_any_mutation_is_refused_with_a_documented_error(
    small: tuple[SimulatedLog, NotaryState], data: st.DataObject
) -> None:
    log, state = small
    rows = ((e.seq, e.to_bytes()) for e in log.entries[:10])
    notary = Notary(log, state, LedgerCursor.rebuild(rows, trust_of(log)))
    body = bytearray(log.body(10))
    position = data.draw(st.integers(0, len(body) - 1))
    choice = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if choice == "flip":
        body[position] ^= 1 << data.draw(st.integers(0, 7))
    elif choice == "cut":
        del body[position:]
    else:
        body[position:position] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        notary.submit(bytes(body))
    except NotaryError as error:
        assert 400 <= error.http_status < 500
    else:  # a change outside the signed text and proof (e.g. an ignored signature line)
        assert notary.state.size == log.size


# --- the tlog-witness decision table ------------------------------------------------------


def test_every_envelope_status(grown: SimulatedLog) -> None:
    notary = Notary.empty(grown)
    trust = trust_of(grown)
    state = notary.state

    other = SimulatedLog(origin="other.example.org/log", key=house_key("other"))
    with pytest.raises(UnknownLogError) as unknown:
        check_envelope(parse_add_checkpoint(other.body(0)), trust, state)
    assert unknown.value.http_status == 404 and not unknown.value.evidence

    impostor = SimulatedLog(key=house_key("impostor"))
    with pytest.raises(LogSignatureError) as missing:
        check_envelope(parse_add_checkpoint(impostor.body(0)), trust, state)
    assert missing.value.http_status == 403 and "no signature from a trusted key" in str(
        missing.value
    )

    good = grown.checkpoint()
    bad = good[:-10] + (b"A" if good[-10:-9] != b"A" else b"B") + good[-9:]
    with pytest.raises(LogSignatureError) as broken:
        check_envelope(AddCheckpoint(0, (), bad), trust, state)
    assert broken.value.http_status == 403 and "does not verify" in str(broken.value)

    with pytest.raises(RequestError) as above:
        check_envelope(parse_add_checkpoint(grown.body(50, 40)), trust, state)
    assert above.value.http_status == 400 and above.value.evidence

    with pytest.raises(SizeConflictError) as conflict:
        check_envelope(parse_add_checkpoint(grown.body(10, 40)), trust, state)
    assert (conflict.value.http_status, conflict.value.latest_size) == (409, 0)

    notary.submit(grown.body(0, 40))
    with pytest.raises(SizeConflictError) as conflict:
        check_envelope(parse_add_checkpoint(grown.body(0)), trust, notary.state)
    assert conflict.value.latest_size == 40

    proof = grown.proof(40)
    proof[0] = bytes(32)
    with pytest.raises(InconsistentCheckpointError) as bad_proof:
        check_envelope(AddCheckpoint(40, tuple(proof), grown.checkpoint()), trust, notary.state)
    assert bad_proof.value.http_status == 422 and bad_proof.value.evidence

    forked = grown.fork(30)
    forked.grow(10)
    assert forked.size >= 40
    with pytest.raises(InconsistentCheckpointError, match="another root") as same_size:
        check_envelope(parse_add_checkpoint(forked.body(40, 40)), trust, notary.state)
    assert same_size.value.http_status == 422 and same_size.value.evidence

    # Same size, same root: co-signed again (idempotent).
    accepted = check_envelope(parse_add_checkpoint(grown.body(40, 40)), trust, notary.state)
    assert not accepted.grows


def test_size_zero_must_have_the_empty_root() -> None:
    log = SimulatedLog()
    signer = log.signer
    bogus = base64.b64encode(b"\x01" * 32).decode()
    note = signer.sign_note(Note(f"{log.origin}\n0\n{bogus}\n")).to_bytes()
    with pytest.raises(InconsistentCheckpointError, match="empty tree"):
        check_envelope(AddCheckpoint(0, (), note), trust_of(log), NotaryState(log.origin))
    empty = signer.sign_note(
        Note(f"{log.origin}\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n")
    ).to_bytes()
    accepted = check_envelope(AddCheckpoint(0, (), empty), trust_of(log), NotaryState(log.origin))
    assert accepted.checkpoint.size == 0


def test_extension_lines_are_refused() -> None:
    log = SimulatedLog()
    root = base64.b64encode(log.tree.root()).decode()
    note = log.signer.sign_note(Note(f"{log.origin}\n1\n{root}\nextra\n")).to_bytes()
    with pytest.raises(RequestError, match="extension"):
        check_envelope(AddCheckpoint(0, (), note), trust_of(log), NotaryState(log.origin))


def test_the_cosignature_verifies_with_chain(grown: SimulatedLog) -> None:
    notary = Notary.empty(grown)
    line = notary.submit(grown.body(0))
    signed = open_checkpoint(notary.state.checkpoint, grown.signer.verifier, [NOTARY.verifier])
    assert signed.cosigner_names == {NOTARY.name}
    assert line.decode().startswith("\u2014 notary1.example.org ")
    assert signed.checkpoint.size == grown.size


# --- the pipeline beyond the spec ---------------------------------------------------------


def refusal(
    notary: Notary, body: bytes, log: SimulatedLog | None = None, now: int | None = None
) -> RefusedContentError:
    before = notary.state
    with pytest.raises(RefusedContentError) as raised:
        notary.submit(body, log, now)
    assert notary.state == before
    assert notary.cursor.stale
    assert raised.value.evidence and raised.value.http_status == 422
    return raised.value


def test_a_bid_accepted_below_the_minimum_is_refused() -> None:
    log = SimulatedLog()
    log.grow(60)
    notary = Notary.empty(log)
    notary.submit(log.body(0))
    start = log.size
    forged = log.inject_low_bid()
    log.grow(5)
    error = refusal(notary, log.body(start))
    assert (error.step, error.seq) == ("8 replay", forged.seq)
    assert "the rules give" in error.message and "BELOW_MIN" in error.message


def tampered(log: SimulatedLog, index: int, **changes: object) -> SimulatedLog:
    """``log`` with entry ``index`` rebuilt with ``changes``, re-chained and re-rooted."""
    entries = list(log.entries)
    entry = entries[index]
    fields = {
        "seq": entry.seq,
        "prev": entry.prev,
        "time_us": entry.time_us,
        "entry_type": entry.type,
        "body": entry.body,
        "actor": entry.actor,
    }
    fields.update(changes)
    entries[index] = build_entry(**fields)  # type: ignore[arg-type]
    for later in range(index + 1, len(entries)):
        e = entries[later]
        entries[later] = build_entry(
            seq=e.seq,
            prev=entries[later - 1].leaf_hash(),
            time_us=e.time_us,
            entry_type=e.type,
            body=e.body,
            actor=e.actor,
        )
    copy = log.fork(1)
    copy.entries = entries
    copy.tree = MemoryTree()
    for e in entries:
        copy.tree.append(e.to_bytes())
    return copy


@pytest.fixture
def at_100() -> tuple[SimulatedLog, Notary]:
    log = SimulatedLog()
    log.grow(130)
    notary = Notary.empty(log)
    notary.submit(log.body(0, 100))
    return log, notary


def test_a_forged_actor_signature_is_refused(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    entry = log.entries[110]
    forged = sign_actor(entry.type, entry.body, log.kid, house_key("thief"))
    bad = tampered(log, 110, actor=forged)
    error = refusal(notary, bad.body(100), bad)
    assert (error.step, error.seq) == ("7 actor signatures", 110)


def test_an_unknown_actor_key_is_refused(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    entry = log.entries[105]
    other = sign_actor(entry.type, entry.body, "bidder-key-7", log.private_key)
    bad = tampered(log, 105, actor=other)
    error = refusal(notary, bad.body(100), bad)
    assert (error.step, error.seq) == ("7 actor signatures", 105)
    assert "names no key valid at this point" in error.message


def test_actor_key_rotation() -> None:
    log = SimulatedLog()
    log.grow(40)
    old_kid, old_key = log.kid, log.actor_key
    rotation = log.rotate_actor_key(house_key("actors 2026"))
    log.grow(40)
    notary = Notary.empty(log)
    notary.submit(log.body(0))
    assert notary.cursor.keys.resolve(log.kid) and not notary.cursor.keys.resolve(old_kid)
    rebuilt = LedgerCursor.rebuild(((e.seq, e.to_bytes()) for e in log.entries), trust_of(log))
    assert rebuilt.keys == notary.cursor.keys
    # An entry signed with the revoked key after the rotation is refused.
    start = log.size
    log.actor_key, log.kid = old_key, old_kid
    log.grow(3)
    error = refusal(notary, log.body(start))
    assert (error.step, error.seq) == ("7 actor signatures", start)
    assert rotation.seq == 41


def test_a_bad_signature_is_reported_before_a_rule_breach(
    at_100: tuple[SimulatedLog, Notary],
) -> None:
    log, notary = at_100
    fork = log.fork(log.size)
    fork.inject_low_bid()
    entry = fork.entries[120]
    bad = tampered(fork, 120, actor=sign_actor(entry.type, entry.body, fork.kid, house_key("x")))
    error = refusal(notary, bad.body(100), bad)
    assert (error.step, error.seq) == ("7 actor signatures", 120)


def test_time_bounds(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    ahead = log.entries[110].time_us - 3 * SECOND  # our clock is 3 s behind the entry
    error = refusal(notary, log.body(100), log, now=ahead)
    assert error.step == "9 time bounds" and error.seq is not None
    assert "ahead of the verifier's clock" in error.message
    backwards = tampered(log, 115, time_us=log.entries[114].time_us - 1)
    notary.cursor = LedgerCursor.rebuild(
        ((e.seq, e.to_bytes()) for e in log.entries[:100]), trust_of(log)
    )
    error = refusal(notary, backwards.body(100), backwards)
    assert error.step in ("8 replay", "9 time bounds") and error.seq == 115


def test_entries_that_do_not_hash_to_the_root(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    checkpoint = log.body(100)
    other = log.fork(log.size)
    other.entries[120] = log.entries[119]
    error = refusal(notary, checkpoint, other)
    assert error.step == "3 roots"


def test_wrong_seq_and_second_house_entry(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    bad = tampered(log, 104, seq=999)
    assert refusal(notary, bad.body(100), bad).step == "2 chain"
    notary.cursor = LedgerCursor.rebuild(
        ((e.seq, e.to_bytes()) for e in log.entries[:100]), trust_of(log)
    )
    house = log.fork(log.size)
    house.append(EntryType.HOUSE, dict(log.entries[0].body))
    error = refusal(notary, house.body(100), house)
    assert (error.step, error.seq) == ("4 log signatures", house.size - 1)


def test_the_house_key_must_be_the_policy_log_key() -> None:
    log = SimulatedLog()
    stranger = Ed25519Signer(log.origin, house_key("stranger"))
    body = dict(log.entries[0].body)
    body["vkey"] = stranger.vkey
    bad = tampered(
        log, 0, body=body, actor=sign_actor(EntryType.HOUSE, body, log.kid, log.private_key)
    )
    error = refusal(Notary.empty(log), bad.body(0), bad)
    assert (error.step, error.seq) == ("4 log signatures", 0)


def test_count_and_limits(at_100: tuple[SimulatedLog, Notary]) -> None:
    log, notary = at_100
    accepted = check_envelope(parse_add_checkpoint(log.body(100)), trust_of(log), notary.state)
    with pytest.raises(RefusedContentError) as raised:
        verify_increment(
            notary.state,
            accepted,
            [e.to_bytes() for e in log.entries[100:-1]],
            notary.cursor,
            trust_of(log),
            now_us=now_us(),
        )
    assert raised.value.step == "3 roots"
    with pytest.raises(NotaryStateError):  # the cursor is stale after a refusal
        verify_increment(notary.state, accepted, [], notary.cursor, trust_of(log), now_us=now_us())


def test_the_cursor_rebuilt_from_the_mirror_continues_the_replay() -> None:
    log = SimulatedLog()
    log.grow(400)
    straight = Notary.empty(log)
    straight.submit(log.body(0))
    stepped = Notary.empty(log)
    for size in (1, 57, 200, 256, 257, log.size):
        stepped.submit(log.body(stepped.state.size, size))
        stepped.cursor = LedgerCursor.rebuild(
            ((e.seq, e.to_bytes()) for e in log.entries[:size]), trust_of(log)
        )
    assert stepped.state.root == straight.state.root
    assert stepped.cursor.replay.outcomes() == straight.cursor.replay.outcomes()
    assert straight.cursor.replay.sales > 0 and straight.cursor.replay.rejected > 0


def test_the_stored_state_is_checked() -> None:
    with pytest.raises(NotaryStateError):
        NotaryState("o", 1, bytes(32), (EMPTY_ROOT,))
    with pytest.raises(NotaryStateError):
        NotaryState("o", 2, EMPTY_ROOT, ())


def test_import_notary_pulls_no_adapter() -> None:
    code = (
        "import sys, notary; "
        "bad = [m for m in ('aiohttp', 'sqlite3', 'asyncio', 'auction.service', 'auction.storage')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
