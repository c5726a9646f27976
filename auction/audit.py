"""The auditor: check a whole exported ledger, a receipt, or two views of one log.

Offline by default (ledger spec §5). The pieces, each raising only :class:`AuditFailure`
subclasses:

- sources (STYLE rule 10): :class:`LedgerSource` is what the auditor reads; it is either an
  export directory (:class:`DirectorySource`, bounded reads confined to the directory) or a
  server's ``/log/`` (:class:`HttpSource`, bounded responses). A missing file is a
  :class:`MissingFileError`, which the pipeline turns into a verdict at the step that needed
  the file; any other read failure is a :class:`SourceError` and gives no verdict at all.
- :func:`verify_ledger`: nine numbered, fail-closed steps (:class:`AuditStep`) over every
  entry and every checkpoint. It returns an :class:`AuditReport` or raises
  :class:`AuditError` naming the first failing step, the entry ``seq`` (``None`` for a
  log-wide failure) and, for the replay, the lot.
- :func:`verify_receipt_files`: a ``c2sp.org/tlog-proof`` receipt and its entry, offline.
- :func:`compare`: two views of one log; if they conflict, :func:`write_evidence` stores a
  self-contained equivocation evidence file that :func:`verify_evidence` (or anyone with the
  log's vkey and an RFC 9162 implementation) can check.

Which failure is "first": steps are ordered, so the reported failure is the one with the
lowest step number, and within that step the lowest ``seq`` (log-wide failures last). All
per-entry checks run in one streaming pass: after a failure at step *s* the pass goes on with
the steps below *s* only, so that a lower step failing further on still wins.

Kid matching (step 7): an entry's ``actor.kid`` names a key valid at that point of the log
when it equals, for that key, the vkey text, ``<name>+<hex key id>``, the 8-digit hex key id
(any case) or the key name; when several valid keys match, one of them must verify.

Errors (STYLE rule 5), split by what the caller can conclude: :class:`AuditFailure` is the one
base; :class:`AuditError`, :class:`ReceiptError` and :class:`EvidenceError` are verdicts
(something does not verify: exit 1); :class:`NoVerdict` and its :class:`SourceError`,
:class:`MissingFileError`, :class:`OversizeError` mean nothing was concluded (exit 2).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.client
import json
import multiprocessing
import os
import re
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import (
    HASH_SIZE,
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    MAX_POLICY_SIZE,
    MAX_RECEIPT_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    ActorSignatureError,
    ChainError,
    Ed25519Verifier,
    Entry,
    EntryBundle,
    EntryError,
    NoQuorum,
    Note,
    Policy,
    ProofError,
    SignedCheckpoint,
    Tile,
    TileHashReader,
    consistency_proof,
    entry_bundles_for_size,
    inclusion_proof,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint_text,
    parse_entry,
    parse_entry_bundle,
    parse_note,
    parse_policy,
    parse_tile_path,
    parse_time,
    parse_vkey,
    tiles_for_size,
    tree_root,
    verify_actor,
    verify_chain,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)

from .errors import GavelError
from .ledger import LedgerReplay, ReplayError, kid_names_key

__all__ = [
    "DEFAULT_CLOCK_SKEW_US",
    "EVIDENCE_VERSION",
    "AuditError",
    "AuditFailure",
    "AuditReport",
    "AuditStep",
    "ComparisonReport",
    "DirectorySource",
    "EvidenceError",
    "HttpSource",
    "LedgerSource",
    "MissingFileError",
    "NoVerdict",
    "OversizeError",
    "Progress",
    "ReceiptError",
    "ReceiptReport",
    "SourceError",
    "compare",
    "open_source",
    "verify_evidence",
    "verify_ledger",
    "verify_receipt_files",
    "write_evidence",
]

DEFAULT_CLOCK_SKEW_US: Final = 5 * 60 * 1_000_000
"""How far a notary's cosignature time may lag behind the entries it covers (step 9)."""

EVIDENCE_VERSION: Final = "gavel/equivocation-evidence/v1"

Progress = Callable[[int, int], None]
"""Called as ``progress(entries_done, entries_total)`` while the entries are checked."""

_CHUNK_ENTRIES: Final = 1024
"""Entries per task sent to a worker process (four entry bundles)."""
_AUTO_PARALLEL_FROM: Final = 4096
"""With ``workers=None``, logs smaller than this are checked in-process."""
_PREFETCH_DEPTH: Final = 8
"""Entry bundles read ahead of the pass (hides HTTP round trips)."""
MAX_LISTING_BYTES: Final = 64 * 1024 * 1024
"""Largest ``/log/checkpoints`` listing read (21 bytes per checkpoint)."""


# --------------------------------------------------------------------------------------------
# Errors


class AuditFailure(GavelError):
    """Base of every error this module raises; adapters catch this one only.

    ``exit_code`` is what a CLI should exit with: 1 when the ledger (or receipt, or pair of
    views) failed verification, 2 when no verdict could be reached.
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoVerdict(AuditFailure):
    """The audit could not run to a verdict (say nothing about the log's validity)."""

    exit_code = 2


class SourceError(NoVerdict):
    """The source could not be read (I/O error, network, refused path): no verdict."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingFileError(SourceError):
    """A file of the export layout is absent (no such file, HTTP 404).

    :func:`verify_ledger` turns it into an :class:`AuditError` at the step that needed it.
    """


class OversizeError(SourceError):
    """A file is larger than the layout allows for it; read no further."""


class AuditStep(IntEnum):
    """The steps of :func:`verify_ledger`, in the order failures are ranked."""

    PARSE = 1
    CHAIN = 2
    ROOTS = 3
    LOG_SIGNATURES = 4
    QUORUM = 5
    CONSISTENCY = 6
    ACTOR_SIGNATURES = 7
    REPLAY = 8
    TIME_BOUNDS = 9
    RECEIPTS = 10

    @property
    def title(self) -> str:
        """The step's name, e.g. ``"log signatures"``."""
        return self.name.lower().replace("_", " ")

    @property
    def label(self) -> str:
        """``"<number> <name>"``, e.g. ``"2 chain"``."""
        return f"{self.value} {self.title}"


class AuditError(AuditFailure):
    """Verification failed: the first failing ``step``, the entry ``seq`` (``None`` when the
    failure concerns the log as a whole), the ``lot`` (replay failures) and a message.

    ``report`` is the report up to the failure (set by :func:`verify_ledger`): print it with
    :meth:`AuditReport.to_json` for a machine-readable verdict.
    """

    def __init__(
        self,
        step: AuditStep,
        seq: int | None,
        message: str,
        *,
        lot: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.seq = seq
        self.lot = lot
        self.path = path  # the export's file at fault (step 10), e.g. "receipts/12.entry"
        self.report: AuditReport | None = None

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f", {self.path}"
        elif self.seq is not None:
            where = f", entry {self.seq}" + (f" (lot {self.lot})" if self.lot else "")
        elif self.lot:
            where = f", lot {self.lot}"
        return f"audit failed at step {self.step.label}{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON-ready values."""
        value: dict[str, Any] = {
            "step": int(self.step),
            "name": self.step.title,
            "seq": self.seq,
            "lot": self.lot,
            "message": self.message,
        }
        if self.path is not None:
            value["file"] = self.path
        return value


class ReceiptError(AuditFailure):
    """A receipt failed at ``step`` (``"<number> <name>"``: chain's six receipt steps, then
    ``"7 actor"``), or its files could not be used."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step

    def __str__(self) -> str:
        return f"receipt failed at step {self.step}: {self.message}"


class EvidenceError(AuditFailure):
    """An equivocation evidence file does not prove what it claims (or two views could not be
    compared: different logs, a view whose own data is inconsistent)."""


# --------------------------------------------------------------------------------------------
# Sources


class LedgerSource(Protocol):
    """What the auditor reads: the export layout, or a server's ``/log/`` paths.

    Every method returns bytes or raises :class:`SourceError` (:class:`MissingFileError` for
    an absent file, :class:`OversizeError` for one over its bound).
    """

    @property
    def name(self) -> str:
        """The directory or URL, for reports."""
        ...

    def checkpoint(self) -> bytes:
        """The latest published signed checkpoint."""
        ...

    def checkpoints(self) -> list[tuple[int, bytes]] | None:
        """Every checkpoint ever published as ``(size, note bytes)``, by size; ``None`` when
        the source keeps no history (then only the latest is verified)."""
        ...

    def policy(self) -> bytes:
        """The tlog-policy file naming the log key, the notaries and the quorum."""
        ...

    def read(self, path: str) -> bytes:
        """A hash tile or an entry bundle by its tlog-tiles path (``tile/0/x001/234.p/7``)."""
        ...


#: Openings of sealed values (auction.sealed): the export's file, and the server's page size.
OPENINGS_FILE = "openings.json"
OPENINGS_PAGE = 4096
MAX_OPENINGS_BYTES = 64 * 1024 * 1024


def _openings_map(data: bytes, path: str) -> dict[int, Mapping[str, Any]]:
    """``{"openings": {"<seq>": {name: opening}}}`` read strictly."""
    try:
        value = json.loads(data)
        items = value["openings"]
        if not isinstance(items, dict) or not all(isinstance(v, dict) for v in items.values()):
            raise TypeError("openings is an object of objects")
        return {int(seq): item for seq, item in items.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"{path} is not a file of openings: {exc}", path=path) from exc


def _openings_file(source: DirectorySource) -> dict[int, Mapping[str, Any]]:
    try:
        data = source._read(OPENINGS_FILE, MAX_OPENINGS_BYTES)
    except MissingFileError:
        return {}
    return _openings_map(data, OPENINGS_FILE)


def _tile_limit(path: str) -> int:
    try:
        parsed = parse_tile_path(path)
    except ChainError as exc:
        raise SourceError(f"{path!r} is not a tlog-tiles path: {exc.message}", path=path) from exc
    if isinstance(parsed, EntryBundle):
        return parsed.width * (2 + MAX_ENTRY_BYTES)
    return parsed.width * HASH_SIZE


_HISTORY_NAME = re.compile(r"[0-9]{20}")


class DirectorySource:
    """An export directory (``gavel ledger export``): reads are bounded and confined to it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        root = Path(path)
        if not root.is_dir():
            raise SourceError(f"{root} is not a directory")
        self._root = root.resolve()
        self._name = str(path)

    @property
    def name(self) -> str:
        """The directory as given."""
        return self._name

    def checkpoint(self) -> bytes:
        """``checkpoint``."""
        return self._read("checkpoint", MAX_NOTE_SIZE)

    def policy(self) -> bytes:
        """``policy``."""
        return self._read("policy", MAX_POLICY_SIZE)

    def read(self, path: str) -> bytes:
        """``tile/...``: a hash tile or an entry bundle."""
        return self._read(path, _tile_limit(path))

    def checkpoints(self) -> list[tuple[int, bytes]] | None:
        """``checkpoints/<size, 20 digits>`` (other names are ignored); ``None`` without it."""
        folder = self._confine("checkpoints")
        if not folder.is_dir():
            return None
        try:
            names = sorted(item.name for item in os.scandir(folder))
        except OSError as exc:
            raise SourceError(f"cannot list checkpoints/: {exc.strerror or exc}") from exc
        return [
            (int(name), self._read(f"checkpoints/{name}", MAX_NOTE_SIZE))
            for name in names
            if _HISTORY_NAME.fullmatch(name)
        ]

    def openings(self, seq: int) -> Mapping[str, Any] | None:
        """Entry ``seq``'s openings from ``openings.json`` (absent: an export of a log that
        seals nothing, or made before sealed values; then a sealed entry fails step 8)."""
        if self._openings is None:
            self._openings = _openings_file(self)
        return self._openings.get(seq)

    _openings: dict[int, Mapping[str, Any]] | None = None

    def _confine(self, relative: str) -> Path:
        try:
            target = (self._root / relative).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise SourceError(f"cannot resolve {relative}: {exc}", path=relative) from exc
        if not target.is_relative_to(self._root):
            raise SourceError(f"{relative} leads outside {self._name}", path=relative)
        return target

    def _read(self, relative: str, limit: int) -> bytes:
        target = self._confine(relative)
        try:
            # Non-blocking open, then only a regular file is read: a FIFO or a device planted
            # in an export would otherwise block the auditor forever or feed it endlessly.
            descriptor = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(descriptor, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise SourceError(f"{relative} is not a regular file", path=relative)
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise MissingFileError(f"{relative} is missing", path=relative) from None
        except OSError as exc:
            raise SourceError(
                f"cannot read {relative}: {exc.strerror or exc}", path=relative
            ) from exc
        if len(data) > limit:
            raise OversizeError(f"{relative} is larger than {limit} bytes", path=relative)
        return data


class HttpSource:
    """A log server: ``<url>/log/checkpoint``, ``/log/policy``, ``/log/tile/...``.

    ``url`` may be the site (``/log`` is appended) or already end in ``/log``. Responses are
    read up to the bound of what was asked for; proxies from the environment are not used.
    The history comes from gavel's ``/log/checkpoints`` listing (one 20-digit name per line)
    when the server has one; :meth:`checkpoints` returns ``None`` when it does not (404). A
    live log grows while it is read: checkpoints larger than the one :meth:`checkpoint` served
    were published after it and are left out of the history.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"not an http(s) URL: {url}")
        if parts.query or parts.fragment:
            raise SourceError(f"the log URL must not have a query or fragment: {url}")
        base = url.rstrip("/")
        if not parts.path.rstrip("/").endswith("/log"):
            base += "/log"
        self._base = base
        self._name = url
        self._timeout = timeout
        self._headers = {"User-Agent": "gavel-audit/1", "Accept-Encoding": "identity"}
        if token:  # an auditor session: sealed entries of open lots are readable with it
            self._headers["Authorization"] = f"Bearer {token}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._served_size: int | None = None
        self._pages = {}

    @property
    def name(self) -> str:
        """The URL as given."""
        return self._name

    def checkpoint(self) -> bytes:
        """``GET /log/checkpoint``."""
        data = self._get("checkpoint", MAX_NOTE_SIZE)
        size_line = data.split(b"\n", 2)[1:2]
        # At most 20 digits (uint64): a longer line would also exceed Python's int conversion
        # limit and raise ValueError; parsing the note refuses it properly later.
        readable = size_line and size_line[0].isdigit() and len(size_line[0]) <= 20
        self._served_size = int(size_line[0]) if readable else None
        return data

    def policy(self) -> bytes:
        """``GET /log/policy``."""
        return self._get("policy", MAX_POLICY_SIZE)

    def read(self, path: str) -> bytes:
        """``GET /log/tile/...``."""
        return self._get(path, _tile_limit(path))

    def openings(self, seq: int) -> Mapping[str, Any] | None:
        """Entry ``seq``'s openings, ``GET /log/openings/<begin>-<end>`` by pages of 4,096
        entries (an auditor session, ``token``, is needed for them); from a static mirror of
        an export (no such route), its ``openings.json``."""
        if self._whole is not None:
            return self._whole.get(seq)
        begin = seq - seq % OPENINGS_PAGE
        page = self._pages.get(begin)
        if page is None:
            size = self._served_size if self._served_size is not None else begin + OPENINGS_PAGE
            path = f"openings/{begin}-{max(begin + 1, min(size, begin + OPENINGS_PAGE))}"
            try:
                page = _openings_map(self._get(path, MAX_OPENINGS_BYTES), path)
            except MissingFileError:
                self._whole = _openings_map(
                    self._get(OPENINGS_FILE, MAX_OPENINGS_BYTES), OPENINGS_FILE
                )
                return self._whole.get(seq)
            self._pages[begin] = page
        return page.get(seq)

    _whole: dict[int, Mapping[str, Any]] | None = None
    _pages: dict[int, dict[int, Mapping[str, Any]]]

    def checkpoints(self) -> list[tuple[int, bytes]] | None:
        """``GET /log/checkpoints`` then each ``/log/checkpoints/<name>``; ``None`` on 404
        (tlog-tiles itself defines no history)."""
        try:
            listing = self._get("checkpoints", MAX_LISTING_BYTES)
        except MissingFileError:
            return None
        try:
            names = listing.decode("ascii").split()
        except UnicodeDecodeError:
            raise SourceError("the checkpoint listing is not ASCII", path="checkpoints") from None
        if not all(_HISTORY_NAME.fullmatch(name) for name in names):
            raise SourceError("the checkpoint listing holds other names than 20 digits")
        if self._served_size is not None:
            names = [name for name in names if int(name) <= self._served_size]
        return [
            (int(name), self._get(f"checkpoints/{name}", MAX_NOTE_SIZE)) for name in sorted(names)
        ]

    def _get(self, relative: str, limit: int) -> bytes:
        url = f"{self._base}/{relative}"
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                data = read_response(response, limit, self._timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise MissingFileError(
                    f"{relative} is missing (HTTP {exc.code})", path=relative
                ) from None
            if exc.code == 403:  # a sealed entry of an open lot (docs/protocol.md section 4)
                raise SourceError(
                    f"GET {url}: HTTP 403 (sealed until its lot closes: give an auditor "
                    "session with --token or GAVEL_TOKEN)",
                    path=relative,
                ) from None
            raise SourceError(f"GET {url}: HTTP {exc.code}", path=relative) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SourceError(f"GET {url}: {reason}", path=relative) from exc
        if len(data) > limit:
            raise OversizeError(f"{relative} is larger than {limit} bytes", path=relative)
        return data


def read_response(response: Any, limit: int, seconds: float) -> bytes:
    """Up to ``limit + 1`` bytes of an HTTP response, within ``seconds`` in all: the socket
    timeout bounds each wait for data, not a server that trickles a byte at a time. Raises
    ``TimeoutError`` past the deadline."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk: bytes = response.read1(min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not read within {seconds:g} s")
    return b"".join(chunks)


def open_source(location: str, *, token: str | None = None) -> LedgerSource:
    """A :class:`HttpSource` for an ``http(s)://`` URL (with ``token``, an auditor session,
    if given), else a :class:`DirectorySource`."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", location):
        return HttpSource(location, token=token)
    return DirectorySource(location)


# --------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_ledger` established. Fields of a step that did not pass are empty.

    :meth:`to_json` is deterministic (sorted keys, no wall-clock time): two runs over the
    same source give the same bytes.
    """

    source: str
    origin: str | None
    log_key: str | None
    checkpoint_size: int | None
    checkpoint_root: bytes | None
    history: tuple[int, ...] | None  # sizes of the checkpoint history; None: unavailable
    entries: int
    entry_types: Mapping[str, int]
    lots: Mapping[str, Mapping[str, Any]]
    commands: int
    rejected: int
    sales: int
    witnesses: tuple[str, ...]
    cosigners: tuple[str, ...]
    quorum: str | None
    steps_passed: tuple[AuditStep, ...]
    notes: tuple[str, ...]
    failure: AuditError | None = None
    idv_entries: int = 0  # identity attestations verified (step 8)
    bid_signatures: int = 0  # bidders' signed requests verified (step 8)

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        failed = self.failure.step if self.failure else None
        history = "unavailable"
        if self.history is not None:
            verified = AuditStep.CONSISTENCY in self.steps_passed
            history = "verified" if verified else "not verified"
        steps = []
        for step in AuditStep:
            status = "passed" if step in self.steps_passed else "not checked"
            if step == failed:
                status = "failed"
            steps.append({"step": int(step), "name": step.title, "status": status})
        root = base64.b64encode(self.checkpoint_root).decode() if self.checkpoint_root else None
        return {
            "ok": self.ok,
            "source": self.source,
            "origin": self.origin,
            "log_key": self.log_key,
            "checkpoint": {"size": self.checkpoint_size, "root": root},
            "checkpoints": {
                "history": history,
                "sizes": list(self.history or ()),
            },
            "entries": self.entries,
            "entry_types": dict(self.entry_types),
            "lots": {lot: dict(outcome) for lot, outcome in self.lots.items()},
            "commands": self.commands,
            "rejected": self.rejected,
            "sales": self.sales,
            "idv_entries": self.idv_entries,
            "bid_signatures_verified": self.bid_signatures,
            "notaries": {
                "policy": list(self.witnesses),
                "cosigned_latest": list(self.cosigners),
                "quorum": self.quorum,
            },
            "steps": steps,
            "notes": list(self.notes),
            "failure": self.failure.to_dict() if self.failure else None,
        }

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys, two-space indent, final newline)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Recomputed tree


class _TreeHashes:
    """Every node hash of the tree recomputed from the entries, one bytearray per level
    (64 bytes per entry in all). A :class:`chain.HashReader` for proofs and roots."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self.levels[0]) // HASH_SIZE

    def extend(self, leaf_hashes: bytes) -> None:
        """Append leaf hashes and every interior node they complete (RFC 9162 2.1.1)."""
        self.levels[0] += leaf_hashes
        sha256 = hashlib.sha256
        level = 0
        while True:
            below = self.levels[level]
            complete = len(below) // (2 * HASH_SIZE)
            if complete == 0:
                return
            if level + 1 == len(self.levels):
                self.levels.append(bytearray())
            above = self.levels[level + 1]
            have = len(above) // HASH_SIZE
            if have == complete:
                return
            view = bytes(below[2 * HASH_SIZE * have : 2 * HASH_SIZE * complete])
            above += b"".join(
                sha256(b"\x01" + view[i : i + 2 * HASH_SIZE]).digest()
                for i in range(0, len(view), 2 * HASH_SIZE)
            )
            level += 1

    def hashes(self, level: int, begin: int, end: int) -> bytes:
        """The hashes of nodes ``begin..end-1`` of ``level`` that are complete."""
        if level >= len(self.levels):
            return b""
        return bytes(self.levels[level][begin * HASH_SIZE : end * HASH_SIZE])

    def __call__(self, level: int, index: int) -> bytes:
        digest = self.hashes(level, index, index + 1)
        if len(digest) != HASH_SIZE:
            raise ProofError(f"node ({level}, {index}) is not in the recomputed tree")
        return digest


# --------------------------------------------------------------------------------------------
# Actor keys (step 7)


@dataclass(frozen=True, slots=True)
class _ActorKey:
    verifier: Ed25519Verifier

    def matches(self, kid: str) -> bool:
        return kid_names_key(self.verifier, kid)


class _KeyRing:
    """The actor keys valid at the current point of the log, and the kid rule."""

    def __init__(self) -> None:
        self._keys: list[_ActorKey] = []
        self._resolved: dict[str, tuple[bytes, ...]] = {}

    def add(self, verifier: Ed25519Verifier) -> None:
        self._keys.append(_ActorKey(verifier))
        self._resolved.clear()

    def revoke(self, kid: str) -> None:
        self._keys = [key for key in self._keys if not key.matches(kid)]
        self._resolved.clear()

    def resolve(self, kid: str) -> tuple[bytes, ...]:
        """The public keys ``kid`` may name now (empty: none)."""
        found = self._resolved.get(kid)
        if found is None:
            found = tuple(key.verifier.public_key for key in self._keys if key.matches(kid))
            self._resolved[kid] = found
        return found


def _ed25519_vkey(text: Any, what: str) -> Ed25519Verifier:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a vkey string")
    try:
        verifier = parse_vkey(text)
    except ChainError as exc:
        raise ValueError(f"{what}: {exc.message}") from exc
    if not isinstance(verifier, Ed25519Verifier):
        raise ValueError(f"{what} is not an Ed25519 (type 0x01) key")
    return verifier


# --------------------------------------------------------------------------------------------
# Worker side: steps 1, 2 and 7 per entry (runs in a process pool, or in-process)

_Finding = tuple[int, int, str]  # (step, seq, message)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Consecutive entries for a worker, with the actor keys the main pass resolved."""

    first_seq: int
    prev_leaf: bytes
    entries: tuple[bytes, ...]
    keys: tuple[tuple[bytes, ...], ...]
    check_actors: bool


_BODY_START: Final = b'},"body":'
_BODY_END: Final = b',"prev":'


def _signed_message(entry_type: str, data: bytes) -> bytes:
    """``chain.actor_message(type, body)`` cut from entry bytes that ``parse_entry`` accepted.

    Canonical JSON (RFC 8785) orders the members actor, body, prev, seq, t, type, v, and a
    member nested in a canonical object is encoded exactly as on its own; inside strings every
    quote is escaped. So ``body`` starts after the first ``},"body":`` (the end of ``actor``,
    which holds two strings) and ends at the last ``,"prev":`` (only scalars follow it): the
    slice is ``JCS(body)`` without re-encoding it (the dominant cost of ``verify_actor``).
    """
    start = data.index(_BODY_START) + len(_BODY_START)
    end = data.rindex(_BODY_END)
    return b"gavel/" + entry_type.encode("ascii") + b"/v1\n" + data[start:end]


@functools.lru_cache(maxsize=64)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def _signature_verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        _public_key(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _chain_finding(seq: int, prev_leaf: bytes, entry: Entry) -> _Finding | None:
    if entry.seq != seq:
        return (AuditStep.CHAIN, seq, f"the entry at index {seq} has seq {entry.seq}")
    try:
        verify_chain(prev_leaf or None, entry)
    except EntryError:
        return (AuditStep.CHAIN, seq, f"prev does not match the leaf hash of entry {seq - 1}")
    return None


def _check_chunk(chunk: _Chunk) -> list[_Finding]:
    """Parse every entry (step 1), check seq and prev (step 2) and actor signatures (step 7).

    Returns the first finding of each step, in step order. Pure: safe in a worker process.
    """
    findings: list[_Finding] = []
    chain_finding: _Finding | None = None
    actor_finding: _Finding | None = None
    prev = chunk.prev_leaf
    for offset, data in enumerate(chunk.entries):
        seq = chunk.first_seq + offset
        try:
            entry = parse_entry(data)
        except ChainError as exc:
            findings.append((AuditStep.PARSE, seq, exc.message))
            break
        if chain_finding is None:
            chain_finding = _chain_finding(seq, prev, entry)
        prev = leaf_hash(data)
        keys = chunk.keys[offset]
        if chunk.check_actors and actor_finding is None and keys:
            message = _signed_message(entry.type.value, data)
            if not any(_signature_verifies(key, entry.actor.sig, message) for key in keys):
                actor_finding = (
                    AuditStep.ACTOR_SIGNATURES,
                    seq,
                    f"actor signature does not verify for kid {entry.actor.kid!r}",
                )
    findings.extend(found for found in (chain_finding, actor_finding) if found is not None)
    return findings


class _EntryChecker:
    """Runs :func:`_check_chunk` in worker processes (or in-process with no workers), a
    bounded number of chunks in flight; findings are handed back in submission order."""

    def __init__(self, workers: int, report: Callable[[_Finding], None]) -> None:
        self._report = report
        self._pending: deque[Future[list[_Finding]]] = deque()
        self._limit = 2 * workers + 1
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            # fork: no re-import of the caller's __main__ and no start-up cost. With fork the
            # pool starts every worker on the first submit: do it now, before the pass starts
            # its reader threads. Forking a process that runs other threads is unsafe (and
            # deprecated from Python 3.12): then start the workers afresh instead.
            methods = multiprocessing.get_all_start_methods()
            method = "fork" if "fork" in methods and threading.active_count() == 1 else "spawn"
            context = multiprocessing.get_context(method)
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            self._executor.submit(_check_chunk, _Chunk(0, b"", (), (), False)).result()

    def submit(self, chunk: _Chunk) -> None:
        if self._executor is None:
            self._deliver(_check_chunk(chunk))
            return
        self._pending.append(self._executor.submit(_check_chunk, chunk))
        while len(self._pending) > self._limit:
            self._collect()

    def drain(self) -> None:
        while self._pending:
            self._collect()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _collect(self) -> None:
        future = self._pending.popleft()
        try:
            findings = future.result()
        except BrokenProcessPool as exc:
            raise NoVerdict(f"a worker process checking entries died: {exc}") from exc
        self._deliver(findings)

    def _deliver(self, findings: list[_Finding]) -> None:
        for finding in findings:
            self._report(finding)


# --------------------------------------------------------------------------------------------
# The pipeline


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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


def _replay_message(error: ReplayError) -> str:
    """The message of a :class:`ReplayError` without its ``entry N (lot X):`` prefix."""
    where = f"entry {error.seq}" + (f" (lot {error.lot})" if error.lot else "")
    return str(error).removeprefix(f"{where}: ")


def _parse_failure(data: bytes) -> str:
    try:
        parse_entry(data)
    except ChainError as exc:
        return exc.message
    return "entry fields cannot be read"


_COMMAND_TYPES: Final = frozenset({"bid", "registration", "deposit", "lot_state"})


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
        self.tree = _TreeHashes()
        self.keys = _KeyRing()
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

    def _finding(self, finding: _Finding) -> None:
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
                workers = (os.cpu_count() or 1) if self.size >= _AUTO_PARALLEL_FROM else 0
            checker = _EntryChecker(workers, self._finding)
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

    def _pass(self, checker: _EntryChecker) -> bool:
        """Read every entry bundle and level-0 tile of the latest size; True if all were read."""
        done = 0
        reads = contextlib.closing(_prefetch(self.source, entry_bundles_for_size(self.size)))
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
        checker: _EntryChecker,
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
            if len(self._chunk_entries) >= _CHUNK_ENTRIES:
                self._flush(checker)
        return True

    def _stop(self, checker: _EntryChecker) -> bool:
        self._flush(checker)
        return False

    def _flush(self, checker: _EntryChecker) -> None:
        if not self._chunk_entries:
            return
        first = self._chunk_first
        chunk = _Chunk(
            first,
            self.tree(0, first - 1) if first else b"",
            tuple(self._chunk_entries),
            tuple(self._chunk_keys),
            self.needs(AuditStep.ACTOR_SIGNATURES, first),
        )
        self._chunk_entries, self._chunk_keys = [], []
        checker.submit(chunk)

    def _entry(self, seq: int, data: bytes) -> tuple[bytes, ...] | None:
        """The sequential per-entry checks; returns the entry's candidate actor keys, or
        ``None`` when the entry cannot be read at all (the pass stops there)."""
        try:
            kind, time_us, body, kid = _entry_fields(data)
        except (ValueError, KeyError, TypeError, RecursionError, ChainError):
            self.fail(AuditStep.PARSE, seq, _parse_failure(data))
            return None
        self.types[kind] += 1
        if seq == 0:
            self._house(kind, body)
        keys: tuple[bytes, ...] = ()
        if self.needs(AuditStep.ACTOR_SIGNATURES, seq):
            keys = self.keys.resolve(kid)
            if not keys:
                self.fail(
                    AuditStep.ACTOR_SIGNATURES,
                    seq,
                    f"actor kid {kid!r} names no key valid at this point of the log",
                )
            elif kind == "key":
                self._key_entry(seq, body)
        if seq == 0 and kind == "house":  # whether bids must be signed (t: step 9's business)
            self.replay.identities.house(body)
        elif seq > 0 and self.needs(AuditStep.REPLAY, seq):
            try:
                self.replay.add(seq, kind, time_us, body, kid)
            except ReplayError as exc:
                self.fail(AuditStep.REPLAY, exc.seq, _replay_message(exc), lot=exc.lot)
        if self.needs(AuditStep.TIME_BOUNDS, seq):
            self._time(seq, kind, time_us, body)
        self.last_t = max(self.last_t, time_us)
        return keys

    def _house(self, kind: str, body: Mapping[str, Any]) -> None:
        """Entry 0 ties the log to its key (step 4) and gives the first actor key."""
        if kind != "house":
            self.fail(AuditStep.LOG_SIGNATURES, 0, f"entry 0 is a {kind} entry, not house")
            return
        try:
            house = _ed25519_vkey(body.get("vkey"), "house vkey")
        except ValueError as exc:
            self.fail(AuditStep.LOG_SIGNATURES, 0, str(exc))
            return
        self.keys.add(house)
        if body.get("origin") != self.origin:
            self.fail(
                AuditStep.LOG_SIGNATURES,
                0,
                f"the house entry names origin {body.get('origin')!r}, "
                f"the checkpoints {self.origin!r}",
            )
        assert self.policy is not None
        policy_keys = [log.verifier for log in self.policy.logs if log.verifier.name == self.origin]
        if house not in policy_keys:
            self.fail(
                AuditStep.LOG_SIGNATURES,
                0,
                "the house entry's vkey is not the log key in the policy",
            )

    def _key_entry(self, seq: int, body: Mapping[str, Any]) -> None:
        """A ``key`` entry (provisional body: ``vkey`` added, optional ``revoke`` list of kids
        removed), effective from the next entry."""
        try:
            added = _ed25519_vkey(body.get("vkey"), "key entry vkey")
            revoke = body.get("revoke", [])
            if not isinstance(revoke, list) or not all(isinstance(k, str) for k in revoke):
                raise ValueError("key entry revoke must be a list of kids")
        except ValueError as exc:
            self.fail(AuditStep.ACTOR_SIGNATURES, seq, str(exc))
            return
        for kid in revoke:
            self.keys.revoke(kid)
        self.keys.add(added)

    def _time(self, seq: int, kind: str, time_us: int, body: Mapping[str, Any]) -> None:
        """Step 9 per entry. (``t`` and ``ingress`` of commands are also replayed in step 8.)"""
        if time_us < self.last_t:
            self.fail(AuditStep.TIME_BOUNDS, seq, "t is earlier than the previous entry's t")
        if self.now_us is not None and time_us > self.now_us + self.skew:
            self.fail(AuditStep.TIME_BOUNDS, seq, "t is in the future")
        if kind == "lot":
            stamp = body.get("created")
        elif kind in _COMMAND_TYPES:
            stamp = None  # replayed with its ingress time in step 8
        else:
            stamp = body.get("ingress")
        if stamp is not None:
            try:
                if parse_time(stamp) > time_us:
                    self.fail(AuditStep.TIME_BOUNDS, seq, f"{kind} time is after the entry's t")
            except ChainError as exc:
                self.fail(AuditStep.TIME_BOUNDS, seq, f"unreadable time in body: {exc.message}")
        if seq + 1 in self.times_at:
            self.times_at[seq + 1] = time_us

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
                self._compare_tile(tile, _read_or_error(self.source, tile.path), expected)
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
        """Step 10: the export's receipts (:mod:`auction.audit_receipts`)."""
        from .audit_receipts import check_receipts

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


def _read_or_error(source: LedgerSource, path: str) -> bytes | SourceError:
    try:
        return source.read(path)
    except SourceError as exc:
        return exc


def _prefetch(
    source: LedgerSource, bundles: Sequence[EntryBundle]
) -> Generator[tuple[EntryBundle, bytes | SourceError, bytes | SourceError], None, None]:
    """Each bundle with its bytes and its level-0 tile's, read a few bundles ahead."""

    def fetch(bundle: EntryBundle) -> tuple[bytes | SourceError, bytes | SourceError]:
        tile = Tile(0, bundle.index, bundle.width)
        return _read_or_error(source, bundle.path), _read_or_error(source, tile.path)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="gavel-audit-read") as pool:
        pending: deque[tuple[EntryBundle, Future[tuple[bytes | SourceError, ...]]]] = deque()
        upcoming = iter(bundles)
        try:
            for bundle in upcoming:
                pending.append((bundle, pool.submit(fetch, bundle)))
                if len(pending) >= _PREFETCH_DEPTH:
                    break
            while pending:
                bundle, future = pending.popleft()
                following = next(upcoming, None)
                if following is not None:
                    pending.append((following, pool.submit(fetch, following)))
                data, tile_data = future.result()
                yield bundle, data, tile_data
        finally:
            for _, future in pending:
                future.cancel()


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
       ``house`` entry naming that origin and that very key;
    5. quorum: the policy's quorum is met by the notaries that cosigned the latest checkpoint
       (no notaries in the policy: passes, and the report says so);
    6. consistency: no checkpoint in the history is larger than the latest, one root per size,
       and every pair of consecutive checkpoints is consistent (RFC 9162 proofs built from the
       recomputed hashes, checked with ``chain.verify_consistency``);
    7. actor signatures: each entry's ``actor.kid`` names a key valid at that point (the house
       key from entry 0; ``key`` entries add and revoke keys) and the signature verifies;
    8. replay: :class:`auction.ledger.LedgerReplay` re-runs every lot through the rules engine
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
    10. receipts (export directories): :func:`auction.audit_receipts.check_receipts`.

    Steps 1, 2 and 7 run in ``workers`` processes (``None``: every core for logs of 4,096
    entries and more, in-process below; ``0``: in-process). Memory: 64 bytes per entry.
    Returns the report; raises :class:`AuditError` (with ``.report``) at the first failing
    step, or :class:`SourceError` when the source cannot be read at all.
    """
    return _LedgerAudit(source, progress, workers, now_us, clock_skew_us).run()


# --------------------------------------------------------------------------------------------
# Receipts


@dataclass(frozen=True)
class ReceiptReport:
    """A verified receipt: ``entry`` is leaf ``seq`` of the quorum-signed tree."""

    seq: int
    entry_type: str
    lot: str | None
    origin: str
    checkpoint_size: int
    checkpoint_root: bytes
    witnesses: tuple[str, ...]
    actor_checked: bool
    notes: tuple[str, ...]

    def to_json(self) -> str:
        """Deterministic JSON text."""
        value = {
            "ok": True,
            "seq": self.seq,
            "type": self.entry_type,
            "lot": self.lot,
            "origin": self.origin,
            "checkpoint": {"size": self.checkpoint_size, "root": _b64(self.checkpoint_root)},
            "witnesses": list(self.witnesses),
            "actor_checked": self.actor_checked,
            "notes": list(self.notes),
        }
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _read_file(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise SourceError(
            f"cannot read {what} {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    if len(data) > limit:
        raise OversizeError(f"{what} {path} is larger than {limit} bytes", path=str(path))
    return data


def verify_receipt_files(
    proof_path: str | os.PathLike[str],
    entry_path: str | os.PathLike[str],
    policy_path: str | os.PathLike[str] | None = None,
) -> ReceiptReport:
    """Verify a ``.tlog-proof`` receipt and its ``.entry`` offline, against a trust policy.

    The policy is required: a receipt names its log key only by name and id, so trust must
    come from elsewhere. Without ``policy_path`` a file named ``policy`` next to the receipt
    or one directory up (the export layout: ``receipts/`` beside ``policy``) is used; if there
    is none, or it does not parse, :class:`NoVerdict` asks for one.

    Steps 1-6 are ``chain.verify_receipt`` (parse, entry, checkpoint, signatures, quorum,
    inclusion); step ``7 actor`` checks the entry's actor signature when its kid names the
    log's (house) key, the only key known offline; otherwise the report notes it was not
    checked. Raises :class:`ReceiptError` at the first failing step, :class:`NoVerdict`
    (:class:`SourceError`) when a file cannot be read or no policy is available.
    """
    proof_file, entry_file = Path(proof_path), Path(entry_path)
    if policy_path is None:
        candidates = [proof_file.parent / "policy", proof_file.parent.parent / "policy"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise NoVerdict("no trust policy found next to the receipt: pass --policy FILE")
        policy_file = found
    else:
        policy_file = Path(policy_path)
    receipt_bytes = _read_file(proof_file, MAX_RECEIPT_SIZE, "receipt")
    entry_bytes = _read_file(entry_file, MAX_ENTRY_BYTES, "entry")
    policy_bytes = _read_file(policy_file, MAX_POLICY_SIZE, "policy")
    try:
        policy = parse_policy(policy_bytes)
    except ChainError as exc:
        raise NoVerdict(f"policy {policy_file}: {exc.message}") from exc
    try:
        verified = verify_receipt(receipt_bytes, entry_bytes, None, policy)
    except ChainError as exc:
        raise ReceiptError(exc.step or "1 parse", exc.message) from exc
    entry = verified.entry
    checkpoint = verified.checkpoint.checkpoint
    notes: list[str] = []
    house_keys = [
        _ActorKey(log.verifier) for log in policy.logs if log.verifier.name == checkpoint.origin
    ]
    matching = [key for key in house_keys if key.matches(entry.actor.kid)]
    for key in matching:
        try:
            verify_actor(entry, key.verifier.public_key)
            break
        except ActorSignatureError:
            continue
    else:
        if matching:
            raise ReceiptError(
                "7 actor", f"actor signature does not verify for kid {entry.actor.kid!r}"
            )
        notes.append(
            f"actor signature not checked: kid {entry.actor.kid!r} is not the log's key "
            "(other keys need the whole ledger: gavel audit verify)"
        )
    if not policy.witnesses:
        notes.append("no notaries in policy")
    lot = entry.body.get("lot")
    return ReceiptReport(
        seq=entry.seq,
        entry_type=entry.type.value,
        lot=lot if isinstance(lot, str) else None,
        origin=checkpoint.origin,
        checkpoint_size=checkpoint.size,
        checkpoint_root=checkpoint.root,
        witnesses=tuple(sorted(verified.witnesses)),
        actor_checked=bool(matching),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# Comparing two views; equivocation evidence


@dataclass(frozen=True)
class _View:
    label: str
    source: LedgerSource
    latest: SignedCheckpoint
    checkpoints: tuple[SignedCheckpoint, ...]  # latest and history, by size
    reader: TileHashReader
    has_history: bool

    @property
    def size(self) -> int:
        return self.latest.checkpoint.size


@dataclass(frozen=True)
class ComparisonReport:
    """The result of :func:`compare`: ``status`` is ``"consistent"`` or ``"equivocation"``.

    For an equivocation, ``evidence`` is the self-contained evidence document: store it with
    :func:`write_evidence`, check it with :func:`verify_evidence`.
    """

    status: str
    origin: str
    sizes: tuple[int, int]
    roots: tuple[bytes, bytes]
    checked: int
    notes: tuple[str, ...]
    evidence: Mapping[str, Any] | None = None

    @property
    def consistent(self) -> bool:
        return self.status == "consistent"

    def to_json(self) -> str:
        """Deterministic JSON text."""
        value = {
            "status": self.status,
            "origin": self.origin,
            "sizes": list(self.sizes),
            "roots": [_b64(root) for root in self.roots],
            "checkpoints_checked": self.checked,
            "notes": list(self.notes),
            "evidence": self.evidence,
        }
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _open_view(label: str, source: LedgerSource, policy: Policy) -> _View:
    notes: list[Note] = []
    try:
        notes.append(parse_note(source.checkpoint()))
        history = source.checkpoints()
        for _, data in history or ():
            notes.append(parse_note(data))
        origin = parse_checkpoint_text(notes[0].text).origin
    except (ChainError, MissingFileError, OversizeError) as exc:
        raise AuditError(AuditStep.PARSE, None, f"{label} ({source.name}): {exc.message}") from exc
    signed: list[SignedCheckpoint] = []
    try:
        log_keys = policy.log_verifiers(origin)
        for note in notes:
            signed.append(open_checkpoint(note, log_keys, policy.cosigners()))
    except ChainError as exc:
        raise AuditError(
            AuditStep.LOG_SIGNATURES, None, f"{label} ({source.name}): {exc.message}"
        ) from exc
    latest = signed[0]
    reader = TileHashReader(
        latest.checkpoint.size, lambda tile: source.read(tile.path), cache_size=512
    )
    ordered = tuple(sorted(signed, key=lambda s: (s.checkpoint.size, s.checkpoint.root)))
    return _View(label, source, latest, ordered, reader, history is not None)


def _prefix_root(view: _View, size: int) -> bytes:
    try:
        return tree_root(size, view.reader)
    except MissingFileError as exc:
        raise AuditError(AuditStep.ROOTS, None, f"{view.label}: {exc.message}") from exc
    except ChainError as exc:
        raise AuditError(AuditStep.ROOTS, None, f"{view.label}: {exc.message}") from exc


def _proven_prefix(view: _View, size: int) -> tuple[bytes, list[bytes]]:
    """The root of the first ``size`` entries of ``view``'s tree and the consistency proof
    that ties it to the view's signed latest root (so the view's tiles cannot lie)."""
    root = _prefix_root(view, size)
    try:
        proof = consistency_proof(size, view.size, view.reader)
        verify_consistency(size, view.size, proof, root, view.latest.checkpoint.root)
    except (ChainError, MissingFileError) as exc:
        raise EvidenceError(
            f"{view.label} ({view.source.name}): its tiles do not match its own checkpoint: "
            f"{exc.message}"
        ) from exc
    return root, proof


def compare(a: LedgerSource, b: LedgerSource, *, policy: bytes | None = None) -> ComparisonReport:
    """Compare two views of one log (two mirrors, a server and an export, two exports).

    Both latest checkpoints and every checkpoint of both histories must be signed by the log
    key of ``policy`` (default: ``a``'s policy file). The view with the larger latest tree is
    the reference; every checkpoint of either view must be a prefix of it, which is proven
    with a consistency proof from the reference's tiles. Returns ``"consistent"``, or
    ``"equivocation"`` with a self-contained ``evidence`` document (both signed notes, the
    proof, and where they diverge with inclusion proofs and the entries). Raises
    :class:`AuditError` when a checkpoint does not verify, :class:`EvidenceError` when the
    views are of different logs or a view's tiles contradict its own checkpoint.
    """
    try:
        trust = parse_policy(policy if policy is not None else a.policy())
    except (ChainError, MissingFileError, OversizeError) as exc:
        raise AuditError(AuditStep.PARSE, None, f"policy: {exc.message}") from exc
    view_a, view_b = _open_view("A", a, trust), _open_view("B", b, trust)
    origin = view_a.latest.checkpoint.origin
    if view_b.latest.checkpoint.origin != origin:
        raise EvidenceError(
            f"A and B are different logs: {origin!r} and {view_b.latest.checkpoint.origin!r}"
        )
    reference, other = (view_b, view_a) if view_b.size > view_a.size else (view_a, view_b)
    if _prefix_root(reference, reference.size) != reference.latest.checkpoint.root:
        raise EvidenceError(
            f"{reference.label} ({reference.source.name}): its tiles do not give its root"
        )
    notes = [
        f"{view.label}: checkpoint history unavailable, latest only"
        for view in (view_a, view_b)
        if not view.has_history
    ]
    checked: set[tuple[int, bytes]] = set()
    for view in (other, reference):
        for signed in view.checkpoints:
            checkpoint = signed.checkpoint
            if (checkpoint.size, checkpoint.root) in checked:
                continue
            if checkpoint.size > reference.size:
                notes.append(
                    f"{view.label}: the checkpoint of size {checkpoint.size} in its history is "
                    "beyond both latest checkpoints and was not compared"
                )
                continue
            proven, proof = _proven_prefix(reference, checkpoint.size)
            checked.add((checkpoint.size, checkpoint.root))
            if proven != checkpoint.root:
                evidence = _evidence(trust, view, signed, reference, proven, proof)
                return ComparisonReport(
                    "equivocation",
                    origin,
                    (view_a.size, view_b.size),
                    (view_a.latest.checkpoint.root, view_b.latest.checkpoint.root),
                    len(checked),
                    tuple(notes),
                    evidence,
                )
    return ComparisonReport(
        "consistent",
        origin,
        (view_a.size, view_b.size),
        (view_a.latest.checkpoint.root, view_b.latest.checkpoint.root),
        len(checked),
        tuple(notes),
    )


def _first_difference(x: _View, y: _View, size: int) -> int:
    """The first leaf index below ``size`` where the two trees differ (prefix roots are equal
    exactly up to it); the caller knows they differ at ``size``."""
    low, high = 0, size
    while high - low > 1:
        middle = (low + high) // 2
        if _prefix_root(x, middle) == _prefix_root(y, middle):
            low = middle
        else:
            high = middle
    return high - 1


def _leaf_evidence(view: _View, index: int, size: int) -> dict[str, Any]:
    leaf = view.reader(0, index)
    proof = inclusion_proof(index, size, view.reader)
    root = _prefix_root(view, size)
    verify_inclusion(index, size, leaf, proof, root)
    bundle_index = index // TILE_WIDTH
    bundle = EntryBundle(bundle_index, min(TILE_WIDTH, view.size - bundle_index * TILE_WIDTH))
    entry: str | None = None
    try:
        raws = parse_entry_bundle(bundle, view.source.read(bundle.path))
        data = raws[index - bundle.leaf_begin]
        if leaf_hash(data) == leaf:
            entry = _b64(data)
    except (ChainError, SourceError):
        entry = None
    return {
        "source": view.source.name,
        "leaf_hash": _b64(leaf),
        "inclusion_proof": [_b64(digest) for digest in proof],
        "entry": entry,
    }


def _evidence(
    policy: Policy,
    view: _View,
    signed: SignedCheckpoint,
    reference: _View,
    proven: bytes,
    proof: list[bytes],
) -> dict[str, Any]:
    first, second = signed.checkpoint, reference.latest.checkpoint
    log_keys = policy.log_verifiers(first.origin)
    try:
        verify_consistency(first.size, second.size, proof, first.root, second.root)
        failure = "none"  # unreachable: the roots differ
    except ChainError as exc:
        failure = exc.message
    divergence: dict[str, Any] | None = None
    if first.size and view.size >= first.size and _prefix_root(view, first.size) == first.root:
        _proven_prefix(view, first.size)
        index = _first_difference(view, reference, first.size)
        divergence = {
            "index": index,
            "first": _leaf_evidence(view, index, first.size),
            "second": _leaf_evidence(reference, index, second.size),
        }
    return {
        "v": EVIDENCE_VERSION,
        "origin": first.origin,
        "log_vkeys": [key.vkey for key in log_keys],
        "claim": ("the log signed two checkpoints that cannot both describe one append-only tree"),
        "checkpoints": [
            {
                "source": view.source.name,
                "size": first.size,
                "root": _b64(first.root),
                "signed_note": signed.to_bytes().decode("utf-8"),
            },
            {
                "source": reference.source.name,
                "size": second.size,
                "root": _b64(second.root),
                "signed_note": reference.latest.to_bytes().decode("utf-8"),
            },
        ],
        "consistency": {
            "from_size": first.size,
            "to_size": second.size,
            "proof": [_b64(digest) for digest in proof],
            "from_root_signed": _b64(first.root),
            "from_root_proven": _b64(proven),
            "check": "verify_consistency(from_size, to_size, proof, from_root_signed, to_root)",
            "error": failure,
        },
        "divergence": divergence,
        "how_to_verify": [
            "1. both signed_note values verify under a log_vkey (C2SP signed-note, Ed25519)",
            "2. RFC 9162 consistency: proof leads from (from_size, from_root_proven) to the "
            "second checkpoint's root, yet from_root_proven differs from from_root_signed",
            "3. divergence (if present): each leaf_hash is at index under its checkpoint's "
            "root by its inclusion_proof (RFC 9162 2.1.3), and the leaf hashes differ",
        ],
    }


def write_evidence(report: ComparisonReport, path: str | os.PathLike[str]) -> Path:
    """Store the evidence of an equivocation as deterministic JSON at ``path``; return it."""
    if report.evidence is None:
        raise EvidenceError("the views are consistent: there is no evidence to write")
    target = Path(path)
    text = json.dumps(report.evidence, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceError(f"{what} must be base64 text")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except ValueError as exc:
        raise EvidenceError(f"{what} is not base64") from exc


def _hash_list(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64:
        raise EvidenceError(f"{what} must be a list of at most 64 hashes")
    return [_unb64(item, what) for item in value]


def verify_evidence(data: bytes) -> tuple[int, int]:
    """Check an equivocation evidence file on its own; return the two conflicting sizes.

    Both signed notes must verify under one of the file's log vkeys with the same origin;
    then either the sizes are equal with different roots, or the consistency proof ties a
    root other than the signed one to the second checkpoint, or (checked too when present)
    the divergent leaves are included at the same index under both roots and differ. Raises
    :class:`EvidenceError` if the file does not prove a fork.
    """
    try:
        value = json.loads(data)
        if not isinstance(value, dict) or value.get("v") != EVIDENCE_VERSION:
            raise EvidenceError(f"not a {EVIDENCE_VERSION} document")
        log_keys = [_ed25519_vkey(text, "log vkey") for text in value["log_vkeys"]]
        opened = [
            open_checkpoint(item["signed_note"].encode("utf-8"), log_keys)
            for item in value["checkpoints"]
        ]
    except EvidenceError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvidenceError(f"malformed evidence: {exc}") from exc
    except ChainError as exc:
        raise EvidenceError(f"a checkpoint in the evidence does not verify: {exc.message}") from exc
    if len(opened) != 2:
        raise EvidenceError("evidence must hold exactly two checkpoints")
    in_order = [signed.checkpoint for signed in opened]
    first, second = in_order
    if first.origin != second.origin or first.origin != value.get("origin"):
        raise EvidenceError("the checkpoints are of different logs")
    if first.size > second.size:
        first, second = second, first
    if first.size == second.size:
        if first.root == second.root:
            raise EvidenceError("the checkpoints agree")
        return first.size, second.size
    consistency = value.get("consistency")
    if not isinstance(consistency, dict):
        raise EvidenceError("evidence has no consistency proof")
    proof = _hash_list(consistency.get("proof"), "consistency proof")
    proven = _unb64(consistency.get("from_root_proven"), "from_root_proven")
    try:
        verify_consistency(first.size, second.size, proof, proven, second.root)
    except ChainError as exc:
        raise EvidenceError(f"the consistency proof does not verify: {exc.message}") from exc
    if proven == first.root:
        raise EvidenceError("the first checkpoint is a prefix of the second: no fork")
    divergence = value.get("divergence")
    if divergence is not None:
        _check_divergence(divergence, in_order)
    return first.size, second.size


def _check_divergence(divergence: Any, checkpoints: Iterable[Any]) -> None:
    try:
        index = divergence["index"]
        sides = (divergence["first"], divergence["second"])
        leaves = []
        for side, checkpoint in zip(sides, checkpoints, strict=True):
            leaf = _unb64(side["leaf_hash"], "leaf hash")
            proof = _hash_list(side["inclusion_proof"], "inclusion proof")
            verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)
            if side.get("entry") is not None and leaf_hash(_unb64(side["entry"], "entry")) != leaf:
                raise EvidenceError("an entry does not hash to its leaf hash")
            leaves.append(leaf)
    except (KeyError, TypeError) as exc:
        raise EvidenceError(f"malformed divergence: {exc}") from exc
    except ChainError as exc:
        raise EvidenceError(f"a divergence inclusion proof does not verify: {exc.message}") from exc
    if leaves[0] == leaves[1]:
        raise EvidenceError("the divergent leaves are equal")
