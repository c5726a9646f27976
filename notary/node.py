"""One notary node: its key, state, mirror cursor and log behind one lock; what it
co-signs, the refusals and conflicts it keeps, and the views it compares.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from auction.verify import Step
from chain import (
    MAX_NOTE_SIZE,
    ChainError,
    Checkpoint,
    Policy,
    TileHashReader,
    consistency_nodes,
    consistency_proof,
    open_checkpoint,
    parse_checkpoint_text,
    parse_note,
    range_nodes,
    tile_for_node,
    tree_root,
    verify_consistency,
)
from chain.note.keys import b64encode

from .content import verify_actor_checks, verify_increment
from .core import (
    DEFAULT_MAX_INCREMENT,
    DEFAULT_MAX_SKEW_US,
    MAX_REQUEST_BYTES,
    ActorCheck,
    Increment,
    LedgerCursor,
    LogTrust,
    NotaryState,
    check_envelope,
    cosign,
    format_size,
    parse_add_checkpoint,
)
from .datadir import DataDir, checkpoint_summary, status_report
from .errors import (
    InconsistentCheckpointError,
    LogUnavailableError,
    NotaryError,
    RefusedContentError,
    SizeConflictError,
)
from .logsource import LogSource, run_all
from .store import Conflict, NotaryStore, PeerView, Refusal

logger = logging.getLogger("gavel.notary")


TEXT: Final = "text/plain; charset=utf-8"
SIZE_TYPE: Final = "text/x.tlog.size"
_SECOND_US: Final = 1_000_000
_PARALLEL_THRESHOLD: Final = 256


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``gavel notary serve`` configures.

    ``policy`` is the tlog-policy file's bytes: its ``log`` lines give the origin and log keys,
    its ``witness`` lines with a URL other than ours are peers (as well as ``peers``).
    ``clock`` returns POSIX seconds (injected in tests).
    """

    data_dir: Path
    log_url: str
    policy: bytes
    host: str = "127.0.0.1"
    port: int = 0
    peers: tuple[str, ...] = ()
    peer_interval: float = 5.0
    max_skew: float = DEFAULT_MAX_SKEW_US / _SECOND_US
    fetch_timeout: float = 10.0
    max_increment: int = DEFAULT_MAX_INCREMENT
    signature_threads: int = 2
    clock: Callable[[], float] = time.time
    #: The admin address serving `GET /metrics` (`notary.metrics`); None: no metrics served.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


def _request_checkpoint(body: bytes) -> tuple[Checkpoint, bytes] | None:
    """The checkpoint of an (already authenticated) request body, for evidence."""
    try:
        note = parse_add_checkpoint(body).checkpoint
        return parse_checkpoint_text(parse_note(note).text), note
    except (NotaryError, ChainError):
        return None


class NotaryNode:
    """One notary: its key, state, mirror cursor and log, behind one lock.

    Built by :func:`create_app`; :meth:`start` verifies the mirror and rebuilds the replay
    before the first request. All writes go through :meth:`add_checkpoint` (serialized).
    """

    def __init__(
        self,
        settings: Settings,
        data_dir: DataDir,
        store: NotaryStore,
        policy: Policy,
        log: LogSource,
        executor: concurrent.futures.Executor,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.store = store
        self.policy = policy
        self.trust = LogTrust.from_policy(policy)
        self.signer = data_dir.load_signer()
        self.log = log
        self._executor = executor
        self._threads = max(1, settings.signature_threads)
        self.state: NotaryState = NotaryState(self.trust.origin)
        self.cursor: LedgerCursor | None = None
        self.lock = asyncio.Lock()
        self.answers: Counter[int] = Counter()
        self._conflicts_seen: set[tuple[str, int, bytes]] = set()
        own = self.signer.public_key
        if not any(w.verifier.public_key == own for w in policy.witnesses):
            logger.warning(
                "this notary's key is not a witness of the policy: its cosignatures "
                "will not count towards the quorum"
            )
        urls = [w.url for w in policy.witnesses if w.url and w.verifier.public_key != own]
        self.peers = tuple(dict.fromkeys(url.rstrip("/") for url in [*urls, *settings.peers]))

    @property
    def name(self) -> str:
        return self.signer.name

    def now_us(self) -> int:
        return int(self.settings.clock() * _SECOND_US)

    async def start(self) -> None:
        """Load the state, check the mirror against it, rebuild the replay (in a thread)."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        state = self.store.load_state(self.trust.origin)
        assert state is not None
        self.store.verify_mirror(state)
        self.store.set_meta("log_keys", " ".join(v.vkey for v in self.trust.verifiers))
        self.state = state
        self.cursor = LedgerCursor.rebuild(self.store.iter_entries(0, state.size), self.trust)

    async def _ready_cursor(self) -> LedgerCursor:
        cursor = self.cursor
        fetch = getattr(self.log, "openings", None)
        opened = cursor is not None and cursor.replay.openings is not None
        if (
            cursor is None
            or cursor.stale
            or cursor.size != self.state.size
            or (fetch is not None and not opened)
        ):
            size = self.state.size
            # Sealed values (docs/ledger.md): the replay opens them, so it needs the openings
            # of the mirrored entries too (the links of each lot's aliases to accounts).
            known: dict[int, dict[str, Any]] = await fetch(0, size) if fetch and size else {}
            cursor = await asyncio.to_thread(
                lambda: LedgerCursor.rebuild(
                    self.store.iter_entries(0, size), self.trust, known if fetch else None
                )
            )
            self.cursor = cursor
        return cursor

    def _check_signatures(self, checks: Sequence[ActorCheck]) -> Callable[[], None]:
        """Spread actor signature checks over the executor's threads; return the join."""
        if self._threads <= 1 or len(checks) < _PARALLEL_THRESHOLD:
            verify_actor_checks(checks)
            return lambda: None
        parts = self._threads * 4
        step = -(-len(checks) // parts)
        futures = [
            self._executor.submit(verify_actor_checks, checks[i : i + step])
            for i in range(0, len(checks), step)
        ]

        def wait() -> None:
            failures: list[RefusedContentError] = []
            for future in futures:
                try:
                    future.result()
                except RefusedContentError as exc:
                    failures.append(exc)
            if failures:
                raise min(failures, key=lambda failure: failure.seq or 0)

        return wait

    async def add_checkpoint(self, body: bytes) -> tuple[int, bytes, str]:
        """Handle one tlog-witness add-checkpoint body; return status, body, content type."""
        async with self.lock:
            now_us = self.now_us()
            fetched: list[bytes] = []
            try:
                answer = await self._add_checkpoint(body, now_us, fetched)
                status, content_type = 200, TEXT
            except NotaryError as error:
                if error.http_status >= 500 and not isinstance(error, LogUnavailableError):
                    logger.error("add-checkpoint failed: %s", error)
                try:
                    await self.keep_refusal(error, body, now_us, fetched)
                except NotaryError as unkept:  # e.g. a full disk: the answer is still given
                    logger.error("refusal not recorded: %s", unkept)
                answer = (str(error) + "\n").encode()
                content_type = TEXT
                if isinstance(error, SizeConflictError):
                    answer, content_type = format_size(error.latest_size), SIZE_TYPE
                status = error.http_status
            self.answers[status] += 1
            return status, answer, content_type

    async def _add_checkpoint(self, body: bytes, now_us: int, fetched: list[bytes]) -> bytes:
        """Check, co-sign, persist; return the cosignature line. ``fetched`` receives the
        entries read from the log (for the evidence of a refusal)."""
        request = parse_add_checkpoint(body)
        state = self.state
        accepted = check_envelope(request, self.trust, state)
        checkpoint = accepted.checkpoint
        increment: Increment | None = None
        if accepted.grows:
            growth = checkpoint.size - state.size
            if growth > self.settings.max_increment:
                raise RefusedContentError(
                    f"{growth} new entries exceed this notary's limit of "
                    f"{self.settings.max_increment} per checkpoint",
                    step=Step.ROOTS.label,
                ).authenticated(checkpoint.size)
            fetched.extend(await self.log.entries(state.size, checkpoint.size))
            cursor = await self._ready_cursor()
            fetch = getattr(self.log, "openings", None)
            if fetch is not None and any(b'"sealed"' in data for data in fetched):
                increment_openings = await fetch(state.size, checkpoint.size)
                cursor.replay.openings = increment_openings.get
            max_skew_us = int(self.settings.max_skew * _SECOND_US)
            increment = await asyncio.to_thread(
                lambda: verify_increment(
                    state,
                    accepted,
                    fetched,
                    cursor,
                    self.trust,
                    now_us=now_us,
                    max_skew_us=max_skew_us,
                    check_signatures=self._check_signatures,
                )
            )
        # tlog-cosignature: "as of" this time; never earlier than our previous cosignature.
        timestamp = max(now_us // _SECOND_US, state.cosigned_at)
        signature, note = cosign(self.signer, accepted, timestamp)
        new_state = NotaryState(
            state.origin,
            checkpoint.size,
            checkpoint.root,
            increment.compact if increment is not None else state.compact,
            note,
            timestamp,
        )
        committed = False
        try:
            await asyncio.to_thread(
                self.store.commit, state, new_state, increment.entries if increment else ()
            )
            committed = True
        finally:
            if increment is not None and not committed and self.cursor is not None:
                self.cursor.stale = True
        self.state = new_state
        return signature.to_line().encode()

    async def keep_refusal(
        self, error: NotaryError, body: bytes, now_us: int, fetched: Sequence[bytes] = ()
    ) -> None:
        """Record a refusal; classify rollbacks and forks and write their evidence files."""
        state = self.state
        size = error.checkpoint_size
        rollback = error.evidence and size is not None and size < state.size
        if isinstance(error, SizeConflictError) and not rollback:
            return  # routine resynchronisation, not a refusal
        detail: dict[str, Any] = {}
        message = error.message
        if error.evidence and size is not None and size > state.size:
            await asyncio.to_thread(self.store.note_log_size, size)
        if error.seq is not None and fetched:
            offset = error.seq - state.size
            if 0 <= offset < len(fetched):
                detail["entry"] = fetched[offset].decode("utf-8", "replace")
        theirs = _request_checkpoint(body) if error.evidence else None
        try:
            if theirs is not None and rollback and state.size:
                message = await self._classify_rollback(theirs, state, detail, now_us, message)
            elif (
                theirs is not None
                and isinstance(error, InconsistentCheckpointError)
                and theirs[0].size == state.size
                and theirs[0].root != state.root
            ):
                check = {"type": "same-size", "size": state.size, "error": error.message}
                detail["evidence_file"] = await self._conflict(
                    "fork", "add-checkpoint", theirs[1], state, check, now_us
                )
        except NotaryError as exc:  # never lose the refusal itself
            logger.error("cannot classify a refusal: %s", exc)
        refusal = Refusal(
            at_us=now_us,
            status=error.http_status,
            reason=error.reason,
            message=message,
            step=error.step,
            seq=error.seq,
            evidence=error.evidence,
            checkpoint_size=size,
            request=body[:MAX_REQUEST_BYTES] if error.evidence else None,
            detail=json.dumps(detail, sort_keys=True) if detail else None,
        )
        await asyncio.to_thread(self.store.record_refusal, refusal)

    async def _classify_rollback(
        self,
        theirs: tuple[Checkpoint, bytes],
        state: NotaryState,
        detail: dict[str, Any],
        now_us: int,
        message: str,
    ) -> str:
        checkpoint, note = theirs
        mirror_root = await asyncio.to_thread(self.store.root_at, checkpoint.size)
        detail["mirror_root"] = b64encode(mirror_root)
        if mirror_root == checkpoint.root:
            detail["rollback"] = "consistent"
            return (
                f"rollback: checkpoint of size {checkpoint.size} is below the last co-signed "
                f"size {state.size} (consistent with the mirror); {message}"
            )
        proof = await asyncio.to_thread(self.store.consistency_proof, checkpoint.size, state.size)
        check = {
            "type": "consistency",
            "old_size": checkpoint.size,
            "new_size": state.size,
            "proof": [b64encode(digest) for digest in proof],
            "mirror_root_at_old_size": b64encode(mirror_root),
            "error": "the log signed a root for this size that our mirrored tree does not have",
        }
        detail["rollback"] = "fork"
        detail["evidence_file"] = await self._conflict(
            "fork", "add-checkpoint", note, state, check, now_us
        )
        return (
            f"fork: the log signed size {checkpoint.size} with a root that differs from the "
            f"co-signed tree of size {state.size}; {message}"
        )

    async def _conflict(
        self,
        kind: str,
        source: str,
        theirs: bytes,
        state: NotaryState,
        check: dict[str, Any],
        now_us: int,
    ) -> str:
        """Write a split-view evidence file and record it; return the file name."""
        document = {
            "format": "gavel/notary-conflict/v1",
            "kind": kind,
            "source": source,
            "detected_at": now_us // _SECOND_US,
            "detected_by": {"name": self.name, "vkey": self.signer.vkey},
            "origin": self.trust.origin,
            "ours": checkpoint_summary(state.checkpoint),
            "theirs": checkpoint_summary(theirs),
            "check": check,
        }
        path = await asyncio.to_thread(self.data_dir.write_evidence, kind, document, now_us)
        reason = str(check.get("error", kind))
        conflict = Conflict(now_us, source, f"{kind}: {reason}", path.name)
        await asyncio.to_thread(self.store.record_conflict, conflict)
        logger.warning("split view detected from %s: %s (%s)", source, reason, path)
        return path.name

    # --- comparing views -------------------------------------------------------------------

    async def compare_views(self, session: aiohttp.ClientSession) -> None:
        """Compare the log's published checkpoint and every peer's with our co-signed view."""
        jobs = [self._guarded("log", self._compare_log())]
        jobs.extend(self._guarded(url, self._compare_peer(session, url)) for url in self.peers)
        await run_all(jobs)

    async def _guarded(self, source: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except NotaryError as exc:  # our own storage failed: report, keep comparing others
            logger.error("comparing with %s failed: %s", source, exc)

    async def _compare_log(self) -> None:
        try:
            note = await self.log.checkpoint()
        except LogUnavailableError as exc:
            await self._peer_view("log", "unreachable", exc.message)
            return
        await self._compare("log", note)

    async def _compare_peer(self, session: aiohttp.ClientSession, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.fetch_timeout)
        try:
            async with session.get(url + "/checkpoint", timeout=timeout) as response:
                if response.status == 404:
                    await self._peer_view(url, "empty", "the peer has co-signed nothing yet")
                    return
                if response.status != 200:
                    await self._peer_view(url, "unreachable", f"HTTP {response.status}")
                    return
                note = await response.content.read(MAX_NOTE_SIZE + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._peer_view(url, "unreachable", repr(exc))
            return
        await self._compare(url, note)

    async def _peer_view(
        self,
        source: str,
        status: str,
        message: str,
        checkpoint: Checkpoint | None = None,
        note: bytes | None = None,
    ) -> None:
        view = PeerView(
            source,
            self.now_us(),
            status,
            message,
            None if checkpoint is None else checkpoint.size,
            note,
        )
        await asyncio.to_thread(self.store.record_peer, view)

    async def _compare(self, source: str, note: bytes) -> None:
        try:
            signed = open_checkpoint(note, self.trust.verifiers, self.policy.cosigners())
        except ChainError as exc:
            await self._peer_view(source, "unverified", f"not a valid log checkpoint: {exc}")
            return
        theirs = signed.checkpoint
        state = self.state
        if theirs.size > state.size:
            await asyncio.to_thread(self.store.note_log_size, theirs.size)
        try:
            problem = await self._consistency(theirs, state)
        except LogUnavailableError as exc:
            await self._peer_view(source, "unverified", exc.message, theirs, note)
            return
        if problem is None:
            await self._peer_view(source, "consistent", f"size {theirs.size}", theirs, note)
            return
        kind, check = problem
        key = (source, theirs.size, theirs.root)
        if key not in self._conflicts_seen:
            self._conflicts_seen.add(key)
            await self._conflict(kind, source, note, state, check, self.now_us())
        await self._peer_view(source, "conflict", str(check["error"]), theirs, note)

    async def _consistency(
        self, theirs: Checkpoint, state: NotaryState
    ) -> tuple[str, dict[str, Any]] | None:
        """``None`` if ``theirs`` and our state can be the same log, else the failed check."""
        if state.size == 0 or theirs.size == 0:
            return None
        if theirs.size <= state.size:
            root = state.root
            if theirs.size < state.size:
                root = await asyncio.to_thread(self.store.root_at, theirs.size)
            if root == theirs.root:
                return None
            proof: list[bytes] = []
            if theirs.size < state.size:
                proof = await asyncio.to_thread(
                    self.store.consistency_proof, theirs.size, state.size
                )
            return "fork", {
                "type": "consistency" if proof else "same-size",
                "old_size": theirs.size,
                "new_size": state.size,
                "proof": [b64encode(digest) for digest in proof],
                "mirror_root_at_old_size": b64encode(root),
                "error": f"their root for size {theirs.size} is not the one we co-signed",
            }
        nodes = [*consistency_nodes(state.size, theirs.size).ids, *range_nodes(0, theirs.size)]
        needed = [tile_for_node(node.level, node.index, theirs.size)[0] for node in nodes]
        fetched = await self.log.tiles(needed)
        try:
            reader = TileHashReader(theirs.size, fetched.__getitem__)
            tiles_root = tree_root(theirs.size, reader)
            proof = consistency_proof(state.size, theirs.size, reader)
        except (ChainError, KeyError) as exc:
            raise LogUnavailableError(f"the log's tiles are unusable: {exc}") from exc
        try:
            verify_consistency(state.size, theirs.size, proof, state.root, theirs.root)
        except ChainError as exc:
            kind = "fork" if tiles_root == theirs.root else "tiles-mismatch"
            return kind, {
                "type": "consistency",
                "old_size": state.size,
                "new_size": theirs.size,
                "proof": [b64encode(digest) for digest in proof],
                "proof_source": "the log's hash tiles at the larger size",
                "tiles_root": b64encode(tiles_root),
                "error": exc.message,
            }
        return None

    # --- reports ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The JSON of ``GET /status`` (blocking: call it in a thread)."""
        report = status_report(self.store, name=self.name, vkey=self.signer.vkey)
        report["answers"] = {str(status): count for status, count in sorted(self.answers.items())}
        report["peers_configured"] = list(self.peers)
        return report
