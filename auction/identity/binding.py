"""One natural person, one account: document fingerprints and the re-verification rule.

Judicial auctions forbid one person bidding under two identities (shill bidding, rules C17).
An identity document is recognised across accounts by its *fingerprint*: a keyed hash
(HMAC-SHA-256 under a server secret that is neither on the ledger nor in the database of a
data directory) of the document's normalised number — for a PRC resident identity card the 18
characters (ASCII digits, upper-case `X`), for a passport its machine-readable document number
and issuing state. Without the secret the fingerprint cannot be reversed by trying every
possible number; with it, the same document always gives the same fingerprint, whatever the
width of the digits typed or the case of the check character.

An account's identity, once verified, is bound to it (`reverification`): a new check is refused
unless compliance allowed it (with a reason), and never while the account is registered on a
lot that has not closed. Renewing an expired check with the same document needs no one's leave.

Pure: no clock, no I/O (`now_us` and the facts are parameters).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..verify import IdentityError
from .provider import DocumentType, VerifiedDocument, normalise_document

#: Domain separation of the fingerprint's HMAC input (a new scheme gets a new prefix).
FINGERPRINT_PREFIX = b"gavel/identity-fingerprint/v1\x1f"

#: The size of the fingerprint secret, in bytes.
FINGERPRINT_KEY_SIZE = 32


def fingerprint(key: bytes, document_type: DocumentType, number: str, issuing_state: str) -> str:
    """The hex HMAC-SHA-256 of a normalised document: `number` (and, for a passport, the
    issuing state) after `normalise_document`. Raises `IdentityError` for a number with digits
    other than 0-9."""
    if len(key) < 16:
        raise ValueError("a fingerprint key has at least 16 bytes")
    parts = [document_type.value, normalise_document(number)]
    if document_type is DocumentType.PASSPORT_TD3:
        parts.append(normalise_document(issuing_state))
    message = FINGERPRINT_PREFIX + "\x1f".join(parts).encode("ascii", "strict")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def document_fingerprint(key: bytes, document: VerifiedDocument) -> str:
    """The fingerprint of a document the identity provider has just checked."""
    return fingerprint(key, document.document_type, document.number, document.issuing_state)


def stored_fingerprint(key: bytes, personal_data: Mapping[str, Any]) -> str | None:
    """The fingerprint of personal data kept by an earlier version (`VerifiedDocument.
    personal_data()`), or None when it cannot be computed (unknown type, digits other than
    0-9). Data stored before the issuing state was kept uses the nationality instead (the two
    agree on national passports)."""
    try:
        kind = DocumentType(str(personal_data.get("document_type")))
        number = str(personal_data["number"])
        issuer = personal_data.get("issuing_state") or personal_data.get("nationality") or ""
        return fingerprint(key, kind, number, str(issuer))
    except (KeyError, ValueError, UnicodeEncodeError, IdentityError):
        return None


# --- re-verification --------------------------------------------------------------------------


class Refusal(enum.StrEnum):
    """Why a verification is refused (the API's error codes)."""

    #: The document is bound to another account.
    DOCUMENT_IN_USE = "DOCUMENT_IN_USE"
    #: The account's identity is verified; changing it needs a compliance review.
    IDENTITY_BOUND = "IDENTITY_BOUND"
    #: The account is registered on a lot that has not closed.
    REGISTERED_ON_OPEN_LOT = "REGISTERED_ON_OPEN_LOT"


@dataclass(frozen=True, slots=True)
class Current:
    """What is known of an account's latest identity version."""

    fingerprint: str | None
    expires_us: int


@dataclass(frozen=True, slots=True)
class Permit:
    """A compliance decision allowing one re-verification."""

    permit_id: int
    granted_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed (`refusal` is None), with the permit to consume if one was needed."""

    refusal: Refusal | None
    detail: str = ""
    permit: Permit | None = None


def reverification(
    current: Current | None,
    new_fingerprint: str,
    open_lots: Sequence[str],
    permit: Permit | None,
    now_us: int,
) -> Decision:
    """May an account whose latest identity is `current` (None: never verified) verify the
    document with `new_fingerprint`? `open_lots`: the lots not yet closed it is registered on;
    `permit`: an unused compliance permit, if any."""
    if current is None:
        return Decision(None)
    if open_lots:
        return Decision(
            Refusal.REGISTERED_ON_OPEN_LOT,
            f"registered on {len(open_lots)} lot(s) that have not closed: "
            + ", ".join(sorted(open_lots)),
        )
    if permit is not None:
        return Decision(None, permit=permit)
    if current.expires_us <= now_us and current.fingerprint == new_fingerprint:
        return Decision(None)  # renewal of an expired check, same document
    return Decision(Refusal.IDENTITY_BOUND, "the identity is bound to the account")


__all__ = [
    "FINGERPRINT_KEY_SIZE",
    "FINGERPRINT_PREFIX",
    "Current",
    "Decision",
    "Permit",
    "Refusal",
    "document_fingerprint",
    "fingerprint",
    "reverification",
    "stored_fingerprint",
]
