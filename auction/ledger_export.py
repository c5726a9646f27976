"""`gavel ledger export`: the ledger as a static, verifiable C2SP tlog-tiles tree.

Layout of `OUT` (what `gavel audit verify OUT` reads)::

    OUT/checkpoint                      the latest published checkpoint (signed note)
    OUT/tile/<L>/<N>[.p/<W>]            the hash tiles of that tree (tlog-tiles)
    OUT/tile/entries/<N>[.p/<W>]        its entry bundles
    OUT/policy                          the trust policy (C2SP tlog-policy)
    OUT/checkpoints/<size, 20 digits>   every published checkpoint, the latest included
    OUT/receipts/<seq>.tlog-proof       a receipt (c2sp.org/tlog-proof@v1) against OUT/checkpoint
    OUT/receipts/<seq>.entry            and the entry it proves, for every `sale` entry
                                        (every entry with `all_receipts`)
    OUT/openings.json                   the openings of the sealed values of those entries
                                        (`auction.sealed`, docs/ledger.md): the auditor checks
                                        each against its commitment; absent in exports made
                                        before sealed values (their entries seal nothing)

The source is a store (`StoreSource`: a data directory or database URL, read-only) or a running
server (`HttpSource`: `/log/...`), behind one small protocol (`LedgerSource`). Nothing is
written that was not verified first, fail-closed: the checkpoint's log signature and quorum
under the policy; every entry's leaf hash against the level-0 tiles and the root recomputed
from all entries against the checkpoint; every tile against the tree recomputed from the
entries; every older checkpoint's signature and its root in that tree (consistency); every
receipt with `chain.verify_receipt`. The tree is written to a temporary directory beside `OUT`
and renamed into place, so `OUT` is either complete or untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chain import (
    HASH_SIZE,
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    MAX_POLICY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    CompactRange,
    EntryBundle,
    EntryType,
    Policy,
    ProofError,
    Tile,
    TileHashReader,
    build_tile,
    canonical_json,
    entry_bundles_for_size,
    inclusion_proof,
    leaf_hash,
    make_receipt,
    parse_entry_bundle,
    parse_policy,
    tiles_for_size,
    tree_root,
    verify_receipt,
)

from .audit.sources import read_response
from .errors import GavelError
from .storage import Storage

#: Checkpoint file names in `OUT/checkpoints/`: the tree size, zero-padded to 20 digits.
CHECKPOINT_DIGITS = 20

#: Largest `/log/checkpoints` listing accepted over HTTP (21 bytes per checkpoint).
MAX_LISTING_SIZE = 64 * 1024 * 1024

#: Seconds to wait for one HTTP response.
HTTP_TIMEOUT = 30.0
#: Where an export keeps the openings of sealed values, and how many entries one request asks.
OPENINGS_FILE = "openings.json"
OPENINGS_PAGE = 4096
MAX_OPENINGS_BYTES = 64 * 1024 * 1024


class ExportError(GavelError):
    """The export cannot be made: the source is unreachable or answers wrongly, or `OUT` is
    not empty (use `force`). Verification failures are `chain.ChainError`s instead; either
    way nothing was written to `OUT`."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: tree `size`, `checkpoints` and `receipts` written, `sales` found."""

    out: Path
    origin: str
    size: int
    checkpoints: int
    receipts: int
    sales: int


class LedgerSource(Protocol):
    """Where the ledger is read from. Every method returns raw, unverified bytes."""

    def policy(self) -> bytes: ...

    def checkpoint(self) -> bytes: ...

    def checkpoint_sizes(self) -> list[int]: ...

    def checkpoint_at(self, size: int) -> bytes: ...

    def tile(self, tile: Tile | EntryBundle) -> bytes: ...

    def openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]: ...

    def close(self) -> None: ...


class StoreSource:
    """A ledger read straight from storage (`Storage.open(target, read_only=True)`)."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self._store = Storage.open(target, read_only=True)

    def policy(self) -> bytes:
        return self._store.ledger_policy()

    def checkpoint(self) -> bytes:
        head = self._store.published_checkpoint()
        if head is None:
            raise ExportError(f"{self._store.location} has no published checkpoint yet")
        return head.note

    def checkpoint_sizes(self) -> list[int]:
        return self._store.checkpoint_sizes()

    def checkpoint_at(self, size: int) -> bytes:
        note = self._store.checkpoint_note(size)
        if note is None:
            raise ExportError(f"no published checkpoint of size {size}")
        return note

    def openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]:
        return self._store.ledger_openings(begin, end)

    def tile(self, tile: Tile | EntryBundle) -> bytes:
        return self._store.ledger_tile(tile)

    def close(self) -> None:
        self._store.close()


class HttpSource:
    """A ledger read from a gavel server's `/log/` API (`base_url` like `http://host:port/`)."""

    def __init__(
        self, base_url: str, *, timeout: float = HTTP_TIMEOUT, token: str | None = None
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ExportError(f"not an http(s) URL: {base_url!r}")
        self._base = base_url.rstrip("/") + "/"
        self._timeout = timeout
        # An auditor session reads the sealed entries of open lots (docs/protocol.md section 4).
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # No proxies from the environment: the URL is fetched as given.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _get(self, path: str, limit: int) -> bytes:
        url = urllib.parse.urljoin(self._base, path)
        request = urllib.request.Request(url, headers=self._headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                data = read_response(response, limit, self._timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 403:
                raise ExportError(
                    f"GET {url}: HTTP 403 (served to auditors only: give an auditor "
                    "session with --token or GAVEL_TOKEN)"
                ) from exc
            raise ExportError(f"GET {url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ExportError(f"GET {url}: {exc}") from exc
        if len(data) > limit:
            raise ExportError(f"GET {url}: more than {limit} bytes")
        return data

    def policy(self) -> bytes:
        return self._get("log/policy", MAX_POLICY_SIZE)

    def checkpoint(self) -> bytes:
        return self._get("log/checkpoint", MAX_NOTE_SIZE)

    def checkpoint_sizes(self) -> list[int]:
        listing = self._get("log/checkpoints", MAX_LISTING_SIZE)
        try:
            names = listing.decode("ascii").split()
        except UnicodeDecodeError as exc:
            raise ExportError("the checkpoint listing is not ASCII") from exc
        if any(len(name) != CHECKPOINT_DIGITS or not name.isdigit() for name in names):
            raise ExportError("the checkpoint listing holds something else than 20-digit names")
        return [int(name) for name in names]

    def checkpoint_at(self, size: int) -> bytes:
        return self._get(f"log/checkpoints/{checkpoint_file_name(size)}", MAX_NOTE_SIZE)

    def tile(self, tile: Tile | EntryBundle) -> bytes:
        if isinstance(tile, EntryBundle):
            return self._get("log/" + tile.path, tile.width * (2 + MAX_ENTRY_BYTES))
        return self._get("log/" + tile.path, tile.width * HASH_SIZE)

    def openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]:
        """`GET /log/openings/<begin>-<end>` (an auditor session: `token`). Without one the
        server refuses them (403): the export is the public log alone, without `openings.json`,
        and `gavel audit verify` of it stops at the first sealed value (step 8) and says so."""
        if not self._headers:
            return {}
        data = self._get(f"log/openings/{begin}-{end}", MAX_OPENINGS_BYTES)
        try:
            value = json.loads(data)
            return {int(seq): dict(item) for seq, item in value["openings"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExportError(f"the log served unreadable openings: {exc}") from exc

    def close(self) -> None:
        return None


def checkpoint_file_name(size: int) -> str:
    """`OUT/checkpoints/<name>` of the checkpoint of `size`: 20 zero-padded digits."""
    return f"{size:0{CHECKPOINT_DIGITS}d}"


def open_source(
    *, data: Path | None, db: str | None, url: str | None, token: str | None = None
) -> LedgerSource:
    """The source named by exactly one of `--data`, `--db`, `--url` (with `token`, an auditor
    session for a URL); the caller closes it."""
    if sum(option is not None for option in (data, db, url)) != 1:
        raise ExportError("give exactly one of --data, --db, --url")
    if url is not None:
        return HttpSource(url, token=token)
    target: str | os.PathLike[str] = data if data is not None else str(db)
    return StoreSource(target)


# --- the tree, recomputed from the entries --------------------------------------------------------


class _Tree:
    """The hashes of the tiles of a tree, computed from its entries' leaf hashes (a hash
    reader for proofs, and what every fetched tile must equal)."""

    def __init__(self) -> None:
        self._range = CompactRange()
        self._nodes: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return self._range.end

    def append(self, entry: bytes) -> bytes:
        digest = leaf_hash(entry)
        for node, value in self._range.append(digest):
            if node.level % TILE_HEIGHT == 0:
                self._nodes[(node.level, node.index)] = value
        return digest

    def root(self) -> bytes:
        return self._range.root()

    def _node(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise ProofError(f"node ({level}, {index}) is not in the exported tree") from None

    def tile(self, tile: Tile) -> bytes:
        return build_tile(tile, self._node)

    def reader(self, size: int) -> TileHashReader:
        return TileHashReader(size, self.tile)


# --- the export ---------------------------------------------------------------------------------


def export_ledger(
    source: LedgerSource, out: Path, *, all_receipts: bool = False, force: bool = False
) -> ExportSummary:
    """Verify and write the ledger of `source` to `out` (layout: module docstring).

    Refuses a non-empty `out` unless `force` (which then replaces it). Raises `ExportError`
    or a `chain.ChainError` (with the reason) and leaves `out` as it was.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(work, 0o755)
        origin, size, checkpoints, receipts, sales = _write_tree(source, work, all_receipts)
        _replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportSummary(out, origin, size, checkpoints, receipts, sales)


def _write_tree(
    source: LedgerSource, work: Path, all_receipts: bool
) -> tuple[str, int, int, int, int]:
    """Fetch, verify and write everything into `work`; returns (origin, size, checkpoints,
    receipts, sales)."""
    policy_bytes = source.policy()
    policy: Policy = parse_policy(policy_bytes)
    note = source.checkpoint()
    latest = policy.verify_checkpoint(note).checkpoint  # log signature and quorum
    size = latest.size

    tree = _Tree()
    wanted: set[int] = set()
    sales = 0
    for bundle in entry_bundles_for_size(size):
        data = source.tile(bundle)
        entries = parse_entry_bundle(bundle, data)
        for seq, entry in enumerate(entries, start=bundle.leaf_begin):
            tree.append(entry)
            sale = _is_sale(entry)
            sales += sale
            if all_receipts or sale:
                wanted.add(seq)
        _write(work / bundle.path, data)
    if tree.size != size or tree.root() != latest.root:
        raise ProofError(f"the entries do not make the tree of checkpoint {size}")

    for tile in tiles_for_size(size):
        data = source.tile(tile)
        if data != tree.tile(tile):
            raise ProofError(f"{tile.path} does not match the tree of the entries")
        _write(work / tile.path, data)

    sizes = [old_size for old_size in source.checkpoint_sizes() if old_size <= size]
    if size not in sizes:  # later ones were published after we read the latest: skipped
        raise ExportError(f"the checkpoint of size {size} is missing from the listing")
    reader = tree.reader(size)
    for old_size in sizes:
        old_note = note if old_size == size else source.checkpoint_at(old_size)
        old = policy.verify_checkpoint(old_note).checkpoint
        if old.size != old_size or old.origin != latest.origin:
            raise ProofError(f"checkpoint {old_size} is not a checkpoint of this log")
        if tree_root(old_size, reader) != old.root:
            raise ProofError(f"checkpoint {old_size} is not consistent with checkpoint {size}")
        _write(work / "checkpoints" / checkpoint_file_name(old_size), old_note)

    receipts = 0
    for seq, entry in _entries(work, size, wanted):
        receipt = make_receipt(seq, inclusion_proof(seq, size, reader), note)
        verify_receipt(receipt, entry, None, policy)
        _write(work / "receipts" / f"{seq}.tlog-proof", receipt)
        _write(work / "receipts" / f"{seq}.entry", entry)
        receipts += 1

    opened: dict[str, Any] = {}
    for begin in range(0, size, OPENINGS_PAGE):
        for seq, item in source.openings(begin, min(size, begin + OPENINGS_PAGE)).items():
            opened[str(seq)] = item
    if opened:
        _write(work / OPENINGS_FILE, canonical_json({"v": 1, "openings": opened}))

    _write(work / "policy", policy_bytes)
    _write(work / "checkpoint", note)
    return latest.origin, size, len(sizes), receipts, sales


def _is_sale(entry: bytes) -> bool:
    """Whether an entry's type is `sale` (a cheap look; the receipt check parses it strictly)."""
    try:
        value = json.loads(entry)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("type") == EntryType.SALE.value


def _entries(work: Path, size: int, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """The wanted entries, read back from the bundles already written (bounded memory)."""
    bundles = {seq // TILE_WIDTH for seq in wanted}
    for bundle in entry_bundles_for_size(size):
        if bundle.index not in bundles:
            continue
        entries = parse_entry_bundle(bundle, (work / bundle.path).read_bytes())
        for seq, entry in enumerate(entries, start=bundle.leaf_begin):
            if seq in wanted:
                yield seq, entry


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _replace(work: Path, out: Path) -> None:
    """Move the finished tree to `out`: a rename, with any old `out` moved aside first."""
    _sync_tree(work)
    old: Path | None = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sync_tree(root: Path) -> None:
    """fsync every file written, then the directories, before the rename makes them visible."""
    for directory, _, files in os.walk(root):
        for name in files:
            descriptor = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


__all__ = [
    "CHECKPOINT_DIGITS",
    "ExportError",
    "ExportSummary",
    "HttpSource",
    "LedgerSource",
    "StoreSource",
    "checkpoint_file_name",
    "export_ledger",
    "open_source",
]
