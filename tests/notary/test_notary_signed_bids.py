"""The notary's content pipeline over a signed-bids log written by the real server.

The log comes from `test_ledger_signed_bids.build_signed_log` (the service over SQLite); the
notary core runs exactly as `notary.server` drives it: envelope, then `verify_increment`.
"""

from __future__ import annotations

import asyncio

import pytest
from ledger_kit import signed_checkpoint
from signed_bids_kit import (
    TAMPER_CASES,
    SignedLog,
    build_signed_log,
    forge,
    tampered,
)

from auction.rules import SECOND
from chain import MemoryTree, parse_entry, range_nodes
from notary import (
    LedgerCursor,
    LogTrust,
    NotaryState,
    RefusedContentError,
    check_envelope,
    format_add_checkpoint,
    parse_add_checkpoint,
    verify_increment,
)
from notary.core import Increment


@pytest.fixture(scope="module")
def signed_log(tmp_path_factory: pytest.TempPathFactory) -> SignedLog:
    return asyncio.run(build_signed_log(tmp_path_factory.mktemp("signed") / "data"))


def trust_of(log: SignedLog) -> LogTrust:
    return LogTrust(log.house_signer.name, (log.house_signer.verifier,))


def notarize(
    log: SignedLog, entries: list[bytes], cursor: LedgerCursor | None = None, start: int = 0
) -> tuple[Increment, LedgerCursor]:
    """What a notary at `start` entries decides on a checkpoint of all of `entries`."""
    tree = MemoryTree()
    for data in entries:
        tree.append(data)
    note = signed_checkpoint(tree, len(entries), log.house_signer)
    trust = trust_of(log)
    if cursor is None:
        cursor = LedgerCursor.rebuild(enumerate(entries[:start]), trust)
    state = NotaryState(trust.origin)
    if start:
        state = NotaryState(
            trust.origin,
            start,
            tree.root_at(start),
            tuple(tree.get_node(node.level, node.index) for node in range_nodes(0, start)),
        )
    proof = tree.consistency_proof(start, len(entries)) if start else []
    body = format_add_checkpoint(start, proof, note)
    accepted = check_envelope(parse_add_checkpoint(body), trust, state)
    increment = verify_increment(
        state,
        accepted,
        entries[start:],
        cursor,
        trust,
        now_us=parse_entry(entries[-1]).time_us + SECOND,  # the notary's clock
    )
    return increment, cursor


def test_the_notary_accepts_the_signed_log(signed_log: SignedLog) -> None:
    increment, cursor = notarize(signed_log, signed_log.entries)
    assert increment.size == len(signed_log.entries)
    assert cursor.replay.idv_entries == 3
    assert cursor.replay.verified_bid_signatures == 4
    rebuilt = LedgerCursor.rebuild(enumerate(signed_log.entries), trust_of(signed_log))
    assert rebuilt.replay.outcomes() == cursor.replay.outcomes()
    assert rebuilt.replay.identities.accounts.keys() == cursor.replay.identities.accounts.keys()


def test_a_valid_forged_bid_passes(signed_log: SignedLog) -> None:
    """The control for the forged cases: the same forging, within the rules, is accepted."""
    alice = signed_log.bidders["alice"]
    command, request = alice.bid(40_000, "a-9")
    eve = signed_log.bidders["eve"]
    entries = forge(signed_log, command, signed_log.expires[eve.account] + SECOND, request)
    increment, cursor = notarize(signed_log, entries)
    assert increment.size == len(entries)
    assert cursor.replay.verified_bid_signatures == 5


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_the_notary_refuses_each_tampering(signed_log: SignedLog, case: str) -> None:
    forged = tampered(signed_log, case)
    with pytest.raises(RefusedContentError) as refused:
        notarize(signed_log, forged.entries)
    assert (refused.value.step, refused.value.seq) == ("8 replay", forged.seq)
    assert forged.reason in refused.value.message
    assert refused.value.http_status == 422


@pytest.mark.parametrize("case", ["bad_signature", "expired", "bad_attestation"])
def test_a_notary_part_way_refuses_too(signed_log: SignedLog, case: str) -> None:
    """A notary that co-signed up to the idv entries checks the rest with the identities it
    rebuilt from its mirror."""
    forged = tampered(signed_log, case)
    start = signed_log.seqs["idv_eve"] + 1
    if forged.seq < start:
        start = forged.seq
    with pytest.raises(RefusedContentError) as refused:
        notarize(signed_log, forged.entries, start=start)
    assert (refused.value.step, refused.value.seq) == ("8 replay", forged.seq)
