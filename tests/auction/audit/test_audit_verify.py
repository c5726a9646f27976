"""`auction.audit.verify_ledger`: a clean ledger passes every step; each kind of tampering is
caught at its step, naming the entry (and lot) at fault."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_kit import (
    ORIGIN,
    T0,
    Export,
    LedgerBuilder,
    bundle_file,
    house_key,
    live_lot,
    make_policy,
    notary_signers,
    rechain,
    replace_bundles,
    resign,
    signed_checkpoint,
    standard_ledger,
    write_export,
)

from auction.audit import (
    DEFAULT_CLOCK_SKEW_US,
    AuditError,
    AuditStep,
    DirectorySource,
    MissingFileError,
    SourceError,
    verify_ledger,
)
from auction.rules import SECOND
from auction.verify import signed_message as _signed_message
from chain import (
    Actor,
    Ed25519Signer,
    Entry,
    EntryType,
    MemoryTree,
    build_entry,
    format_time,
    parse_entry,
    sign_actor,
)

STANDARD = standard_ledger()
"""Built once: five lots (three presets, 4 sold, 1 failed), 381 entries, two bundles."""
SIZE = STANDARD.size


@pytest.fixture
def export(tmp_path: Path) -> Export:
    """A fresh copy of the standard ledger's export directory."""
    return STANDARD.write(tmp_path / "export")


def verify(directory: Path, **options: Any) -> Any:
    return verify_ledger(DirectorySource(directory), workers=options.pop("workers", 0), **options)


def failure(directory: Path, **options: Any) -> AuditError:
    with pytest.raises(AuditError) as caught:
        verify(directory, **options)
    return caught.value


def reexport(tmp_path: Path, entries: list[Entry], **options: Any) -> Export:
    """Everything re-hashed, re-tiled and re-signed with the log key around ``entries``."""
    sizes = [s for s in STANDARD.checkpoint_sizes if s <= len(entries)] + [len(entries)]
    return write_export(
        tmp_path / "forged",
        [entry.to_bytes() for entry in entries],
        STANDARD.signer,
        sizes,
        **options,
    )


def first_seq(predicate: Callable[[Entry], object], start: int = 1) -> int:
    return next(e.seq for e in STANDARD.entries[start:] if predicate(e))


# --- a clean ledger ----------------------------------------------------------------------------


def test_clean_ledger_passes_every_step(export: Export) -> None:
    report = verify(export.directory)
    assert report.ok and report.failure is None
    assert report.steps_passed == tuple(AuditStep)
    assert report.entries == SIZE == report.checkpoint_size
    assert report.checkpoint_root == STANDARD.tree.root()
    assert report.history == tuple(STANDARD.checkpoint_sizes)
    assert report.entry_types["house"] == 1 and report.entry_types["lot"] == 5
    assert report.sales == 4 == report.entry_types["sale"]
    assert {lot: o["status"] for lot, o in report.lots.items()} == {
        "judicial-flat": "SOLD",
        "judicial-garage": "FAILED",
        "live-painting": "SOLD",
        "timed-busy": "SOLD",
        "timed-watch": "SOLD",
    }
    assert report.lots["judicial-flat"]["leader_code"] == "P1-7Q2X"  # the priority holder
    assert report.lots["judicial-flat"]["sale_entry"] == STANDARD.sales[0]
    assert report.rejected > 0 and report.commands == SIZE - 1 - 5 - 4
    assert "no notaries in policy" in report.notes
    value = json.loads(report.to_json())
    assert value["ok"] is True and value["failure"] is None
    assert [s["status"] for s in value["steps"]] == ["passed"] * 10


def test_report_json_is_deterministic_and_workers_agree(export: Export) -> None:
    serial = verify(export.directory).to_json()
    assert verify(export.directory).to_json() == serial
    assert verify(export.directory, workers=2).to_json() == serial


def test_progress_is_reported(export: Export) -> None:
    seen: list[tuple[int, int]] = []
    verify(export.directory, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(256, SIZE), (SIZE, SIZE)]


def test_checkpoint_history_missing_is_noted(export: Export) -> None:
    shutil.rmtree(export.directory / "checkpoints")
    report = verify(export.directory)
    assert report.history is None
    assert any("history unavailable" in note for note in report.notes)
    assert json.loads(report.to_json())["checkpoints"]["history"] == "unavailable"


@pytest.mark.parametrize("style", ["vkey", "name", "hex", "HEX", "name+hex"])
def test_kid_forms_name_the_house_key(tmp_path: Path, style: str) -> None:
    signer = Ed25519Signer(ORIGIN, house_key())
    hex_id = signer.key_id.hex()
    kid = {
        "vkey": signer.vkey,
        "name": signer.name,
        "hex": hex_id,
        "HEX": hex_id.upper(),
        "name+hex": f"{signer.name}+{hex_id}",
    }[style]
    builder = LedgerBuilder(kid=kid)
    builder.run("live-vase", "Vase", *live_lot(T0 + SECOND))
    assert verify(builder.write(tmp_path / "e").directory).ok


def test_notary_quorum_met(tmp_path: Path) -> None:
    notaries = notary_signers(3)
    export = STANDARD.write(tmp_path / "e", notaries=notaries, cosigners=notaries[:2], quorum=2)
    report = verify(export.directory)
    assert report.cosigners == ("notary1", "notary2")
    assert report.witnesses == ("notary1", "notary2", "notary3")
    assert report.quorum == "notaries"
    assert not any("no notaries" in note for note in report.notes)


# --- step 1: parse ---------------------------------------------------------------------------


def test_flipped_byte_that_breaks_the_entry_fails_parse(export: Export) -> None:
    seq = 100
    path, offset = bundle_file(export.directory, seq, SIZE)
    data = bytearray(path.read_bytes())
    version = data.index(b'"v":"gavel/entry/v1"', offset)
    data[version + 5] ^= 0x01  # "gavel" -> "favel"
    path.write_bytes(bytes(data))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.PARSE, seq)
    assert "version" in error.message


def test_non_canonical_entry_fails_parse_in_the_workers(export: Export) -> None:
    seq = 300
    entries = list(export.entries)
    entries[seq] = b"{ " + entries[seq][1:]  # valid JSON, not RFC 8785: only parse_entry sees it
    replace_bundles(export.directory, entries)
    for workers in (0, 2):
        error = failure(export.directory, workers=workers)
        assert (error.step, error.seq) == (AuditStep.PARSE, seq)
        assert "canonical" in error.message


def test_missing_policy_fails_parse(export: Export) -> None:
    (export.directory / "policy").unlink()
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.PARSE, None)
    assert "policy" in str(error)


def test_history_file_named_for_another_size_fails_parse(export: Export) -> None:
    history = export.directory / "checkpoints"
    first = sorted(history.iterdir())[0]
    first.rename(history / f"{int(first.name) + 1:020d}")
    error = failure(export.directory)
    assert error.step == AuditStep.PARSE and "holds a checkpoint of size" in error.message


def test_oversized_bundle_fails_parse(export: Export) -> None:
    path, _ = bundle_file(export.directory, SIZE - 1, SIZE)
    path.write_bytes(b"\x00" * (125 * (2 + 16 * 1024) + 1))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.PARSE, 256)


# --- step 2: chain -----------------------------------------------------------------------------


def test_flipped_byte_inside_a_value_breaks_the_chain_at_the_next_entry(export: Export) -> None:
    seq = first_seq(lambda e: e.type is EntryType.LOT and e.body["lot"] == "timed-watch")
    path, offset = bundle_file(export.directory, seq, SIZE)
    data = bytearray(path.read_bytes())
    title = data.index(b"Omega", offset)
    data[title] = ord("0")  # still canonical JSON: only the hash chain shows it
    path.write_bytes(bytes(data))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.CHAIN, seq + 1)
    assert str(error) == (
        f"audit failed at step 2 chain, entry {seq + 1}: "
        f"prev does not match the leaf hash of entry {seq}"
    )


def test_deleted_entry_is_caught_where_it_was(export: Export) -> None:
    entries = list(export.entries)
    del entries[42]
    replace_bundles(export.directory, entries)
    for workers in (0, 2):
        error = failure(export.directory, workers=workers)
        assert (error.step, error.seq) == (AuditStep.CHAIN, 42)
        assert error.message == "the entry at index 42 has seq 43"


def test_swapped_entries_are_caught_at_the_first(export: Export) -> None:
    entries = list(export.entries)
    entries[30], entries[270] = entries[270], entries[30]
    replace_bundles(export.directory, entries)
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.CHAIN, 30)


# --- step 3: roots -----------------------------------------------------------------------------


def test_flipped_byte_in_the_last_entry_is_caught_by_the_tiles(export: Export) -> None:
    seq = SIZE - 1
    path, offset = bundle_file(export.directory, seq, SIZE)
    data = bytearray(path.read_bytes())
    lot = data.index(b"timed-busy", offset)
    data[lot] = ord("T")
    path.write_bytes(bytes(data))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.ROOTS, seq)
    assert "tile/0/001.p/125 hash 124" in error.message


def test_truncated_log_is_caught_at_the_first_missing_entry(export: Export) -> None:
    replace_bundles(export.directory, export.entries[:300])
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.ROOTS, 256)
    assert "missing" in error.message and "381" in error.message


def test_tampered_tile_is_caught(export: Export) -> None:
    tile = export.directory / "tile" / "0" / "000"
    data = bytearray(tile.read_bytes())
    data[32 * 7] ^= 0x80
    tile.write_bytes(bytes(data))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.ROOTS, 7)


def test_tile_of_the_wrong_size_fails_parse(export: Export) -> None:
    tile = export.directory / "tile" / "0" / "001.p" / "125"
    tile.write_bytes(tile.read_bytes()[:-1])
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.PARSE, 256)
    assert error.message == "tile/0/001.p/125 is 3999 bytes, not 4000"


def test_missing_tile_is_caught(export: Export) -> None:
    (export.directory / "tile" / "0" / "001.p" / "125").unlink()
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.ROOTS, 256)


def test_consistently_forged_entries_do_not_match_the_signed_root(
    export: Export, tmp_path: Path
) -> None:
    """Entries and tiles rewritten consistently, but the checkpoint is the real one."""
    entries = list(STANDARD.entries)
    body = _thaw(entries[200].body) | {"forged": True}
    entries[200] = resign(entries[200], body, STANDARD.private_key, STANDARD.kid)
    forged = reexport(tmp_path, rechain(entries))
    # keep the real checkpoint, forge only what is not signed
    shutil.copy(export.directory / "checkpoint", forged.directory / "checkpoint")
    shutil.rmtree(forged.directory / "checkpoints")
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.ROOTS, None)
    assert "is not the latest checkpoint's root" in error.message


# --- step 4: log signatures ---------------------------------------------------------------------


def test_checkpoint_resigned_with_another_key_fails_log_signatures(export: Export) -> None:
    impostor = Ed25519Signer.from_seed(ORIGIN, b"\x07" * 32)
    (export.directory / "checkpoint").write_bytes(signed_checkpoint(STANDARD.tree, SIZE, impostor))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.LOG_SIGNATURES, None)
    assert "latest checkpoint" in error.message
    assert str(error).startswith("audit failed at step 4 log signatures: ")


def test_house_entry_naming_another_key_fails_log_signatures(tmp_path: Path) -> None:
    other = Ed25519Signer.from_seed(ORIGIN, b"\x09" * 32)
    entries = list(STANDARD.entries)
    body = dict(entries[0].body) | {"vkey": other.vkey}
    entries[0] = resign(entries[0], body, STANDARD.private_key, STANDARD.kid)
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.LOG_SIGNATURES, 0)
    assert "not the log key" in error.message


# --- step 5: quorum ----------------------------------------------------------------------------


def test_quorum_not_met_fails(tmp_path: Path) -> None:
    notaries = notary_signers(3)
    export = STANDARD.write(tmp_path / "e", notaries=notaries, cosigners=notaries[:1], quorum=2)
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.QUORUM, None)
    assert "1 of 3 met, 2 required" in error.message


# --- step 6: consistency -----------------------------------------------------------------------


def _forked_checkpoint(size: int) -> bytes:
    """A checkpoint of ``size`` signed by the real log key over a different tree."""
    entries = list(STANDARD.entries[:size])
    body = _thaw(entries[size - 1].body) | {"forged": True}
    entries[size - 1] = resign(entries[size - 1], body, STANDARD.private_key, STANDARD.kid)
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry.to_bytes())
    return signed_checkpoint(tree, size, STANDARD.signer)


def test_forked_history_checkpoint_fails_consistency(export: Export) -> None:
    size = 100
    (export.directory / "checkpoints" / f"{size:020d}").write_bytes(_forked_checkpoint(size))
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.CONSISTENCY, None)
    assert "sizes 68 and 100 are not consistent" in error.message


def test_two_roots_for_one_size_fail_consistency(export: Export) -> None:
    name = export.directory / "checkpoints" / f"{SIZE:020d}"
    name.write_bytes(_forked_checkpoint(SIZE))
    error = failure(export.directory)
    assert error.step == AuditStep.CONSISTENCY
    assert f"two checkpoints of size {SIZE}" in error.message


def test_history_beyond_the_latest_with_matching_tiles_fails_consistency(tmp_path: Path) -> None:
    small = STANDARD.checkpoint_sizes[-2]
    export = write_export(
        tmp_path / "e",
        [e.to_bytes() for e in STANDARD.entries[:small]],
        STANDARD.signer,
        [s for s in STANDARD.checkpoint_sizes if s <= small],
    )
    newer = signed_checkpoint(STANDARD.tree, SIZE, STANDARD.signer)
    (export.directory / "checkpoints" / f"{SIZE:020d}").write_bytes(newer)
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.CONSISTENCY, None)
    assert "went backwards" in error.message


# --- step 7: actor signatures ---------------------------------------------------------------


def test_wrong_actor_signature_fails_actor_signatures(tmp_path: Path) -> None:
    seq = 150
    entries = list(STANDARD.entries)
    thief = house_key("thief")
    entry = entries[seq]
    actor = sign_actor(entry.type, entry.body, STANDARD.kid, thief)
    entries[seq] = build_entry(
        seq=seq,
        prev=entry.prev,
        time_us=entry.time_us,
        entry_type=entry.type,
        body=entry.body,
        actor=actor,
    )
    forged = reexport(tmp_path, rechain(entries))
    for workers in (0, 2):
        error = failure(forged.directory, workers=workers)
        assert (error.step, error.seq) == (AuditStep.ACTOR_SIGNATURES, seq)
        assert "does not verify" in error.message


def test_unknown_kid_fails_actor_signatures(tmp_path: Path) -> None:
    seq = 77
    entries = list(STANDARD.entries)
    entry = entries[seq]
    entries[seq] = build_entry(
        seq=seq,
        prev=entry.prev,
        time_us=entry.time_us,
        entry_type=entry.type,
        body=entry.body,
        actor=Actor("bidder-7", entry.actor.sig),
    )
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.ACTOR_SIGNATURES, seq)
    assert "'bidder-7' names no key" in error.message


def test_the_lowest_bad_signature_wins_across_chunks(tmp_path: Path) -> None:
    """A main-side failure (unknown kid) later than a worker-side one (bad signature)."""
    entries = list(STANDARD.entries)
    bad, unknown = 40, 90
    entries[bad] = build_entry(
        seq=bad,
        prev=entries[bad].prev,
        time_us=entries[bad].time_us,
        entry_type=entries[bad].type,
        body=entries[bad].body,
        actor=sign_actor(entries[bad].type, entries[bad].body, STANDARD.kid, house_key("x")),
    )
    old = entries[unknown]
    entries[unknown] = build_entry(
        seq=unknown,
        prev=old.prev,
        time_us=old.time_us,
        entry_type=old.type,
        body=old.body,
        actor=Actor("nobody", old.actor.sig),
    )
    forged = reexport(tmp_path, rechain(entries))
    for workers in (0, 2):
        error = failure(forged.directory, workers=workers)
        assert (error.step, error.seq) == (AuditStep.ACTOR_SIGNATURES, bad)


def test_key_entry_adds_a_key(tmp_path: Path) -> None:
    builder = LedgerBuilder()
    new_key = house_key("rotated")
    new = Ed25519Signer(ORIGIN + "/actors", new_key)
    builder.append(EntryType.KEY, {"v": 1, "vkey": new.vkey}, T0 + SECOND)
    builder.private_key, builder.kid = new_key, new.vkey
    builder.run("live", "Vase", *live_lot(T0 + SECOND))
    assert verify(builder.write(tmp_path / "e").directory).ok
    # ... and a revoked key is no longer valid
    revoking = LedgerBuilder()
    old_kid = revoking.kid
    revoking.append(EntryType.KEY, {"v": 1, "vkey": new.vkey, "revoke": [old_kid]}, T0 + SECOND)
    revoking.run("live", "Vase", *live_lot(T0 + SECOND))  # still signed with the old key
    error = failure(revoking.write(tmp_path / "r").directory)
    assert (error.step, error.seq) == (AuditStep.ACTOR_SIGNATURES, 2)


# --- step 8: replay ----------------------------------------------------------------------------


def test_recorded_events_that_the_rules_do_not_give_fail_replay(tmp_path: Path) -> None:
    seq = first_seq(
        lambda e: (
            e.type is EntryType.BID
            and e.body["lot"] == "timed-watch"
            and _thaw(e.body)["command"]["type"] == "PlaceBid"
            and e.body["accepted"]
        )
    )
    entries = list(STANDARD.entries)
    body = _thaw(entries[seq].body)
    event = next(event for event in body["events"] if "amount" in event)
    event["amount"] += 1_000
    entries[seq] = resign(entries[seq], body, STANDARD.private_key, STANDARD.kid)
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq, error.lot) == (AuditStep.REPLAY, seq, "timed-watch")
    assert str(error).startswith(
        f"audit failed at step 8 replay, entry {seq} (lot timed-watch): the rules give"
    )


def test_sold_lot_without_its_sale_entry_fails_replay(tmp_path: Path) -> None:
    entries = list(STANDARD.entries[:-1])  # the busy lot's sale entry is the last one
    forged = reexport(tmp_path, entries)
    error = failure(forged.directory)
    assert (error.step, error.lot) == (AuditStep.REPLAY, "timed-busy")
    assert error.seq == SIZE - 2  # the close
    assert "no sale entry" in error.message


def test_time_going_backwards_fails_replay(tmp_path: Path) -> None:
    seq = 120
    entries = list(STANDARD.entries)
    entry = entries[seq]
    entries[seq] = build_entry(
        seq=seq,
        prev=entry.prev,
        time_us=entries[seq - 1].time_us - 1,
        entry_type=entry.type,
        body=entry.body,
        actor=entry.actor,
    )
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.REPLAY, seq)
    assert "time goes backwards" in error.message


# --- step 9: time bounds -----------------------------------------------------------------------


def test_lot_created_after_its_entry_fails_time_bounds(tmp_path: Path) -> None:
    seq = first_seq(lambda e: e.type is EntryType.LOT)
    entries = list(STANDARD.entries)
    body = _thaw(entries[seq].body)
    body["created"] = format_time(entries[seq].time_us + SECOND)
    entries[seq] = resign(entries[seq], body, STANDARD.private_key, STANDARD.kid)
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.TIME_BOUNDS, seq)


def test_time_backwards_from_the_house_entry_fails_time_bounds(tmp_path: Path) -> None:
    entries = list(STANDARD.entries)
    house = entries[0]
    entries[0] = build_entry(
        seq=0,
        prev=b"",
        time_us=entries[1].time_us + 1,
        entry_type=house.type,
        body=house.body,
        actor=house.actor,
    )
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.TIME_BOUNDS, 1)


def test_entries_from_the_future_fail_time_bounds(export: Export) -> None:
    error = failure(export.directory, now_us=T0 - DEFAULT_CLOCK_SKEW_US - 1)
    assert (error.step, error.seq) == (AuditStep.TIME_BOUNDS, 0)
    assert verify(export.directory, now_us=STANDARD.last_t).ok


def test_cosignature_before_the_entries_fails_time_bounds(tmp_path: Path) -> None:
    notaries = notary_signers(1)
    entries = [e.to_bytes() for e in STANDARD.entries]
    export = write_export(
        tmp_path / "e", entries, STANDARD.signer, [SIZE], notaries=notaries, quorum=1
    )
    early = signed_checkpoint(
        STANDARD.tree, SIZE, STANDARD.signer, notaries, timestamp=T0 // SECOND
    )
    (export.directory / "checkpoint").write_bytes(early)
    (export.directory / "checkpoints" / f"{SIZE:020d}").write_bytes(early)
    error = failure(export.directory)
    assert (error.step, error.seq) == (AuditStep.TIME_BOUNDS, SIZE - 1)
    assert "notary1.example.org cosigned" in error.message


# --- ranking: the lowest step wins, then the lowest seq ---------------------------------------


def test_a_lower_step_later_in_the_log_wins(tmp_path: Path) -> None:
    entries = list(STANDARD.entries)
    seq = first_seq(lambda e: e.type is EntryType.BID and e.body["accepted"])
    body = _thaw(entries[seq].body)
    body["accepted"] = False
    entries[seq] = resign(entries[seq], body, STANDARD.private_key, STANDARD.kid)
    forged = reexport(tmp_path, rechain(entries))
    late = 350
    path, offset = bundle_file(forged.directory, late, SIZE)
    data = bytearray(path.read_bytes())
    data[data.index(b'"v":"gavel', offset) + 5] ^= 1
    path.write_bytes(bytes(data))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.PARSE, late)
    assert error.report is not None
    assert error.report.steps_passed == ()
    assert json.loads(error.report.to_json())["failure"]["seq"] == late


def test_failure_report_lists_the_steps_that_passed(tmp_path: Path) -> None:
    entries = list(STANDARD.entries[:-1])
    error = failure(reexport(tmp_path, entries).directory)
    assert error.report is not None
    assert error.report.steps_passed == tuple(AuditStep)[:7]
    statuses = [s["status"] for s in json.loads(error.report.to_json())["steps"]]
    assert statuses == ["passed"] * 7 + ["failed", "not checked", "not checked"]


# --- sources -----------------------------------------------------------------------------------


def test_directory_source_refuses_paths_leading_outside(export: Export, tmp_path: Path) -> None:
    source = DirectorySource(export.directory)
    outside = tmp_path / "secret"
    outside.write_bytes(b"x" * 32)
    link = export.directory / "tile" / "0" / "x999" / "000.p"
    link.mkdir(parents=True)
    (link / "1").symlink_to(outside)
    with pytest.raises(SourceError, match="leads outside"):
        source.read("tile/0/x999/000.p/1")
    with pytest.raises(SourceError, match="not a tlog-tiles path"):
        source.read("tile/../../secret")
    with pytest.raises(MissingFileError):
        source.read("tile/0/x123/000")
    with pytest.raises(SourceError, match="not a directory"):
        DirectorySource(tmp_path / "nowhere")


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    export = write_export(tmp_path / "empty", [], STANDARD.signer, [0])
    report = verify(export.directory)
    assert report.ok and report.entries == 0 and report.lots == {}


def test_unreadable_source_gives_no_verdict(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        verify(tmp_path / "nowhere")
    assert not isinstance(caught.value, AuditError)
    assert caught.value.exit_code == 2


# --- the signed message cut from entry bytes -------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from('ab"\\},:{[]/\n\u00e9\u2028\U0001f600 prevbody'))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(_TEXT, _JSON, max_size=5), kid=_TEXT.filter(lambda k: 0 < len(k)))
def test_signed_message_cut_from_bytes_equals_chain(body: dict[str, Any], kid: str) -> None:
    kid = kid.replace("\n", "n")
    entry = build_entry(
        seq=3,
        prev=b"\x01" * 32,
        time_us=T0,
        entry_type=EntryType.BID,
        body=body,
        actor=Actor(kid, b"\x02" * 64),
    )
    data = entry.to_bytes()
    assert parse_entry(data) == entry
    assert _signed_message("bid", data) == entry.signed_message()


def test_signed_message_cut_from_every_standard_entry() -> None:
    for entry in STANDARD.entries:
        assert _signed_message(entry.type.value, entry.to_bytes()) == entry.signed_message()


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


def test_policy_naming_another_log_fails_log_signatures(export: Export) -> None:
    other = Ed25519Signer.from_seed(ORIGIN, b"\x05" * 32)
    (export.directory / "policy").write_bytes(make_policy(other))
    error = failure(export.directory)
    assert error.step == AuditStep.LOG_SIGNATURES


def test_a_second_house_entry_fails_log_signatures(tmp_path: Path) -> None:
    """Only entry 0 is the house entry: the step a notary names for the same entry
    (``tests/test_notary_core.py``) comes from the same definition."""
    seq = 60
    entries = list(STANDARD.entries)
    body = dict(entries[0].body)
    entries[seq] = build_entry(
        seq=seq,
        prev=entries[seq].prev,
        time_us=entries[seq].time_us,
        entry_type=EntryType.HOUSE,
        body=body,
        actor=sign_actor(EntryType.HOUSE, body, STANDARD.kid, house_key()),
    )
    forged = reexport(tmp_path, rechain(entries))
    error = failure(forged.directory)
    assert (error.step, error.seq) == (AuditStep.LOG_SIGNATURES, seq)
    assert error.step.label == "4 log signatures"
    assert "only entry 0 is the house entry" in error.message
