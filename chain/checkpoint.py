"""C2SP tlog-checkpoint: the signed tree head ``<origin>\\n<size>\\n<base64 root>\\n``.

The log builds a :class:`Checkpoint`, signs it with :func:`sign_checkpoint` (never with extension
lines: they are not auditable, tlog-checkpoint), sends it to the notaries, and merges their
cosignature lines with :func:`add_cosignatures`. Anyone who receives one calls
:func:`open_checkpoint` with the log's verifier and the cosigners it knows; the result says which
cosigners verified, to be checked against a policy (:mod:`chain.policy`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .compact import MAX_TREE_SIZE
from .errors import MalformedError, SignatureError, UnknownOriginError
from .hashing import EMPTY_ROOT, HASH_SIZE
from .note import (
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    Note,
    NoteSignature,
    OpenedNote,
    VerifiedSignature,
    open_note,
    parse_note,
)

__all__ = [
    "MAX_EXTENSION_LINES",
    "Checkpoint",
    "SignedCheckpoint",
    "add_cosignatures",
    "open_checkpoint",
    "parse_checkpoint_text",
    "sign_checkpoint",
]

MAX_EXTENSION_LINES = 16
"""Parsing accepts at most this many extension lines (we never produce any)."""

_SIZE_PATTERN = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: log ``origin``, tree ``size`` and 32-byte RFC 9162 ``root``.

    ``extensions`` holds extension lines of checkpoints we *parse*; :func:`sign_checkpoint`
    refuses to sign a checkpoint that has any.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be a non-empty line")
        if any(ord(ch) < 0x20 for ch in self.origin):
            raise MalformedError("checkpoint origin contains a control character")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedError("checkpoint size out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MalformedError("checkpoint root must be 32 bytes")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise MalformedError("the root of the empty tree is SHA-256 of nothing")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise MalformedError("too many checkpoint extension lines")
        for line in self.extensions:
            if not line or "\n" in line or any(ord(ch) < 0x20 for ch in line):
                raise MalformedError("checkpoint extension lines must be non-empty lines")

    def text(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    def text_bytes(self) -> bytes:
        """The note text as UTF-8 bytes (the message the log key signs)."""
        return self.text().encode("utf-8")


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint note text (tlog-checkpoint "Note text"), extension lines allowed.

    Rejects leading zeros in the size, a root that is not 32 bytes of canonical base64, empty
    lines. Raises :class:`MalformedError`. The caller must only use it after the note's log
    signature verified (:func:`open_checkpoint` does both).
    """
    if not text.endswith("\n"):
        raise MalformedError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedError("checkpoint needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE_PATTERN.fullmatch(size_text):
        raise MalformedError("checkpoint size is not a canonical decimal")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError("checkpoint root is not base64") from exc
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise MalformedError("checkpoint root is not 32 bytes of canonical base64")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the cosignatures that verified.

    ``cosignatures`` holds one :class:`VerifiedSignature` (with its timestamp) per trusted
    cosigner key that signed. ``note`` is the full note, unknown signatures included, so that
    :meth:`to_bytes` re-serialises what was received.
    """

    checkpoint: Checkpoint
    note: Note
    log_signature: VerifiedSignature
    cosignatures: tuple[VerifiedSignature, ...]

    @property
    def cosigner_names(self) -> frozenset[str]:
        """Key names of the cosigners whose cosignatures verified."""
        return frozenset(signature.name for signature in self.cosignatures)

    def to_bytes(self) -> bytes:
        """The signed note as bytes (serve it at ``/checkpoint``, put it in receipts)."""
        return self.note.to_bytes()


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519Signer) -> bytes:
    """Sign ``checkpoint`` with the log key and return the signed note bytes.

    Refuses extension lines and a key name different from the origin (tlog-checkpoint: the
    log's key name SHOULD match the origin; we make it a rule). The caller must already have
    recorded ``(size, root)`` as the largest size it ever signed, so that it can never sign two
    diverging heads.
    """
    if checkpoint.extensions:
        raise MalformedError("we never sign checkpoints with extension lines")
    if signer.name != checkpoint.origin:
        raise MalformedError("the log key name must equal the checkpoint origin")
    note = Note(checkpoint.text())
    return signer.sign_note(note).to_bytes()


def add_cosignatures(signed: bytes, signatures: Sequence[NoteSignature]) -> bytes:
    """Append cosignature lines (e.g. parsed from notary responses) to a signed checkpoint.

    Nothing is verified here: open the result with :func:`open_checkpoint` before publishing.
    """
    return parse_note(signed).with_signatures(*signatures).to_bytes()


def open_checkpoint(
    data: bytes | Note,
    log_verifier: Ed25519Verifier | Sequence[Ed25519Verifier],
    cosigners: Sequence[CosignatureVerifier] = (),
) -> SignedCheckpoint:
    """Verify a signed checkpoint: parse, origin, log signature, then cosignatures.

    1. parse the note and its text (:class:`MalformedError`);
    2. the origin must be the name of a trusted log key (:class:`UnknownOriginError`,
       tlog-witness 404);
    3. every signature from a known key (log keys or ``cosigners``) must verify, and at least
       one log key must have signed (:class:`SignatureError`, tlog-witness 403).

    Pass several log keys for the same origin during a key rotation: any one of them suffices.
    Unknown signatures are ignored. The caller then evaluates the quorum over
    :attr:`SignedCheckpoint.cosignatures` and checks consistency with its previous view.
    """
    note = data if isinstance(data, Note) else parse_note(data)
    checkpoint = parse_checkpoint_text(note.text)
    candidates = [log_verifier] if isinstance(log_verifier, Ed25519Verifier) else log_verifier
    log_verifiers = [v for v in candidates if v.name == checkpoint.origin]
    if not log_verifiers:
        raise UnknownOriginError(f"checkpoint origin {checkpoint.origin!r} is not the trusted log")
    opened: OpenedNote
    try:
        opened = open_note(note, [*log_verifiers, *cosigners])
    except SignatureError as exc:
        raise SignatureError(f"checkpoint signatures: {exc.message}") from exc
    log_signatures = [opened.signed_by(verifier) for verifier in log_verifiers]
    log_signature = next((signature for signature in log_signatures if signature), None)
    if log_signature is None:
        raise SignatureError("checkpoint is not signed by the log key")
    cosignatures = tuple(
        signature for signature in opened.verified if signature.timestamp is not None
    )
    return SignedCheckpoint(checkpoint, note, log_signature, cosignatures)
