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
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from signed_bids_kit import (
    LOT,
    T0,
    TAMPER_CASES,
    Bidder,
    Clock,
    SignedLog,
    attestation_for,
    build_signed_log,
    provider,
    replay_all,
    seed,
    tamper,
    tampered,
    wait_until,
)

from auction.rules import (
    SECOND,
    LotStatus,
    PlaceBid,
    RegisterBidder,
    Rejected,
    SetMax,
    english_timed,
)
from auction.service import AuctionService, GroupCommitter, RequestRefused
from auction.storage import LedgerEntryRefused, LedgerRecord, Storage
from auction.verify import (
    BidMalformed,
    IdentityBook,
    ReplayError,
    SignedBid,
    SignedBidError,
    idv_body,
    signed_bytes,
)
from chain import (
    Ed25519Signer,
    EntryType,
)

# --- forging (what a log key holder could write) --------------------------------------------


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
