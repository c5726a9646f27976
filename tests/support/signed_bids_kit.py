"""Shared helpers of the tests, first written for `test_ledger_signed_bids.py`."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auction.identity.provider import DocumentType, IdentityProvider, VerifiedDocument
from auction.rules import (
    SECOND,
    LotStatus,
    PlaceBid,
    RegisterBidder,
    Rejected,
    SetMax,
    apply,
    english_timed,
)
from auction.service import AuctionService
from auction.storage import Storage
from auction.verify import (
    LedgerReplay,
    LinkBook,
    SignedBid,
    SignedBidError,
    command_body,
    entry_type_for,
    idv_body,
    open_body,
    signed_bytes,
)
from chain import (
    Ed25519Signer,
    Entry,
    EntryType,
    build_entry,
    parse_entry,
    sign_actor,
)

__all__ = ["SignedLog", "TAMPER_CASES", "build_signed_log", "forge", "tampered"]


T0 = 1_795_000_000 * SECOND


IDP_NAME = "idp.gavel.local"


LOT = "watch-1"


def seed(label: str) -> bytes:
    return hashlib.sha256(b"gavel signed bids test " + label.encode()).digest()


def account_of(label: str) -> str:
    return "acct-" + hashlib.sha256(label.encode()).hexdigest()[:16]


@dataclass
class Bidder:
    """An account with its own key (the browser's WebCrypto key, here `cryptography`'s)."""

    label: str
    account: str = ""
    key: Ed25519PrivateKey = field(init=False)

    def __post_init__(self) -> None:
        self.account = account_of(self.label)
        self.key = Ed25519PrivateKey.from_private_bytes(seed(self.label))

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def request(
        self,
        kind: str,
        amount: int,
        key: str,
        *,
        lot: str = LOT,
        currency: str = "USD",
        signer: Ed25519PrivateKey | None = None,
    ) -> SignedBid:
        unsigned = SignedBid(lot, kind, amount, currency, key, b"", self.account)
        signature = (signer or self.key).sign(unsigned.signed_bytes())
        return dataclasses.replace(unsigned, signature=signature)

    def bid(self, amount: int, key: str, **options: Any) -> tuple[PlaceBid, SignedBid]:
        return PlaceBid(self.account, amount, "USD", key), self.request(
            "bid", amount, key, **options
        )

    def max(self, amount: int, key: str) -> tuple[SetMax, SignedBid]:
        return SetMax(self.account, amount, "USD", key), self.request("max", amount, key)


def provider(validity_us: int = 365 * 24 * 3600 * SECOND) -> tuple[IdentityProvider, Ed25519Signer]:
    """The identity provider and the same key as a ledger actor."""
    key_seed = seed("idp")
    signer = Ed25519Signer.from_seed(IDP_NAME, key_seed)
    return (
        IdentityProvider(IDP_NAME, Ed25519PrivateKey.from_private_bytes(key_seed), validity_us),
        signer,
    )


def attestation_for(bidder: Bidder, now_us: int, validity_us: int | None = None) -> dict[str, Any]:
    idp = provider()[0] if validity_us is None else provider(validity_us)[0]
    document = VerifiedDocument(
        DocumentType.PRC_RESIDENT_ID,
        "11010519491231002X",
        "张三",
        dt.date(1949, 12, 31),
        None,
        "CHN",
    )
    salt = seed("salt " + bidder.label)[:16]
    return idp.attest(document, bidder.public_key, salt, now_us).to_json()


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class SignedLog:
    """What `build_signed_log` wrote and the seqs the tests look at."""

    data: Path
    entries: list[bytes]
    house_signer: Ed25519Signer
    house_key: Ed25519PrivateKey
    idp: Ed25519Signer
    bidders: dict[str, Bidder]
    seqs: dict[str, int]
    expires: dict[str, int]  # account -> attestation expiry
    #: the log as stored (sealed values as commitments) and the openings the server kept;
    #: `entries` is the same log opened (auction.sealed.open_body, re-signed, re-chained):
    #: the form notaries and auditors check the signed-bid rules on
    stored: list[bytes] = field(default_factory=list)
    openings: dict[int, dict[str, Any]] = field(default_factory=dict)

    def entry(self, name: str) -> Entry:
        return parse_entry(self.entries[self.seqs[name]])

    def body(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.entries[self.seqs[name]])["body"]
        return value


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def build_signed_log(data: Path) -> SignedLog:
    """A signed-bids log: idp key, three idv entries (eve's attestation short-lived), a lot,
    registrations, signed bids and maxima, and refusals that must leave no entry."""
    clock = Clock(T0)
    alice, bob, eve = Bidder("alice"), Bidder("bob"), Bidder("eve")
    idp, idp_signer = provider()
    seqs: dict[str, int] = {}
    store = Storage.open(data, clock=clock, signed_bids=True)
    house = store.house
    assert house is not None
    async with AuctionService(store, clock=clock, checkpoint_delay=0.01) as service:
        seqs["idp_key"] = await service.add_actor_key(idp_signer.vkey, "idv")
        assert await service.add_actor_key(idp_signer.vkey, "idv") == seqs["idp_key"]
        for bidder in (alice, bob):
            clock.now += SECOND
            body = idv_body(bidder.account, attestation_for(bidder, clock.now))
            seqs[f"idv_{bidder.label}"] = await service.record(
                EntryType.IDV, body, signer=idp_signer
            )
        clock.now += SECOND
        body = idv_body(eve.account, attestation_for(eve, clock.now, validity_us=60 * SECOND))
        seqs["idv_eve"] = await service.record(EntryType.IDV, body, signer=idp_signer)
        seqs["segment"] = await service.record(
            EntryType.STREAM_SEGMENT, {"v": 1, "lot": LOT, "n": 0, "sha256": "00" * 32}
        )
        rules = english_timed(start_price=10_000, start_at=clock.now, end_at=T0 + 3600 * SECOND)
        await service.add_lot(LOT, rules, "Omega Speedmaster")
        await wait_until(lambda: service.view(LOT).status == LotStatus.OPEN.value)  # type: ignore[union-attr]
        for index, bidder in enumerate((alice, bob, eve)):
            clock.now += SECOND
            events = await service.submit(
                LOT, RegisterBidder(bidder.account, f"C0{index}-{bidder.label}", True)
            )
            assert not isinstance(events[0], Rejected), events
        signed: list[tuple[Any, SignedBid]] = [
            alice.bid(10_000, "a-1"),
            bob.max(20_000, "b-1"),
            alice.bid(12_000, "a-2"),  # outbid at once by bob's proxy
            eve.bid(30_000, "e-1"),
        ]
        for command, request in signed:
            clock.now += SECOND
            events = await service.submit(LOT, command, request=request)
            assert not isinstance(events[0], Rejected), events
        clock.now += 120 * SECOND  # eve's attestation has expired now
        assert await service.settle(5.0)
        ledger = service.ledger
        assert ledger is not None
    with Storage.open(data) as reader:
        stored = reader.ledger_entries(0, reader.ledger_size())
        openings = reader.ledger_openings(0, len(stored))
    entries = opened_log(stored, openings, house.entries.private_key)
    for seq, data_bytes in enumerate(entries):
        value = json.loads(data_bytes)
        if value["type"] == "bid":
            seqs.setdefault(f"bid_{value['body']['command']['idempotency_key']}", seq)
        if value["type"] == "registration":
            seqs.setdefault(f"reg_{value['body']['command']['bidder']}", seq)
    return SignedLog(
        data,
        entries,
        house.signer,
        house.entries.private_key,
        idp_signer,
        {"alice": alice, "bob": bob, "eve": eve},
        seqs,
        {
            eve.account: T0 + 3 * SECOND + 60 * SECOND,
        },
        stored,
        openings,
    )


def opened_log(
    stored: list[bytes], openings: dict[int, dict[str, Any]], house_key: Ed25519PrivateKey
) -> list[bytes]:
    """The stored log with every sealed value opened, each opened entry re-signed by its actor
    (the house, or the identity provider for an `idv` entry) and the log re-chained."""
    links = LinkBook()
    parsed = [parse_entry(data) for data in stored]
    for seq, entry in enumerate(parsed):
        body = json.loads(stored[seq])["body"]
        if "sealed" not in body:
            continue
        plain = open_body(entry.type.value, body, openings.get(seq), links)
        if entry.type is EntryType.IDV:
            key = Ed25519PrivateKey.from_private_bytes(seed("idp"))
            parsed[seq] = resigned(entry, plain, key, entry.actor.kid)
        else:
            parsed[seq] = resigned(entry, plain, house_key, entry.actor.kid)
    return rechained(parsed)


def resigned(entry: Entry, body: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> Entry:
    return build_entry(
        seq=entry.seq,
        prev=entry.prev,
        time_us=entry.time_us,
        entry_type=entry.type,
        body=body,
        actor=sign_actor(entry.type, body, kid, key),
    )


def rechained(entries: list[Entry]) -> list[bytes]:
    out: list[Entry] = []
    for seq, entry in enumerate(entries):
        out.append(
            build_entry(
                seq=seq,
                prev=out[-1].leaf_hash() if out else b"",
                time_us=entry.time_us,
                entry_type=entry.type,
                body=entry.body,
                actor=entry.actor,
            )
        )
    return [entry.to_bytes() for entry in out]


def tamper(log: SignedLog, name: str, change: Callable[[dict[str, Any]], None]) -> list[bytes]:
    """The log with entry `name`'s body changed by `change`, re-signed by its own actor's key
    (the house's, or the provider's for an `idv` entry) and every later entry re-chained."""
    parsed = [parse_entry(data) for data in log.entries]
    seq = log.seqs[name]
    body = json.loads(log.entries[seq])["body"]
    change(body)
    entry = parsed[seq]
    if entry.type is EntryType.IDV:
        key = Ed25519PrivateKey.from_private_bytes(seed("idp"))
        parsed[seq] = resigned(entry, body, key, log.idp.vkey)
    else:
        parsed[seq] = resigned(entry, body, log.house_key, log.house_signer.vkey)
    return rechained(parsed)


def forge(log: SignedLog, command: Any, ingress: int, request: SignedBid | None) -> list[bytes]:
    """The log with one more command entry for the lot, its events computed by the engine, at
    `ingress`, signed by the house key: consistent in every way but the signed-bid rules."""
    replay = replay_all(log.entries)
    last = parse_entry(log.entries[-1])
    lot = replay.lots[LOT]
    _, events = apply(lot.state, command, ingress)
    body = command_body(LOT, lot.next_n, ingress, command, events, request)
    kind = entry_type_for(command)
    entry = build_entry(
        seq=last.seq + 1,
        prev=last.leaf_hash(),
        time_us=max(ingress, last.time_us),
        entry_type=kind,
        body=body,
        actor=sign_actor(kind, body, log.house_signer.vkey, log.house_key),
    )
    return [*log.entries, entry.to_bytes()]


def replay_all(entries: list[bytes]) -> LedgerReplay:
    replay = LedgerReplay()
    for data in entries:
        value = json.loads(data)
        entry = parse_entry(data)
        replay.add(entry.seq, entry.type, entry.time_us, value["body"], entry.actor.kid)
    return replay


@dataclass(frozen=True)
class Tampered:
    """A log that breaks one signed-bid rule: its entries, the seq at fault, the reason."""

    entries: list[bytes]
    seq: int
    reason: str


def _resign_request(bidder: Bidder, key: Ed25519PrivateKey) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        payload = body["request"]["payload"]
        body["request"]["sig"] = base64.b64encode(key.sign(signed_bytes(payload))).decode()

    return change


def _wrong_sig(body: dict[str, Any]) -> None:
    payload = dict(body["request"]["payload"], amount=99_999)  # a signature over other terms
    key = Ed25519PrivateKey.from_private_bytes(seed("alice"))
    body["request"]["sig"] = base64.b64encode(key.sign(signed_bytes(payload))).decode()


def _set_payload_amount(body: dict[str, Any]) -> None:
    body["request"]["payload"]["amount"] = 25_000


def _bad_attestation(body: dict[str, Any]) -> None:
    body["attestation"]["commit"] = "ff" * 32


TAMPER_CASES = (
    "bad_signature",
    "payload_amount",
    "other_account_key",
    "missing_request",
    "expired",
    "kyc_without_idv",
    "bad_attestation",
)


def tampered(log: SignedLog, case: str) -> Tampered:
    """One of `TAMPER_CASES` applied to `log`."""
    seqs = log.seqs
    bob, eve = log.bidders["bob"], log.bidders["eve"]
    if case == "bad_signature":
        entries = tamper(log, "bid_a-1", _wrong_sig)
        return Tampered(entries, seqs["bid_a-1"], SignedBidError.BAD_SIGNATURE)
    if case == "payload_amount":
        entries = tamper(log, "bid_b-1", _set_payload_amount)
        return Tampered(entries, seqs["bid_b-1"], SignedBidError.MISMATCH)
    if case == "other_account_key":
        entries = tamper(log, "bid_a-2", _resign_request(bob, bob.key))
        return Tampered(entries, seqs["bid_a-2"], SignedBidError.BAD_SIGNATURE)
    if case == "missing_request":
        entries = tamper(log, "bid_e-1", lambda body: body.pop("request"))
        return Tampered(entries, seqs["bid_e-1"], SignedBidError.NO_REQUEST)
    if case == "expired":
        ingress = log.expires[eve.account] + SECOND
        command, request = eve.bid(40_000, "e-2")
        entries = forge(log, command, ingress, request)
        return Tampered(entries, len(log.entries), SignedBidError.EXPIRED)
    if case == "kyc_without_idv":
        registration = RegisterBidder(account_of("mallory"), "C09-mal", True)
        entries = forge(log, registration, log.expires[eve.account], None)
        return Tampered(entries, len(log.entries), SignedBidError.NO_IDENTITY)
    if case == "bad_attestation":
        entries = tamper(log, "idv_bob", _bad_attestation)
        return Tampered(entries, seqs["idv_bob"], SignedBidError.BAD_ATTESTATION)
    raise AssertionError(case)
