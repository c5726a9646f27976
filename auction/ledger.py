"""What the auction writes to the ledger, and how a notary or auditor reads it back (pure).

One ledger entry per command a lot's engine received, accepted or rejected (ledger spec §1:
the log is evidence of what happened, not only of what succeeded), plus the entries that frame
them: `house` (the log's origin and key), `lot` (a lot and its rules) and `sale` (the result of a
sold lot). Bodies hold no personal data: bidders appear as opaque ids and per-lot codes.

Entry `t` is the sequencing time: the command's server ingress time, raised if needed so that
times never go backwards along the log. The legal time of a command is `body.ingress`.

Replay (`LedgerReplay`) is the check a notary makes before co-signing and the auditor makes
offline: every lot is rebuilt from its `lot` entry by feeding each recorded command, at its
recorded ingress time, through the same engine the server runs, and the events the engine
produces must equal the events the server recorded. Any difference is `ReplayError`.

Signed bids (`IdentityBook`, shared by the replay and the server's ledger writer): `key` entries
with role "idv" name the identity providers; an `idv` entry, signed as its actor by such a
provider, binds an account to the bidder's public key (`subject_key`) until the attestation
expires; a bid entry may carry the bidder's signed request (docs/protocol.md §2.4), which must
be signed by that key, match the command and fall before the expiry. A log whose `house` entry
says `"signed_bids": true` requires a request on every PlaceBid / SetMax and an `idv` entry for
every kyc-verified registration.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import (
    ChainError,
    Ed25519Verifier,
    EntryType,
    canonical_json,
    format_time,
    parse_time,
    parse_vkey,
)

from .bidding.signed_bid import BidMalformed, SignedBid
from .court import OrderError, check_order
from .errors import GavelError, RefusedByRules
from .identity.provider import Attestation, IdentityError, verify_attestation
from .rules import (
    COMMAND_TYPES,
    BidAccepted,
    LotClosed,
    LotRules,
    LotState,
    Rejected,
    Result,
    RulesError,
    apply,
    decode,
    encode,
)
from .rules import commands as c
from .sealed import ALIAS_MARK, LinkBook, SealError, bidders_of, open_body

BODY_VERSION = 1

#: The role of a `key` entry whose key signs `idv` entries (an identity provider).
IDV_ROLE: Final = "idv"

_BID_COMMANDS = (
    c.PlaceBid,
    c.SetMax,
    c.RetractBid,
    c.VoidBid,
    c.FloorBid,
    c.AcceptOnline,
    c.DeclineOnline,
    c.UndoLastBid,
)
_REGISTRATION_COMMANDS = (c.RegisterBidder, c.BarBidder)
_DEPOSIT_COMMANDS = (c.DepositPending, c.DepositFrozen, c.ReleaseDeposit)


class ReplayError(GavelError):
    """The recorded history does not follow the rules (or cannot be read as a history).

    `seq` is the ledger entry at fault, `lot` the lot concerned (if known).
    """

    def __init__(self, seq: int, lot: str | None, message: str) -> None:
        where = f"entry {seq}" + (f" (lot {lot})" if lot else "")
        super().__init__(f"{where}: {message}")
        self.seq = seq
        self.lot = lot


class SignedBidError(RefusedByRules):
    """A bid request, an identity entry or a registration breaks the signed-bid rules.

    `reason` is one of the constants below (stable, for an API answer); nothing was applied.
    """

    NO_REQUEST: Final = "NO_REQUEST"
    NOT_A_BID: Final = "NOT_A_BID"
    MALFORMED: Final = "MALFORMED"
    MISMATCH: Final = "MISMATCH"
    NO_IDENTITY: Final = "NO_IDENTITY"
    EXPIRED: Final = "ATTESTATION_EXPIRED"
    BAD_SIGNATURE: Final = "BAD_SIGNATURE"
    NOT_A_PROVIDER: Final = "NOT_A_PROVIDER"
    BAD_ATTESTATION: Final = "ATTESTATION_INVALID"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def idv_body(account: str, attestation: Mapping[str, Any]) -> dict[str, Any]:
    """The body of an `idv` entry: the account and the provider's attestation
    (`auction.identity.provider.Attestation.to_json()`: salted commitment, no personal data).
    Record it with the identity provider's key as actor
    (`AuctionService.record(EntryType.IDV, ...)`)."""
    return {"v": BODY_VERSION, "account": account, "attestation": thaw(attestation)}


def kid_names_key(verifier: Ed25519Verifier, kid: str) -> bool:
    """The one rule for an entry's `actor.kid`, shared by the auditor and the notaries: it names
    a key when it equals the key's vkey, `<name>+<hex key id>`, its name, or its hex key id
    (any case). When several valid keys match, one of them must verify."""
    hex_id = verifier.key_id.hex()
    return kid in (verifier.vkey, f"{verifier.name}+{hex_id}", verifier.name) or (
        kid.lower() == hex_id
    )


def entry_type_for(command: Any) -> EntryType:
    """The ledger entry type that records `command` (ledger spec §1)."""
    if isinstance(command, _BID_COMMANDS):
        return EntryType.BID
    if isinstance(command, _REGISTRATION_COMMANDS):
        return EntryType.REGISTRATION
    if isinstance(command, _DEPOSIT_COMMANDS):
        return EntryType.DEPOSIT
    return EntryType.LOT_STATE


def house_body(origin: str, name: str, vkey: str, signed_bids: bool = False) -> dict[str, Any]:
    """Entry 0 of every log: who runs it and which key signs its checkpoints and entries;
    `signed_bids`: every bid must carry its bidder's signed request."""
    body: dict[str, Any] = {"v": BODY_VERSION, "origin": origin, "name": name, "vkey": vkey}
    if signed_bids:
        body["signed_bids"] = True
    return body


def lot_body(
    lot_id: str, rules: LotRules, title: str, sale_id: str | None, created_us: int
) -> dict[str, Any]:
    """A lot is created with these rules; its commands follow in later entries."""
    return {
        "v": BODY_VERSION,
        "lot": lot_id,
        "sale": sale_id,
        "title": title,
        "rules": encode(rules),
        "created": format_time(created_us),
    }


def command_body(
    lot_id: str,
    n: int,
    ingress_us: int,
    command: Any,
    events: tuple[Any, ...],
    request: SignedBid | None = None,
    order: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One command applied to lot `lot_id` as its `n`-th command, with the engine's answer
    (and, for a signed bid, the bidder's request; for a court order, who gave it:
    `auction.court.CourtOrder.to_json()`)."""
    accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
    body: dict[str, Any] = {
        "v": BODY_VERSION,
        "lot": lot_id,
        "n": n,
        "ingress": format_time(ingress_us),
        "command": encode(command),
        "accepted": accepted,
        "events": [encode(event) for event in events],
    }
    if request is not None:
        body["request"] = request.to_json()
    if order is not None:
        body["order"] = dict(order)
    return body


def confirmation_document(
    lot_id: str, title: str, closed: LotClosed, currency: str, close_seq: int
) -> bytes:
    """The confirmation of sale (成交确认书, rules C9) as canonical JSON, without real names:
    the signed copy with the buyer's name is kept off the ledger, and this hash binds it."""
    return canonical_json(
        {
            "document": "gavel/confirmation/v1",
            "lot": lot_id,
            "title": title,
            "hammer_price": closed.price or 0,
            "currency": currency,
            "buyer_code": closed.winner_code or "",
            "closed": format_time(closed.t),
            "close_entry": close_seq,
        }
    )


def sale_body(
    lot_id: str,
    closed: LotClosed,
    currency: str,
    close_seq: int,
    winning_bid_seq: int | None,
    confirmation: bytes,
    buyer_idv_seq: int | None = None,
) -> dict[str, Any]:
    """A lot sold: the entry a receipt for the buyer points at (ledger spec §1 `sale`)."""
    return {
        "v": BODY_VERSION,
        "lot": lot_id,
        "price": closed.price or 0,
        "currency": currency,
        "buyer_code": closed.winner_code or "",
        "close_entry": close_seq,
        "winning_bid_entry": winning_bid_seq,
        "buyer_idv_entry": buyer_idv_seq,
        "confirmation_sha256": hashlib.sha256(confirmation).hexdigest(),
    }


@dataclass(frozen=True, slots=True)
class _Identity:
    """An account's latest `idv` entry: the bidder's key and the attestation's expiry."""

    subject_key: Ed25519PublicKey
    expires_us: int
    seq: int
    raw_key: bytes = b""


class SignatureMemo:
    """Ed25519 signatures this process has verified already (bounded, thread-safe).

    A bid verified where it entered (`SignedBid.verified_by`, the gateway) is not verified
    again by the identity books; a bid submitted without that (a test, a forwarded command)
    is checked by the service and by the ledger writer: with one memo shared by them (the
    store owns it; `IdentityBook.copy` keeps it), the curve arithmetic runs once. Only
    successes are kept, keyed by a hash of key, signature and message together. The checks
    of one bid are milliseconds apart: 8,192 entries (~1.1 MiB) hold the bids in flight."""

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def verify(
        self, key: Ed25519PublicKey, raw_key: bytes, signature: bytes, message: bytes
    ) -> None:
        """`key.verify(signature, message)` unless that exact triple verified before; raises
        `InvalidSignature`."""
        token = hashlib.sha256(b"%b%b%b" % (raw_key, signature, message)).digest()
        with self._lock:
            if token in self._seen:
                self._seen.move_to_end(token)
                return
        key.verify(signature, message)
        with self._lock:
            self._seen[token] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


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
    memo: SignatureMemo | None = None

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


@dataclass
class _LotReplay:
    state: LotState
    title: str
    next_n: int = 0
    last_bid_entry: dict[str, int] = field(default_factory=dict)  # bidder -> ledger seq
    close_entry: int | None = None
    closed: LotClosed | None = None
    sale_entry: int | None = None


@dataclass
class LedgerReplay:
    """Feeds ledger entries, in order, through the rules engine. Call `add(seq, type, t_us,
    body)` for every entry; at the end of what you have, `unsold_closures()` lists sold lots
    still missing their `sale` entry and `outcomes()` what the replay concluded per lot."""

    lots: dict[str, _LotReplay] = field(default_factory=dict)
    commands: int = 0
    rejected: int = 0
    sales: int = 0
    last_t: int = -1
    identities: IdentityBook = field(default_factory=IdentityBook)
    idv_entries: int = 0
    verified_bid_signatures: int = 0
    #: `openings(seq)`: the openings of entry `seq`'s sealed values (None: it has none). With
    #: it, every opening is checked against its commitment and the replay runs on the opened
    #: bodies (account ids, signed requests: every check). Without it (a public verifier),
    #: sealed values stay sealed: the rules replay on the per-lot aliases, and the signed-bid
    #: checks that need the accounts are skipped for aliased entries.
    openings: Callable[[int], Mapping[str, Any] | None] | None = None
    links: LinkBook = field(default_factory=LinkBook)
    opened_values: int = 0

    def add(
        self,
        seq: int,
        entry_type: str,
        t_us: int,
        body: Mapping[str, Any],
        actor_kid: str | None = None,
    ) -> None:
        """Replay one entry. `actor_kid` is the entry's `actor.kid`: `idv` entries need it
        (their attestation must verify under the provider key it names)."""
        if t_us < self.last_t:
            raise ReplayError(seq, None, "time goes backwards along the log")
        self.last_t = t_us
        sealed_here = body.get("sealed")
        public = False
        if self.openings is not None and entry_type in (EntryType.IDV, *_COMMAND_TYPES):
            try:
                opened = self.openings(seq) if sealed_here is not None else None
                body = open_body(entry_type, body, opened, self.links)
            except SealError as exc:
                raise ReplayError(seq, _lot_of(body), str(exc)) from exc
            self.opened_values += len(sealed_here) if isinstance(sealed_here, Mapping) else 0
        elif sealed_here is not None or (entry_type in _COMMAND_TYPES and _names_aliases(body)):
            public = True
            body = {k: v for k, v in body.items() if k != "sealed"}
            if entry_type == EntryType.IDV:
                body["account"] = f"sealed:{seq}"
        if entry_type == EntryType.HOUSE:
            self.identities.house(body)
            return
        try:
            if entry_type == EntryType.KEY:
                self.identities.key(body)
                return
            if entry_type == EntryType.IDV:
                self.identities.idv(seq, t_us, body, actor_kid)
                self.idv_entries += 1
                return
        except SignedBidError as exc:
            raise ReplayError(seq, None, f"{exc.reason}: {exc.message}") from exc
        if entry_type == EntryType.LOT:
            self._lot(seq, body)
        elif entry_type == EntryType.SALE:
            self._sale(seq, body)
        elif entry_type in (
            EntryType.BID,
            EntryType.REGISTRATION,
            EntryType.DEPOSIT,
            EntryType.LOT_STATE,
        ):
            self._command(seq, entry_type, t_us, body, public)
        # stream_segment, document (any object body), notary_set: checked by their own verifiers

    def _lot(self, seq: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        if lot_id in self.lots:
            raise ReplayError(seq, lot_id, "lot created twice")
        try:
            rules = decode(thaw(body.get("rules")))
        except RulesError as exc:
            raise ReplayError(seq, lot_id, f"unreadable rules: {exc}") from exc
        if not isinstance(rules, LotRules):
            raise ReplayError(seq, lot_id, "rules are not lot rules")
        self.lots[lot_id] = _LotReplay(LotState.create(lot_id, rules), _text(body, "title", seq))

    def _command(
        self, seq: int, entry_type: str, t_us: int, body: Mapping[str, Any], public: bool = False
    ) -> None:
        lot_id = _text(body, "lot", seq)
        lot = self.lots.get(lot_id)
        if lot is None:
            raise ReplayError(seq, lot_id, "command for a lot the log never created")
        if body.get("n") != lot.next_n:
            raise ReplayError(seq, lot_id, f"command n={body.get('n')} but {lot.next_n} expected")
        ingress_text = _text(body, "ingress", seq)
        try:
            ingress = parse_time(ingress_text)
            command = decode(thaw(body.get("command")))
        except (RulesError, ChainError) as exc:
            raise ReplayError(seq, lot_id, f"unreadable command: {exc}") from exc
        if type(command) not in COMMAND_TYPES:
            raise ReplayError(seq, lot_id, "not a command")
        if entry_type_for(command) != entry_type:
            raise ReplayError(seq, lot_id, f"a {type(command).__name__} in a {entry_type} entry")
        if ingress > t_us:
            raise ReplayError(seq, lot_id, "ingress time after the entry's time")
        if "order" in body:  # a court order given through a court session (auction.court)
            try:
                check_order(thaw(body.get("order")), command)
            except OrderError as exc:
                raise ReplayError(seq, lot_id, f"court order: {exc}") from exc
        try:  # a public replay cannot check what is sealed (the request, the account)
            signed = (
                False
                if public
                else self.identities.check(lot_id, command, body.get("request"), ingress)
            )
        except SignedBidError as exc:
            raise ReplayError(seq, lot_id, f"{exc.reason}: {exc.message}") from exc
        state, events = apply(lot.state, command, ingress)
        recorded = thaw(body.get("events"))
        produced = [encode(event) for event in events]
        if self.openings is None and produced != recorded:  # settlements follow the accounts' order
            produced, recorded = _settlements_unordered(produced), _settlements_unordered(recorded)
        if produced != recorded:
            raise ReplayError(
                seq, lot_id, f"the rules give {produced!r}, the log recorded {recorded!r}"
            )
        accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
        if body.get("accepted") is not accepted:
            raise ReplayError(seq, lot_id, "accepted flag contradicts the rules")
        lot.state = state
        lot.next_n += 1
        self.commands += 1
        self.verified_bid_signatures += signed
        self.rejected += not accepted
        for event in events:
            if isinstance(event, BidAccepted):
                lot.last_bid_entry[event.bidder] = seq
            if isinstance(event, LotClosed):
                lot.closed = event
                lot.close_entry = seq
                lot.sale_entry = None

    def _sale(self, seq: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        lot = self.lots.get(lot_id)
        if lot is None or lot.closed is None or lot.closed.result is not Result.SOLD:
            raise ReplayError(seq, lot_id, "a sale entry for a lot that was not sold")
        if lot.sale_entry is not None:
            raise ReplayError(seq, lot_id, "the lot was sold twice")
        closed = lot.closed
        assert lot.close_entry is not None
        winner_bid = lot.last_bid_entry.get(closed.winner or "")
        expected = sale_body(
            lot_id,
            closed,
            lot.state.rules.currency,
            lot.close_entry,
            winner_bid,
            confirmation_document(
                lot_id, lot.title, closed, lot.state.rules.currency, lot.close_entry
            ),
            body.get("buyer_idv_entry") if isinstance(body.get("buyer_idv_entry"), int) else None,
        )
        if thaw(body) != expected:
            raise ReplayError(seq, lot_id, "the sale entry does not match the lot's result")
        lot.sale_entry = seq
        self.sales += 1

    def unsold_closures(self) -> list[str]:
        """Lots the rules sold whose `sale` entry is missing (so far)."""
        return sorted(
            lot_id
            for lot_id, lot in self.lots.items()
            if lot.closed is not None
            and lot.closed.result is Result.SOLD
            and lot.sale_entry is None
        )

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Per lot: status, price, leader code, seq — what the replay concluded."""
        return {
            lot_id: {
                "status": lot.state.status.value,
                "price": lot.state.price,
                "leader_code": lot.state.leader_code,
                "commands": lot.next_n,
                "sale_entry": lot.sale_entry,
            }
            for lot_id, lot in sorted(self.lots.items())
        }


_COMMAND_TYPES = (EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE)


def _settlements_unordered(events: Any) -> Any:
    """`events` with each run of `DepositChanged` events sorted: the rules settle deposits in
    the order of the account ids, which a public replay (aliases only) cannot know."""
    if not isinstance(events, list):
        return events
    out: list[Any] = []
    run: list[Any] = []
    for event in [*events, None]:
        if isinstance(event, Mapping) and event.get("type") == "DepositChanged":
            run.append(event)
            continue
        seqs = [e.get("seq") for e in run]  # the numbering stays; the bidders may swap
        ordered = sorted(({k: v for k, v in e.items() if k != "seq"} for e in run), key=_cj)
        out.extend({**e, "seq": n} for e, n in zip(ordered, seqs, strict=True))
        run = []
        if event is not None:
            out.append(event)
    return out


def _cj(value: Any) -> bytes:
    return canonical_json(value)


def _lot_of(body: Mapping[str, Any]) -> str | None:
    lot = body.get("lot")
    return lot if isinstance(lot, str) else None


def _names_aliases(body: Mapping[str, Any]) -> bool:
    return any(name.startswith(ALIAS_MARK) for name in bidders_of(body.get("command")))


def _text(body: Mapping[str, Any], key: str, seq: int) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ReplayError(seq, None, f"body.{key} must be a string")
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists from an entry body (which chain keeps read-only)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value
