"""What the auditor reads (STYLE rule 10): an export directory or a server's ``/log/``.

:class:`LedgerSource` is either an export directory (:class:`DirectorySource`, bounded
reads confined to the directory) or a server's ``/log/`` (:class:`HttpSource`, bounded
responses). A missing file is a :class:`MissingFileError`, which the pipeline turns into a
verdict at the step that needed the file; any other read failure is a
:class:`SourceError` and gives no verdict at all.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Protocol

from chain import (
    HASH_SIZE,
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    MAX_POLICY_SIZE,
    ChainError,
    EntryBundle,
    Tile,
    parse_tile_path,
)

from .errors import MissingFileError, OversizeError, SourceError

PREFETCH_DEPTH: Final = 8
"""Entry bundles read ahead of the pass (hides HTTP round trips)."""


MAX_LISTING_BYTES: Final = 64 * 1024 * 1024
"""Largest ``/log/checkpoints`` listing read (21 bytes per checkpoint)."""


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
            if exc.code == 403:  # openings (docs/ledger.md section 5), or a log's old sealed entry
                raise SourceError(
                    f"GET {url}: HTTP 403 (served to auditors only: give an auditor "
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


def read_or_error(source: LedgerSource, path: str) -> bytes | SourceError:
    try:
        return source.read(path)
    except SourceError as exc:
        return exc


def prefetch(
    source: LedgerSource, bundles: Sequence[EntryBundle]
) -> Generator[tuple[EntryBundle, bytes | SourceError, bytes | SourceError], None, None]:
    """Each bundle with its bytes and its level-0 tile's, read a few bundles ahead."""

    def fetch(bundle: EntryBundle) -> tuple[bytes | SourceError, bytes | SourceError]:
        tile = Tile(0, bundle.index, bundle.width)
        return read_or_error(source, bundle.path), read_or_error(source, tile.path)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="gavel-audit-read") as pool:
        pending: deque[tuple[EntryBundle, Future[tuple[bytes | SourceError, ...]]]] = deque()
        upcoming = iter(bundles)
        try:
            for bundle in upcoming:
                pending.append((bundle, pool.submit(fetch, bundle)))
                if len(pending) >= PREFETCH_DEPTH:
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
