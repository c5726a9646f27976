"""The notary's own SQLite state: co-signed head, mirror, refusals, peers (an adapter).

One file, ``<data dir>/notary.db``, in WAL mode with ``synchronous=FULL``. Tables:

- ``meta``: key/value (schema version, the log's origin and keys, the largest log size seen);
- ``state``: one row, what the notary last co-signed (:class:`notary.core.NotaryState`);
- ``entries``: the full mirror, ``(seq, leaf hash, bytes)``;
- ``refusals``: every refused request with status, reason, step, seq and, when the log's
  signature verified, the request bytes (evidence); unauthenticated ones are capped;
- ``peers``: each peer notary's last seen checkpoint and the result of comparing it with ours;
- ``conflicts``: views that disagree, with the path of the evidence file written for each.

:meth:`NotaryStore.commit` is the atomic check-and-persist of tlog-witness: the new state and
the mirrored entries are committed in one transaction, guarded by a compare-and-swap on the old
size and root, before the adapter hands out the cosignature. Calls are thread-safe (one
connection behind a lock) and blocking: async callers run them in a thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from chain import HASH_SIZE, ChainError, CompactRange, consistency_proof, leaf_hash

from .core import MirroredEntry, NotaryState
from .errors import NotaryError, NotaryStateError, NotaryUnavailableError

__all__ = [
    "MAX_UNAUTHENTICATED_REFUSALS",
    "SCHEMA_VERSION",
    "Conflict",
    "NotaryStore",
    "PeerView",
    "Refusal",
]

SCHEMA_VERSION: Final = 1
MAX_UNAUTHENTICATED_REFUSALS: Final = 1000
"""Refusals of requests whose log signature did not verify are kept up to this many."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    compact BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    cosigned_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    step TEXT,
    seq INTEGER,
    evidence INTEGER NOT NULL,
    checkpoint_size INTEGER,
    request BLOB,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS peers (
    url TEXT PRIMARY KEY,
    seen_at_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    size INTEGER,
    checkpoint BLOB
);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    file TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused add-checkpoint request.

    ``request`` holds the body only when ``evidence`` (the log's signature verified);
    ``detail`` is a JSON text with what the refusal pointed at (e.g. the offending entry).
    """

    at_us: int
    status: int
    reason: str
    message: str
    step: str | None = None
    seq: int | None = None
    evidence: bool = False
    checkpoint_size: int | None = None
    request: bytes | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class PeerView:
    """The last comparison with a peer notary: ``status`` is ``consistent``, ``conflict``,
    ``unreachable``, ``unverified`` or ``empty``."""

    url: str
    seen_at_us: int
    status: str
    message: str
    size: int | None = None
    checkpoint: bytes | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A detected split view: where it came from, why, and the evidence file written."""

    at_us: int
    source: str
    reason: str
    file: str


def _blob(value: object) -> bytes:
    """A stored BLOB; anything else means the database was altered behind our back."""
    if not isinstance(value, bytes):
        raise NotaryStateError("the notary database holds a non-binary value where bytes belong")
    return value


def _pack(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def _unpack(data: bytes) -> tuple[bytes, ...]:
    if len(data) % HASH_SIZE:
        raise NotaryStateError("stored compact range is damaged")
    return tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))


class NotaryStore:
    """The notary's SQLite database. Open with :meth:`open`, close with :meth:`close`.

    ``read_only`` opens for the operator CLI while the server runs (WAL allows it).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, read_only: bool) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> NotaryStore:
        """Open (creating it unless ``read_only``) the database at ``path``."""
        try:
            if read_only:
                if not path.exists():
                    raise NotaryStateError(f"no notary database at {path}")
                connection = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                connection = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False, timeout=10
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                connection.executescript(_SCHEMA)
                row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    connection.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                elif row[0] != str(SCHEMA_VERSION):
                    raise NotaryStateError(f"notary database has schema {row[0]}")
        except sqlite3.Error as exc:
            raise NotaryStateError(f"cannot open the notary database {path}: {exc}") from exc
        return cls(connection, path, read_only)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> NotaryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise _database_error(exc) from exc

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    for sql, parameters in statements:
                        connection.execute(sql, parameters)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _database_error(exc) from exc

    # --- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table, or ``None``."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table."""
        self._write(
            [
                (
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            ]
        )

    def note_log_size(self, size: int) -> None:
        """Remember ``size`` if it is the largest log size seen in a signed checkpoint."""
        self._write(
            [
                (
                    "INSERT INTO meta (key, value) VALUES ('log_size_seen', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
                    "WHERE CAST(excluded.value AS INTEGER) > CAST(meta.value AS INTEGER)",
                    (str(size),),
                )
            ]
        )

    # --- state -----------------------------------------------------------------------------

    def load_state(self, origin: str | None = None) -> NotaryState | None:
        """The co-signed state. With ``origin``, create the empty state on first use and refuse
        a database that belongs to another log. Read-only callers pass ``None``."""
        rows = self._query(
            "SELECT origin, size, root, compact, checkpoint, cosigned_at FROM state WHERE id = 1"
        )
        if not rows:
            if origin is None:
                return None
            state = NotaryState(origin)
            self._write(
                [
                    (
                        "INSERT INTO state (id, origin, size, root, compact, checkpoint, "
                        "cosigned_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
                        (origin, 0, state.root, b"", b"", 0),
                    )
                ]
            )
            return state
        stored_origin, size, root, compact, checkpoint, cosigned_at = rows[0]
        if origin is not None and stored_origin != origin:
            raise NotaryStateError(
                f"this data directory notarizes {stored_origin!r}, not {origin!r}"
            )
        return NotaryState(
            stored_origin,
            size,
            _blob(root),
            _unpack(_blob(compact)),
            _blob(checkpoint),
            cosigned_at,
        )

    def commit(
        self, expected: NotaryState, new: NotaryState, entries: Sequence[MirroredEntry] = ()
    ) -> None:
        """Atomically replace ``expected`` by ``new`` and add the mirrored ``entries``.

        A compare-and-swap on the old size and root (tlog-witness: check and persist are
        atomic) guards against a concurrent writer; on mismatch nothing is written and
        :class:`NotaryStateError` is raised. Returns only once the transaction is durable
        (``synchronous=FULL``): the caller may then send the cosignature.
        """
        if entries and (entries[0].seq != expected.size or entries[-1].seq != new.size - 1):
            raise NotaryStateError("mirrored entries do not fill the gap between the sizes")
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    cursor = connection.execute(
                        "UPDATE state SET size = ?, root = ?, compact = ?, checkpoint = ?, "
                        "cosigned_at = ? WHERE id = 1 AND origin = ? AND size = ? AND root = ?",
                        (
                            new.size,
                            new.root,
                            _pack(new.compact),
                            new.checkpoint,
                            new.cosigned_at,
                            expected.origin,
                            expected.size,
                            expected.root,
                        ),
                    )
                    if cursor.rowcount != 1:
                        raise NotaryStateError("the co-signed state changed underneath")
                    connection.executemany(
                        "INSERT INTO entries (seq, leaf_hash, data) VALUES (?, ?, ?)",
                        ((entry.seq, entry.leaf_hash, entry.data) for entry in entries),
                    )
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _database_error(exc) from exc

    # --- mirror ----------------------------------------------------------------------------

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Mirrored ``(seq, bytes)`` in order, read in batches."""
        batch = 2048
        position = start
        while end is None or position < end:
            limit = batch if end is None else min(batch, end - position)
            rows = self._query(
                "SELECT seq, data FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?",
                (position, limit),
            )
            if not rows:
                return
            for seq, data in rows:
                yield int(seq), _blob(data)
            position = int(rows[-1][0]) + 1

    def entry(self, seq: int) -> bytes | None:
        """The mirrored bytes of entry ``seq``."""
        rows = self._query("SELECT data FROM entries WHERE seq = ?", (seq,))
        return _blob(rows[0][0]) if rows else None

    def mirror_size(self) -> int:
        """Number of mirrored entries."""
        return int(self._query("SELECT COUNT(*) FROM entries")[0][0])

    def root_at(self, size: int) -> bytes:
        """The root of the mirrored tree at ``size`` (at most the mirror's size)."""
        tree = CompactRange()
        for digest in self._leaf_hashes(size):
            tree.append(digest)
        return tree.root()

    def _leaf_hashes(self, size: int) -> Iterator[bytes]:
        """The leaf hashes of mirrored entries ``0 .. size - 1`` in order, read in pages.

        Raises :class:`NotaryStateError` if an entry is missing or the mirror is shorter."""
        position = 0
        while position < size:
            rows = self._query(
                "SELECT seq, leaf_hash FROM entries WHERE seq >= ? ORDER BY seq LIMIT ?",
                (position, min(8192, size - position)),
            )
            if not rows:
                break
            for seq, digest in rows:
                if seq != position:
                    raise NotaryStateError(f"mirror is missing entry {position}")
                yield _blob(digest)
                position += 1
        if position != size:
            raise NotaryStateError(f"mirror holds {position} entries, not {size}")

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 9162 consistency proof from ``size1`` to ``size2`` over the mirror (for
        evidence: it shows which tree the notary co-signed)."""
        nodes: dict[tuple[int, int], bytes] = {}
        tree = CompactRange()
        for digest in self._leaf_hashes(size2):
            for node, value in tree.append(digest):
                nodes[(node.level, node.index)] = value

        def read(level: int, index: int) -> bytes:
            try:
                return nodes[(level, index)]
            except KeyError as exc:
                raise NotaryStateError(f"no mirrored node ({level}, {index})") from exc

        try:
            return consistency_proof(size1, size2, read)
        except ChainError as exc:
            raise NotaryStateError(f"cannot build a proof from the mirror: {exc}") from exc

    def verify_mirror(self, state: NotaryState) -> None:
        """Recompute every leaf hash from the stored bytes and the root of the co-signed size.

        Raises :class:`NotaryStateError` if the mirror does not match the co-signed state
        (a damaged disk must never lead to co-signing on a wrong basis).
        """
        tree = CompactRange()
        for seq, data in self.iter_entries(0, None):
            if seq != tree.end:
                raise NotaryStateError(f"mirror is missing entry {tree.end}")
            tree.append(leaf_hash(data))
        if tree.end != state.size or tree.root() != state.root:
            raise NotaryStateError(
                f"mirror ({tree.end} entries) does not match the co-signed size {state.size}"
            )

    # --- refusals, peers, conflicts ---------------------------------------------------------

    def record_refusal(self, refusal: Refusal) -> None:
        """Keep a refusal (evidence when ``refusal.evidence``); cap unauthenticated ones."""
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO refusals (at_us, status, reason, message, step, seq, evidence, "
                "checkpoint_size, request, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    refusal.at_us,
                    refusal.status,
                    refusal.reason,
                    refusal.message,
                    refusal.step,
                    refusal.seq,
                    int(refusal.evidence),
                    refusal.checkpoint_size,
                    refusal.request if refusal.evidence else None,
                    refusal.detail,
                ),
            )
        ]
        if not refusal.evidence:
            statements.append(
                (
                    "DELETE FROM refusals WHERE evidence = 0 AND id NOT IN "
                    "(SELECT id FROM refusals WHERE evidence = 0 ORDER BY id DESC LIMIT ?)",
                    (MAX_UNAUTHENTICATED_REFUSALS,),
                )
            )
        self._write(statements)

    def refusals(self, limit: int | None = None) -> list[Refusal]:
        """Refusals, newest first (all of them without ``limit``)."""
        rows = self._query(
            "SELECT at_us, status, reason, message, step, seq, evidence, checkpoint_size, "
            "request, detail FROM refusals ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [
            Refusal(
                at_us,
                status,
                reason,
                message,
                step,
                seq,
                bool(evidence),
                checkpoint_size,
                None if request is None else bytes(request),
                detail,
            )
            for (
                at_us,
                status,
                reason,
                message,
                step,
                seq,
                evidence,
                checkpoint_size,
                request,
                detail,
            ) in rows
        ]

    def refusal_count(self) -> int:
        """How many refusals are kept."""
        return int(self._query("SELECT COUNT(*) FROM refusals")[0][0])

    def record_peer(self, view: PeerView) -> None:
        """Store the latest comparison with a peer."""
        self._write(
            [
                (
                    "INSERT INTO peers (url, seen_at_us, status, message, size, checkpoint) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET "
                    "seen_at_us = excluded.seen_at_us, status = excluded.status, "
                    "message = excluded.message, "
                    "size = COALESCE(excluded.size, peers.size), "
                    "checkpoint = COALESCE(excluded.checkpoint, peers.checkpoint)",
                    (
                        view.url,
                        view.seen_at_us,
                        view.status,
                        view.message,
                        view.size,
                        view.checkpoint,
                    ),
                )
            ]
        )

    def peers(self) -> list[PeerView]:
        """The latest comparison with each peer."""
        rows = self._query(
            "SELECT url, seen_at_us, status, message, size, checkpoint FROM peers ORDER BY url"
        )
        return [
            PeerView(url, seen, status, message, size, None if cp is None else bytes(cp))
            for url, seen, status, message, size, cp in rows
        ]

    def record_conflict(self, conflict: Conflict) -> None:
        """Remember a split view and its evidence file."""
        self._write(
            [
                (
                    "INSERT INTO conflicts (at_us, source, reason, file) VALUES (?, ?, ?, ?)",
                    (conflict.at_us, conflict.source, conflict.reason, conflict.file),
                )
            ]
        )

    def conflicts(self) -> list[Conflict]:
        """Every split view detected, oldest first."""
        rows = self._query("SELECT at_us, source, reason, file FROM conflicts ORDER BY id")
        return [Conflict(at, source, reason, file) for at, source, reason, file in rows]


#: SQLite result codes of a database that cannot take a write right now: SQLITE_BUSY,
#: SQLITE_LOCKED, SQLITE_FULL (the primary code is the low byte of an extended one).
_TRANSIENT_CODES: Final = frozenset({5, 6, 13})


def _database_error(exc: sqlite3.Error) -> NotaryError:
    """A full disk or a locked database is a 503 the log retries; anything else a broken
    state (500)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _TRANSIENT_CODES:
        return NotaryUnavailableError(f"notary database: {exc}: try again later")
    return NotaryStateError(f"notary database: {exc}")
