"""Signed bids and identity entries written by the server (real SQLite, the real service).

`build_signed_log` runs the service over `Storage.open(..., signed_bids=True)` the way the web
server does: the identity provider's key added at start, `idv` entries signed by it, bidders
registered with an identity, bids carrying their signed request. The notary and auditor tests
reuse it (and `forge`) to check and tamper with that log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auction.bidding.signed_bid import BidMalformed, SignedBid, signed_bytes
from auction.identity.provider import DocumentType, IdentityProvider, VerifiedDocument
from auction.ledger import (
    IdentityBook,
    LedgerReplay,
    ReplayError,
    SignedBidError,
    command_body,
    entry_type_for,
    idv_body,
)
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
from auction.sealed import LinkBook, open_body
from auction.service import AuctionService, GroupCommitter, RequestRefused
from auction.storage import LedgerEntryRefused, LedgerRecord, Storage
from chain import (
    Ed25519Signer,
    Entry,
    EntryType,
    build_entry,
    parse_entry,
    sign_actor,
)

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


# --- forging (what a log key holder could write) --------------------------------------------


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


@pytest.fixture(scope="module")
def signed_log(tmp_path_factory: pytest.TempPathFactory) -> SignedLog:
    return asyncio.run(build_signed_log(tmp_path_factory.mktemp("signed") / "data"))


# --- the server side -------------------------------------------------------------------------


def test_the_house_entry_says_signed_bids(signed_log: SignedLog) -> None:
    house = json.loads(signed_log.entries[0])
    assert house["type"] == "house" and house["body"]["signed_bids"] is True


def test_a_signed_bid_entry_carries_its_request(signed_log: SignedLog) -> None:
    body = signed_log.body("bid_a-1")
    alice = signed_log.bidders["alice"]
    assert body["accepted"] is True
    assert body["request"]["payload"] == {
        "account": alice.account,
        "amount": 10_000,
        "currency": "USD",
        "idempotency_key": "a-1",
        "kind": "bid",
        "lot": LOT,
    }
    signature = base64.b64decode(body["request"]["sig"])
    alice.key.public_key().verify(signature, signed_bytes(body["request"]["payload"]))
    assert signed_log.body("bid_b-1")["request"]["payload"]["kind"] == "max"
    registration = signed_log.body(f"reg_{alice.account}")
    assert "request" not in registration


def test_record_and_keys_are_in_log_order(signed_log: SignedLog) -> None:
    seqs = signed_log.seqs
    assert seqs["idp_key"] == 1
    assert seqs["idp_key"] < seqs["idv_alice"] < seqs["idv_bob"] < seqs["idv_eve"]
    assert seqs["segment"] == seqs["idv_eve"] + 1
    key = json.loads(signed_log.entries[seqs["idp_key"]])
    assert key["type"] == "key" and key["actor"]["kid"] == signed_log.house_signer.vkey
    assert key["body"] == {"v": 1, "vkey": signed_log.idp.vkey, "role": "idv"}
    idv = json.loads(signed_log.entries[seqs["idv_alice"]])
    assert idv["type"] == "idv" and idv["actor"]["kid"] == signed_log.idp.vkey
    assert set(idv["body"]) == {"v", "account", "attestation"}
    assert "张三" not in signed_log.entries[seqs["idv_alice"]].decode()  # no personal data
    keys = sum(json.loads(data)["type"] == "key" for data in signed_log.entries)
    assert keys == 1  # add_actor_key was idempotent


def test_the_log_replays_and_counts_signatures(signed_log: SignedLog) -> None:
    replay = replay_all(signed_log.entries)
    assert replay.idv_entries == 3
    assert replay.verified_bid_signatures == 4
    assert replay.outcomes()[LOT]["status"] == "OPEN"


@contextlib.asynccontextmanager
async def open_lot_with_verified_bidder(
    tmp_path: Path,
) -> AsyncIterator[tuple[Clock, Bidder, Bidder, Storage, AuctionService]]:
    """An open lot with a verified bidder: a signed-bids service whose ledger has the identity
    provider's key and an idv entry for alice (valid for 30 s), but none for mallory."""
    clock = Clock(T0)
    alice, mallory = Bidder("alice"), Bidder("mallory")
    _, idp_signer = provider()
    store = Storage.open(tmp_path / "data", clock=clock, signed_bids=True)
    async with AuctionService(store, clock=clock) as service:
        await service.add_actor_key(idp_signer.vkey, "idv")
        body = idv_body(alice.account, attestation_for(alice, clock.now, 30 * SECOND))
        await service.record(EntryType.IDV, body, signer=idp_signer)
        rules = english_timed(start_price=10_000, start_at=clock.now, end_at=T0 + 3600 * SECOND)
        await service.add_lot(LOT, rules, "Omega")
        await wait_until(lambda: service.view(LOT).status == LotStatus.OPEN.value)  # type: ignore[union-attr]
        yield clock, alice, mallory, store, service


async def test_the_service_refuses_bad_requests_and_logs_nothing(tmp_path: Path) -> None:
    async with open_lot_with_verified_bidder(tmp_path) as (clock, alice, mallory, store, service):
        with pytest.raises(RequestRefused) as refused:  # kyc registration without an idv entry
            await service.submit(LOT, RegisterBidder(mallory.account, "C09-m", True))
        assert refused.value.reason == SignedBidError.NO_IDENTITY
        await service.submit(LOT, RegisterBidder(alice.account, "C01-a", True))
        size = store.ledger_size()
        cases: list[tuple[Any, SignedBid | None, str]] = [
            (PlaceBid(alice.account, 10_000, "USD", "k1"), None, SignedBidError.NO_REQUEST),
            (*alice.bid(10_000, "k2", signer=mallory.key), SignedBidError.BAD_SIGNATURE),
            (
                PlaceBid(alice.account, 11_000, "USD", "k3"),
                alice.request("bid", 10_000, "k3"),
                SignedBidError.MISMATCH,
            ),
            (
                SetMax(alice.account, 10_000, "USD", "k4"),
                alice.request("bid", 10_000, "k4"),
                SignedBidError.MISMATCH,
            ),
            (*alice.bid(10_000, "k5", lot="other-lot"), SignedBidError.MISMATCH),
        ]
        for command, request, reason in cases:
            with pytest.raises(RequestRefused) as refused:
                await service.submit(LOT, command, request=request)
            assert refused.value.reason == reason, (command, reason)
        clock.now += 31 * SECOND
        command, request = alice.bid(10_000, "k6")
        with pytest.raises(RequestRefused) as refused:
            await service.submit(LOT, command, request=request)
        assert refused.value.reason == SignedBidError.EXPIRED
        assert store.ledger_size() == size  # none of them was logged
        assert service.state(LOT).price is None  # type: ignore[union-attr]


async def test_the_writer_refuses_a_bad_idv_entry(tmp_path: Path) -> None:
    clock = Clock(T0)
    alice = Bidder("alice")
    _, idp_signer = provider()
    impostor = Ed25519Signer.from_seed("idp.evil.example", seed("evil"))
    async with AuctionService(Storage.open(tmp_path / "d", clock=clock), clock=clock) as service:
        body = idv_body(alice.account, attestation_for(alice, clock.now))
        with pytest.raises(LedgerEntryRefused) as refused:  # the provider key was never added
            await service.record(EntryType.IDV, body, signer=idp_signer)
        assert refused.value.reason == SignedBidError.NOT_A_PROVIDER
        await service.add_actor_key(idp_signer.vkey, "idv")
        await service.add_actor_key(impostor.vkey, "other")
        with pytest.raises(LedgerEntryRefused):  # a key without the idv role
            await service.record(EntryType.IDV, body, signer=impostor)
        forged = dict(body, attestation=dict(body["attestation"], commit="ff" * 32))
        with pytest.raises(LedgerEntryRefused) as refused:
            await service.record(EntryType.IDV, forged, signer=idp_signer)
        assert refused.value.reason == SignedBidError.BAD_ATTESTATION
        with pytest.raises(LedgerEntryRefused):
            await service.record(EntryType.KEY, {"v": 1, "vkey": "not a vkey", "role": "idv"})
        with pytest.raises(LedgerEntryRefused):
            LedgerRecord(EntryType.BID, {}, clock.now)
        with pytest.raises(LedgerEntryRefused):
            await service.record("no_such_type", {})  # type: ignore[arg-type]
        with pytest.raises(LedgerEntryRefused):  # no floats in entries
            await service.record(EntryType.STREAM_SEGMENT, {"v": 1, "duration": 2.5})
        seq = await service.record(EntryType.IDV, body, signer=idp_signer)
        ledger = service.ledger
        assert ledger is not None
        size = await service.read(ledger.ledger_size)  # type: ignore[attr-defined]
        assert seq == size - 1 == 3  # house, two keys, the idv entry: nothing else was written


async def test_a_restart_rebuilds_the_identities_from_the_ledger(tmp_path: Path) -> None:
    clock = Clock(T0)
    alice = Bidder("alice")
    _, idp_signer = provider()
    data = tmp_path / "data"
    async with AuctionService(Storage.open(data, clock=clock, signed_bids=True), clock=clock) as s:
        key_seq = await s.add_actor_key(idp_signer.vkey, "idv")
        body = idv_body(alice.account, attestation_for(alice, clock.now))
        await s.record(EntryType.IDV, body, signer=idp_signer)
        rules = english_timed(start_price=10_000, start_at=clock.now, end_at=T0 + 3600 * SECOND)
        await s.add_lot(LOT, rules, "Omega")
    clock.now += SECOND
    # signed_bids=False on reopening: an existing log keeps its own setting
    async with AuctionService(Storage.open(data, clock=clock), clock=clock) as service:
        assert await service.add_actor_key(idp_signer.vkey, "idv") == key_seq
        await wait_until(lambda: service.view(LOT).status == LotStatus.OPEN.value)  # type: ignore[union-attr]
        await service.submit(LOT, RegisterBidder(alice.account, "C01-a", True))
        command, request = alice.bid(10_000, "r1")
        events = await service.submit(LOT, command, request=request)
        assert not isinstance(events[0], Rejected)
        with pytest.raises(RequestRefused):
            await service.submit(LOT, PlaceBid(alice.account, 11_000, "USD", "r2"))


async def test_a_log_without_the_flag_keeps_unsigned_bids(tmp_path: Path) -> None:
    clock = Clock(T0)
    alice = Bidder("alice")
    async with AuctionService(Storage.open(tmp_path / "d", clock=clock), clock=clock) as service:
        rules = english_timed(start_price=10_000, start_at=clock.now, end_at=T0 + 3600 * SECOND)
        await service.add_lot(LOT, rules, "Omega")
        await wait_until(lambda: service.view(LOT).status == LotStatus.OPEN.value)  # type: ignore[union-attr]
        await service.submit(LOT, RegisterBidder(alice.account, "C01-a", True))
        events = await service.submit(LOT, PlaceBid(alice.account, 10_000, "USD"))
        assert not isinstance(events[0], Rejected)
        command, request = alice.bid(12_000, "x")
        with pytest.raises(RequestRefused) as refused:  # a request is still checked if given
            await service.submit(LOT, command, request=request)
        assert refused.value.reason == SignedBidError.NO_IDENTITY
        ledger = service.ledger
        assert ledger is not None
        size = await service.read(ledger.ledger_size)  # type: ignore[attr-defined]
        entries = await service.read(ledger.ledger_entries, 0, size)  # type: ignore[attr-defined]
    house = json.loads(entries[0])["body"]
    assert "signed_bids" not in house
    replay = replay_all(entries)
    assert replay.verified_bid_signatures == 0 and replay.commands == 3


def test_the_identity_book_is_strict() -> None:
    book = IdentityBook(signed_bids=True)
    alice = Bidder("alice")
    _, idp_signer = provider()
    book.key({"v": 1, "vkey": idp_signer.vkey, "role": "idv"})
    body = idv_body(alice.account, attestation_for(alice, T0))
    with pytest.raises(SignedBidError) as error:  # the house key is no provider
        book.idv(5, T0, body, "gavel.local/0000000000000000")
    assert error.value.reason == SignedBidError.NOT_A_PROVIDER
    with pytest.raises(SignedBidError):  # attestation with an extra field
        book.idv(5, T0, dict(body, attestation={**body["attestation"], "name": "x"}), None)
    assert book.idv(5, T0, body, idp_signer.vkey) == alice.account
    command, request = alice.bid(10_000, "k")
    assert book.check(LOT, command, request, T0 + 1) is True
    with pytest.raises(SignedBidError):  # another lot
        book.check("lot-2", command, request, T0 + 1)
    with pytest.raises(SignedBidError):  # a request on a registration
        book.check(LOT, RegisterBidder(alice.account, "C1", True), request, T0)
    malformed = [
        {"payload": request.payload()},
        {"payload": dict(request.payload(), extra=1), "sig": request.to_json()["sig"]},
        {"payload": request.payload(), "sig": "not base64!"},
        {"payload": dict(request.payload(), amount=10_000.0), "sig": request.to_json()["sig"]},
    ]
    for bad in malformed:
        with pytest.raises(SignedBidError):
            book.check(LOT, command, bad, T0 + 1)
    with pytest.raises(BidMalformed):
        SignedBid.from_json({"payload": [], "sig": "x"})
    book.key({"v": 1, "vkey": "x", "revoke": [idp_signer.vkey]})  # revoked: no provider now
    with pytest.raises(SignedBidError):
        book.idv(6, T0, body, idp_signer.vkey)


def test_replay_errors_name_the_seq(signed_log: SignedLog) -> None:
    entries = tamper(signed_log, "bid_a-1", lambda body: body.pop("request"))
    with pytest.raises(ReplayError) as error:
        replay_all(entries)
    assert error.value.seq == signed_log.seqs["bid_a-1"]
    assert "NO_REQUEST" in str(error.value)


# --- tampered logs, for the notary's and the auditor's tests ----------------------------------


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


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_the_replay_catches_each_tampering(signed_log: SignedLog, case: str) -> None:
    forged = tampered(signed_log, case)
    with pytest.raises(ReplayError) as error:
        replay_all(forged.entries)
    assert error.value.seq == forged.seq
    assert forged.reason in str(error.value)


async def test_a_refused_entry_fails_only_its_own_batch(tmp_path: Path) -> None:
    """A bad `idv` entry committed together with a good one: storage refuses the group before
    writing; the committer retries each batch alone and only the bad one fails."""
    clock = Clock(T0)
    alice, bob = Bidder("alice"), Bidder("bob")
    _, idp_signer = provider()
    store = Storage.open(tmp_path / "data", clock=clock)

    appended: list[int] = []  # records per store.append call

    async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
        appended.append(len(args[0]))
        return await asyncio.to_thread(function, *args)

    committer = GroupCommitter(store, run_blocking)
    committer.start()
    try:
        key = {"v": 1, "vkey": idp_signer.vkey, "role": "idv"}
        assert await committer.append([LedgerRecord(EntryType.KEY, key, T0)]) == (1,)
        good = idv_body(alice.account, attestation_for(alice, T0))
        bad = idv_body(bob.account, dict(attestation_for(bob, T0), commit="00" * 32))
        results = await asyncio.gather(
            committer.append([LedgerRecord(EntryType.IDV, bad, T0, idp_signer)]),
            committer.append([LedgerRecord(EntryType.IDV, good, T0, idp_signer)]),
            return_exceptions=True,
        )
        assert isinstance(results[0], LedgerEntryRefused)
        assert results[1] == (2,)
        assert appended == [1, 2, 1, 1]  # the key; both, refused; each alone
        assert committer.commits == 2  # the key, then the good idv alone
        assert store.identity_book().accounts.keys() == {alice.account}
    finally:
        await committer.stop()
        store.close()


async def test_one_signature_is_verified_once_per_process(tmp_path: Path) -> None:
    """The service's ingress check and the ledger writer share the store's memo: a bid's
    signature is verified once; a forged signature over the same payload is still refused."""
    async with open_lot_with_verified_bidder(tmp_path) as (_, alice, mallory, store, service):
        await service.submit(LOT, RegisterBidder(alice.account, "C01-a", True))
        book = store.identity_book()  # the writer's book, which the service's was copied from
        assert book.memo is store.signatures
        before = len(store.signatures)
        for n, amount in enumerate((10_000, 11_000, 12_100)):
            command, request = alice.bid(amount, f"m{n}")
            await service.submit(LOT, command, request=request)
        assert len(store.signatures) == before + 3  # one memo entry per bid, not per check
        forged_command, forged = alice.bid(20_000, "m9", signer=mallory.key)
        with pytest.raises(RequestRefused) as refused:
            await service.submit(LOT, forged_command, request=forged)
        assert refused.value.reason == SignedBidError.BAD_SIGNATURE
        assert len(store.signatures) == before + 3  # failures are not remembered


def test_the_signature_memo_checks_once_and_never_caches_a_failure() -> None:
    from cryptography.exceptions import InvalidSignature

    from auction.ledger import SignatureMemo

    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    calls: list[bytes] = []

    class Counting:
        def verify(self, signature: bytes, message: bytes) -> None:
            calls.append(message)
            public.verify(signature, message)

    memo = SignatureMemo(capacity=2)
    signature = key.sign(b"one")
    memo.verify(Counting(), raw, signature, b"one")  # type: ignore[arg-type]
    memo.verify(Counting(), raw, signature, b"one")  # type: ignore[arg-type]
    assert calls == [b"one"]
    for _ in range(2):
        with pytest.raises(InvalidSignature):
            memo.verify(Counting(), raw, signature, b"two")  # type: ignore[arg-type]
    assert calls == [b"one", b"two", b"two"] and len(memo) == 1
    for message in (b"a", b"b", b"c"):
        memo.verify(Counting(), raw, key.sign(message), message)  # type: ignore[arg-type]
    assert len(memo) == 2  # bounded: the oldest went
    memo.verify(Counting(), raw, signature, b"one")  # type: ignore[arg-type]
    assert calls[-1] == b"one"  # evicted, so verified again
