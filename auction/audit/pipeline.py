"""The ledger audit: :func:`verify_ledger`, ten numbered fail-closed steps over every
entry and every checkpoint of a source.

Which failure is "first": steps are ordered, so the reported failure is the one with the
lowest step number, and within that step the lowest ``seq`` (log-wide failures last). All
per-entry checks run in one streaming pass: after a failure at step *s* the pass goes on
with the steps below *s* only, so that a lower step failing further on still wins.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from chain import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    ChainError,
    Ed25519Verifier,
    EntryBundle,
    NoQuorum,
    Note,
    Policy,
    SignedCheckpoint,
    Tile,
    consistency_proof,
    entry_bundles_for_size,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint_text,
    parse_entry,
    parse_entry_bundle,
    parse_note,
    parse_policy,
    parse_time,
    tiles_for_size,
    tree_root,
    verify_consistency,
)

from ..verify.errors import EntryRejected, ReplayError
from ..verify.keys import ActorKeys
from ..verify.pipeline import check_house, check_time, replay_entry
from ..verify.replay import LedgerReplay
from ..verify.steps import Step as AuditStep
from .errors import AuditError, MissingFileError, OversizeError, SourceError
from .receipts import check_receipts
from .report import AuditReport
from .sources import DirectorySource, prefetch, read_or_error
from .tree import TreeHashes
from .workers import AUTO_PARALLEL_FROM, CHUNK_ENTRIES, Chunk, EntryChecker

if TYPE_CHECKING:
    from .sources import LedgerSource
    from .workers import EntryFinding


DEFAULT_CLOCK_SKEW_US: Final = 5 * 60 * 1_000_000
"""How far a notary's cosignature time may lag behind the entries it covers (step 9)."""


Progress = Callable[[int, int], None]
"""Called as ``progress(entries_done, entries_total)`` while the entries are checked."""


def _seq_rank(seq: int | None) -> float:
    return float("inf") if seq is None else float(seq)


def _entry_fields(data: bytes) -> tuple[str, int, dict[str, Any], str]:
    """``type``, ``t`` (µs), ``body`` and ``actor.kid`` read fast; ``parse_entry`` (in the
    workers) is the authority on well-formedness, this only feeds the sequential checks."""
    value = json.loads(data)
    kind, body, kid = value["type"], value["body"], value["actor"]["kid"]
    if not isinstance(kind, str) or not isinstance(body, dict) or not isinstance(kid, str):
        raise TypeError("entry fields of the wrong type")
    return kind, parse_time(value["t"]), body, kid


def _parse_failure(data: bytes) -> str:
    try:
        parse_entry(data)
    except ChainError as exc:
        return exc.message
    return "entry fields cannot be read"


class _LedgerAudit:
    """One run of :func:`verify_ledger` (sequential state of the streaming pass)."""

    def __init__(
        self,
        source: LedgerSource,
        progress: Progress | None,
        workers: int | None,
        now_us: int | None,
        clock_skew_us: int,
    ) -> None:
        self.source = source
        self.progress = progress
        self.workers = workers
        self.now_us = now_us
        self.skew = clock_skew_us
        self.failures: dict[AuditStep, AuditError] = {}
        self.notes: list[str] = []
        self.tree = TreeHashes()
        self.keys = ActorKeys()
        # Sealed values (auction.sealed): checked against their openings in step 8.
        self.replay = LedgerReplay(openings=self._opening)
        self.types: Counter[str] = Counter()
        self.last_t = -1
        self.policy: Policy | None = None
        self.origin: str | None = None
        self.log_key: str | None = None
        self.size = 0
        self.root: bytes | None = None
        self.history: list[tuple[int, bytes]] | None = None  # (size, root) per note
        self.history_notes: list[tuple[int, Note]] = []
        self.latest_signed: SignedCheckpoint | None = None
        self.signed: list[tuple[int, SignedCheckpoint]] = []
        self.times_at: dict[int, int] = {}  # cosigned checkpoint size -> t of its last entry
        self.cosigners: tuple[str, ...] = ()
        self._chunk_first = 0
        self._chunk_entries: list[bytes] = []
        self._chunk_keys: list[tuple[bytes, ...]] = []

    def _opening(self, seq: int) -> Mapping[str, Any] | None:
        reader = getattr(self.source, "openings", None)
        if reader is None:
            return None
        try:
            found: Mapping[str, Any] | None = reader(seq)
        except SourceError as exc:
            raise ReplayError(seq, None, f"the openings cannot be read: {exc}") from exc
        return found

    # --- failure bookkeeping -----------------------------------------------------------------

    def fail(
        self,
        step: AuditStep,
        seq: int | None,
        message: str,
        lot: str | None = None,
        path: str | None = None,
    ) -> None:
        """Record a failure; per step only the lowest ``seq`` is kept."""
        current = self.failures.get(step)
        if current is None or _seq_rank(seq) < _seq_rank(current.seq):
            self.failures[step] = AuditError(step, seq, message, lot=lot, path=path)

    def needs(self, step: AuditStep, seq: int | None = None) -> bool:
        """Whether checking ``step`` at ``seq`` (``None``: log-wide) can still change the
        verdict: no lower step failed, and ``step`` did not fail at a lower ``seq``."""
        for failed, error in self.failures.items():
            if failed < step:
                return False
            if failed == step and _seq_rank(seq) >= _seq_rank(error.seq):
                return False
        return True

    def _finding(self, finding: EntryFinding) -> None:
        step, seq, message = finding
        self.fail(AuditStep(step), seq, message)

    # --- run -----------------------------------------------------------------------------------

    def run(self) -> AuditReport:
        self._metadata()
        if self.needs(AuditStep.PARSE):
            self._checkpoint_signatures()
            self._history_order()
            workers = self.workers
            if workers is None:
                workers = (os.cpu_count() or 1) if self.size >= AUTO_PARALLEL_FROM else 0
            checker = EntryChecker(workers, self._finding)
            try:
                if self._pass(checker):
                    self._after_pass()
                checker.drain()
            finally:
                checker.close()
            if self.needs(AuditStep.RECEIPTS) and isinstance(self.source, DirectorySource):
                self._receipts(self.source)
        report = self._report()
        if self.failures:
            error = self.failures[min(self.failures)]
            error.report = report
            raise error
        return report

    # --- step 1 (metadata), 4, 5, 6 (order of sizes) ----------------------------------------

    def _metadata(self) -> None:
        unusable = (MissingFileError, OversizeError, ChainError)
        try:
            self.policy = parse_policy(self.source.policy())
        except unusable as exc:
            return self.fail(AuditStep.PARSE, None, f"policy: {exc.message}")
        try:
            latest = parse_note(self.source.checkpoint())
            checkpoint = parse_checkpoint_text(latest.text)
        except unusable as exc:
            return self.fail(AuditStep.PARSE, None, f"checkpoint: {exc.message}")
        self.origin, self.size, self.root = checkpoint.origin, checkpoint.size, checkpoint.root
        self.history_notes = [(self.size, latest)]
        try:
            files = self.source.checkpoints()
        except OversizeError as exc:
            return self.fail(AuditStep.PARSE, None, exc.message)
        if files is None:
            self.notes.append(
                "checkpoint history unavailable: verified against the latest checkpoint only"
            )
            return None
        self.history = []
        for size, data in files:
            name = f"checkpoints/{size:020d}"
            try:
                note = parse_note(data)
                parsed = parse_checkpoint_text(note.text)
            except ChainError as exc:
                return self.fail(AuditStep.PARSE, None, f"{name}: {exc.message}")
            if parsed.size != size:
                return self.fail(
                    AuditStep.PARSE, None, f"{name} holds a checkpoint of size {parsed.size}"
                )
            self.history.append((size, parsed.root))
            self.history_notes.append((size, note))
        return None

    def _checkpoint_signatures(self) -> None:
        """Step 4 (every checkpoint) and step 5 (the latest's quorum)."""
        assert self.policy is not None and self.origin is not None
        policy = self.policy
        try:
            log_keys = policy.log_verifiers(self.origin)
        except ChainError as exc:
            return self.fail(AuditStep.LOG_SIGNATURES, None, exc.message)
        self.log_key = " ".join(f"{key.name}+{key.key_id.hex()}" for key in log_keys)
        for position, (size, note) in enumerate(self.history_notes):
            what = "the latest checkpoint" if position == 0 else f"checkpoints/{size:020d}"
            try:
                signed = open_checkpoint(note, log_keys, policy.cosigners())
            except ChainError as exc:
                self.fail(AuditStep.LOG_SIGNATURES, None, f"{what}: {exc.message}")
                continue
            self.signed.append((size, signed))
            if signed.cosignatures:
                self.times_at[size] = -1  # filled in by the pass: t of entry size - 1
            if position == 0:
                self.latest_signed = signed
        signed_latest = self.latest_signed
        if not policy.witnesses:
            self.notes.append("no notaries in policy")
        elif isinstance(policy.quorum, NoQuorum):
            self.notes.append("the policy requires no cosignatures (quorum none)")
        if signed_latest is None:
            return None
        names = policy.witness_names(signed_latest)
        self.cosigners = tuple(sorted(names))
        try:
            policy.evaluate(names)
        except ChainError as exc:
            self.fail(AuditStep.QUORUM, None, f"the latest checkpoint: {exc.message}")
        return None

    def _history_order(self) -> None:
        """Step 6, the part that needs no tree: sizes never exceed the latest; one root per
        size."""
        if self.history is None or self.root is None:
            return
        roots: dict[int, bytes] = {self.size: self.root}
        for size, root in self.history:
            if size > self.size:
                self.fail(
                    AuditStep.CONSISTENCY,
                    None,
                    f"checkpoints/{size:020d} is larger than the latest checkpoint "
                    f"(size {self.size}): the published size went backwards",
                )
            elif roots.setdefault(size, root) != root:
                self.fail(
                    AuditStep.CONSISTENCY,
                    None,
                    f"two checkpoints of size {size} with different roots",
                )

    # --- the streaming pass (steps 1, 2, 3, 7, 8, 9 per entry) -------------------------------

    def _pass(self, checker: EntryChecker) -> bool:
        """Read every entry bundle and level-0 tile of the latest size; True if all were read."""
        done = 0
        reads = contextlib.closing(prefetch(self.source, entry_bundles_for_size(self.size)))
        with reads as bundles:
            for bundle, data, tile_data in bundles:
                if not self._bundle(checker, bundle, data, tile_data):
                    return self._stop(checker)
                done += bundle.width
                if self.progress is not None:
                    self.progress(done, self.size)
        self._flush(checker)
        return True

    def _bundle(
        self,
        checker: EntryChecker,
        bundle: EntryBundle,
        data: bytes | SourceError,
        tile_data: bytes | SourceError,
    ) -> bool:
        """One entry bundle through the per-entry steps; False: the pass cannot go on."""
        first = bundle.leaf_begin
        if not self.needs(AuditStep.PARSE, first):
            return False
        if isinstance(data, MissingFileError):
            self.fail(
                AuditStep.ROOTS,
                first,
                f"{bundle.path} is missing: the checkpoint of size {self.size} commits to "
                f"entries {first}..{self.size - 1} that the export does not hold",
            )
            return False
        if isinstance(data, OversizeError):
            self.fail(AuditStep.PARSE, first, data.message)
            return False
        if isinstance(data, SourceError):
            raise data
        try:
            raws = parse_entry_bundle(bundle, data)
        except ChainError as exc:
            self.fail(AuditStep.PARSE, first, f"{bundle.path}: {exc.message}")
            return False
        leaves = b"".join(leaf_hash(raw) for raw in raws)
        self._compare_tile(Tile(0, bundle.index, bundle.width), tile_data, leaves)
        self.tree.extend(leaves)
        for offset, raw in enumerate(raws):
            seq = first + offset
            keys = self._entry(seq, raw)
            if keys is None:
                return False
            if not self._chunk_entries:
                self._chunk_first = seq
            self._chunk_entries.append(raw)
            self._chunk_keys.append(keys)
            if len(self._chunk_entries) >= CHUNK_ENTRIES:
                self._flush(checker)
        return True

    def _stop(self, checker: EntryChecker) -> bool:
        self._flush(checker)
        return False

    def _flush(self, checker: EntryChecker) -> None:
        if not self._chunk_entries:
            return
        first = self._chunk_first
        chunk = Chunk(
            first,
            self.tree(0, first - 1) if first else b"",
            tuple(self._chunk_entries),
            tuple(self._chunk_keys),
            self.needs(AuditStep.ACTOR_SIGNATURES, first),
        )
        self._chunk_entries, self._chunk_keys = [], []
        checker.submit(chunk)

    def _entry(self, seq: int, data: bytes) -> tuple[bytes, ...] | None:
        """The sequential steps of the shared pipeline for one entry (4, 7's keys, 8, 9);
        returns the entry's candidate actor keys (the workers check the signature), or
        ``None`` when the entry cannot be read at all (the pass stops there)."""
        try:
            kind, time_us, body, kid = _entry_fields(data)
        except (ValueError, KeyError, TypeError, RecursionError, ChainError):
            self.fail(AuditStep.PARSE, seq, _parse_failure(data))
            return None
        self.types[kind] += 1
        keys: tuple[bytes, ...] = ()
        try:
            assert self.origin is not None and self.policy is not None
            house = check_house(seq, kind, body, self.origin, self._log_keys)
            if house is not None:
                self.keys = house
            if self.needs(AuditStep.ACTOR_SIGNATURES, seq):
                keys = self.keys.candidates(seq, kid)
                self.keys = self.keys.after(seq, kind, body)
        except EntryRejected as exc:
            self._rejected(exc)
        if self.needs(AuditStep.REPLAY, seq):
            try:
                replay_entry(self.replay, seq, kind, time_us, body, kid)
            except EntryRejected as exc:
                self._rejected(exc)
        if self.needs(AuditStep.TIME_BOUNDS, seq):
            try:
                check_time(
                    seq,
                    kind,
                    time_us,
                    body,
                    previous_t_us=self.last_t,
                    now_us=self.now_us,
                    skew_us=self.skew,
                )
            except EntryRejected as exc:
                self._rejected(exc)
            if seq + 1 in self.times_at:
                self.times_at[seq + 1] = time_us
        self.last_t = max(self.last_t, time_us)
        return keys

    @functools.cached_property
    def _log_keys(self) -> tuple[Ed25519Verifier, ...]:
        """The policy's keys for the log's origin (entry 0's key must be one of them)."""
        assert self.policy is not None
        return tuple(log.verifier for log in self.policy.logs if log.verifier.name == self.origin)

    def _rejected(self, error: EntryRejected) -> None:
        self.fail(error.step, error.seq, error.message, error.lot)

    def _compare_tile(self, tile: Tile, data: bytes | SourceError, expected: bytes) -> None:
        """A served tile has its size (step 1) and the hashes recomputed from the entries
        (step 3); a missing tile fails step 3."""
        first = tile.leaf_begin
        if isinstance(data, OversizeError):
            self.fail(AuditStep.PARSE, first, data.message)
            return
        if isinstance(data, MissingFileError):
            self.fail(AuditStep.ROOTS, first, data.message)
            return
        if isinstance(data, SourceError):
            raise data
        if data == expected:
            return
        if len(data) != len(expected):
            message = f"{tile.path} is {len(data)} bytes, not {len(expected)}"
            self.fail(AuditStep.PARSE, first, message)
            return
        if not self.needs(AuditStep.ROOTS, first):
            return
        for position in range(tile.width):
            span = slice(position * HASH_SIZE, (position + 1) * HASH_SIZE)
            if data[span] != expected[span]:
                first = (tile.index * TILE_WIDTH + position) << (tile.level * TILE_HEIGHT)
                what = "the leaf hash" if tile.level == 0 else "the subtree hash"
                self.fail(
                    AuditStep.ROOTS,
                    first,
                    f"{tile.path} hash {position} is not {what} recomputed from the entries",
                )
                return

    # --- after the pass: steps 3, 6, 8, 9 over the whole log --------------------------------

    def _after_pass(self) -> None:
        for tile in tiles_for_size(self.size):
            if tile.level > 0 and self.needs(AuditStep.PARSE, tile.leaf_begin):
                begin = tile.index * TILE_WIDTH
                expected = self.tree.hashes(tile.level * TILE_HEIGHT, begin, begin + tile.width)
                self._compare_tile(tile, read_or_error(self.source, tile.path), expected)
        if self.needs(AuditStep.ROOTS):
            if tree_root(self.size, self.tree) != self.root:
                self.fail(
                    AuditStep.ROOTS,
                    None,
                    f"the root of the {self.size} entries is not the latest checkpoint's root",
                )
        if self.needs(AuditStep.CONSISTENCY):
            self._consistency()
        if self.needs(AuditStep.REPLAY):
            for lot_id in self.replay.unsold_closures():
                close = self.replay.lots[lot_id].close_entry
                self.fail(AuditStep.REPLAY, close, "the lot was sold but has no sale entry", lot_id)
            unrevealed = self.replay.unrevealed()
            if unrevealed is not None:  # the log ends between a close and its reveal
                lot_id, close = unrevealed
                message = (
                    "the lot closed with a sealed reserve or sealed proxy maxima but the log"
                    " has no reveal of them"
                )
                self.fail(AuditStep.REPLAY, close, message, lot_id)
        if self.needs(AuditStep.TIME_BOUNDS):
            self._cosignature_times()

    def _consistency(self) -> None:
        """Step 6: every pair of consecutive checkpoints is consistent (RFC 9162 2.1.4),
        with proofs built from the recomputed hashes."""
        if self.history is None or self.root is None:
            return
        views = sorted({*self.history, (self.size, self.root)})
        for (size1, root1), (size2, root2) in zip(views, views[1:], strict=False):
            if size1 == size2:
                continue  # different roots at one size: _history_order reported it
            try:
                proof = consistency_proof(size1, size2, self.tree)
                verify_consistency(size1, size2, proof, root1, root2)
            except ChainError as exc:
                self.fail(
                    AuditStep.CONSISTENCY,
                    None,
                    f"the checkpoints of sizes {size1} and {size2} are not consistent: "
                    f"{exc.message}",
                )
                return

    def _cosignature_times(self) -> None:
        """Step 9: a notary cannot have cosigned a tree before its last entry was logged."""
        for size, signed in self.signed:
            last_t = self.times_at.get(size, -1)
            if not size or last_t < 0:
                continue
            for cosignature in signed.cosignatures:
                stamp = cosignature.timestamp
                if stamp is not None and stamp * 1_000_000 + self.skew < last_t:
                    self.fail(
                        AuditStep.TIME_BOUNDS,
                        size - 1,
                        f"{cosignature.name} cosigned the checkpoint of size {size} at {stamp}, "
                        "before this entry's t",
                    )

    def _receipts(self, source: DirectorySource) -> None:
        """Step 10: the export's receipts (:mod:`auction.audit.receipts`)."""
        assert self.policy is not None
        for seq, path, message in check_receipts(
            Path(source.name), self.policy, self.tree, self.size
        ):
            self.fail(AuditStep.RECEIPTS, seq, message, path=path)

    # --- report --------------------------------------------------------------------------------

    def _report(self) -> AuditReport:
        failure = self.failures[min(self.failures)] if self.failures else None
        passed = tuple(s for s in AuditStep if failure is None or s < failure.step)
        replayed = AuditStep.REPLAY in passed
        policy = self.policy
        history = None
        if self.history is not None:
            history = tuple(sorted({size for size, _ in self.history}))
        return AuditReport(
            source=self.source.name,
            origin=self.origin,
            log_key=self.log_key,
            checkpoint_size=self.size if self.root is not None else None,
            checkpoint_root=self.root,
            history=history,
            entries=self.size if AuditStep.PARSE in passed else sum(self.types.values()),
            entry_types=dict(sorted(self.types.items())) if AuditStep.PARSE in passed else {},
            lots=self.replay.outcomes() if replayed else {},
            commands=self.replay.commands if replayed else 0,
            rejected=self.replay.rejected if replayed else 0,
            sales=self.replay.sales if replayed else 0,
            idv_entries=self.replay.idv_entries if replayed else 0,
            bid_signatures=self.replay.verified_bid_signatures if replayed else 0,
            witnesses=tuple(sorted(w.name for w in policy.witnesses)) if policy else (),
            cosigners=self.cosigners,
            quorum=policy.quorum.name if policy else None,
            steps_passed=passed,
            notes=tuple(self.notes),
            failure=failure,
        )


def verify_ledger(
    source: LedgerSource,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    now_us: int | None = None,
    clock_skew_us: int = DEFAULT_CLOCK_SKEW_US,
) -> AuditReport:
    """Verify every entry and checkpoint of ``source`` in ten fail-closed steps.

    1. parse: the policy, the latest checkpoint and every checkpoint of the history parse
       (history file names match their sizes); every entry bundle of the latest size frames
       exactly its entries, every tile has its size, and every entry is a canonical ledger
       entry (``chain.parse_entry``);
    2. chain: entry ``seq`` equals its index and ``prev`` is the leaf hash of entry ``seq - 1``
       recomputed from its bytes;
    3. roots: the export holds every entry the latest checkpoint commits to, every served tile
       equals the hashes recomputed from the entries, and the recomputed root equals the
       latest checkpoint's root;
    4. log signatures: every checkpoint (latest and history) is signed by the policy's log key
       for its origin, every cosignature from a policy notary verifies, and entry 0 is the
       ``house`` entry naming that origin and that very key (and no later entry is a
       ``house`` entry);
    5. quorum: the policy's quorum is met by the notaries that cosigned the latest checkpoint
       (no notaries in the policy: passes, and the report says so);
    6. consistency: no checkpoint in the history is larger than the latest, one root per size,
       and every pair of consecutive checkpoints is consistent (RFC 9162 proofs built from the
       recomputed hashes, checked with ``chain.verify_consistency``);
    7. actor signatures: each entry's ``actor.kid`` names a key valid at that point (the house
       key from entry 0; ``key`` entries add and revoke keys) and the signature verifies;
    8. replay: :class:`auction.verify.LedgerReplay` re-runs every lot through the rules engine
       (it also refuses ``t`` going backwards and ``ingress`` after ``t``) and checks the
       signed-bid rules: ``idv`` attestations under an identity provider's key (a ``key``
       entry with role "idv"), each bid's signed request (signature by the account's attested
       key, payload = command, attestation not expired at ingress), and in a ``signed_bids``
       log a request on every bid and an ``idv`` entry for every kyc-verified registration; a
       lot sold without its ``sale`` entry fails at the end. Sealed values (docs/ledger.md):
       every commitment is opened (``openings.json`` of an export, ``/log/openings/`` of a
       server) and checked, the replay runs on the opened bodies, and each lot's links hold
       one alias per account; a missing or wrong opening fails this step;
    9. time bounds: ``t`` never decreases (also from entry 0 to 1), ``lot.created`` and
       non-command ``ingress`` are not after ``t``, ``t`` is not after ``now_us`` plus the skew
       (when given), and no notary cosigned a checkpoint earlier than its last entry's ``t``
       minus ``clock_skew_us``;
    10. receipts (export directories): :func:`auction.audit.receipts.check_receipts`.

    Steps 1, 2 and 7 run in ``workers`` processes (``None``: every core for logs of 4,096
    entries and more, in-process below; ``0``: in-process). Memory: 64 bytes per entry.
    Returns the report; raises :class:`AuditError` (with ``.report``) at the first failing
    step, or :class:`SourceError` when the source cannot be read at all.
    """
    return _LedgerAudit(source, progress, workers, now_us, clock_skew_us).run()
