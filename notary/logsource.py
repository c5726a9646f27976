"""Reading the log: its tlog-tiles HTTP layout (entry bundles, hash tiles, checkpoint)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Protocol, TypeVar

import aiohttp

from chain import (
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    TILE_WIDTH,
    ChainError,
    CosignatureSigner,
    EntryBundle,
    Tile,
    parse_entry_bundle,
)

from .errors import LogUnavailableError, NotaryError
from .readauth import read_authorization

MAX_BUNDLE_BYTES: Final = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)
MAX_TILE_BYTES: Final = TILE_WIDTH * 32
_OPENINGS_PAGE: Final = 4096
_MAX_OPENINGS_BYTES: Final = 64 * 1024 * 1024
_T = TypeVar("_T")


async def run_all(jobs: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run ``jobs`` in a task group (siblings are cancelled if one fails); re-raise the first
    :class:`NotaryError` as itself rather than inside an ``ExceptionGroup``."""
    tasks: list[asyncio.Task[_T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(job) for job in jobs]
    except* NotaryError as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


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
        bundles = await run_all(
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
        fetched = await run_all([self._tile(tile) for tile in unique])
        return dict(zip(unique, fetched, strict=True))

    async def checkpoint(self) -> bytes:
        data = await self._get("checkpoint", MAX_NOTE_SIZE)
        if data is None:
            raise LogUnavailableError("the log has no published checkpoint")
        return data
