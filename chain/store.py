"""The ledger's storage adapter: entries, tile hashes, checkpoints and the signed-head lock in SQL.

The one module of ``chain`` that touches a database, through SQLAlchemy Core only (no ORM, no
asyncio): SQLite or PostgreSQL, in the same database as the caller's own tables. Every function
takes a SQLAlchemy :class:`~sqlalchemy.engine.Connection`, so the caller owns the transaction:
the auction appends entries in the very transaction that stores the commands they record, and
signs a checkpoint in a transaction that first moves the signed-head lock.

Tables (on :data:`LEDGER_METADATA`; :func:`create_tables` makes them):

- ``ledger_entries(seq, data, leaf_hash, t_us)``: entry bytes and their RFC 9162 leaf hash,
  which is always computed here from the bytes (:class:`StoredEntry`), never taken from a caller;
- ``ledger_hashes(level, node_index, hash)``: the perfect subtrees at levels 8, 16, ... (the
  hashes that tiles of level 1, 2, ... are made of; level-0 tiles come from ``leaf_hash``);
- ``ledger_checkpoints(size, root, note, signed_us, published_us)``: every signed checkpoint,
  ``published_us`` set once it may be served (after the notary quorum, in later issues);
- ``ledger_signed(id = 1, size, root, updated_us)``: one row, the largest tree ever signed.
  :func:`cas_signed` moves it with a compare-and-swap, so two processes can never sign diverging
  heads (the Sunlight "lock backend" idea).

Writing, with :class:`LedgerState` (the tip of the tree, resumed from storage)::

    state = LedgerState.load(connection)             # recomputes the tail's leaf hashes
    # (LedgerState.load(connection, each_entry=f) re-hashes and checks the whole log)
    batch = state.batch()
    batch.add(EntryType.BID, body, ingress_us, signer)  # sequences, signs, hashes, integrates
    append_entries(connection, batch.entries, batch.nodes)
    # ... commit ..., then:
    state.advance(batch)

``LedgerBatch.add`` writes exactly the bytes of ``chain.build_entry(...).to_bytes()``, but for
plain bodies through the C JSON encoder instead of the pure-Python RFC 8785 one (about 4x less
CPU per entry; anything unusual takes the reference path). A property test holds them equal.

Reading: :func:`read_tile`, :func:`read_entry_bundle`, :func:`read_entries`, and proofs through
:func:`hash_reader` (a :class:`SubtreeReader`: each tile it needs is read and hashed up once).

Errors: :class:`SignedHeadConflict` (another signer moved the lock) and :class:`StoredDataError`
(rows missing, or a recomputed hash differs from what is stored). SQLAlchemy's own exceptions
pass through untranslated: the caller's adapter translates them once, with its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from .compact import CompactRange, NodeID, range_nodes
from .entry import (
    ENTRY_VERSION,
    MAX_BODY_DEPTH,
    MAX_ENTRY_BYTES,
    Actor,
    EntryType,
    JSONValue,
    build_entry,
    format_time,
    sign_actor,
)
from .errors import ChainError, MalformedError, TooLargeError
from .hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from .proof import consistency_proof as _consistency_proof
from .proof import inclusion_proof as _inclusion_proof
from .proof import tree_root as _tree_root
from .tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    EntryBundle,
    Tile,
    build_entry_bundle,
    parse_tile,
    tile_for_node,
)

__all__ = [
    "CHECKPOINTS",
    "ENTRIES",
    "HASHES",
    "LEDGER_METADATA",
    "SIGNED",
    "EntrySigner",
    "ExpandedTile",
    "LedgerBatch",
    "LedgerState",
    "SignedHead",
    "SignedHeadConflict",
    "StoredCheckpoint",
    "StoredDataError",
    "StoredEntry",
    "SubtreeReader",
    "append_entries",
    "cas_signed",
    "checkpoint_sizes",
    "consistency_proof",
    "create_tables",
    "expand_tile",
    "expanded_hash",
    "hash_reader",
    "inclusion_proof",
    "latest_checkpoint",
    "publish_checkpoint",
    "read_checkpoint",
    "read_entries",
    "read_entry_bundle",
    "read_signed",
    "read_tile",
    "store_checkpoint",
    "stored_size",
    "tree_root",
]


# --- errors (one tree: these extend chain.errors.ChainError) --------------------------------------


class SignedHeadConflict(ChainError):
    """The signed-head lock is not where the signer expected it: another signer (another
    process, or a stale copy of this one) signed meanwhile, or a second root for one size was
    attempted. The caller must not sign; it must stop and let an operator look (HTTP 409)."""

    http_status = 409
    reason = "SIGNED_HEAD_CONFLICT"


class StoredDataError(ChainError):
    """The stored ledger is incomplete or inconsistent: a row is missing, a leaf hash
    recomputed from the stored bytes differs from the stored one, or the stored tree does not
    have the root that was signed. Serve nothing from it until an operator looked (HTTP 500)."""

    http_status = 500
    reason = "STORED_DATA"


# --- schema ---------------------------------------------------------------------------------------

LEDGER_METADATA: Final = MetaData()
"""The ledger's tables; create them with :func:`create_tables` (or the caller's migrations)."""

ENTRIES: Final = Table(
    "ledger_entries",
    LEDGER_METADATA,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("t_us", BigInteger, nullable=False),
)

HASHES: Final = Table(
    "ledger_hashes",
    LEDGER_METADATA,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("node_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

CHECKPOINTS: Final = Table(
    "ledger_checkpoints",
    LEDGER_METADATA,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", LargeBinary, nullable=False),
    Column("signed_us", BigInteger, nullable=False),
    Column("published_us", BigInteger, nullable=True),
)

SIGNED: Final = Table(
    "ledger_signed",
    LEDGER_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ledger_signed_one_row"),
)


def create_tables(connection: Connection) -> None:
    """Create the ledger tables if missing, and the signed-head row (size 0, empty root,
    ``updated_us`` 0: never signed). Idempotent; run it inside the caller's migration."""
    LEDGER_METADATA.create_all(connection)
    if connection.execute(select(SIGNED.c.id)).first() is None:
        connection.execute(insert(SIGNED).values(id=1, size=0, root=EMPTY_ROOT, updated_us=0))


# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry as stored: its ``seq``, its bytes and the sequencing time ``time_us``.

    ``leaf_hash`` is always computed here from ``data`` (RFC 9162 2.1.1), never passed in.
    """

    seq: int
    data: bytes
    time_us: int
    leaf_hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leaf_hash", leaf_hash(self.data))


@dataclass(frozen=True, slots=True)
class SignedHead:
    """The signed-head lock: the largest tree ever signed (``size`` 0: nothing signed yet)."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored; ``published_us`` is ``None`` until it may be served."""

    size: int
    root: bytes
    note: bytes
    signed_us: int
    published_us: int | None


class EntrySigner:
    """The key that signs entries as their actor (``actor.kid``, ``actor.sig``).

    ``kid`` is whatever the verifier resolves to this key (the auction uses its house vkey).
    """

    __slots__ = ("_kid", "_kid_json", "_private_key")

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        Actor(kid, bytes(64))  # validates the kid the way every entry will
        self._kid = kid
        self._kid_json = json.dumps(kid, ensure_ascii=False).encode("utf-8")
        self._private_key = private_key

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> EntrySigner:
        """Load the Ed25519 key from its 32-byte RFC 8032 seed."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise MalformedError("Ed25519 seed must be 32 bytes")
        return cls(kid, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def kid(self) -> str:
        """The key id written into ``actor.kid``."""
        return self._kid

    @property
    def kid_json(self) -> bytes:
        """``kid`` as a JSON string (RFC 8785: it holds no control characters)."""
        return self._kid_json

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key (for :func:`chain.sign_actor`)."""
        return self._private_key

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature over ``message`` (the actor message of an entry)."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"EntrySigner(kid={self._kid!r})"


# --- canonical JSON, fast path --------------------------------------------------------------------

_MAX_INTEGER: Final = 2**53 - 1


def _plain(value: Any, depth: int) -> bool:
    """Whether ``json.dumps`` of ``value`` gives exactly its RFC 8785 encoding.

    True for None, bools, strings, integers within the I-JSON range, and lists and dicts of
    those whose keys are ASCII (so that code-point order is UTF-16 order, RFC 8785 3.2.3) and
    that nest at most MAX_BODY_DEPTH deep. Strings are escaped alike by both (RFC 8785 3.2.2.2:
    only ``"``, ``\\`` and controls; controls as ``\\b \\t \\n \\f \\r`` or lowercase
    ``\\u00xx``); lone surrogates fail at UTF-8 encoding and take the slow path.
    """
    kind = type(value)
    if kind is dict:
        if depth >= MAX_BODY_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain_item(item, depth):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_BODY_DEPTH:
            return False
        return all(_plain_item(item, depth) for item in value)
    return _plain_item(value, depth - 1)


def _plain_item(item: Any, depth: int) -> bool:
    """:func:`_plain` for a member of a container at ``depth`` (scalars without recursion)."""
    kind = type(item)
    if kind is str or kind is bool or item is None:
        return True
    if kind is int:
        return bool(-_MAX_INTEGER <= item <= _MAX_INTEGER)
    if kind is dict or kind is list or kind is tuple:
        return _plain(item, depth + 1)
    return False


def _fast_canonical(value: Mapping[str, JSONValue]) -> bytes | None:
    """RFC 8785 bytes of ``value`` via the C JSON encoder, or ``None`` if it might differ."""
    if not _plain(value, 1):
        return None
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: let the strict path reject it
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- writing --------------------------------------------------------------------------------------


class LedgerBatch:
    """Entries sequenced on top of a :class:`LedgerState`, not yet stored.

    Build it with :meth:`LedgerState.batch`, :meth:`add` entries, write :attr:`entries` and
    :attr:`nodes` with :func:`append_entries` inside the caller's transaction, and only after the
    commit call :meth:`LedgerState.advance`. A batch whose transaction failed is dropped.
    """

    __slots__ = ("_base_size", "_last_time_us", "_prev", "_range", "entries", "nodes")

    def __init__(self, state: LedgerState) -> None:
        self._base_size = state.size
        self._range = state.compact_range.copy()
        self._prev = state.prev
        self._last_time_us = state.last_time_us
        self.entries: list[StoredEntry] = []
        #: Completed perfect subtrees at tile levels (8, 16, ...) to store with the entries.
        self.nodes: list[tuple[NodeID, bytes]] = []

    @property
    def base_size(self) -> int:
        """The tree size this batch was sequenced on."""
        return self._base_size

    @property
    def size(self) -> int:
        """The tree size once this batch is stored."""
        return self._range.end

    @property
    def prev(self) -> bytes:
        """The leaf hash of the last entry (``b""`` for the empty tree)."""
        return self._prev

    @property
    def last_time_us(self) -> int:
        """The ``t`` of the last entry (0 for the empty tree)."""
        return self._last_time_us

    def root(self) -> bytes:
        """The root of the tree including this batch."""
        return self._range.root()

    def add(
        self,
        entry_type: EntryType,
        body: Mapping[str, JSONValue],
        time_us: int,
        signer: EntrySigner,
    ) -> StoredEntry:
        """Sequence one entry: next ``seq``, ``prev`` = the last leaf hash, ``t`` = ``time_us``
        raised to the last entry's time if earlier (times never go backwards), the actor
        signature of ``signer`` over ``"gavel/<type>/v1\\n" || JCS(body)``; then hash its bytes
        and integrate the leaf. Returns the entry (its ``seq`` is what later entries cite).

        The bytes equal ``chain.build_entry(...).to_bytes()``: plain bodies take a fast
        canonical-JSON path, anything else the strict one. Raises :class:`MalformedError` /
        :class:`TooLargeError` for bodies no entry may hold.
        """
        kind = EntryType(entry_type)
        seq = self._range.end
        time_us = max(time_us, self._last_time_us)
        body_bytes = _fast_canonical(body)
        if body_bytes is None:
            data = self._strict_entry(seq, kind, body, time_us, signer)
        else:
            signature = signer.sign(b"gavel/" + kind.value.encode("ascii") + b"/v1\n" + body_bytes)
            data = b"".join(
                (
                    b'{"actor":{"kid":',
                    signer.kid_json,
                    b',"sig":"',
                    _b64(signature).encode("ascii"),
                    b'"},"body":',
                    body_bytes,
                    b',"prev":"',
                    _b64(self._prev).encode("ascii"),
                    b'","seq":',
                    str(seq).encode("ascii"),
                    b',"t":"',
                    format_time(time_us).encode("ascii"),
                    b'","type":"',
                    kind.value.encode("ascii"),
                    b'","v":"',
                    ENTRY_VERSION.encode("ascii"),
                    b'"}',
                )
            )
            if len(data) > MAX_ENTRY_BYTES:
                raise TooLargeError(f"entry larger than {MAX_ENTRY_BYTES} bytes")
        entry = StoredEntry(seq, data, time_us)
        for node, digest in self._range.append(entry.leaf_hash):
            if node.level and node.level % TILE_HEIGHT == 0:
                self.nodes.append((node, digest))
        self._prev = entry.leaf_hash
        self._last_time_us = time_us
        self.entries.append(entry)
        return entry

    def _strict_entry(
        self,
        seq: int,
        kind: EntryType,
        body: Mapping[str, JSONValue],
        time_us: int,
        signer: EntrySigner,
    ) -> bytes:
        actor = sign_actor(kind, body, signer.kid, signer.private_key)
        entry = build_entry(
            seq=seq, prev=self._prev, time_us=time_us, entry_type=kind, body=body, actor=actor
        )
        return entry.to_bytes()


class LedgerState:
    """The tip of the stored tree: its compact range, last leaf hash and last entry time.

    Resume it with :meth:`load`; it is mutated only by :meth:`advance`, after a commit. Not
    thread-safe: one writer.
    """

    __slots__ = ("_last_time_us", "_prev", "_range")

    def __init__(
        self, compact_range: CompactRange | None = None, prev: bytes = b"", last_time_us: int = 0
    ) -> None:
        self._range = compact_range if compact_range is not None else CompactRange()
        if self._range.begin != 0:
            raise MalformedError("a ledger state covers the tree from leaf 0")
        self._prev = prev
        self._last_time_us = last_time_us

    @classmethod
    def load(
        cls,
        connection: Connection,
        *,
        each_entry: Callable[[StoredEntry], None] | None = None,
    ) -> LedgerState:
        """Resume from storage and check it, fail-closed. Raises :class:`StoredDataError`.

        Quick (without ``each_entry``): reads the perfect subtrees of the stored tree, and for
        the level-0 tile at the tail the entry bytes, whose leaf hashes it recomputes (ledger
        spec section 2: recompute a leaf hash from the stored bytes before integrating it).

        Full (with ``each_entry``, called with every stored entry in order, e.g. to rebuild the
        caller's own bookkeeping in the same pass): recomputes *every* leaf hash from the bytes,
        rebuilds the tree from them, and requires every stored hash (leaf and tile level) to
        equal the recomputed one.

        Either way the tree at the signed head's size must have the signed root, and the signed
        size must not exceed the stored size.
        """
        size = stored_size(connection)
        signed = read_signed(connection)
        if signed.size > size:
            raise StoredDataError(
                f"a tree of {signed.size} entries was signed but only {size} are stored"
            )
        if each_entry is not None:
            state, signed_root = cls._rebuild(connection, signed.size, each_entry)
            if state.size != size:
                raise StoredDataError(f"read {state.size} entries, {size} stored")
        else:
            if size == 0:
                return cls()
            reader = SubtreeReader(
                size, lambda tile: expand_tile(tile, _read_tile_checked(connection, tile))
            )
            nodes = range_nodes(0, size)
            compact = CompactRange.from_hashes(0, size, [reader(n.level, n.index) for n in nodes])
            (last,) = read_entries(connection, size - 1, size)
            state = cls(compact, last.leaf_hash, last.time_us)
            signed_root = compact.root() if signed.size == size else _tree_root(signed.size, reader)
        if signed.size and signed_root != signed.root:
            raise StoredDataError(
                f"the stored tree of {signed.size} entries does not have the signed root"
            )
        return state

    @classmethod
    def _rebuild(
        cls, connection: Connection, signed_size: int, each_entry: Callable[[StoredEntry], None]
    ) -> tuple[LedgerState, bytes]:
        compact = CompactRange()
        computed: dict[tuple[int, int], bytes] = {}
        signed_root = EMPTY_ROOT
        last: StoredEntry | None = None
        # Pages by seq (not a server-side cursor): a connection lost meanwhile fails the next
        # page cleanly and leaves no cursor behind that can no longer be closed.
        for row in _entry_pages(connection):
            entry = StoredEntry(int(row.seq), bytes(row.data), int(row.t_us))
            if entry.seq != compact.end:
                raise StoredDataError(f"entry {compact.end} is missing")
            if entry.leaf_hash != bytes(row.leaf_hash):
                raise StoredDataError(f"entry {entry.seq}: stored leaf hash differs from its bytes")
            for node, digest in compact.append(entry.leaf_hash):
                if node.level and node.level % TILE_HEIGHT == 0:
                    computed[(node.level, node.index)] = digest
            if compact.end == signed_size:
                signed_root = compact.root()
            last = entry
            each_entry(entry)
        stored = {
            (int(row.level), int(row.node_index)): bytes(row.hash)
            for row in connection.execute(select(HASHES))
        }
        if stored != computed:
            wrong = sorted(set(stored.items()) ^ set(computed.items()))[0][0]
            raise StoredDataError(f"stored hash of node {wrong} differs from the entries")
        if last is None:
            return cls(), signed_root
        return cls(compact, last.leaf_hash, last.time_us), signed_root

    @property
    def size(self) -> int:
        """Number of entries in the tree."""
        return self._range.end

    @property
    def compact_range(self) -> CompactRange:
        """The compact range ``[0, size)`` (do not mutate; :meth:`batch` copies it)."""
        return self._range

    @property
    def prev(self) -> bytes:
        """The leaf hash of the last entry (``b""`` when empty): the next entry's ``prev``."""
        return self._prev

    @property
    def last_time_us(self) -> int:
        """The ``t`` of the last entry; the next entry's ``t`` is never earlier."""
        return self._last_time_us

    def root(self) -> bytes:
        """The root of the tree (``EMPTY_ROOT`` when empty)."""
        return self._range.root()

    def batch(self) -> LedgerBatch:
        """Start a batch of entries on top of this state (the state itself is unchanged)."""
        return LedgerBatch(self)

    def catch_up(
        self,
        connection: Connection,
        *,
        each_entry: Callable[[StoredEntry], None] | None = None,
        page: int | None = None,
    ) -> int:
        """Integrate the entries another writer stored after this state's size (several
        writers of one database take turns under a lock and each catches up first). Each
        leaf hash is recomputed from the stored bytes and must equal the stored one, and the
        tile-level subtree hashes completed on the way must equal the stored ones
        (:class:`StoredDataError` otherwise; the state is then unchanged). Returns how many
        entries were integrated; ``each_entry`` sees each of them in order."""
        highest = connection.execute(select(func.max(ENTRIES.c.seq))).scalar()
        size = 0 if highest is None else int(highest) + 1
        if size <= self.size:
            return 0
        compact = self._range.copy()
        prev, last_time = self._prev, self._last_time_us
        entries: list[StoredEntry] = []
        step = page or REBUILD_PAGE
        while compact.end < size:
            end = min(size, compact.end + step)
            rows = connection.execute(
                select(ENTRIES)
                .where(ENTRIES.c.seq >= compact.end, ENTRIES.c.seq < end)
                .order_by(ENTRIES.c.seq)
            ).all()
            if len(rows) != end - compact.end:
                raise StoredDataError(f"entries {compact.end}..{end - 1} are not all stored")
            for row in rows:
                entry = StoredEntry(int(row.seq), bytes(row.data), int(row.t_us))
                if entry.leaf_hash != bytes(row.leaf_hash):
                    raise StoredDataError(
                        f"entry {entry.seq}: stored leaf hash differs from its bytes"
                    )
                for node, digest in compact.append(entry.leaf_hash):
                    if node.level and node.level % TILE_HEIGHT == 0:
                        stored = _node_hashes(connection, node.level, node.index, node.index + 1)
                        if stored != [digest]:
                            raise StoredDataError(
                                f"stored hash of node {(node.level, node.index)} differs"
                            )
                prev, last_time = entry.leaf_hash, entry.time_us
                entries.append(entry)
        if each_entry is not None:
            for entry in entries:
                each_entry(entry)
        self._range, self._prev, self._last_time_us = compact, prev, last_time
        return len(entries)

    def advance(self, batch: LedgerBatch) -> None:
        """Take over ``batch`` once its transaction committed. Raises ``ValueError`` if the
        batch was sequenced on another size (the caller lost track of its own writes)."""
        if batch.base_size != self.size:
            raise ValueError(f"batch built on size {batch.base_size}, the tree has {self.size}")
        self._range = batch._range
        self._prev = batch.prev
        self._last_time_us = batch.last_time_us


def append_entries(
    connection: Connection,
    entries: Sequence[StoredEntry],
    nodes: Sequence[tuple[NodeID, bytes]] = (),
) -> None:
    """Insert sequenced entries and the tile-level subtree hashes they completed (bulk inserts).

    Run it inside the caller's transaction; a duplicate ``seq`` (someone else appended) makes
    the database refuse the whole transaction.
    """
    if entries:
        connection.execute(
            insert(ENTRIES),
            [
                {"seq": e.seq, "data": e.data, "leaf_hash": e.leaf_hash, "t_us": e.time_us}
                for e in entries
            ],
        )
    if nodes:
        connection.execute(
            insert(HASHES),
            [{"level": n.level, "node_index": n.index, "hash": digest} for n, digest in nodes],
        )


# --- reading --------------------------------------------------------------------------------------


def stored_size(connection: Connection) -> int:
    """The number of stored entries; raises :class:`StoredDataError` if ``seq`` has a gap."""
    count, highest = connection.execute(select(func.count(), func.max(ENTRIES.c.seq))).one()
    size = 0 if highest is None else int(highest) + 1
    if count != size:
        raise StoredDataError(f"{count} entries stored but the highest seq is {size - 1}")
    return size


#: Rows per page when the whole log is read back (`LedgerState.load(each_entry=...)`).
REBUILD_PAGE = 1000


def _entry_pages(connection: Connection) -> Iterator[Any]:
    """Every stored entry row (seq, data, leaf_hash, t_us) in seq order, read in pages of
    `REBUILD_PAGE` rows by seq (keyset), each page an ordinary fetched query."""
    after = -1
    while True:
        rows = connection.execute(
            select(ENTRIES.c.seq, ENTRIES.c.data, ENTRIES.c.leaf_hash, ENTRIES.c.t_us)
            .where(ENTRIES.c.seq > after)
            .order_by(ENTRIES.c.seq)
            .limit(REBUILD_PAGE)
        ).all()
        yield from rows
        if len(rows) < REBUILD_PAGE:
            return
        after = int(rows[-1].seq)


def read_entries(connection: Connection, begin: int, end: int) -> list[StoredEntry]:
    """Entries ``[begin, end)``, their leaf hashes recomputed from the bytes and checked
    against the stored ones. Raises :class:`StoredDataError` if one is missing or differs."""
    if not 0 <= begin <= end:
        raise MalformedError(f"invalid entry range [{begin}, {end})")
    rows = connection.execute(
        select(ENTRIES.c.seq, ENTRIES.c.data, ENTRIES.c.leaf_hash, ENTRIES.c.t_us)
        .where(ENTRIES.c.seq >= begin, ENTRIES.c.seq < end)
        .order_by(ENTRIES.c.seq)
    ).all()
    entries: list[StoredEntry] = []
    for expected, row in enumerate(rows, start=begin):
        if row.seq != expected:
            break
        entry = StoredEntry(int(row.seq), bytes(row.data), int(row.t_us))
        if entry.leaf_hash != bytes(row.leaf_hash):
            raise StoredDataError(f"entry {row.seq}: stored leaf hash differs from its bytes")
        entries.append(entry)
    if len(entries) != end - begin:
        raise StoredDataError(f"entries [{begin}, {end}) are not all stored")
    return entries


def _leaf_hashes(connection: Connection, begin: int, end: int) -> list[bytes]:
    rows = connection.execute(
        select(ENTRIES.c.seq, ENTRIES.c.leaf_hash)
        .where(ENTRIES.c.seq >= begin, ENTRIES.c.seq < end)
        .order_by(ENTRIES.c.seq)
    ).all()
    if [row.seq for row in rows] != list(range(begin, end)):
        raise StoredDataError(f"leaf hashes [{begin}, {end}) are not all stored")
    return [bytes(row.leaf_hash) for row in rows]


def _node_hashes(connection: Connection, level: int, begin: int, end: int) -> list[bytes]:
    rows = connection.execute(
        select(HASHES.c.node_index, HASHES.c.hash)
        .where(
            HASHES.c.level == level,
            HASHES.c.node_index >= begin,
            HASHES.c.node_index < end,
        )
        .order_by(HASHES.c.node_index)
    ).all()
    if [row.node_index for row in rows] != list(range(begin, end)):
        raise StoredDataError(f"hashes [{begin}, {end}) of level {level} are not all stored")
    return [bytes(row.hash) for row in rows]


def read_tile(connection: Connection, tile: Tile) -> bytes:
    """The bytes of ``tile`` (full or partial) from the stored hashes.

    The caller checks first that the tile lies within a tree it may serve (a published
    checkpoint); :class:`StoredDataError` here means stored data is missing.
    """
    first = tile.index * TILE_WIDTH
    if tile.level == 0:
        hashes = _leaf_hashes(connection, first, first + tile.width)
    else:
        hashes = _node_hashes(connection, tile.node_level, first, first + tile.width)
    if any(len(digest) != HASH_SIZE for digest in hashes):
        raise StoredDataError(f"{tile.path}: a stored hash has the wrong length")
    return b"".join(hashes)


def _read_tile_checked(connection: Connection, tile: Tile) -> bytes:
    """Like :func:`read_tile`, but level-0 hashes are recomputed from the entry bytes."""
    if tile.level != 0:
        return read_tile(connection, tile)
    first = tile.index * TILE_WIDTH
    return b"".join(e.leaf_hash for e in read_entries(connection, first, first + tile.width))


def read_entry_bundle(connection: Connection, bundle: EntryBundle) -> bytes:
    """The bytes of an entry bundle (tlog-tiles ``tile/entries/...``), leaf hashes checked."""
    entries = read_entries(connection, bundle.leaf_begin, bundle.leaf_end)
    return build_entry_bundle([entry.data for entry in entries])


ExpandedTile = tuple[bytes, ...]
"""Every complete subtree inside a tile: level ``j`` is the concatenated roots (32 bytes each)
of ``2**j`` tile hashes; level 0 is the tile's own bytes. One string per level, not one per
hash: a full tile takes 16 KiB, not the ~37 KiB of 511 separate hash objects (RELIABILITY.md
§6: servers keep many of them)."""


def expand_tile(tile: Tile, data: bytes) -> ExpandedTile:
    """Hash a tile's ``width`` hashes up to the top of the tile, once (``width - 1`` node
    hashes), so that any node inside it is then a lookup (:func:`expanded_hash`). Raises
    :class:`MalformedError` if ``data`` is not ``width`` hashes."""
    level = parse_tile(tile, data)
    levels = [b"".join(level)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        levels.append(b"".join(level))
    return tuple(levels)


def expanded_hash(levels: ExpandedTile, height: int, index: int) -> bytes:
    """The root of the ``index``-th complete subtree of height ``height`` in an expanded tile."""
    start = index * HASH_SIZE
    digest = levels[height][start : start + HASH_SIZE]
    if len(digest) != HASH_SIZE:
        raise IndexError(f"no subtree {index} of height {height} in this tile")
    return digest


class SubtreeReader:
    """A :class:`~chain.proof.HashReader` over the tiles of the tree of ``size`` that expands
    each tile it needs once (:func:`expand_tile`): a proof costs a few tile reads and lookups.

    ``expanded(tile)`` returns the expanded tile; callers may cache full tiles across readers
    (they never change). The hashes are unauthenticated, as with :class:`~chain.TileHashReader`.
    """

    def __init__(self, size: int, expanded: Callable[[Tile], ExpandedTile]) -> None:
        self._size = size
        self._expanded = expanded
        self._local: dict[Tile, ExpandedTile] = {}

    def __call__(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)`` of the tree of ``size``."""
        tile, offset, count = tile_for_node(level, index, self._size)
        levels = self._local.get(tile)
        if levels is None:
            levels = self._local[tile] = self._expanded(tile)
        height = count.bit_length() - 1
        return expanded_hash(levels, height, offset >> height)


def hash_reader(connection: Connection, size: int) -> SubtreeReader:
    """A :class:`~chain.proof.HashReader` over the stored tiles of the tree of ``size``.

    Valid while ``connection`` is; use it with :func:`chain.inclusion_proof` and friends.
    """
    return SubtreeReader(size, lambda tile: expand_tile(tile, read_tile(connection, tile)))


def tree_root(connection: Connection, size: int) -> bytes:
    """The root of the stored tree of ``size`` entries, from stored hashes."""
    return _tree_root(size, hash_reader(connection, size))


def inclusion_proof(connection: Connection, index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of entry ``index`` in the stored tree of ``size``."""
    return _inclusion_proof(index, size, hash_reader(connection, size))


def consistency_proof(connection: Connection, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof from ``size1`` to ``size2`` over the stored tree."""
    return _consistency_proof(size1, size2, hash_reader(connection, size2))


# --- the signed head and checkpoints --------------------------------------------------------------


def read_signed(connection: Connection) -> SignedHead:
    """The signed-head lock: the largest size ever signed and its root."""
    row = connection.execute(select(SIGNED.c.size, SIGNED.c.root).where(SIGNED.c.id == 1)).first()
    if row is None:
        raise StoredDataError("the signed-head row is missing (create_tables was not run)")
    return SignedHead(int(row.size), bytes(row.root))


def cas_signed(
    connection: Connection, old_size: int, new_size: int, root: bytes, now_us: int
) -> None:
    """Move the signed-head lock from ``old_size`` to ``new_size`` with ``root``, atomically.

    Call it in the transaction that stores the checkpoint, *before* signing; sign only if it
    returns. Raises :class:`SignedHeadConflict` unless the lock is still at ``old_size`` and
    ``new_size > old_size`` (a size is signed once, with one root). The conditional UPDATE is
    the compare-and-swap: SQLite serialises writers, PostgreSQL re-checks the condition on the
    latest row version, so of two signers with the same ``old_size`` only one succeeds.
    """
    if new_size <= old_size:
        raise SignedHeadConflict(f"refusing to sign size {new_size} after size {old_size}")
    if len(root) != HASH_SIZE:
        raise MalformedError("root must be 32 bytes")
    result = connection.execute(
        update(SIGNED)
        .where(SIGNED.c.id == 1, SIGNED.c.size == old_size)
        .values(size=new_size, root=root, updated_us=now_us)
    )
    if result.rowcount != 1:
        current = read_signed(connection)
        raise SignedHeadConflict(
            f"the signed head is at size {current.size}, not {old_size}: another signer is active"
        )


def store_checkpoint(
    connection: Connection, size: int, root: bytes, note: bytes, now_us: int
) -> None:
    """Store a signed checkpoint (not yet published), in the transaction of :func:`cas_signed`."""
    connection.execute(
        insert(CHECKPOINTS).values(
            size=size, root=root, note=note, signed_us=now_us, published_us=None
        )
    )


def publish_checkpoint(connection: Connection, size: int, note: bytes, now_us: int) -> None:
    """Mark the checkpoint of ``size`` published, with ``note`` (the signed note plus any
    cosignatures). Raises :class:`StoredDataError` if no checkpoint of that size is stored."""
    result = connection.execute(
        update(CHECKPOINTS).where(CHECKPOINTS.c.size == size).values(note=note, published_us=now_us)
    )
    if result.rowcount != 1:
        raise StoredDataError(f"no signed checkpoint of size {size} to publish")


def _checkpoint(row: Any) -> StoredCheckpoint:
    published = None if row.published_us is None else int(row.published_us)
    return StoredCheckpoint(
        int(row.size), bytes(row.root), bytes(row.note), int(row.signed_us), published
    )


def latest_checkpoint(connection: Connection, *, published: bool = True) -> StoredCheckpoint | None:
    """The checkpoint of the largest size (only published ones by default), or ``None``."""
    query = select(CHECKPOINTS).order_by(CHECKPOINTS.c.size.desc()).limit(1)
    if published:
        query = query.where(CHECKPOINTS.c.published_us.is_not(None))
    row = connection.execute(query).first()
    return None if row is None else _checkpoint(row)


def read_checkpoint(connection: Connection, size: int) -> StoredCheckpoint | None:
    """The stored checkpoint of ``size`` (published or not), or ``None``."""
    row = connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.size == size)).first()
    return None if row is None else _checkpoint(row)


def checkpoint_sizes(connection: Connection, *, published: bool = True) -> list[int]:
    """The sizes of the stored checkpoints (only published ones by default), ascending."""
    query = select(CHECKPOINTS.c.size).order_by(CHECKPOINTS.c.size)
    if published:
        query = query.where(CHECKPOINTS.c.published_us.is_not(None))
    return [int(size) for size in connection.execute(query).scalars()]
