"""A bidder's signed bid (docs/protocol.md §2.4), one value from the websocket to the
ledger (pure).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import canonical_json

BID_REQUEST_PREFIX: Final = b"gavel/bid-request/v1\n"

_CURRENCY: Final = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class BidRequest:
    """A signed bid or proxy maximum (`kind` is "bid" or "max")."""

    lot: str
    kind: str
    amount: int
    currency: str
    idempotency_key: str
    signature: bytes

    def signed_payload(self, account: str) -> dict[str, Any]:
        """The object the bidder signed (docs/protocol.md §2.4)."""
        return {
            "account": account,
            "amount": self.amount,
            "currency": self.currency,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "lot": self.lot,
        }

    def fingerprint(self) -> str:
        """Identifies the request's terms, to tell a resend from a conflicting reuse of a key."""
        terms = f"{self.lot}\n{self.kind}\n{self.amount}\n{self.currency}"
        return hashlib.sha256(terms.encode()).hexdigest()


def signed_bytes(payload: dict[str, Any]) -> bytes:
    """What a bidder's key signs: the prefix and the canonical JSON of the signed request."""
    return BID_REQUEST_PREFIX + canonical_json(payload)


def verify_bid_signature(request: BidRequest, account: str, public_key: bytes) -> bool:
    """True when the account's key signed exactly this request."""
    if len(request.signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            request.signature, signed_bytes(request.signed_payload(account))
        )
    except (InvalidSignature, ValueError):
        return False
    return True
