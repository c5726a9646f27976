"""The house: the log's own signing key, its origin and policy, and the check that
entry 0 names it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from chain import (
    NO_QUORUM,
    ChainError,
    Ed25519Signer,
    Ed25519Verifier,
    EntryType,
    MalformedError,
    Policy,
    PolicyLog,
    format_policy,
    parse_entry,
    parse_signer_key,
    parse_vkey,
)
from chain import store as ledger_store

from .. import sealed
from .errors import LedgerCorrupt

#: The name in the `house` entry (entry 0).
HOUSE_NAME = "Gavel auction house"

#: Origins are `gavel.local/<16 hex digits>`: one random ledger id per log.
ORIGIN_PREFIX = "gavel.local/"


def _log_policy(verifier: Ed25519Verifier) -> bytes:
    """The trust policy of a log without notaries yet: its key, and no cosignature required."""
    return format_policy(Policy((PolicyLog(verifier),), (), NO_QUORUM))


@dataclass(frozen=True, slots=True)
class House:
    """The log's own key. `signer` signs checkpoints (its key name is the origin); `entries`
    is the same key signing entries as their actor, with `actor.kid` = the house vkey."""

    signer: Ed25519Signer
    entries: ledger_store.EntrySigner

    @classmethod
    def generate(cls) -> House:
        """A fresh key for a new log, origin `gavel.local/<16 random hex digits>`."""
        origin = ORIGIN_PREFIX + secrets.token_hex(8)
        return cls._of(Ed25519Signer.from_seed(origin, secrets.token_bytes(32)))

    @classmethod
    def from_signer_key(cls, text: str) -> House:
        """Load `PRIVATE+KEY+<origin>+<hex id>+<base64>` (a chain signer key, type 0x01)."""
        try:
            signer = parse_signer_key(text)
        except ChainError as exc:
            raise LedgerCorrupt(f"the house key is not a signer key: {exc}") from exc
        if not isinstance(signer, Ed25519Signer) or not signer.name.startswith(ORIGIN_PREFIX):
            raise LedgerCorrupt(f"the house key must be an Ed25519 key named {ORIGIN_PREFIX}...")
        return cls._of(signer)

    @classmethod
    def _of(cls, signer: Ed25519Signer) -> House:
        # The seed is the last field of the signer key text (type byte, then 32 bytes).
        try:
            seed = base64.b64decode(signer.signer_key.split("+", 4)[4], validate=True)[1:]
        except (binascii.Error, IndexError) as exc:  # pragma: no cover - we wrote that text
            raise LedgerCorrupt("cannot read the house key seed") from exc
        return cls(signer, ledger_store.EntrySigner.from_seed(signer.vkey, seed))

    @property
    def alias_key(self) -> bytes:
        """The secret behind bidders' per-lot aliases (`auction.sealed.alias`)."""
        seed = base64.b64decode(self.signer.signer_key.split("+", 4)[4], validate=True)[1:]
        return sealed.alias_key(seed)

    @property
    def origin(self) -> str:
        """The log's origin, e.g. `gavel.local/3f2a...`: first line of every checkpoint."""
        return self.signer.name

    @property
    def vkey(self) -> str:
        """The public key to publish (policy file, `house` entry, `actor.kid`)."""
        return self.signer.vkey

    def policy(self) -> bytes:
        """The tlog-policy file of this log (`log <vkey>`, `quorum none`: no notaries yet)."""
        return _log_policy(self.signer.verifier)


def _house_entry(connection: Connection) -> tuple[str, Ed25519Verifier]:
    """Entry 0: the log's origin and key. Raises `LedgerCorrupt` if it is not a house entry."""
    (first,) = ledger_store.read_entries(connection, 0, 1)
    try:
        entry = parse_entry(first.data)
        vkey = entry.body.get("vkey")
        origin = entry.body.get("origin")
        if entry.type is not EntryType.HOUSE or not isinstance(vkey, str):
            raise MalformedError("entry 0 is not a house entry")
        verifier = parse_vkey(vkey)
    except ChainError as exc:
        raise LedgerCorrupt(f"entry 0: {exc}") from exc
    if not isinstance(verifier, Ed25519Verifier) or origin != verifier.name:
        raise LedgerCorrupt("entry 0 does not name an Ed25519 log key for its origin")
    return origin, verifier


def _check_house_entry(connection: Connection, house: House) -> None:
    origin, verifier = _house_entry(connection)
    if verifier.vkey != house.vkey:
        raise LedgerCorrupt(
            f"the house key ({house.origin}) is not the key of this ledger ({origin})"
        )
