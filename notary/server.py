"""The notary's HTTP adapter: tlog-witness endpoints, log fetching, peer comparison (aiohttp).

:func:`create_app` is the composition root. Routes:

- ``POST /add-checkpoint`` - C2SP tlog-witness, decided by :mod:`notary.core`; one request at
  a time (an :class:`asyncio.Lock`), so that check and persist are atomic;
- ``GET /checkpoint`` and ``GET /<hex sha256(origin)>/checkpoint`` - the latest co-signed
  checkpoint with our cosignature, for monitors and peers (tlog-witness monitoring API);
- ``GET /status`` - JSON: last co-signed size and root, lag, refusals, peers.

A background task owned by the app compares views every ``peer_interval`` seconds: the log's
published checkpoint and each peer notary's latest co-signed checkpoint are checked for
consistency with ours (from our mirror when they are smaller, from the log's hash tiles when
they are larger). A conflict writes an evidence JSON file under ``D/evidence/``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import aiohttp
from aiohttp import web

from chain import (
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    TILE_WIDTH,
    ChainError,
    Checkpoint,
    CosignatureSigner,
    EntryBundle,
    Policy,
    Tile,
    TileHashReader,
    consistency_nodes,
    consistency_proof,
    open_checkpoint,
    parse_checkpoint_text,
    parse_entry_bundle,
    parse_note,
    parse_policy,
    range_nodes,
    tile_for_node,
    tree_root,
    verify_consistency,
)

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
    verify_actor_checks,
    verify_increment,
)
from .datadir import DataDir, checkpoint_summary, status_report
from .errors import (
    InconsistentCheckpointError,
    LogUnavailableError,
    NotaryError,
    NotaryStateError,
    RefusedContentError,
    RequestError,
    RequestTooLargeError,
    SizeConflictError,
)
from .metrics import NotaryMetrics, scrape_node, serve_metrics
from .readauth import read_authorization
from .store import Conflict, NotaryStore, PeerView, Refusal

__all__ = [
    "NODE",
    "HttpLog",
    "LogSource",
    "NotaryNode",
    "Settings",
    "create_app",
]

logger = logging.getLogger("gavel.notary")

TEXT: Final = "text/plain; charset=utf-8"
SIZE_TYPE: Final = "text/x.tlog.size"
MAX_BUNDLE_BYTES: Final = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)
MAX_TILE_BYTES: Final = TILE_WIDTH * 32
_SECOND_US: Final = 1_000_000
_PARALLEL_THRESHOLD: Final = 256
_OPENINGS_PAGE: Final = 4096
_MAX_OPENINGS_BYTES: Final = 64 * 1024 * 1024
_T = TypeVar("_T")


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


async def _all(jobs: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``jobs`` in a task group (siblings are cancelled if one fails); re-raise the first
    :class:`NotaryError` as itself rather than inside an ``ExceptionGroup``."""
    tasks: list[asyncio.Task[_T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(job) for job in jobs]
    except* NotaryError as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


# --------------------------------------------------------------------------------------------
# Reading the log (tlog-tiles over HTTP)


class LogSource(Protocol):
    """What the notary reads from its log. Raises :class:`LogUnavailableError`."""

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)`` from the entry bundles of the tree of size ``end``."""
        ...

    async def tiles(self, tiles: Sequence[Tile]) -> dict[Tile, bytes]:
        """The bytes of each hash tile."""
        ...

    async def checkpoint(self) -> bytes:
        """The log's published checkpoint."""
        ...


class HttpLog:
    """A :class:`LogSource` over the log's tlog-tiles HTTP layout under ``<url>/log/``.

    Short timeouts, bounded response sizes, at most ``concurrency`` requests at once. A partial
    tile or bundle that is gone is read from the full one that replaced it (tlog-tiles).
    With a ``signer`` (the notary's cosigner key) and the log's ``origin``, every request
    carries a read authorization signed with that key (:mod:`notary.readauth`): the log serves
    entries it keeps from the public for a while (open lots' proxy maxima) to its notaries.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout: float,
        concurrency: int = 8,
        signer: CosignatureSigner | None = None,
        origin: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._prefix = url.rstrip("/") + "/log/"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._slots = asyncio.Semaphore(concurrency)
        self._signer = signer
        self._origin = origin
        self._clock = clock

    def _headers(self, path: str) -> dict[str, str]:
        if self._signer is None or self._origin is None:
            return {}
        header = read_authorization(self._signer, self._origin, path, int(self._clock()))
        return {"Authorization": header}

    async def _get(self, path: str, limit: int) -> bytes | None:
        url = self._prefix + path
        headers = self._headers(path)
        try:
            async with (
                self._slots,
                self._session.get(url, timeout=self._timeout, headers=headers) as response,
            ):
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise LogUnavailableError(f"the log answered {response.status} for {path}")
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.content.iter_chunked(65536):
                    total += len(chunk)
                    if total > limit:
                        raise LogUnavailableError(f"the log's {path} is larger than {limit} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise LogUnavailableError(f"cannot fetch {path} from the log: {exc!r}") from exc

    async def _bundle(self, index: int, width: int) -> list[bytes]:
        bundle = EntryBundle(index, width)
        data = await self._get(bundle.path, MAX_BUNDLE_BYTES)
        if data is None and bundle.is_partial:
            bundle = EntryBundle(index)
            data = await self._get(bundle.path, MAX_BUNDLE_BYTES)
        if data is None:
            raise LogUnavailableError(f"the log does not serve {EntryBundle(index, width).path}")
        try:
            return parse_entry_bundle(bundle, data)[:width]
        except ChainError as exc:
            raise LogUnavailableError(f"the log served a bad {bundle.path}: {exc}") from exc

    async def entries(self, start: int, end: int) -> list[bytes]:
        if start >= end:
            return []
        indexes = range(start // TILE_WIDTH, (end - 1) // TILE_WIDTH + 1)
        bundles = await _all(
            [self._bundle(i, min(TILE_WIDTH, end - i * TILE_WIDTH)) for i in indexes]
        )
        result: list[bytes] = []
        for index, entries in zip(indexes, bundles, strict=True):
            begin = index * TILE_WIDTH
            result.extend(entries[max(start - begin, 0) : end - begin])
        return result

    async def openings(self, start: int, end: int) -> dict[int, dict[str, Any]]:
        """The openings of the sealed values of entries ``[start, end)`` (docs/ledger.md),
        ``GET openings/<begin>-<end>`` by pages of 4,096; a log that serves none (404): ``{}``."""
        found: dict[int, dict[str, Any]] = {}
        for begin in range(start, end, _OPENINGS_PAGE):
            path = f"openings/{begin}-{min(end, begin + _OPENINGS_PAGE)}"
            data = await self._get(path, _MAX_OPENINGS_BYTES)
            if data is None:
                return {}
            try:
                items = json.loads(data)["openings"]
                found.update({int(seq): dict(item) for seq, item in items.items()})
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise LogUnavailableError(f"the log served unreadable {path}: {exc}") from exc
        return found

    async def _tile(self, tile: Tile) -> bytes:
        data = await self._get(tile.path, MAX_TILE_BYTES)
        if data is None and tile.is_partial:
            data = await self._get(Tile(tile.level, tile.index).path, MAX_TILE_BYTES)
            data = None if data is None else data[: tile.width * 32]
        if data is None:
            raise LogUnavailableError(f"the log does not serve {tile.path}")
        return data

    async def tiles(self, tiles: Sequence[Tile]) -> dict[Tile, bytes]:
        unique = sorted(set(tiles))
        fetched = await _all([self._tile(tile) for tile in unique])
        return dict(zip(unique, fetched, strict=True))

    async def checkpoint(self) -> bytes:
        data = await self._get("checkpoint", MAX_NOTE_SIZE)
        if data is None:
            raise LogUnavailableError("the log has no published checkpoint")
        return data


# --------------------------------------------------------------------------------------------
# The node


def _request_checkpoint(body: bytes) -> tuple[Checkpoint, bytes] | None:
    """The checkpoint of an (already authenticated) request body, for evidence."""
    try:
        note = parse_add_checkpoint(body).checkpoint
        return parse_checkpoint_text(parse_note(note).text), note
    except (NotaryError, ChainError):
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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
                    step="1 count",
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
        detail["mirror_root"] = _b64(mirror_root)
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
            "proof": [_b64(digest) for digest in proof],
            "mirror_root_at_old_size": _b64(mirror_root),
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
        await _all(jobs)

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
                "proof": [_b64(digest) for digest in proof],
                "mirror_root_at_old_size": _b64(root),
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
                "proof": [_b64(digest) for digest in proof],
                "proof_source": "the log's hash tiles at the larger size",
                "tiles_root": _b64(tiles_root),
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


# --------------------------------------------------------------------------------------------
# HTTP


NODE: Final = web.AppKey("notary_node", NotaryNode)
_SESSION: Final = web.AppKey("notary_session", aiohttp.ClientSession)
METRICS: Final = web.AppKey("notary_metrics", NotaryMetrics)
#: The port of the admin address serving `/metrics`, once it listens.
METRICS_PORT: Final = web.AppKey("notary_metrics_port", int)


async def _read_body(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > MAX_REQUEST_BYTES:
            raise RequestTooLargeError(f"add-checkpoint body larger than {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def add_checkpoint(request: web.Request) -> web.Response:
    """``POST /add-checkpoint`` (C2SP tlog-witness)."""
    node = request.app[NODE]
    try:
        body = await _read_body(request)
    except RequestError as error:
        node.answers[error.http_status] += 1
        await node.keep_refusal(error, b"", node.now_us())
        return web.Response(status=error.http_status, text=error.message + "\n")
    started = time.perf_counter()
    status, answer, content_type = await node.add_checkpoint(body)
    request.app[METRICS].observe(status, time.perf_counter() - started)
    return web.Response(status=status, body=answer, headers={"Content-Type": content_type})


async def get_checkpoint(request: web.Request) -> web.Response:
    """``GET /checkpoint``: the latest co-signed checkpoint, log signature and ours."""
    node = request.app[NODE]
    origin_hash = request.match_info.get("origin_hash")
    if origin_hash is not None:
        if origin_hash != hashlib.sha256(node.trust.origin.encode()).hexdigest():
            return web.Response(status=404, text="unknown log\n")
    note = node.state.checkpoint
    if not note:
        return web.Response(status=404, text="nothing co-signed yet\n")
    return web.Response(body=note, headers={"Content-Type": TEXT, "Cache-Control": "no-cache"})


async def get_status(request: web.Request) -> web.Response:
    """``GET /status``: JSON for operators and tests."""
    report = await asyncio.to_thread(request.app[NODE].status)
    return web.json_response(report, dumps=lambda value: json.dumps(value, sort_keys=True))


async def _compare_forever(node: NotaryNode, session: aiohttp.ClientSession) -> None:
    interval = node.settings.peer_interval
    while True:
        await asyncio.sleep(interval)
        try:
            await node.compare_views(session)
        except NotaryError as exc:
            logger.error("comparing views failed: %s", exc)


def create_app(settings: Settings) -> web.Application:
    """The composition root: parse the policy, then wire store, key, log client and tasks.

    Startup (``AppRunner.setup``) takes the data directory's lock, opens the database, checks
    the mirror and rebuilds the replay; it raises :class:`NotaryError` if any of it fails.
    Cleanup cancels the comparison task and closes the session, executor and database.
    """
    try:
        policy = parse_policy(settings.policy)
    except ChainError as exc:
        raise NotaryStateError(f"policy: {exc}") from exc
    LogTrust.from_policy(policy)
    data_dir = DataDir(settings.data_dir)
    data_dir.load_signer()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(data_dir.exclusive())
            store = stack.enter_context(data_dir.open_store())
            executor = stack.enter_context(
                concurrent.futures.ThreadPoolExecutor(
                    max(1, settings.signature_threads), thread_name_prefix="notary-signatures"
                )
            )
            connector = aiohttp.TCPConnector(limit=32)
            async with aiohttp.ClientSession(connector=connector) as session:
                log = HttpLog(
                    session,
                    settings.log_url,
                    timeout=settings.fetch_timeout,
                    signer=data_dir.load_signer(),
                    origin=LogTrust.from_policy(policy).origin,
                    clock=settings.clock,
                )
                node = NotaryNode(settings, data_dir, store, policy, log, executor)
                await node.start()
                app[NODE] = node
                app[_SESSION] = session
                yield

    async def comparisons(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_compare_forever(app[NODE], app[_SESSION]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def metrics_address(app: web.Application) -> AsyncIterator[None]:
        node, metrics = app[NODE], app[METRICS]

        async def scrape() -> bytes:
            return await scrape_node(metrics, node.status, node.state.cosigned_at)

        assert settings.metrics_port is not None
        async with serve_metrics(scrape, settings.metrics_host, settings.metrics_port) as port:
            app[METRICS_PORT] = port
            yield

    app[METRICS] = NotaryMetrics()
    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(comparisons)
    if settings.metrics_port is not None:
        app.cleanup_ctx.append(metrics_address)
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/checkpoint", get_checkpoint)
    app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", get_checkpoint)
    app.router.add_get("/status", get_status)
    return app
