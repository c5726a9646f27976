"""The bidder's path into the auction, shared by the web adapter and the demo's bots.

`Gateway` owns what sits between an authenticated account and `AuctionService.submit`:

* accounts bound to an Ed25519 public key (`create_account`), sessions (`session`);
* the real-name check (`verify_identity`, rules C2.1): the identity provider checks the
  document and signs an attestation; the personal data and the salt go to the compliance table
  (`auction.accounts`), the attestation alone to the ledger as an `idv` entry signed by the
  provider's own key;
* registration for a lot (`register`, rules C2) with a per-lot bidder code (rules C2.4);
* deposits (`freeze_deposit`, rules C3) through the payment provider, whose callbacks arrive
  asynchronously, are deduplicated (`payments.CallbackInbox`) and become `DepositFrozen`;
* bids (`bid`, docs/protocol.md §2.4): rate limit, signature check, idempotency, the verified
  identity precondition, then `service.submit_logged(..., request=bid)`; the ack is
  built only after that returns, i.e. after the entry is durable.

Failures that end a request are `auction.errors.GavelError`s carrying a stable code;
bid refusals are never exceptions but `rejected` acks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..accounts import AccountStore, Role, Session
from ..errors import (
    BadInput,
    Conflict,
    GavelError,
    NotAllowed,
    NotFound,
    PaymentDeclined,
    RefusedByRules,
    Unavailable,
)
from ..identity.desk import IdentityDesk
from ..identity.provider import IdentityProvider
from ..identity.records import IdentityRecords, IdentityVersion
from ..payments import Callback, CallbackInbox, PaymentError, PaymentProvider, PaymentReason
from ..rules import (
    DepositFrozen,
    DepositPending,
    DepositState,
    RegisterBidder,
    RulesError,
    decode,
    rejection,
)
from ..rules.common import REGISTRATION_OPEN
from ..service import AuctionService, RequestRefused, ServiceError
from ..storage import StorageError
from ..throttle import EntryBudget, account_entries
from ..verify import Attestation, BidMalformed, SignedBid
from ..words import refusal_for
from .ack import engine_ack, refused_ack
from .idempotency import IdempotencyIndex
from .identity_keys import IdentityKeys
from .rate_limit import TokenBucket
from .registration import (
    PAYMENT_WORDS,
    Registration,
    bidder_code,
    refuse_deposit,
    refuse_registration,
)

logger = logging.getLogger(__name__)

#: Bids per second per account (token bucket, burst of the same size): docs/protocol.md §2.5.
BIDS_PER_SECOND = 10

#: How long after a lot's close its bids' idempotency keys are still answered (seconds).
IDEMPOTENCY_GRACE_S = 600.0

#: Seconds before the simulated payment provider calls back (and calls back again: webhooks
#: are delivered at least once).
CALLBACK_DELAY = 0.05

#: What every simulated account is funded with: enough for every demo deposit.
SIMULATED_BALANCE = 10**12


@dataclass(frozen=True, slots=True)
class BidderKey:
    """An account's public key and, when verified, its attestation's expiry."""

    public_key: bytes
    verified_until_us: int | None


Notify = Callable[[str, dict[str, Any]], None]


def _no_notify(account: str, message: dict[str, Any]) -> None:
    return None


def _no_answer(account: str, bid: SignedBid, ack: dict[str, Any]) -> None:
    return None


class Gateway:
    """The shared bidding path. Build it once per server (the composition root does), call
    `stop()` when done (it cancels the payment callbacks still in flight)."""

    def __init__(
        self,
        service: AuctionService,
        accounts: AccountStore,
        identity: IdentityKeys,
        payments: PaymentProvider,
        *,
        code_secret: bytes,
        fingerprint_key: bytes,
        clock: Callable[[], int] | None = None,
        bids_per_second: int = BIDS_PER_SECOND,
        callback_delay: float = CALLBACK_DELAY,
        idempotency_grace_s: float = IDEMPOTENCY_GRACE_S,
        entries_per_account_hour: int | None = None,
    ) -> None:
        self._service = service
        self._accounts = accounts
        self._identity = identity
        self._payments = payments
        self._code_secret = code_secret
        self._clock = clock or service.now
        self._rate = bids_per_second
        self._callback_delay = callback_delay
        self._buckets: dict[str, TokenBucket] = {}
        #: docs/protocol.md §1.1: non-bid ledger entries per account per hour (None: no bound).
        self._budget = (
            None if entries_per_account_hour is None else EntryBudget(entries_per_account_hour)
        )
        self._index = IdempotencyIndex()
        self._grace_s = idempotency_grace_s
        self._forgetting: dict[str, asyncio.TimerHandle] = {}
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[dict[str, Any]]] = {}
        self._keys: dict[str, BidderKey] = {}
        self._inbox = CallbackInbox()
        self._tasks: set[asyncio.Task[None]] = set()
        self.notify: Notify = _no_notify
        #: Told every bid's answer that reached the lot (`auction.web.me` remembers it).
        self.answered: Callable[[str, SignedBid, dict[str, Any]], None] = _no_answer
        #: Clustered: sends a bid for a lot another instance writes to that instance's
        #: gateway, which answers it (idempotency, limits, signature, ack) as its own.
        self.forward_bid: Callable[[str, SignedBid], Awaitable[dict[str, Any]]] | None = None
        #: The real-name check and the compliance records of identities (one person, one
        #: account): `auction.identity.desk`.
        self.identities = IdentityDesk(
            record=service.record,
            records=IdentityRecords(accounts.engine),
            provider=identity.provider,
            signer=identity.signer,
            fingerprint_key=fingerprint_key,
            clock=self._clock,
            open_lots=self.open_lots,
        )

    @property
    def bids_per_second(self) -> int:
        return self._rate

    @property
    def identity_provider(self) -> IdentityProvider:
        return self._identity.provider

    def now(self) -> int:
        return self._clock()

    async def stop(self) -> None:
        """Cancel the payment callbacks still scheduled and wait for them."""
        for timer in self._forgetting.values():
            timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    # -- accounts and sessions --

    async def create_account(self, public_key: bytes) -> tuple[str, str, int]:
        """A new bidder account bound to `public_key`, with a session:
        `(account, token, expires_us)`."""
        if len(public_key) != 32:
            raise BadInput("a public key is 32 bytes (raw Ed25519)", code="MALFORMED")
        now = self.now()
        account = await self._blocking(self._accounts.create_account, public_key, now)
        token, expires = await self._blocking(
            self._accounts.create_session, account, Role.BIDDER, now
        )
        self._payments.fund(account, SIMULATED_BALANCE)  # the simulated bank card
        return account, token, expires

    @property
    def payments(self) -> PaymentProvider:
        """The payment provider (the dashboard reads its holds)."""
        return self._payments

    async def create_staff_session(self, role: Role) -> tuple[str, str, int]:
        """An account without a bidding key and a session with `role` (auctioneer,
        compliance): `(account, token, expires_us)`."""
        now = self.now()
        account = await self._blocking(self._accounts.create_account, None, now)
        token, expires = await self._blocking(self._accounts.create_session, account, role, now)
        return account, token, expires

    async def session(self, token: str) -> Session | None:
        """The valid session of a bearer token, or None."""
        return await self._blocking(self._accounts.session, token, self.now())  # type: ignore[no-any-return]

    async def bidder_key(self, account: str) -> BidderKey | None:
        """The account's key and verified-until time (cached; refreshed on verification)."""
        known = self._keys.get(account)
        if known is not None and known.verified_until_us is not None:
            return known  # an unverified account is read again: another instance may verify it
        public_key = await self._blocking(self._accounts.public_key, account)
        if public_key is None:
            return None
        identity = await self.identity(account)
        until = None
        if identity is not None and not identity.bound_elsewhere:  # a duplicate does not count
            until = identity.expires_us
        known = BidderKey(bytes(public_key), until)
        self._keys[account] = known
        return known

    # -- identity (rules C2.1) --

    async def verify_identity(
        self, account: str, name: str, document_type: str, document: str
    ) -> tuple[Attestation, int]:
        """Check the document and record the identity (`IdentityDesk.verify`: one person, one
        account; an identity once verified is bound to the account). Returns the attestation
        and its `idv` entry's seq. Raises a `GavelError` (422 with the identity reason, 409
        `DOCUMENT_IN_USE`, `IDENTITY_BOUND`, `REGISTERED_ON_OPEN_LOT`; `Throttled` past the
        account's hourly bound) and writes nothing but a compliance alert when refused."""
        key = await self.bidder_key(account)
        if key is None:
            raise NotAllowed("this account has no bidding key", code="NO_KEY")
        self.spend(account, 1)  # its `idv` entry
        try:
            attestation, seq = await self.identities.verify(
                account, key.public_key, name, document_type, document
            )
        except GavelError:  # nothing was written to the ledger
            self.refund(account, 1)
            raise
        self._keys[account] = BidderKey(key.public_key, attestation.expires_us)
        return attestation, seq

    async def identity(self, account: str) -> IdentityVersion | None:
        """The account's newest identity version (personal data: compliance use only)."""
        return await self.identities.latest(account)

    async def erase_personal_data(self, account: str) -> bool:
        """Erase the personal data and salt of every version of the account's identity; the
        ledger's attestations stay (their commitments can no longer be opened), and so do the
        document fingerprints. Returns whether anything was erased."""
        return await self.identities.erase(account)

    def open_lots(self, account: str) -> list[str]:
        """The lots not yet closed the account is registered on."""
        found = []
        for view in self._service.views():
            if not view.active:
                continue
            state = self._service.state(view.lot_id)
            if state is not None and account in state.bidders:
                found.append(view.lot_id)
        return found

    # -- the bound on an account's ledger entries (docs/protocol.md §1.1) --

    def spend(self, account: str, entries: int) -> None:
        """Count `entries` ledger entries the account is about to cause (identity checks,
        registrations, deposits; never bids), or raise `Throttled` and write nothing. The one
        place the hourly bound is enforced: called before each of those writes."""
        if self._budget is not None:
            self._budget.spend(account, entries, self.now())

    def refund(self, account: str, entries: int) -> None:
        """Give back what `spend` counted for a request that then wrote nothing."""
        if self._budget is not None:
            self._budget.refund(account, entries)

    def learn_spent(self, entries: Iterable[bytes]) -> int:
        """Count the accounts' entries of the last hour found among these ledger entries (the
        newest, read back at start), so that a restart does not reset the bound."""
        if self._budget is None:
            return 0
        return self._budget.learn(account_entries(entries), self.now())

    # -- registration (rules C2) and deposits (rules C3) --

    def registration(self, account: str, lot: str) -> Registration | None:
        """The account's registration for `lot` as the engine has it, or None."""
        state = self._service.state(lot)
        if state is None:
            return None
        bidder = state.bidders.get(account)
        if bidder is None:
            return None
        return Registration(
            lot,
            bidder.code,
            bidder.deposit.value,
            bidder.deposit_amount or state.rules.deposit,
            state.rules.currency,
        )

    def registrations(self, account: str) -> list[Registration]:
        found = []
        for view in self._service.views():
            registration = self.registration(account, view.lot_id)
            if registration is not None:
                found.append(registration)
        return found

    async def register(self, account: str, lot: str) -> Registration:
        """Register a verified account for `lot` with its per-lot code. Raises a `GavelError`:
        403 `NOT_VERIFIED`, 404 `UNKNOWN_LOT`, 422 with the engine's reason."""
        if self._service.view(lot) is None:
            raise NotFound(f"there is no lot {lot!r}", code="UNKNOWN_LOT")
        # Not while the account's identity is changing: a registration on a lot that has not
        # closed freezes the identity (`IdentityDesk.verify` holds the same lock).
        async with self.identities.lock(account):
            key = await self.bidder_key(account)
            now = self.now()
            if key is None or key.verified_until_us is None or key.verified_until_us <= now:
                raise NotAllowed("verify your identity before registering", code="NOT_VERIFIED")
            refuse_registration(self._service.state(lot), account)
            code = bidder_code(self._code_secret, lot, account)
            self.spend(account, 1)
            events = await self._submit(lot, RegisterBidder(account, code, kyc_verified=True))
        refusal = rejection(events)
        if refusal is not None:
            words = refusal_for(refusal.reason, self._service.state(lot))
            raise RefusedByRules(words, code=refusal.reason.value)
        registration = self.registration(account, lot)
        if registration is None:  # the lot went to sleep meanwhile (closed long ago)
            raise Conflict("this lot has closed", code="LOT_CLOSED")
        return registration

    async def freeze_deposit(self, account: str, lot: str, idempotency_key: str) -> dict[str, Any]:
        """Ask the payment provider to freeze the lot's deposit. Returns `{"state", "hold"}`;
        the provider's callback later makes the deposit FROZEN and pushes a `deposit` message
        to the account. Raises a `GavelError` (402 `INSUFFICIENT_FUNDS`, 409
        `IDEMPOTENCY_CONFLICT`, 409 `NOT_REGISTERED`, ...)."""
        state = self._service.state(lot)
        if state is None:
            if self._service.view(lot) is not None:  # dormant: closed long ago
                raise Conflict("this lot has closed", code="LOT_CLOSED")
            raise NotFound(f"there is no lot {lot!r}", code="UNKNOWN_LOT")
        bidder = state.bidders.get(account)
        if bidder is None:
            raise Conflict("register for the lot first", code="NOT_REGISTERED")
        amount = bidder.deposit_amount or state.rules.deposit
        if amount <= 0 or bidder.deposit is DepositState.EXEMPT:
            raise Conflict("this lot needs no deposit", code="NO_DEPOSIT_NEEDED")
        # The provider's keys are the platform's: scope a bidder's key to the bidder, so
        # two bidders choosing the same key never collide.
        provider_key = f"{account}/{idempotency_key}"
        required = bidder.deposit is DepositState.REQUIRED
        resent = self._payments.knows(provider_key)
        refuse_deposit(state.status in REGISTRATION_OPEN, bidder.deposit, resent)
        self.spend(account, 2 if required else 0)  # pending, then frozen by the callback
        now = self.now()
        try:
            hold, callback = self._payments.freeze(
                provider_key, account, lot, amount, state.rules.currency, now
            )
        except PaymentError as exc:
            words, code = PAYMENT_WORDS[exc.reason], exc.reason.value
            if exc.reason is PaymentReason.INSUFFICIENT_FUNDS:
                raise PaymentDeclined(words, code=code) from exc
            raise Conflict(words, code=code) from exc
        if bidder.deposit is DepositState.REQUIRED:
            refusal = rejection(await self._submit(lot, DepositPending(account, hold.hold_id)))
            if refusal is not None:
                words = refusal_for(refusal.reason, self._service.state(lot))
                raise RefusedByRules(words, code=refusal.reason.value)
        self._deliver_later(callback)
        self._deliver_later(callback)  # webhooks come at least once: the inbox drops this one
        current = self.registration(account, lot)
        shown = current.deposit_state if current is not None else DepositState.PENDING.value
        return {"state": shown, "hold": hold.hold_id}

    def _deliver_later(self, callback: Callback) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, callback: Callback) -> None:
        await asyncio.sleep(self._callback_delay)
        if not self._inbox.accept(callback):
            return
        try:
            command = DepositFrozen(callback.account, callback.amount, callback.hold_id)
            events = await self._submit(callback.lot, command)
        except GavelError as exc:
            logger.warning("payment callback %s not applied: %s", callback.transaction, exc)
            return
        registration = self.registration(callback.account, callback.lot)
        refusal = rejection(events)
        message: dict[str, Any] = {
            "type": "deposit",
            "lot": callback.lot,
            "hold": callback.hold_id,
            "state": registration.deposit_state if registration else "UNKNOWN",
            "amount": callback.amount,
        }
        if refusal is not None:
            message["reason"] = refusal.reason.value
        self.notify(callback.account, message)

    # -- bids (docs/protocol.md §2.4) --

    def lot_closed(self, lot: str) -> None:
        """The lot has closed: its bids' idempotency keys are kept `idempotency_grace_s` longer
        (for resends after a reconnect), then forgotten, so the index does not grow with every
        lot a server ever closed. A resend after that reaches the rules and is refused."""
        if lot in self._forgetting:
            return

        def forget() -> None:
            self._forgetting.pop(lot, None)
            self._index.forget_lot(lot)

        self._forgetting[lot] = asyncio.get_running_loop().call_later(self._grace_s, forget)

    @property
    def idempotency_keys(self) -> int:
        """How many bids' keys the gateway holds now."""
        return len(self._index)

    @property
    def idempotency_memory(self) -> int:
        """How many answered bids the gateway remembers (the newest)."""
        return self._index.capacity

    def learn_answered(self, entries: Iterable[bytes]) -> int:
        """Remember the signed bids of these ledger entries (the newest, read back at start)
        with the answer each got, so that a bidder resending a bid whose ack a crash swallowed
        gets that answer again instead of a second entry (docs/protocol.md §2.4). Returns how
        many bids it learnt."""
        learnt = 0
        for raw in entries:
            entry = json.loads(raw)
            body = entry.get("body")
            request = body.get("request") if isinstance(body, dict) else None
            if not isinstance(request, dict):
                continue
            try:
                bid = SignedBid.from_json(request)
                events = tuple(decode(event) for event in body.get("events") or ())
            except (BidMalformed, RulesError, TypeError):
                continue  # the ledger's checks refuse such an entry; nothing to answer
            view = self._service.view(bid.lot)
            closed = None if view is None else view.closed_at
            if closed is not None and self.now() - closed > self._grace_s * 1_000_000:
                continue  # closed long ago: its keys would have been forgotten by now
            ack = engine_ack(bid, events, entry["seq"], self._service.state(bid.lot))
            self._index.remember(bid.account, bid, ack)
            learnt += 1
        return learnt

    async def bid(self, account: str, bid: SignedBid, *, forward: bool = True) -> dict[str, Any]:
        """Answer one signed bid, sent by `account` (the session's), with exactly one ack (a
        dict ready to send). Clustered, a bid for a lot another instance writes is answered by
        that instance (`forward_bid`)."""
        bid = bid.by(account)
        if (
            forward
            and self.forward_bid is not None
            and self._service.clustered
            and self._service.view(bid.lot) is not None
            and not self._service.leads(bid.lot)
        ):
            return await self.forward_bid(account, bid)
        now = self._clock()
        status, earlier = self._index.check(account, bid)
        if status != "resend":  # a resend of a known request is answered, never limited
            bucket = self._buckets.get(account)
            if bucket is None:
                bucket = self._buckets[account] = TokenBucket(self._rate, self._rate, now)
            if not bucket.take(now):
                return self._refused(bid, "RATE_LIMITED")
        key = await self.bidder_key(account)
        verified = None if key is None else bid.verified_by(key.public_key)
        if key is None or verified is None:
            return self._refused(bid, "BAD_SIGNATURE")
        slot = (account, bid.lot, bid.idempotency_key)
        if status == "conflict":
            return self._refused(bid, "IDEMPOTENCY_CONFLICT")
        if status == "resend":
            if earlier is not None:
                return earlier
            pending = self._in_flight.get(slot)
            if pending is not None:
                return await asyncio.shield(pending)
        if key.verified_until_us is None or key.verified_until_us <= now:
            return self._refused(bid, "NOT_VERIFIED")
        self._index.reserve(account, bid)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._in_flight[slot] = future
        try:
            ack = await self._place(verified)
        except BaseException as exc:
            self._index.forget(account, bid)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a waiting resend re-raises its own copy
            raise
        finally:
            self._in_flight.pop(slot, None)
        self._index.complete(account, bid, ack)
        future.set_result(ack)
        self.answered(account, bid, ack)
        return ack

    async def _place(self, bid: SignedBid) -> dict[str, Any]:
        """Submit a verified bid; its ack once its entry is durable."""
        try:
            events, entry = await self._service.submit_logged(bid.lot, bid.command(), request=bid)
        except RulesError:
            return self._refused(bid, "INVALID_AMOUNT")
        except RequestRefused as exc:  # checked before logging: nothing was written
            return self._refused(bid, exc.reason)
        except (ServiceError, StorageError) as exc:
            raise Unavailable("the bid could not be stored") from exc
        # Rules C18: `submit` returned, so the bid's entry is durable; only now the ack.
        return engine_ack(bid, events, entry, self._service.state(bid.lot))

    def _refused(self, bid: SignedBid, reason: str) -> dict[str, Any]:
        return refused_ack(bid, reason, self._service.state(bid.lot))

    async def _submit(self, lot: str, command: Any) -> tuple[Any, ...]:
        try:
            return await self._service.submit(lot, command)
        except RulesError as exc:
            raise BadInput(str(exc)) from exc
        except RequestRefused as exc:
            raise RefusedByRules(exc.message, code=exc.reason) from exc
        except (ServiceError, StorageError) as exc:
            raise Unavailable("the auction could not store that") from exc
