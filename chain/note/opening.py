"""Opening a signed note: verify every signature from a known key (signed-note rules)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError, SignatureError
from .text import Note, NoteSignature, parse_note
from .verifiers import NoteVerifier, VerifiedSignature

__all__ = ["OpenedNote", "open_note"]


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose known-key signatures all verified.

    ``verified`` lists one entry per known key that signed (duplicates dropped);
    ``unverified`` the signatures from keys the caller does not know (kept, never trusted).
    """

    note: Note
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[NoteSignature, ...]

    def signed_by(self, verifier: NoteVerifier) -> VerifiedSignature | None:
        """Return the verified signature of ``verifier``'s key, or ``None``."""
        for signature in self.verified:
            if signature.name == verifier.name and signature.key_id == verifier.key_id:
                return signature
        return None


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise ConfigurationError(f"two trusted keys share name and id {verifier.name}")
        known[slot] = verifier
    return known


def open_note(data: bytes | Note, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse ``data`` and verify every signature from a key in ``verifiers``.

    signed-note rules: signatures whose (name, key id) is unknown are ignored; if a known key's
    signature fails the whole note is rejected (:class:`SignatureError`); if no known key signed,
    the note is rejected (:class:`SignatureError`). Malformed input raises
    :class:`MalformedError`. The caller then trusts :attr:`OpenedNote.note` ``.text`` and checks
    *which* keys signed (a checkpoint needs the log's own key).
    """
    note = data if isinstance(data, Note) else parse_note(data)
    known = _index_verifiers(verifiers)
    text = note.text_bytes
    verified: list[VerifiedSignature] = []
    seen: set[tuple[str, bytes]] = set()
    unverified: list[NoteSignature] = []
    for signature in note.signatures:
        slot = (signature.name, signature.key_id)
        verifier = known.get(slot)
        if verifier is None:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if slot in seen:
            # A second signature line for a key we already verified: it must verify as well.
            verifier.verify(text, signature.signature)
            continue
        seen.add(slot)
        verified.append(verifier.verify(text, signature.signature))
    if not verified:
        raise SignatureError("note has no signature from a trusted key")
    return OpenedNote(note, tuple(verified), tuple(unverified))
