"""What a notary accepts, decided without I/O: the sans-I/O core of ``notary``.

A notary is a C2SP tlog-witness that also mirrors and re-checks the log's content. The adapter
(:mod:`notary.server`) feeds this module bytes and ``now`` and persists what it returns:

1. :func:`parse_add_checkpoint` splits a ``POST /add-checkpoint`` body (bounded: at most 63
   proof lines and :data:`MAX_REQUEST_BYTES`) into an :class:`AddCheckpoint`.
2. :func:`check_envelope` applies the tlog-witness rules against the notary's
   :class:`NotaryState`, in the spec's order: 404 unknown origin, 403 log signature, 400
   ``old > size``, 409 ``old`` is not our size, 422 same size with another root or a
   consistency proof that does not verify. It returns a :class:`ConsistentCheckpoint`.
3. When the tree grew, the adapter fetches entries ``[old, size)`` from the log's entry bundles
   and calls :func:`verify_increment`, the numbered, fail-closed pipeline beyond the spec:

   1. *count* - exactly ``size - old`` entries;
   2. *root* - leaf hashes recomputed from the bytes, appended to the stored compact range,
      the root must be the checkpoint's root (this authenticates the bytes);
   3. *parse* - every entry is a canonical ledger entry (``chain.parse_entry``);
   4. *chain* - ``seq`` is the leaf index, ``prev`` the previous leaf hash, entry 0 is the
      ``house`` entry and only it;
   5. *time* - entry times never go backwards, are not ahead of ``now`` by more than the
      configured skew, and times stated in bodies are not after the entry's;
   6. *keys* - every actor signature verifies under a key valid at that point of the log (the
      house key of entry 0, which must be the policy's log key; ``key`` entries change the
      set, :class:`ActorKeys`);
   7. *rules* - :class:`auction.ledger.LedgerReplay` replays every entry with the engine the
      server runs, continued from the notary's :class:`LedgerCursor`; it also checks the
      signed-bid rules (``idv`` attestations under a provider key added by a ``key`` entry
      with role "idv", each bid's signed request, ``signed_bids`` logs).

   Any failure raises :class:`~notary.errors.RefusedContentError` naming the step and ``seq``.
4. The adapter then co-signs (:func:`cosign`), commits the new :class:`NotaryState` and the
   mirrored entries in one transaction, and only then answers.

Every function raises :class:`~notary.errors.NotaryError` subclasses only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auction.verify import LedgerReplay, ReplayError, kid_names_key
from chain import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_NOTE_SIZE,
    MAX_TREE_SIZE,
    ChainError,
    Checkpoint,
    CompactRange,
    CosignatureSigner,
    Ed25519Verifier,
    Entry,
    EntryType,
    MalformedError,
    Note,
    NoteSignature,
    Policy,
    SignatureError,
    TooLargeError,
    leaf_hash,
    open_note,
    parse_checkpoint_text,
    parse_entry,
    parse_note,
    parse_time,
    parse_vkey,
    range_nodes,
    verify_actor,
    verify_chain,
    verify_consistency,
)

from .errors import (
    InconsistentCheckpointError,
    LogSignatureError,
    NotaryStateError,
    RefusedContentError,
    RequestError,
    RequestTooLargeError,
    SizeConflictError,
    UnknownLogError,
)

__all__ = [
    "DEFAULT_MAX_INCREMENT",
    "DEFAULT_MAX_SKEW_US",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "ActorCheck",
    "AddCheckpoint",
    "ConsistentCheckpoint",
    "ActorKeys",
    "Increment",
    "LedgerCursor",
    "LogTrust",
    "MirroredEntry",
    "NotaryState",
    "SignatureChecker",
    "check_signatures_serially",
    "check_envelope",
    "compact_root",
    "cosign",
    "format_add_checkpoint",
    "format_size",
    "parse_add_checkpoint",
    "verify_actor_checks",
    "verify_increment",
]

MAX_PROOF_LINES: Final = 63
"""tlog-witness: a client MUST NOT send more than 63 consistency proof lines."""

_OLD_LINE_BYTES: Final = len(b"old ") + 19 + 1
_PROOF_LINE_BYTES: Final = 44 + 1

MAX_REQUEST_BYTES: Final = _OLD_LINE_BYTES + MAX_PROOF_LINES * _PROOF_LINE_BYTES + 1 + MAX_NOTE_SIZE
"""Largest add-checkpoint body: the old line, 63 proof lines, the blank line and a note."""

DEFAULT_MAX_SKEW_US: Final = 2_000_000
"""Entry times may be ahead of the notary's clock by at most this much (research 6.6 step 5)."""

DEFAULT_MAX_INCREMENT: Final = 250_000
"""A single add-checkpoint may bring at most this many new entries (bounded memory)."""

_OLD_PATTERN = re.compile(rb"old (0|[1-9][0-9]{0,18})")
_SECOND_US: Final = 1_000_000
_COMMAND_TYPES: Final = frozenset(
    {EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE}
)


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` body: ``old`` size, proof hashes, the checkpoint note bytes.

    Nothing in it is trusted yet: pass it to :func:`check_envelope`.
    """

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


@dataclass(frozen=True, slots=True)
class LogTrust:
    """The one log a notary serves: its origin and the keys that may sign its checkpoints.

    Several keys overlap during a log key rotation; any one of them suffices.
    """

    origin: str
    verifiers: tuple[Ed25519Verifier, ...]

    def __post_init__(self) -> None:
        if not self.verifiers:
            raise NotaryStateError("a log needs at least one key")
        if any(verifier.name != self.origin for verifier in self.verifiers):
            raise NotaryStateError("every log key's name must be the log's origin")

    @classmethod
    def from_policy(cls, policy: Policy) -> LogTrust:
        """The log of a tlog-policy. Raises :class:`NotaryStateError` unless it names exactly
        one origin (a notary serves one log)."""
        origins = sorted({log.verifier.name for log in policy.logs})
        if len(origins) != 1:
            raise NotaryStateError(f"the policy must name exactly one log origin, not {origins}")
        return cls(origins[0], tuple(log.verifier for log in policy.logs))

    def public_keys(self) -> frozenset[bytes]:
        """The raw Ed25519 public keys of the log."""
        return frozenset(verifier.public_key for verifier in self.verifiers)


@dataclass(frozen=True, slots=True)
class NotaryState:
    """What the notary last co-signed for its log, as persisted.

    ``compact`` holds the hashes of ``chain.range_nodes(0, size)``: with it the notary extends
    its tree by new leaves without re-reading the mirror. ``checkpoint`` is the co-signed note
    (log signature and our cosignature), empty before the first co-signature;
    ``cosigned_at`` its cosignature time (POSIX seconds, 0 before).
    """

    origin: str
    size: int = 0
    root: bytes = EMPTY_ROOT
    compact: tuple[bytes, ...] = ()
    checkpoint: bytes = b""
    cosigned_at: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.size <= MAX_TREE_SIZE or len(self.root) != HASH_SIZE:
            raise NotaryStateError("stored state has an invalid size or root")
        if len(self.compact) != len(range_nodes(0, self.size)):
            raise NotaryStateError("stored compact range does not fit the stored size")
        if compact_root(self.size, self.compact) != self.root:
            raise NotaryStateError("stored compact range does not hash to the stored root")


def compact_root(size: int, hashes: Sequence[bytes]) -> bytes:
    """The root of the tree of ``size`` from the hashes of ``range_nodes(0, size)``."""
    try:
        return CompactRange.from_hashes(0, size, hashes).root()
    except ChainError as exc:
        raise NotaryStateError(f"invalid compact range: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ConsistentCheckpoint:
    """A checkpoint that passed every tlog-witness check against the notary's state.

    ``note`` holds only the log signatures that verified (unknown signatures dropped), ready
    for :func:`cosign`. When ``checkpoint.size > old_size`` the adapter must fetch entries
    ``[old_size, checkpoint.size)`` and run :func:`verify_increment` before co-signing.
    """

    checkpoint: Checkpoint
    note: Note
    old_size: int

    @property
    def grows(self) -> bool:
        """Whether the checkpoint brings new entries."""
        return self.checkpoint.size > self.old_size


@dataclass(frozen=True, slots=True)
class MirroredEntry:
    """One entry to store in the mirror: its index, leaf hash and canonical bytes."""

    seq: int
    leaf_hash: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Increment:
    """The verified growth of the tree: the new state's tree and the entries to mirror.

    The adapter commits it with the co-signed checkpoint in one transaction.
    """

    size: int
    root: bytes
    compact: tuple[bytes, ...]
    entries: tuple[MirroredEntry, ...]
    commands: int


@dataclass(frozen=True, slots=True)
class ActorKeys:
    """The actor keys valid at a point of the log (immutable; each change makes a new one).

    Entry 0 (``house``) gives the first key, the house key, which must be the policy's log key.
    A ``key`` entry (provisional body, as the auditor reads it: ``vkey`` added, optional
    ``revoke`` list of kids removed; its ``role``, e.g. "idv" for an identity provider whose
    key signs ``idv`` entries, is checked by the replay) changes the set from the next entry
    on. An ``actor.kid`` names a key when it equals its vkey, ``<name>+<hex key id>``, its
    name, or its hex key id (any case); when several keys match, one of them must verify.
    """

    keys: tuple[Ed25519Verifier, ...] = ()

    @staticmethod
    def _matches(verifier: Ed25519Verifier, kid: str) -> bool:
        return kid_names_key(verifier, kid)

    def resolve(self, kid: str) -> tuple[bytes, ...]:
        """The public keys ``kid`` may name (empty: none)."""
        return tuple(key.public_key for key in self.keys if self._matches(key, kid))

    def changed(self, added: Ed25519Verifier, revoked: Sequence[str]) -> ActorKeys:
        """The keys after a ``key`` entry."""
        kept = [key for key in self.keys if not any(self._matches(key, k) for k in revoked)]
        return ActorKeys((*kept, added))


@dataclass
class LedgerCursor:
    """The notary's running view of the log's content at ``size`` entries (mutable).

    Holds the actor keys, the last entry's leaf hash and time, and the rules replay. The
    pipeline (:func:`verify_increment`) advances it in place; after any refusal it is
    ``stale`` and the adapter must rebuild it from the mirror (:meth:`rebuild`) before use.
    """

    size: int = 0
    keys: ActorKeys = field(default_factory=ActorKeys)
    last_leaf: bytes = b""
    last_time_us: int = -1
    replay: LedgerReplay = field(default_factory=LedgerReplay)
    stale: bool = False

    @classmethod
    def rebuild(
        cls,
        rows: Iterable[tuple[int, bytes]],
        trust: LogTrust,
        openings: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> LedgerCursor:
        """Re-run the replay over mirrored ``(seq, bytes)`` rows, in order from 0.

        The rows passed every check when they were mirrored; this only re-derives the replay
        state (so it skips signatures). Raises :class:`NotaryStateError` if the mirror no
        longer replays, which means the notary's own storage is damaged.
        """
        cursor = cls()
        if openings is not None:  # sealed values are opened and checked (docs/ledger.md)
            cursor.replay.openings = openings.get
        for seq, data in rows:
            if seq != cursor.size:
                raise NotaryStateError(f"mirror has entry {seq} where {cursor.size} is expected")
            try:
                value = json.loads(data)
                entry_type = value["type"]
                time_us = parse_time(value["t"])
                body = value["body"]
                if seq == 0:
                    cursor.keys = ActorKeys((_house_key(parse_entry(data), trust),))
                elif entry_type == EntryType.KEY:
                    cursor.keys = _key_change(cursor.keys, parse_entry(data))
                cursor.replay.add(seq, entry_type, time_us, body, value["actor"]["kid"])
            except (ValueError, KeyError, TypeError, ChainError, ReplayError) as exc:
                raise NotaryStateError(f"mirrored entry {seq} no longer replays: {exc}") from exc
            except RefusedContentError as exc:
                raise NotaryStateError(f"mirrored key entry {seq} is unusable: {exc}") from exc
            cursor.size += 1
            cursor.last_leaf = leaf_hash(data)
            cursor.last_time_us = time_us
        return cursor


@dataclass(frozen=True, slots=True)
class ActorCheck:
    """One actor signature to verify: Ed25519 ``signature`` by ``public_key`` over ``message``.

    ``entry`` and ``data`` let a failure be confirmed by ``chain.verify_actor``.
    """

    seq: int
    public_key: bytes
    signature: bytes
    message: bytes
    entry: Entry


SignatureChecker = Callable[[Sequence[ActorCheck]], Callable[[], None]]
"""Starts verifying a batch of :class:`ActorCheck` and returns a function that waits for the
result and raises :class:`RefusedContentError` naming the lowest failing ``seq``. The pipeline
replays the rules meanwhile, then waits, and reports a bad signature before any rule breach.
:func:`check_signatures_serially` verifies at once; the adapter may pass one that spreads the
batch over threads (Ed25519 verification releases the GIL)."""


# --------------------------------------------------------------------------------------------
# The add-checkpoint body


def _decode_hash_line(line: bytes) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError("a consistency proof line is not base64") from exc
    if len(raw) != HASH_SIZE or base64.b64encode(raw) != line:
        raise RequestError("a consistency proof line is not 32 bytes of canonical base64")
    return raw


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Split a tlog-witness ``add-checkpoint`` body. Bounded and strict.

    ``old <size>`` (canonical decimal), at most 63 base64 hash lines, an empty line, then the
    checkpoint note (not parsed here). Raises :class:`RequestError` (400) or
    :class:`RequestTooLargeError` (413). Pass the result to :func:`check_envelope`.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise RequestTooLargeError(f"add-checkpoint body larger than {MAX_REQUEST_BYTES} bytes")
    data = bytes(body)
    end = data.find(b"\n", 0, _OLD_LINE_BYTES)
    if end < 0:
        raise RequestError("the body must start with an 'old <size>' line")
    match = _OLD_PATTERN.fullmatch(data[:end])
    if match is None:
        raise RequestError("the old size line must be 'old <decimal without leading zeros>'")
    old_size = int(match[1])
    if old_size > MAX_TREE_SIZE:
        raise RequestError("old size out of range")
    position = end + 1
    proof: list[bytes] = []
    while True:
        end = data.find(b"\n", position, position + _PROOF_LINE_BYTES)
        if end < 0:
            raise RequestError("expected a proof line or the empty line before the checkpoint")
        if end == position:
            position += 1
            break
        if len(proof) == MAX_PROOF_LINES:
            raise RequestError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof.append(_decode_hash_line(data[position:end]))
        position = end + 1
    checkpoint = data[position:]
    if not checkpoint:
        raise RequestError("the body has no checkpoint after the empty line")
    return AddCheckpoint(old_size, tuple(proof), checkpoint)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """Build an ``add-checkpoint`` body (what a log sends): old line, proof, blank, note."""
    if len(proof) > MAX_PROOF_LINES:
        raise RequestError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    lines = [b"old %d\n" % old_size]
    lines.extend(base64.b64encode(digest) + b"\n" for digest in proof)
    return b"".join(lines) + b"\n" + checkpoint


def format_size(size: int) -> bytes:
    """The body of a 409 answer (``text/x.tlog.size``): the size in decimal and a newline."""
    return b"%d\n" % size


# --------------------------------------------------------------------------------------------
# The tlog-witness checks


def _origin_line(note: Note) -> str:
    return note.text.split("\n", 1)[0]


def _parse_checkpoint(note: Note) -> Checkpoint:
    try:
        return parse_checkpoint_text(note.text)
    except MalformedError as exc:
        lines = note.text.split("\n")
        if len(lines) >= 3 and lines[1] == "0":
            # C2SP/C2SP#280: a size-0 checkpoint must have the empty tree's root, else 422.
            raise InconsistentCheckpointError(
                "a checkpoint of size 0 must have the root of the empty tree"
            ) from exc
        raise RequestError(f"checkpoint: {exc.message}") from exc


def check_envelope(
    request: AddCheckpoint, trust: LogTrust, state: NotaryState
) -> ConsistentCheckpoint:
    """Apply the C2SP tlog-witness checks to ``request`` against the notary's ``state``.

    In order: parse the note (400); origin is the log's (404, tlog-witness); a log key signed
    and every known log key's signature verifies (403); no extension lines (400, ledger spec
    §3); ``old <= size`` (400); ``old`` is the last co-signed size (409 with that size);
    the same size needs the same root (422, C2SP/C2SP#280); the consistency proof from our
    stored root verifies (422). Errors after the signature check are marked as evidence.
    The caller then runs :func:`verify_increment` if the checkpoint grows, else co-signs.
    """
    try:
        note = parse_note(request.checkpoint)
    except TooLargeError as exc:
        raise RequestTooLargeError(f"checkpoint: {exc.message}") from exc
    except MalformedError as exc:
        raise RequestError(f"checkpoint: {exc.message}") from exc
    origin = _origin_line(note)
    if origin != trust.origin:  # tlog-witness: 404 for an unknown origin
        raise UnknownLogError(f"this notary does not serve the log {origin!r}")
    try:
        opened = open_note(note, trust.verifiers)
    except SignatureError as exc:  # tlog-witness: 403
        raise LogSignatureError(f"checkpoint: {exc.message}") from exc
    except ChainError as exc:
        raise NotaryStateError(f"log keys: {exc.message}") from exc
    checkpoint = _parse_checkpoint(note)
    slots = {(signature.name, signature.key_id) for signature in opened.verified}
    log_signatures = tuple(s for s in note.signatures if (s.name, s.key_id) in slots)
    size = checkpoint.size
    try:
        if checkpoint.extensions:
            raise RequestError("checkpoints with extension lines are not accepted")
        if request.old_size > size:  # tlog-witness: 400 when old > checkpoint size
            raise RequestError(f"old size {request.old_size} is above the checkpoint size {size}")
        if request.old_size != state.size:  # tlog-witness: 409 when old != latest
            raise SizeConflictError(state.size)
        if size == state.size:
            if checkpoint.root != state.root:  # C2SP/C2SP#280: same size, other root: 422
                raise InconsistentCheckpointError(
                    f"size {size} was co-signed with another root: the log forked"
                )
            if request.proof:
                raise InconsistentCheckpointError("a proof between equal sizes must be empty")
        else:
            try:
                verify_consistency(state.size, size, request.proof, state.root, checkpoint.root)
            except ChainError as exc:  # tlog-witness: 422 for a bad proof
                raise InconsistentCheckpointError(
                    f"consistency proof from {state.size} to {size}: {exc.message}"
                ) from exc
    except (RequestError, SizeConflictError, InconsistentCheckpointError) as exc:
        exc.authenticated(size)
        raise
    return ConsistentCheckpoint(checkpoint, Note(note.text, log_signatures), request.old_size)


def cosign(
    signer: CosignatureSigner, accepted: ConsistentCheckpoint, timestamp: int
) -> tuple[NoteSignature, bytes]:
    """Co-sign an accepted checkpoint as of ``timestamp`` (POSIX seconds).

    Returns the cosignature (send ``signature.to_line()`` as the 200 body) and the note with
    the log signatures and ours, to persist and serve at ``GET /checkpoint``. The caller must
    commit the new state *before* it sends the line (tlog-witness).
    """
    try:
        signature = signer.cosign(accepted.note.text_bytes, timestamp)
        return signature, accepted.note.with_signatures(signature).to_bytes()
    except ChainError as exc:
        raise NotaryStateError(f"cannot co-sign: {exc.message}") from exc


# --------------------------------------------------------------------------------------------
# Beyond the spec: the content pipeline

_STEP_COUNT = "1 count"
_STEP_ROOT = "2 root"
_STEP_PARSE = "3 parse"
_STEP_CHAIN = "4 chain"
_STEP_TIME = "5 time"
_STEP_KEYS = "6 keys"
_STEP_RULES = "7 rules"


def _refuse(step: str, message: str, seq: int | None = None) -> RefusedContentError:
    return RefusedContentError(message, step=step, seq=seq)


def _vkey(entry: Entry, what: str) -> Ed25519Verifier:
    vkey = entry.body.get("vkey")
    if not isinstance(vkey, str):
        raise _refuse(_STEP_KEYS, f"the {what} has no vkey", entry.seq)
    try:
        verifier = parse_vkey(vkey)
    except ChainError as exc:
        raise _refuse(_STEP_KEYS, f"the {what} vkey is invalid: {exc.message}", entry.seq) from exc
    if not isinstance(verifier, Ed25519Verifier):
        raise _refuse(_STEP_KEYS, f"the {what} vkey is not an Ed25519 key", entry.seq)
    return verifier


def _house_key(entry: Entry, trust: LogTrust) -> Ed25519Verifier:
    """Entry 0 ties the log to its key: same origin, and the policy's log key."""
    if entry.body.get("origin") != trust.origin:
        raise _refuse(_STEP_KEYS, "the house entry names another origin", entry.seq)
    verifier = _vkey(entry, "house entry")
    if verifier.name != trust.origin or verifier.public_key not in trust.public_keys():
        raise _refuse(_STEP_KEYS, "the house key is not the policy's log key", entry.seq)
    return verifier


def _key_change(keys: ActorKeys, entry: Entry) -> ActorKeys:
    """Apply a ``key`` entry (provisional body: ``vkey``, optional ``revoke`` list of kids)."""
    added = _vkey(entry, "key entry")
    revoke = entry.body.get("revoke", ())
    if not isinstance(revoke, tuple | list) or not all(isinstance(k, str) for k in revoke):
        raise _refuse(_STEP_KEYS, "the key entry's revoke must be a list of kids", entry.seq)
    return keys.changed(added, [str(kid) for kid in revoke])


def _signed_message(entry: Entry, data: bytes) -> bytes:
    """``actor_message(entry.type, entry.body)``, cut out of the canonical entry bytes.

    ``parse_entry`` proved that ``data`` is the RFC 8785 encoding of the entry, whose members
    are sorted ``actor, body, prev, seq, t, type, v``; so ``JCS(body)`` is the text between
    ``,"body":`` (which cannot occur earlier: a quote inside a string is escaped) and the
    suffix rebuilt below. If anything does not line up, fall back to recomputing it.
    """
    prev = base64.b64encode(entry.prev).decode("ascii") if entry.prev else ""
    suffix = (
        f',"prev":"{prev}","seq":{entry.seq},"t":"{entry.t}",'
        f'"type":"{entry.type.value}","v":"gavel/entry/v1"}}'
    ).encode("ascii")
    start = data.find(b',"body":')
    if start < 0 or not data.endswith(suffix) or start + 8 > len(data) - len(suffix):
        return entry.signed_message()
    return (
        b"gavel/"
        + entry.type.value.encode("ascii")
        + b"/v1\n"
        + data[start + 8 : len(data) - len(suffix)]
    )


def _done() -> None:
    return None


def check_signatures_serially(checks: Sequence[ActorCheck]) -> Callable[[], None]:
    """The default :data:`SignatureChecker`: verify now, in this thread."""
    verify_actor_checks(checks)
    return _done


def _verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _check_stated_time(entry: Entry) -> None:
    """A ``lot``'s ``created`` and any other non-command body's ``ingress`` are not after ``t``
    (as the auditor checks them)."""
    if entry.type is EntryType.LOT:
        stamp = entry.body.get("created")
    elif entry.type in _COMMAND_TYPES:
        return
    else:
        stamp = entry.body.get("ingress")
    if stamp is None:
        return
    try:
        stated = parse_time(stamp) if isinstance(stamp, str) else None
    except ChainError as exc:
        raise _refuse(_STEP_TIME, f"unreadable time in the body: {exc.message}", entry.seq) from exc
    if stated is None:
        raise _refuse(_STEP_TIME, "a time in the body is not a string", entry.seq)
    if stated > entry.time_us:
        raise _refuse(
            _STEP_TIME, f"the {entry.type.value}'s time is after the entry's t", entry.seq
        )


def verify_actor_checks(checks: Sequence[ActorCheck]) -> None:
    """Verify actor signatures in order; raise :class:`RefusedContentError` at the first bad one.

    A failure is confirmed with ``chain.verify_actor`` (the reference), whose message is used.
    """
    for check in checks:
        try:
            Ed25519PublicKey.from_public_bytes(check.public_key).verify(
                check.signature, check.message
            )
        except InvalidSignature:
            try:
                verify_actor(check.entry, check.public_key)
            except ChainError as exc:
                raise _refuse(_STEP_KEYS, exc.message, check.seq) from exc


def verify_increment(
    state: NotaryState,
    accepted: ConsistentCheckpoint,
    entries: Sequence[bytes],
    cursor: LedgerCursor,
    trust: LogTrust,
    *,
    now_us: int,
    max_skew_us: int = DEFAULT_MAX_SKEW_US,
    check_signatures: SignatureChecker = check_signatures_serially,
) -> Increment:
    """Check entries ``[state.size, checkpoint.size)`` fetched from the log (see module doc).

    ``cursor`` must be at ``state.size``; it is advanced in place and marked ``stale`` on any
    failure. Raises :class:`RefusedContentError` (422, evidence) naming the step and ``seq``.
    The caller co-signs and commits the returned :class:`Increment` with the new checkpoint.
    """
    if cursor.stale or cursor.size != state.size:
        raise NotaryStateError("the ledger cursor is not at the co-signed size")
    checkpoint = accepted.checkpoint
    try:
        increment = _verify_increment(
            state, checkpoint, entries, cursor, trust, now_us, max_skew_us, check_signatures
        )
    except RefusedContentError as exc:
        cursor.stale = True
        exc.authenticated(checkpoint.size)
        raise
    except BaseException:
        cursor.stale = True
        raise
    return increment


def _verify_increment(
    state: NotaryState,
    checkpoint: Checkpoint,
    entries: Sequence[bytes],
    cursor: LedgerCursor,
    trust: LogTrust,
    now_us: int,
    max_skew_us: int,
    check_signatures: SignatureChecker,
) -> Increment:
    first = state.size
    # 1. count
    if len(entries) != checkpoint.size - first:
        raise _refuse(
            _STEP_COUNT,
            f"the log served {len(entries)} entries for [{first}, {checkpoint.size})",
        )
    # 2. root: recompute leaf hashes from the bytes (never trust a served hash)
    tree = CompactRange.from_hashes(0, first, state.compact)
    leaves = [leaf_hash(data) for data in entries]
    for digest in leaves:
        tree.append(digest)
    if tree.root() != checkpoint.root:
        raise _refuse(_STEP_ROOT, "the log's entries do not hash to the checkpoint's root")
    # 3. parse
    parsed: list[Entry] = []
    for offset, data in enumerate(entries):
        try:
            parsed.append(parse_entry(data))
        except ChainError as exc:
            raise _refuse(
                _STEP_PARSE, f"not a ledger entry: {exc.message}", first + offset
            ) from exc
    # 4. chain: seq, prev, house entry first and only first
    previous = cursor.last_leaf or None
    for offset, entry in enumerate(parsed):
        seq = first + offset
        if entry.seq != seq:
            raise _refuse(_STEP_CHAIN, f"entry at index {seq} says seq {entry.seq}", seq)
        try:
            verify_chain(previous, entry)
        except ChainError as exc:
            raise _refuse(_STEP_CHAIN, exc.message, seq) from exc
        if (seq == 0) != (entry.type is EntryType.HOUSE):
            raise _refuse(_STEP_CHAIN, "entry 0, and only entry 0, is the house entry", seq)
        previous = leaves[offset]
    # 5. time: never backwards, never ahead of our clock by more than the skew, and the times
    #    a body states are not after the entry's (commands: checked by the replay, step 7)
    last_time = cursor.last_time_us
    for entry in parsed:
        if entry.time_us < last_time:
            raise _refuse(_STEP_TIME, "entry time goes backwards", entry.seq)
        if entry.time_us > now_us + max_skew_us:
            ahead = (entry.time_us - now_us) / _SECOND_US
            raise _refuse(_STEP_TIME, f"entry time is {ahead:.3f} s ahead of the notary", entry.seq)
        _check_stated_time(entry)
        last_time = entry.time_us
    # 6. keys: every actor signs with a key valid at that point of the log
    keys = cursor.keys
    checks: list[ActorCheck] = []
    for offset, entry in enumerate(parsed):
        if entry.seq == 0:
            keys = ActorKeys((_house_key(entry, trust),))
        candidates = keys.resolve(entry.actor.kid)
        if not candidates:
            unknown = f"actor kid {entry.actor.kid!r} names no key valid at this point"
            raise _refuse(_STEP_KEYS, unknown, entry.seq)
        message = _signed_message(entry, entries[offset])
        if len(candidates) == 1:
            checks.append(ActorCheck(entry.seq, candidates[0], entry.actor.sig, message, entry))
        elif not any(_verifies(key, entry.actor.sig, message) for key in candidates):
            raise _refuse(_STEP_KEYS, "no key the actor kid names verifies", entry.seq)
        if entry.type is EntryType.KEY:
            keys = _key_change(keys, entry)  # effective from the next entry
    wait_for_signatures = check_signatures(checks)
    # 7. rules: the same engine the server runs, continued from the cursor (while step 6 runs)
    replay = cursor.replay
    commands_before = replay.commands
    try:
        for entry in parsed:
            try:
                replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
            except ReplayError as exc:
                raise _refuse(_STEP_RULES, str(exc), exc.seq) from exc
            except (ChainError, ValueError, TypeError, KeyError) as exc:
                raise _refuse(_STEP_RULES, f"entry cannot be replayed: {exc}", entry.seq) from exc
    except BaseException:
        wait_for_signatures()  # a bad signature (step 6) is reported before a rule breach
        raise
    wait_for_signatures()
    cursor.size = checkpoint.size
    cursor.keys = keys
    cursor.last_leaf = leaves[-1] if leaves else cursor.last_leaf
    cursor.last_time_us = last_time
    mirrored = tuple(
        MirroredEntry(first + offset, leaves[offset], bytes(data))
        for offset, data in enumerate(entries)
    )
    return Increment(
        checkpoint.size,
        checkpoint.root,
        tree.hashes,
        mirrored,
        replay.commands - commands_before,
    )
