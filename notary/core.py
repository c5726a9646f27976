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
   and calls :func:`notary.content.verify_increment`, which runs the entry-verification
   pipeline the auditor runs too (:mod:`auction.verify.pipeline`, steps numbered once by
   :class:`auction.verify.Step`), continued from the notary's :class:`LedgerCursor`:

   3. *roots*, first - exactly ``size - old`` entries, whose leaf hashes, recomputed from the
      bytes and appended to the stored compact range, give the checkpoint's root (until they
      do, nothing in the bytes is the log's word);
   1. *parse* - every entry is a canonical ledger entry (``chain.parse_entry``);
   2. *chain* - ``seq`` is the leaf index, ``prev`` the previous leaf hash;
   4. *log signatures* - entry 0 is the ``house`` entry naming the policy's log key, and only
      entry 0 is a ``house`` entry;
   7. *actor signatures* - every actor signature verifies under a key valid at that point of
      the log (:class:`auction.verify.ActorKeys`: the house key, changed by ``key`` entries);
   8. *replay* - :class:`auction.verify.LedgerReplay` replays every entry with the engine the
      server runs; it also checks the signed-bid rules (``idv`` attestations under a provider
      key added by a ``key`` entry with role "idv", each bid's signed request, ``signed_bids``
      logs);
   9. *time bounds* - entry times never go backwards, are not ahead of ``now`` by more than the
      configured skew, and times stated in bodies are not after the entry's.

   Any failure raises :class:`~notary.errors.RefusedContentError` naming the step (its
   ``label``, e.g. ``"7 actor signatures"``) and ``seq``.
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

from auction.verify import (
    ActorKeys,
    EntryRejected,
    LedgerReplay,
    replay_entry,
)
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
    MalformedError,
    Note,
    NoteSignature,
    Policy,
    SignatureError,
    TooLargeError,
    leaf_hash,
    open_note,
    parse_checkpoint_text,
    parse_note,
    parse_time,
    range_nodes,
    verify_consistency,
)

from .errors import (
    InconsistentCheckpointError,
    LogSignatureError,
    NotaryStateError,
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
    "check_envelope",
    "compact_root",
    "cosign",
    "format_add_checkpoint",
    "format_size",
    "parse_add_checkpoint",
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
                    cursor.keys = ActorKeys.of_house(seq, body, trust.origin, trust.verifiers)
                else:
                    cursor.keys = cursor.keys.after(seq, entry_type, body)
                replay_entry(cursor.replay, seq, entry_type, time_us, body, value["actor"]["kid"])
            except (ValueError, KeyError, TypeError, ChainError) as exc:
                raise NotaryStateError(f"mirrored entry {seq} no longer replays: {exc}") from exc
            except EntryRejected as exc:
                raise NotaryStateError(f"mirrored entry {seq} no longer verifies: {exc}") from exc
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
