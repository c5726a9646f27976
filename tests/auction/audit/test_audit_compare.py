"""`auction.audit.compare`: two views of one log; equivocation evidence that proves itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from ledger_kit import (
    ORIGIN,
    Export,
    LedgerBuilder,
    house_key,
    live_lot,
    rechain,
    resign,
    standard_ledger,
    write_export,
)

from auction.audit import (
    AuditError,
    AuditStep,
    DirectorySource,
    EvidenceError,
    compare,
    verify_evidence,
    write_evidence,
)
from auction.rules import SECOND
from chain import Ed25519Verifier, leaf_hash, open_checkpoint, parse_vkey, verify_consistency

STANDARD = standard_ledger()
SIZE = STANDARD.size


def export_of(directory: Path, size: int) -> Export:
    """The honest log as it was at ``size`` (history up to there)."""
    sizes = [s for s in STANDARD.checkpoint_sizes if s <= size] + [size]
    return write_export(
        directory, [e.to_bytes() for e in STANDARD.entries[:size]], STANDARD.signer, sizes
    )


def fork_of(directory: Path, at: int, size: int) -> Export:
    """A log that the same key signed, equal to the honest one before ``at``, different at it."""
    entries = list(STANDARD.entries[:size])
    body = {k: v for k, v in entries[at].body.items()} | {"forked": True}
    entries[at] = resign(entries[at], body, STANDARD.private_key, STANDARD.kid)
    sizes = [s for s in STANDARD.checkpoint_sizes if s <= at] + [size]
    return write_export(directory, [e.to_bytes() for e in rechain(entries)], STANDARD.signer, sizes)


def source(export: Export) -> DirectorySource:
    return DirectorySource(export.directory)


def test_a_prefix_is_consistent_both_ways(tmp_path: Path) -> None:
    old, new = export_of(tmp_path / "old", 68), export_of(tmp_path / "new", SIZE)
    for a, b in ((old, new), (new, old)):
        report = compare(source(a), source(b))
        assert report.consistent and report.evidence is None
        assert report.origin == ORIGIN
        assert report.checked == len(STANDARD.checkpoint_sizes)
    assert compare(source(new), source(new)).sizes == (SIZE, SIZE)


def test_a_fork_at_a_larger_size_is_an_equivocation(tmp_path: Path) -> None:
    honest, forked = export_of(tmp_path / "a", SIZE), fork_of(tmp_path / "b", 200, 300)
    report = compare(source(honest), source(forked))
    assert report.status == "equivocation" and not report.consistent
    evidence = report.evidence
    assert evidence is not None
    assert [c["size"] for c in evidence["checkpoints"]] == [300, SIZE]
    assert evidence["divergence"]["index"] == 200
    assert evidence["consistency"]["error"].startswith("consistency proof does not match")
    path = write_evidence(report, tmp_path / "evidence.json")
    assert verify_evidence(path.read_bytes()) == (300, SIZE)
    _check_by_hand(json.loads(path.read_bytes()), honest, forked)


def test_a_fork_at_the_same_size_is_an_equivocation(tmp_path: Path) -> None:
    honest, forked = export_of(tmp_path / "a", SIZE), fork_of(tmp_path / "b", 250, SIZE)
    report = compare(source(forked), source(honest))
    assert report.status == "equivocation"
    evidence = report.evidence
    assert evidence is not None
    assert evidence["consistency"]["proof"] == []
    assert evidence["divergence"]["index"] == 250
    assert verify_evidence(json.dumps(evidence).encode()) == (SIZE, SIZE)


def test_a_fork_hidden_in_the_history_is_found(tmp_path: Path) -> None:
    honest = export_of(tmp_path / "a", SIZE)
    mirror = export_of(tmp_path / "b", SIZE)
    forked = fork_of(tmp_path / "fork", 60, 300)
    name = f"checkpoints/{300:020d}"
    (mirror.directory / name).write_bytes((forked.directory / name).read_bytes())
    report = compare(source(honest), source(mirror))
    assert report.status == "equivocation"
    assert report.evidence is not None
    assert report.evidence["checkpoints"][0]["size"] == 300
    assert report.evidence["divergence"] is None  # B's tree at 300 is not served
    assert verify_evidence(json.dumps(report.evidence).encode()) == (300, SIZE)


def test_evidence_that_does_not_prove_a_fork_is_refused(tmp_path: Path) -> None:
    honest, forked = export_of(tmp_path / "a", SIZE), fork_of(tmp_path / "b", 200, 300)
    evidence = compare(source(honest), source(forked)).evidence
    assert evidence is not None

    def altered(change: Any) -> bytes:
        copy = json.loads(json.dumps(evidence))
        change(copy)
        return json.dumps(copy).encode()

    def proven_is_signed(e: dict[str, Any]) -> None:
        e["consistency"]["from_root_proven"] = e["checkpoints"][0]["root"]

    def bad_proof(e: dict[str, Any]) -> None:
        e["consistency"]["proof"][0] = base64.b64encode(b"\x00" * 32).decode()

    def bad_note(e: dict[str, Any]) -> None:
        e["checkpoints"][0]["signed_note"] = e["checkpoints"][0]["signed_note"].replace(
            "\n300\n", "\n301\n"
        )

    def same_leaves(e: dict[str, Any]) -> None:
        e["divergence"]["second"]["leaf_hash"] = e["divergence"]["first"]["leaf_hash"]

    for change in (proven_is_signed, bad_proof, bad_note, same_leaves):
        with pytest.raises(EvidenceError):
            verify_evidence(altered(change))
    with pytest.raises(EvidenceError):
        verify_evidence(b"{not json")


def test_views_of_different_logs_are_not_compared(tmp_path: Path) -> None:
    other = LedgerBuilder("auction.example.org/gavel/other", key=house_key("other"))
    other.run("live", "Vase", *live_lot(other.last_t + SECOND))
    honest = export_of(tmp_path / "a", SIZE)
    mine = other.write(tmp_path / "b")
    policy = b"".join(p.replace(b"quorum none\n", b"") for p in (honest.policy, mine.policy))
    policy += b"quorum none\n"
    with pytest.raises(EvidenceError, match="different logs"):
        compare(source(honest), source(mine), policy=policy)


def test_a_view_with_a_bad_signature_is_refused(tmp_path: Path) -> None:
    honest = export_of(tmp_path / "a", SIZE)
    other = LedgerBuilder()
    other.signer = type(other.signer).from_seed(ORIGIN, b"\x11" * 32)
    other.run("live", "Vase", *live_lot(other.last_t + SECOND))
    impostor = other.write(tmp_path / "b")
    with pytest.raises(AuditError) as caught:
        compare(source(honest), source(impostor))
    assert caught.value.step == AuditStep.LOG_SIGNATURES


def _check_by_hand(evidence: dict[str, Any], honest: Export, forked: Export) -> None:
    """What a third party does with nothing but the file and RFC 9162 / signed-note code."""
    keys = [parse_vkey(text) for text in evidence["log_vkeys"]]
    assert all(isinstance(key, Ed25519Verifier) for key in keys)
    first, second = (
        open_checkpoint(
            c["signed_note"].encode(), [k for k in keys if isinstance(k, Ed25519Verifier)]
        )
        for c in evidence["checkpoints"]
    )
    assert first.to_bytes() == forked.latest and second.to_bytes() == honest.latest
    consistency = evidence["consistency"]
    proof = [base64.b64decode(h) for h in consistency["proof"]]
    proven = base64.b64decode(consistency["from_root_proven"])
    verify_consistency(
        first.checkpoint.size, second.checkpoint.size, proof, proven, second.checkpoint.root
    )
    assert proven != first.checkpoint.root
    divergence = evidence["divergence"]
    for side, export in (("first", forked), ("second", honest)):
        entry = base64.b64decode(divergence[side]["entry"])
        assert entry == export.entries[divergence["index"]]
        assert leaf_hash(entry) == base64.b64decode(divergence[side]["leaf_hash"])
