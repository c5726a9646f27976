"""C2SP signed notes, Ed25519 note keys (type 0x01) and cosignature/v1 keys (type 0x04).

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then
signature lines ``— <key name> base64(key id || signature)``. The key id is
``SHA-256(name || "\\n" || type || public key)[:4]``.

- The log signs checkpoints with an :class:`Ed25519Signer` (signature = Ed25519 over the text).
- A notary cosigns with a :class:`CosignatureSigner` (c2sp.org/tlog-cosignature,
  ``cosignature/v1``): the signature bytes are ``8-byte big-endian timestamp || Ed25519 over
  "cosignature/v1\\ntime <t>\\n" || text``.
- Verifiers (:class:`Ed25519Verifier`, :class:`CosignatureVerifier`) come from *vkeys*
  ``<name>+<hex key id>+base64(type || public key)`` (the golang.org/x/mod/sumdb/note format),
  signers from ``PRIVATE+KEY+<name>+<hex key id>+base64(type || seed)``.

:func:`parse_note` splits a note (bounded, strict); :func:`open_note` also verifies it: it
ignores unknown keys, rejects the whole note if a known key's signature fails, and requires at
least one known key to have signed. Private keys never appear in ``repr`` or errors.

Modules: :mod:`~chain.note.keys` (key names, ids, key texts), :mod:`~chain.note.text` (the note
and its signature lines), :mod:`~chain.note.verifiers`, :mod:`~chain.note.signers` and
:mod:`~chain.note.opening`.
"""

from __future__ import annotations

from .keys import ALG_COSIGNATURE_V1, ALG_ED25519, cosignature_message, key_id, validate_key_name
from .opening import OpenedNote, open_note
from .signers import CosignatureSigner, Ed25519Signer, parse_signer_key
from .text import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    parse_note,
    parse_signature_lines,
)
from .verifiers import (
    CosignatureVerifier,
    Ed25519Verifier,
    NoteVerifier,
    VerifiedSignature,
    parse_vkey,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "OpenedNote",
    "VerifiedSignature",
    "cosignature_message",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signature_lines",
    "parse_signer_key",
    "parse_vkey",
    "validate_key_name",
]
