"""The real-name check as the gateway runs it (rules C2.1, C17): one person, one account.

`IdentityDesk.verify` checks the document with the identity provider, computes the document's
fingerprint, applies the re-verification rule (`identity_binding.reverification`), binds the
fingerprint to the account (the database's unique key decides between simultaneous claims),
writes the `idv` entry (the attestation only) and then appends the new identity version with
the personal data and the salt. A refusal writes nothing but, for a document bound to another
account or a refused change of identity, an alert for compliance.

The compliance side: the history of an account's identity, the alerts, permits to re-verify
(with a reason), erasure of every version's personal data.

An adapter: the decisions are `auction.identity.binding`'s; the records
`auction.identity.records`' (blocking, run on worker threads).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from chain import Ed25519Signer, EntryType

from ..accounts import AccountError
from ..errors import BadInput, Conflict, NotFound, Unavailable
from ..service import ServiceError
from ..storage import StorageError
from ..verify import Attestation, IdentityError, IdentityReason, idv_body
from .binding import Current, Refusal, document_fingerprint, reverification
from .provider import DocumentType, IdentityProvider
from .records import (
    Alert,
    AlertKind,
    DocumentInUse,
    IdentityRecords,
    IdentityVersion,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What a person reads for each refusal (the API's `message`).
IDENTITY_WORDS: Mapping[IdentityReason, str] = {
    IdentityReason.MALFORMED: "the document number is not in the expected format",
    IdentityReason.NON_ASCII_DIGIT: (
        "the document number may only use the digits 0 to 9 (a superscript, circled or other"
        " special digit was typed)"
    ),
    IdentityReason.BAD_CHECK_DIGIT: "the check character of the identity number is wrong",
    IdentityReason.INVALID_DATE: "the birth or expiry date on the document does not exist",
    IdentityReason.MINOR: "bidders must be adults",
    IdentityReason.DOCUMENT_EXPIRED: "the document has expired",
    IdentityReason.NAME_MISMATCH: "the name does not match the document",
    IdentityReason.ATTESTATION_INVALID: "the identity attestation is not valid",
    IdentityReason.ATTESTATION_EXPIRED: "the identity attestation has expired",
}

REFUSAL_WORDS: Mapping[Refusal, str] = {
    Refusal.DOCUMENT_IN_USE: (
        "This identity document is already verified on another account. "
        "One person may hold one account."
    ),
    Refusal.IDENTITY_BOUND: (
        "The identity on this account is already verified and cannot be changed here. "
        "If your details must change, ask the auction's compliance office to review it."
    ),
    Refusal.REGISTERED_ON_OPEN_LOT: (
        "The identity on this account cannot change while you are registered for a lot that "
        "has not closed."
    ),
}


class IdentityDesk:
    """Built by the gateway. `open_lots(account)` names the lots not yet closed the account is
    registered on; `on_verified(account, expires_us)` refreshes the gateway's key cache."""

    def __init__(
        self,
        *,
        record: Callable[..., Awaitable[int]],
        records: IdentityRecords,
        provider: IdentityProvider,
        signer: Ed25519Signer,
        fingerprint_key: bytes,
        clock: Callable[[], int],
        open_lots: Callable[[str], Sequence[str]],
    ) -> None:
        self._record = record
        self._records = records
        self._provider = provider
        self._signer = signer
        self._key = fingerprint_key
        self._clock = clock
        self._open_lots = open_lots
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def _blocking(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(function, *args, **kwargs)

    def lock(self, account: str) -> asyncio.Lock:
        """The account's lock, held while its identity is checked and recorded (in this
        process): the gateway holds it too while it registers the account for a lot."""
        lock = self._locks.get(account)
        if lock is None:
            lock = self._locks[account] = asyncio.Lock()
        return lock

    # -- the bidder's check --

    async def verify(
        self, account: str, public_key: bytes, name: str, document_type: str, document: str
    ) -> tuple[Attestation, int]:
        """Verify the account's identity; returns the attestation and its `idv` entry's seq.
        Raises `BadInput`: 422 with the identity reason (nothing written), 409
        `DOCUMENT_IN_USE` (an alert is recorded), 409 `IDENTITY_BOUND` or
        `REGISTERED_ON_OPEN_LOT`, 503 `UNAVAILABLE`."""
        try:
            kind = DocumentType(document_type)
        except ValueError:
            raise BadInput(
                "document_type must be PRC_RESIDENT_ID or PASSPORT_TD3", code="MALFORMED"
            ) from None
        now = self._clock()
        today = dt.datetime.fromtimestamp(now / 1e6, dt.UTC).date()
        try:
            verified = self._provider.check(kind, document, name, today)
            fingerprint = document_fingerprint(self._key, verified)
        except IdentityError as exc:
            raise BadInput(IDENTITY_WORDS[exc.reason], code=exc.reason.value) from exc
        async with self.lock(account):
            current = await self._blocking(self._records.latest, account)
            permit = None
            if current is not None:
                permit = await self._blocking(self._records.open_permit, account, now)
            decision = reverification(
                None if current is None else Current(current.fingerprint, current.expires_us),
                fingerprint,
                self._open_lots(account) if current is not None else (),
                permit,
                now,
            )
            if decision.refusal is not None:
                if current is not None and current.fingerprint != fingerprint:
                    await self._alert(
                        AlertKind.IDENTITY_CHANGE_REFUSED, account, None, kind, fingerprint, now
                    )
                raise Conflict(REFUSAL_WORDS[decision.refusal], code=decision.refusal.value)
            holder = await self._blocking(self._records.holder, fingerprint)
            if holder is not None and holder != account:  # refused before anything is signed
                await self._refuse_duplicate(account, holder, kind, fingerprint, now)
            try:
                claimed = await asyncio.to_thread(
                    self._records.claim, account, fingerprint, kind.value, now
                )
            except DocumentInUse as exc:  # another account claimed it a moment ago
                await self._refuse_duplicate(account, exc.holder, kind, fingerprint, now)
            used = decision.permit
            if used is not None and not await self._blocking(
                self._records.use_permit, used.permit_id, now
            ):
                await self._undo(account, fingerprint, claimed, None, now)
                raise Conflict(
                    REFUSAL_WORDS[Refusal.IDENTITY_BOUND], code=Refusal.IDENTITY_BOUND.value
                )
            salt = secrets.token_bytes(16)
            attestation = self._provider.attest(verified, public_key, salt, now)
            body = idv_body(account, attestation.to_json())
            try:
                seq = await self._record(EntryType.IDV, body, signer=self._signer)
            except (ServiceError, StorageError) as exc:  # nothing was written
                await self._undo(account, fingerprint, claimed, used, now)
                raise Unavailable("the identity could not be recorded") from exc
            version = await self._blocking(
                self._records.append_version,
                account,
                document_type=kind.value,
                fingerprint=fingerprint,
                personal_data=verified.personal_data(),
                salt=salt,
                attestation=attestation.to_json(),
                idv_entry=seq,
                now_us=now,
                permit=used,
            )
        if used is not None:
            logger.warning(
                "compliance: account %s re-verified (version %d) under permit %d of %s",
                account,
                version,
                used.permit_id,
                used.granted_by,
            )
        return attestation, seq

    async def _refuse_duplicate(
        self, account: str, holder: str, kind: DocumentType, fingerprint: str, now: int
    ) -> NoReturn:
        await self._alert(AlertKind.DUPLICATE_DOCUMENT, account, holder, kind, fingerprint, now)
        logger.warning(
            "identity: account %s tried a document already verified on account %s",
            account,
            holder,
        )
        raise Conflict(REFUSAL_WORDS[Refusal.DOCUMENT_IN_USE], code=Refusal.DOCUMENT_IN_USE.value)

    async def _alert(
        self,
        kind: AlertKind,
        account: str,
        holder: str | None,
        document_type: DocumentType,
        fingerprint: str,
        now: int,
    ) -> None:
        await self._blocking(
            self._records.add_alert, kind, account, holder, document_type.value, fingerprint, now
        )

    async def _undo(
        self, account: str, fingerprint: str, claimed: bool, permit: Any, now: int
    ) -> None:
        """A verification failed after its claim: release what it took (best effort)."""
        try:
            if claimed:
                await asyncio.to_thread(self._records.release, account, fingerprint)
            if permit is not None:
                await asyncio.to_thread(self._records.use_permit, permit.permit_id, now, undo=True)
        except AccountError:
            logger.exception("identity: could not undo a failed verification of %s", account)

    # -- reads --

    async def latest(self, account: str) -> IdentityVersion | None:
        """The account's newest identity version (personal data: compliance use only)."""
        return await self._blocking(self._records.latest, account)

    async def history(self, account: str) -> list[IdentityVersion]:
        """Every version of the account's identity, oldest first."""
        return await self._blocking(self._records.versions, account)

    async def permits(self, account: str) -> list[dict[str, Any]]:
        return await self._blocking(self._records.permits, account)

    async def alerts(self) -> list[Alert]:
        return await self._blocking(self._records.alerts)

    # -- compliance actions --

    async def allow_reverification(
        self, account: str, granted_by: str, reason: str
    ) -> tuple[int, int]:
        """A compliance decision: `account` may verify a new identity once within a day.
        Returns `(permit id, expires_us)`. Raises `NotFound` 404 `NOT_VERIFIED` (nothing to
        change), 409 `REGISTERED_ON_OPEN_LOT`."""
        current = await self.latest(account)
        if current is None:
            raise NotFound("that account has no verified identity", code="NOT_VERIFIED")
        if self._open_lots(account):
            raise Conflict(
                "the account is registered for a lot that has not closed: its identity cannot"
                " change until that lot closes",
                code=Refusal.REGISTERED_ON_OPEN_LOT.value,
            )
        now = self._clock()
        permit, expires = await self._blocking(
            self._records.grant_permit, account, granted_by, reason, now
        )
        logger.warning(
            "compliance: %s allowed account %s to re-verify (permit %d)",
            granted_by,
            account,
            permit,
        )
        return permit, expires

    async def erase(self, account: str) -> bool:
        """Erase the personal data and salt of every version of the account's identity. The
        attestations (on the ledger) and the document fingerprints stay."""
        return await self._blocking(self._records.erase, account, self._clock())

    async def backfill(self) -> tuple[int, int]:
        """Fingerprint identities stored before fingerprints existed (at start)."""
        return await self._blocking(self._records.backfill, self._key, self._clock())


__all__ = ["IDENTITY_WORDS", "REFUSAL_WORDS", "IdentityDesk"]
