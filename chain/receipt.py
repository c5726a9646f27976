"""Receipts: C2SP tlog-proof files (``c2sp.org/tlog-proof@v1``) and their offline verification.

A receipt is the entry's index, its inclusion proof and the co-signed checkpoint, as text::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <n>
    <base64 hash>            (zero or more, leaf's sibling first)

    <checkpoint note with log signature and cosignatures>

The log calls :func:`make_receipt` once the checkpoint covering the entry has reached the
notary quorum, and hands it to the bidder with the entry bytes. Anyone checks it offline with
:func:`verify_receipt`, a numbered, fail-closed pipeline (:class:`ReceiptStep`): the first failing
step raises, and the error's ``step`` names it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, parse_checkpoint_text
from .entry import Entry, parse_entry
from .errors import ChainError, EntryError, MalformedError, TooLargeError, UnknownOriginError
from .hashing import HASH_SIZE, leaf_hash
from .note import MAX_NOTE_SIZE, Ed25519Verifier, Note, parse_note
from .policy import Policy
from .verify import verify_inclusion

__all__ = [
    "MAX_EXTRA_SIZE",
    "MAX_RECEIPT_SIZE",
    "RECEIPT_HEADER",
    "Receipt",
    "ReceiptStep",
    "VerifiedReceipt",
    "format_receipt",
    "make_receipt",
    "parse_receipt",
    "verify_receipt",
]

RECEIPT_HEADER: Final = "c2sp.org/tlog-proof@v1"
MAX_PROOF_LINES: Final = 63
"""An inclusion proof in a tree of at most 2**63 - 1 leaves has at most 63 hashes."""
MAX_EXTRA_SIZE: Final = 4096
"""Largest opaque ``extra`` payload accepted (decoded bytes)."""
MAX_RECEIPT_SIZE: Final = MAX_NOTE_SIZE + 8 * 1024
"""Receipts larger than this are rejected before parsing."""

_INDEX_PATTERN = re.compile(r"index (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed tlog-proof: entry ``index``, inclusion ``proof``, the checkpoint ``note``.

    ``extra`` is opaque, unauthenticated data (tlog-proof: never trust it implicitly).
    """

    index: int
    proof: tuple[bytes, ...]
    note: Note
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not 0 <= self.index < (1 << 63) - 1:
            raise MalformedError("receipt index out of range")
        if len(self.proof) > MAX_PROOF_LINES:
            raise MalformedError("inclusion proof longer than 63 hashes")
        if any(len(digest) != HASH_SIZE for digest in self.proof):
            raise MalformedError("inclusion proof hash of the wrong length")
        if self.extra is not None and len(self.extra) > MAX_EXTRA_SIZE:
            raise TooLargeError("receipt extra data too large")


def format_receipt(receipt: Receipt) -> bytes:
    """Serialise ``receipt`` as a tlog-proof file (save it with extension ``.tlog-proof``)."""
    lines = [RECEIPT_HEADER]
    if receipt.extra is not None:
        lines.append("extra " + base64.b64encode(receipt.extra).decode("ascii"))
    lines.append(f"index {receipt.index}")
    lines.extend(base64.b64encode(digest).decode("ascii") for digest in receipt.proof)
    data = ("\n".join(lines) + "\n\n").encode("ascii") + receipt.note.to_bytes()
    if len(data) > MAX_RECEIPT_SIZE:
        raise TooLargeError("receipt too large")
    return data


def make_receipt(
    index: int, proof: Sequence[bytes], signed_checkpoint: bytes, extra: bytes | None = None
) -> bytes:
    """Build a tlog-proof receipt from an inclusion proof and a co-signed checkpoint.

    ``signed_checkpoint`` is included verbatim (it must parse as a note). Nothing is verified
    here: the caller passes the proof for ``index`` in the checkpoint's tree, and should check
    the result once with :func:`verify_receipt` before handing it out.
    """
    note = parse_note(signed_checkpoint)
    return format_receipt(Receipt(index, tuple(bytes(d) for d in proof), note, extra))


def _decode_base64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError(f"{what} is not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError(f"{what} is not canonical base64")
    return raw


def parse_receipt(data: bytes) -> Receipt:
    """Parse a tlog-proof file (bounded, strict). Raises :class:`MalformedError`.

    The result is unverified: pass the bytes to :func:`verify_receipt` instead unless you only
    need to display it.
    """
    if not isinstance(data, bytes | bytearray):
        raise MalformedError("receipt must be bytes")
    if len(data) > MAX_RECEIPT_SIZE:
        raise TooLargeError("receipt too large")
    split = bytes(data).find(b"\n\n")
    if split < 0:
        raise MalformedError("receipt has no blank line before the checkpoint")
    try:
        header = bytes(data[:split]).decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedError("receipt header is not ASCII") from exc
    lines = header.split("\n")
    if lines[0] != RECEIPT_HEADER:
        raise MalformedError(f"receipt does not start with {RECEIPT_HEADER}")
    position = 1
    extra: bytes | None = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = _decode_base64(lines[position][len("extra ") :], "extra data")
        position += 1
    if position >= len(lines):
        raise MalformedError("receipt has no index line")
    match = _INDEX_PATTERN.fullmatch(lines[position])
    if match is None:
        raise MalformedError("receipt index line is malformed")
    index = int(match[1])
    proof_lines = lines[position + 1 :]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise MalformedError("inclusion proof longer than 63 hashes")
    proof: list[bytes] = []
    for line in proof_lines:
        digest = _decode_base64(line, "inclusion proof hash")
        if len(digest) != HASH_SIZE:
            raise MalformedError("inclusion proof hash of the wrong length")
        proof.append(digest)
    note = parse_note(bytes(data[split + 2 :]))
    return Receipt(index, tuple(proof), note, extra)


class ReceiptStep(IntEnum):
    """The steps of :func:`verify_receipt`, in order; errors name the first that failed."""

    PARSE = 1
    ENTRY = 2
    CHECKPOINT = 3
    SIGNATURES = 4
    QUORUM = 5
    INCLUSION = 6

    @property
    def label(self) -> str:
        """``"<number> <name>"``, e.g. ``"5 quorum"``."""
        return f"{self.value} {self.name.lower()}"


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a verified receipt proves: ``entry`` is leaf ``index`` of a quorum-signed tree."""

    index: int
    entry: Entry
    leaf_hash: bytes
    checkpoint: SignedCheckpoint
    witnesses: frozenset[str]


def verify_receipt(
    receipt_bytes: bytes,
    entry_bytes: bytes,
    log_verifier: Ed25519Verifier | None,
    policy: Policy,
) -> VerifiedReceipt:
    """Verify a receipt offline against the entry bytes, the log key and a trust policy.

    1. parse: the tlog-proof file is well-formed and bounded;
    2. entry: the entry parses as a canonical ledger entry and its ``seq`` equals the index;
    3. checkpoint: the checkpoint text parses; its origin is the log's (``log_verifier``, or
       the policy's log keys for that origin when ``None``);
    4. signatures: the log signature verifies, and every cosignature from a policy witness
       verifies;
    5. quorum: the policy's quorum is met by those witnesses;
    6. inclusion: the leaf hash recomputed from ``entry_bytes`` is at ``index`` under the root.

    Raises the first failure as a :class:`ChainError` subclass whose ``step`` is
    ``ReceiptStep.label``. On success the caller may rely on the returned entry being logged
    and witnessed; it must still check the entry's actor signature and meaning itself.
    """
    step = ReceiptStep.PARSE
    try:
        receipt = parse_receipt(receipt_bytes)

        step = ReceiptStep.ENTRY
        entry = parse_entry(entry_bytes)
        if entry.seq != receipt.index:
            raise EntryError(f"entry seq {entry.seq} is not the receipt index {receipt.index}")
        digest = leaf_hash(bytes(entry_bytes))

        step = ReceiptStep.CHECKPOINT
        checkpoint: Checkpoint = parse_checkpoint_text(receipt.note.text)
        log_keys: list[Ed25519Verifier]
        if log_verifier is None:
            log_keys = policy.log_verifiers(checkpoint.origin)
        elif log_verifier.name != checkpoint.origin:
            raise UnknownOriginError(f"checkpoint origin {checkpoint.origin!r} is not the log's")
        else:
            log_keys = [log_verifier]

        step = ReceiptStep.SIGNATURES
        signed = open_checkpoint(receipt.note, log_keys, policy.cosigners())

        step = ReceiptStep.QUORUM
        witnesses = policy.witness_names(signed)
        policy.evaluate(witnesses)

        step = ReceiptStep.INCLUSION
        verify_inclusion(receipt.index, checkpoint.size, digest, receipt.proof, checkpoint.root)
    except ChainError as exc:
        exc.at_step(step.label)
        raise
    return VerifiedReceipt(receipt.index, entry, digest, signed, witnesses)
