"""An identity provider's attestation (``idv`` entries): what it binds and how it is
verified (rules C2.1). No personal data: a salted commitment, the bidder's key.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import canonical_json

from ..errors import BadInput

ATTESTATION_PREFIX = b"gavel/idv-attestation/v1\n"


class IdentityReason(enum.StrEnum):
    MALFORMED = "MALFORMED"
    NON_ASCII_DIGIT = "NON_ASCII_DIGIT"
    BAD_CHECK_DIGIT = "BAD_CHECK_DIGIT"
    INVALID_DATE = "INVALID_DATE"
    MINOR = "MINOR"
    DOCUMENT_EXPIRED = "DOCUMENT_EXPIRED"
    NAME_MISMATCH = "NAME_MISMATCH"
    ATTESTATION_INVALID = "ATTESTATION_INVALID"
    ATTESTATION_EXPIRED = "ATTESTATION_EXPIRED"


class IdentityError(BadInput):
    """The identity check failed; `reason` says why in a way a form can show."""

    def __init__(self, reason: IdentityReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Attestation:
    """What the provider signs and the ledger records: no personal data."""

    provider: str
    subject_key: str  # base64 of the bidder's raw Ed25519 public key
    commit: str
    method: str
    level: str
    issued_us: int
    expires_us: int
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "subject_key": self.subject_key,
            "commit": self.commit,
            "method": self.method,
            "level": self.level,
            "issued_us": self.issued_us,
            "expires_us": self.expires_us,
        }

    def to_json(self) -> dict[str, Any]:
        return self.body() | {"signature": self.signature}


def verify_attestation(attestation: Attestation, provider_key: bytes, now_us: int) -> None:
    """Raise `IdentityError` unless the provider signed it and it has not expired."""
    try:
        signature = base64.b64decode(attestation.signature, validate=True)
        Ed25519PublicKey.from_public_bytes(provider_key).verify(
            signature, ATTESTATION_PREFIX + canonical_json(attestation.body())
        )
    except (InvalidSignature, ValueError) as exc:
        raise IdentityError(IdentityReason.ATTESTATION_INVALID, "bad provider signature") from exc
    if now_us >= attestation.expires_us:
        raise IdentityError(IdentityReason.ATTESTATION_EXPIRED, "the attestation has expired")
