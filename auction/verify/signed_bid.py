"""A bidder's signed bid (docs/protocol.md §2.4): one value from the websocket to the ledger.

`SignedBid` is parsed once where it enters (a websocket frame, `auction.bidding.protocol`; a
ledger body, `SignedBid.from_json`), its terms checked once at construction, its signature
verified once (`verified_by`), and encoded into the ledger body once (`to_json`). Base64 is only
at those edges: in between, the signature is bytes. Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import canonical_json

from ..errors import Malformed
from ..rules import MAX_AMOUNT, PlaceBid, SetMax

BID_REQUEST_PREFIX: Final = b"gavel/bid-request/v1\n"


#: The fields of the signed request (docs/protocol.md §2.4).
REQUEST_FIELDS: Final = frozenset(
    {"account", "amount", "currency", "idempotency_key", "kind", "lot"}
)


_CURRENCY: Final = re.compile(r"[A-Z]{3}")


_KINDS: Final = ("bid", "max")


_TEXT_LIMIT: Final = 128


class BidMalformed(Malformed):
    """The terms of a bid break docs/protocol.md §2.4 (`shape`: the recorded request is not a
    `{payload, sig}` object with exactly the request's fields and a 64-byte signature)."""

    def __init__(self, message: str, *, shape: bool = False) -> None:
        super().__init__(message)
        self.shape = shape


@dataclass(frozen=True, slots=True)
class SignedBid:
    """A signed bid or proxy maximum (`kind` is "bid" or "max"); `signature` the raw Ed25519
    signature over `signed_bytes(payload())`. Built without `account` by the protocol parser;
    the gateway binds the session's account (`by`) and checks the signature (`verified_by`);
    the service, the lot actor and the ledger writer carry the value as it is."""

    lot: str
    kind: str
    amount: int
    currency: str
    idempotency_key: str
    signature: bytes
    account: str = ""
    #: The public key this process verified the signature with (not part of the value).
    verified_key: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise BidMalformed("'kind' must be 'bid' or 'max'")
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
            raise BidMalformed("'amount' must be positive minor units")
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise BidMalformed("'currency' must be an ISO 4217 code")
        for name in ("lot", "idempotency_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= _TEXT_LIMIT:
                raise BidMalformed(f"{name!r} must be 1..{_TEXT_LIMIT} printable chars")
            if not value.isprintable():
                raise BidMalformed(f"{name!r} must be 1..{_TEXT_LIMIT} printable chars")
        if not isinstance(self.signature, bytes) or not isinstance(self.account, str):
            raise BidMalformed("a signature is bytes and an account text")

    @classmethod
    def from_json(cls, request: Any) -> SignedBid:
        """The bid of a recorded request (a ledger body's `request`: `{payload, sig}`, the sig
        standard base64 of 64 bytes). Raises `BidMalformed`."""
        if not isinstance(request, Mapping) or set(request) != {"payload", "sig"}:
            raise BidMalformed("a request is {payload, sig}", shape=True)
        payload = request["payload"]
        if not isinstance(payload, Mapping) or set(payload) != REQUEST_FIELDS:
            raise BidMalformed("the request payload has wrong fields", shape=True)
        sig = request["sig"]
        try:
            if not isinstance(sig, str):
                raise ValueError("not text")
            signature = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BidMalformed("the request sig is not 64 bytes", shape=True) from exc
        if len(signature) != 64:
            raise BidMalformed("the request sig is not 64 bytes", shape=True)
        return cls(
            lot=payload["lot"],
            kind=payload["kind"],
            amount=payload["amount"],
            currency=payload["currency"],
            idempotency_key=payload["idempotency_key"],
            signature=signature,
            account=payload["account"],
        )

    def by(self, account: str) -> SignedBid:
        """This bid as sent by `account` (the session's): what its signature must cover."""
        if account == self.account:
            return self
        bound = copy.copy(self)
        object.__setattr__(bound, "account", account)
        object.__setattr__(bound, "verified_key", None)
        return bound

    def payload(self) -> dict[str, Any]:
        """The object the bidder signed (docs/protocol.md §2.4)."""
        return {
            "account": self.account,
            "amount": self.amount,
            "currency": self.currency,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "lot": self.lot,
        }

    def signed_bytes(self) -> bytes:
        """What the bidder's key signed: the prefix and the canonical JSON of `payload()`."""
        return signed_bytes(self.payload())

    def verified_by(self, public_key: bytes) -> SignedBid | None:
        """This bid marked as verified with the raw Ed25519 `public_key`, or None when that key
        did not sign exactly this request. A bid verified with the key before is not checked
        again (the identity book finds it verified)."""
        if self.verified_key == public_key:
            return self
        if len(self.signature) != 64:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                self.signature, self.signed_bytes()
            )
        except (InvalidSignature, ValueError):
            return None
        verified = copy.copy(self)
        object.__setattr__(verified, "verified_key", bytes(public_key))
        return verified

    def command(self) -> PlaceBid | SetMax:
        """The engine's command for this bid. Raises `auction.rules.RulesError`."""
        if self.kind == "max":
            return SetMax(self.account, self.amount, self.currency, self.idempotency_key)
        return PlaceBid(self.account, self.amount, self.currency, self.idempotency_key)

    def matches(self, lot_id: str, command: Any) -> bool:
        """Whether this is the signed request of `command` to lot `lot_id`."""
        kind = "max" if isinstance(command, SetMax) else "bid"
        return (
            isinstance(command, PlaceBid | SetMax)
            and self.kind == kind
            and self.lot == lot_id
            and self.account == command.bidder
            and self.amount == command.amount
            and self.currency == command.currency
            and self.idempotency_key == command.idempotency_key
        )

    def fingerprint(self) -> str:
        """Identifies the bid's terms, to tell a resend from a conflicting reuse of a key."""
        terms = f"{self.lot}\n{self.kind}\n{self.amount}\n{self.currency}"
        return hashlib.sha256(terms.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The `request` member of the bid's ledger entry body (the signature in base64)."""
        return {"payload": self.payload(), "sig": base64.b64encode(self.signature).decode("ascii")}


def signed_bytes(payload: Mapping[str, Any]) -> bytes:
    """What a bidder's key signs: the prefix and the canonical JSON of the signed request."""
    return BID_REQUEST_PREFIX + canonical_json(dict(payload))


def verify_bid_signature(bid: SignedBid, account: str, public_key: bytes) -> bool:
    """True when `account`'s key `public_key` signed exactly this bid."""
    return bid.by(account).verified_by(public_key) is not None


#: The name the protocol module gave the bid message.
BidRequest = SignedBid
