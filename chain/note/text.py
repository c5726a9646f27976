"""C2SP signed notes (c2sp.org/signed-note): UTF-8 text ending in a newline, a blank line, then
signature lines ``— <key name> base64(key id || signature)``. Parsing is strict and bounded and
verifies nothing (:func:`chain.open_note` does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import MalformedError, TooLargeError
from .keys import b64decode, b64encode, is_valid_signature_name

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "parse_note",
    "parse_signature_lines",
]

MAX_NOTE_SIZE: Final = 128 * 1024
"""Notes larger than this are rejected before parsing (room for 16+ post-quantum signatures)."""

MAX_SIGNATURES: Final = 100
"""At most this many signature lines per note (signed-note: verifiers must accept 16)."""


_SIGNATURE_PREFIX = "\u2014 "  # em dash U+2014, space


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key ``name``, 4-byte ``key_id`` and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not is_valid_signature_name(self.name):
            raise MalformedError("invalid key name in signature")
        if len(self.key_id) != 4 or not self.signature:
            raise MalformedError("signature needs a 4-byte key id and a non-empty signature")

    def to_line(self) -> str:
        """Return ``"— <name> <base64>\\n"``, e.g. for a tlog-witness response body."""
        return f"{_SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: ``text`` (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise MalformedError("note text must end with a newline")
        if any(ord(ch) < 0x20 and ch != "\n" for ch in self.text):
            raise MalformedError("note text contains a control character")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedError("note text is not valid UTF-8") from exc
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedError("too many signatures")

    @property
    def text_bytes(self) -> bytes:
        """The signed message of plain note signatures: the UTF-8 text with its final newline."""
        return self.text.encode("utf-8")

    def with_signatures(self, *signatures: NoteSignature) -> Note:
        """Return a copy with ``signatures`` appended, skipping ones already present.

        Use it to add a log signature or to merge cosignature lines from notaries.
        """
        merged = list(self.signatures)
        for signature in signatures:
            if signature not in merged:
                merged.append(signature)
        return Note(self.text, tuple(merged))

    def to_bytes(self) -> bytes:
        """Serialise as text, blank line, signature lines. Needs at least one signature."""
        if not self.signatures:
            raise MalformedError("a signed note needs at least one signature")
        lines = "".join(signature.to_line() for signature in self.signatures)
        data = (self.text + "\n" + lines).encode("utf-8")
        if len(data) > MAX_NOTE_SIZE:
            raise TooLargeError("note too large")
        return data


def _decode_note_text(data: bytes, limit: int) -> str:
    if not isinstance(data, bytes | bytearray):
        raise MalformedError("note must be bytes")
    if len(data) > limit:
        raise TooLargeError(f"note larger than {limit} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError("note is not valid UTF-8") from exc
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise MalformedError("note contains a control character")
    return text


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise MalformedError("signature line does not start with an em dash and a space")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space or not encoded or not is_valid_signature_name(name):
        raise MalformedError("malformed signature line")
    raw = b64decode(encoded, "signature")
    if len(raw) < 5:
        raise MalformedError("signature shorter than a key id and one byte")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_signature_lines(data: bytes) -> tuple[NoteSignature, ...]:
    """Parse newline-terminated signature lines (e.g. a tlog-witness add-checkpoint response).

    Raises :class:`MalformedError` / :class:`TooLargeError`. The caller adds them to its note
    with :meth:`Note.with_signatures` and then verifies with :func:`open_note`.
    """
    text = _decode_note_text(data, MAX_NOTE_SIZE)
    if not text or not text.endswith("\n"):
        raise MalformedError("signature lines must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError("too many signatures")
    return tuple(_parse_signature_line(line) for line in lines)


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signatures without verifying anything.

    Strict and bounded (:data:`MAX_NOTE_SIZE`, :data:`MAX_SIGNATURES`): valid UTF-8, no control
    characters but newline, the text ends at the *last* blank line, every later line is a
    signature line. Raises :class:`MalformedError`. Never trust the text before
    :func:`open_note` has verified it.
    """
    text = _decode_note_text(data, MAX_NOTE_SIZE)
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block or not signature_block.endswith("\n"):
        raise MalformedError("note has no signature lines")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError("too many signatures")
    return Note(body, tuple(_parse_signature_line(line) for line in lines))
