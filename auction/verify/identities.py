"""The signed-bid rules at a point of the log (:class:`IdentityBook`), shared by the
replay and the server's ledger writer.

``key`` entries with role "idv" name the identity providers; an ``idv`` entry, signed as
its actor by such a provider, binds an account to the bidder's public key until the
attestation expires; a bid entry may carry the bidder's signed request (docs/protocol.md
§2.4), which must be signed by that key, match the command and fall before the expiry. A
log whose ``house`` entry says ``"signed_bids": true`` requires a request on every
PlaceBid / SetMax and an ``idv`` entry for every kyc-verified registration.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import (
    ChainError,
    Ed25519Verifier,
    parse_vkey,
)

from ..rules import commands as c
from .attestation import Attestation, IdentityError, verify_attestation
from .bodies import BODY_VERSION
from .errors import SignedBidError
from .keys import kid_names_key
from .signed_bid import BidMalformed, SignedBid


class SignatureCache(Protocol):
    """Signatures verified already (``auction.ledger.SignatureMemo``: the server shares one
    between its gateway, service and ledger writer); raises ``InvalidSignature``."""

    def verify(
        self, key: Ed25519PublicKey, raw_key: bytes, signature: bytes, message: bytes
    ) -> None: ...


#: The role of a `key` entry whose key signs `idv` entries (an identity provider).
IDV_ROLE: Final = "idv"


@dataclass(frozen=True, slots=True)
class _Identity:
    """An account's latest `idv` entry: the bidder's key and the attestation's expiry."""

    subject_key: Ed25519PublicKey
    expires_us: int
    seq: int
    raw_key: bytes = b""


@dataclass
class IdentityBook:
    """What the signed-bid rules need to know at a point of the log (pure, mutable).

    Feed it the `house` body (`house`), every `key` entry (`key`) and every `idv` entry
    (`idv`), in log order; then `check` each command before it is applied. Each method raises
    `SignedBidError` and leaves the book unchanged on failure. `copy()` before speculative
    changes (the ledger writer changes a copy until its transaction commits).
    """

    signed_bids: bool = False
    providers: dict[str, Ed25519Verifier] = field(default_factory=dict)  # vkey -> key
    accounts: dict[str, _Identity] = field(default_factory=dict)
    #: Shared with the book's copies: a signature verified by one is not verified again.
    memo: SignatureCache | None = None

    def copy(self) -> IdentityBook:
        return IdentityBook(self.signed_bids, dict(self.providers), dict(self.accounts), self.memo)

    def house(self, body: Mapping[str, Any]) -> None:
        """Entry 0: whether this log requires signed bids."""
        self.signed_bids = body.get("signed_bids") is True

    def key(self, body: Mapping[str, Any]) -> None:
        """A `key` entry: `revoke`d kids stop naming providers; a key with role "idv" becomes
        an identity provider's key (its actor signature is the key step's business)."""
        added: Ed25519Verifier | None = None
        if body.get("role") == IDV_ROLE:
            vkey = body.get("vkey")
            try:
                parsed = parse_vkey(vkey) if isinstance(vkey, str) else None
            except ChainError as exc:
                raise SignedBidError(SignedBidError.MALFORMED, f"bad idv key: {exc}") from exc
            if not isinstance(parsed, Ed25519Verifier):
                raise SignedBidError(SignedBidError.MALFORMED, "an idv key is an Ed25519 vkey")
            added = parsed
        revoke = body.get("revoke", ())
        if isinstance(revoke, list | tuple):
            for kid in revoke:
                if isinstance(kid, str):
                    for name, provider in list(self.providers.items()):
                        if kid_names_key(provider, kid):
                            del self.providers[name]
        if added is not None:
            self.providers[added.vkey] = added

    def idv(self, seq: int, t_us: int, body: Mapping[str, Any], actor_kid: str | None) -> str:
        """An `idv` entry at time `t_us`, signed as actor by `actor_kid`: the attestation must
        be signed by that identity provider's key and not expired at `t_us`. Returns the
        account, whose bids must from now on be signed by the attestation's subject key."""
        account = body.get("account")
        attestation = body.get("attestation")
        if body.get("v") != BODY_VERSION or not isinstance(account, str) or not account:
            raise SignedBidError(SignedBidError.MALFORMED, "an idv body has v 1 and an account")
        parsed = _attestation(attestation)
        providers = [
            verifier
            for verifier in self.providers.values()
            if actor_kid is not None and kid_names_key(verifier, actor_kid)
        ]
        if not providers:
            raise SignedBidError(
                SignedBidError.NOT_A_PROVIDER,
                f"the idv entry's actor {actor_kid!r} is no identity provider's key",
            )
        failure: IdentityError | None = None
        for provider in providers:
            try:
                verify_attestation(parsed, provider.public_key, t_us)
            except IdentityError as exc:
                failure = exc
                continue
            break
        else:
            assert failure is not None
            raise SignedBidError(
                SignedBidError.BAD_ATTESTATION, f"the attestation does not verify: {failure}"
            )
        try:
            raw = _base64(parsed.subject_key, 32)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise SignedBidError(SignedBidError.MALFORMED, "bad attestation subject key") from exc
        self.accounts[account] = _Identity(key, parsed.expires_us, seq, raw)
        return account

    def check(self, lot_id: str, command: Any, request: Any, ingress_us: int) -> bool:
        """Whether `command` to lot `lot_id` with its recorded `request` (a `SignedBid`, or the
        body's `request` member, None if absent) may be applied at `ingress_us`. Returns True
        when a bidder's signature was verified. Raises `SignedBidError`."""
        if not isinstance(command, c.PlaceBid | c.SetMax):
            if request is not None:
                raise SignedBidError(SignedBidError.NOT_A_BID, "only bids carry a request")
            if (
                self.signed_bids
                and isinstance(command, c.RegisterBidder)
                and command.kyc_verified
                and command.bidder not in self.accounts
            ):
                raise SignedBidError(
                    SignedBidError.NO_IDENTITY,
                    f"kyc-verified registration of {command.bidder!r} without an idv entry",
                )
            return False
        if request is None:
            if self.signed_bids:
                raise SignedBidError(SignedBidError.NO_REQUEST, "this log requires signed bids")
            return False
        bid = request if isinstance(request, SignedBid) else _recorded_bid(request)
        if not bid.matches(lot_id, command):
            raise SignedBidError(SignedBidError.MISMATCH, "the signed request is not this command")
        identity = self.accounts.get(command.bidder)
        if identity is None:
            raise SignedBidError(
                SignedBidError.NO_IDENTITY, f"account {command.bidder!r} has no idv entry"
            )
        # the rule of auction.identity.provider.verify_attestation
        if ingress_us >= identity.expires_us:
            raise SignedBidError(
                SignedBidError.EXPIRED,
                f"the attestation of idv entry {identity.seq} expired before this bid",
            )
        if bid.verified_key == identity.raw_key:  # verified where it entered: once per bid
            return True
        try:
            if self.memo is not None:
                self.memo.verify(
                    identity.subject_key, identity.raw_key, bid.signature, bid.signed_bytes()
                )
            else:
                identity.subject_key.verify(bid.signature, bid.signed_bytes())
        except InvalidSignature as exc:
            raise SignedBidError(
                SignedBidError.BAD_SIGNATURE,
                f"the request is not signed by the key of idv entry {identity.seq}",
            ) from exc
        return True


def _recorded_bid(request: Any) -> SignedBid:
    """The bid of a recorded request: a wrong shape is MALFORMED, terms no bid can have are
    not the command's (MISMATCH)."""
    try:
        return SignedBid.from_json(request)
    except BidMalformed as exc:
        reason = SignedBidError.MALFORMED if exc.shape else SignedBidError.MISMATCH
        raise SignedBidError(reason, exc.message) from exc
    except TypeError as exc:  # a recorded field of a type the value cannot hold
        raise SignedBidError(SignedBidError.MISMATCH, str(exc)) from exc


def _base64(value: Any, size: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if len(raw) != size:
        raise ValueError(f"{size} bytes expected")
    return raw


def _attestation(value: Any) -> Attestation:
    """An attestation read back from an `idv` body (strictly typed, no other fields)."""
    texts = ("provider", "subject_key", "commit", "method", "level", "signature")
    times = ("issued_us", "expires_us")
    if not isinstance(value, Mapping) or set(value) != {*texts, *times}:
        raise SignedBidError(SignedBidError.MALFORMED, "the attestation has the wrong fields")
    if not all(isinstance(value[name], str) for name in texts) or not all(
        type(value[name]) is int for name in times
    ):
        raise SignedBidError(SignedBidError.MALFORMED, "attestation fields of the wrong type")
    return Attestation(**{name: value[name] for name in (*texts, *times)})
