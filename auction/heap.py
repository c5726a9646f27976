"""Gives the C allocator's free memory back to the system, now and then.

glibc's `malloc` keeps what a process frees in its arenas (the main one and one per thread
that allocated, up to eight per core) and returns it to the system only from the top of an
arena. A server that frees megabytes of buffers per second on several threads (the live
video's frames and packets, the database driver's pages) keeps a growing share of its
resident memory as free holes between live blocks. RELIABILITY.md §6: one `malloc_trim(0)`
released 15 MiB of a video-serving server's 183 MiB (0.7 MiB of one without video), and a
heap profile of that server showed its live C allocations flat (3.4-5.8 MiB over 7 minutes)
while its resident memory grew. `malloc_trim(0)` hands every free page of every arena back
(`madvise(MADV_DONTNEED)`); it took 0.4-0.9 ms at that size. It is one of the fixes that
made a 30-minute soak with video flat (RELIABILITY.md §6, runs 7-12); what the trims leave is
a ±3 MiB saw-tooth of the main heap between them.

`HeapTrimmer` does this every `interval_s` seconds on a worker thread. On a C library without
`malloc_trim` (musl, macOS) it does nothing: `available()` says which.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _find_trim() -> Callable[[int], int] | None:
    # The process's own symbols, the C library's included: no search of the library path.
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _find_trim()


def available() -> bool:
    """True when the C library has `malloc_trim` (glibc)."""
    return _TRIM is not None


def trim() -> bool:
    """Return the allocator's free memory to the system now (blocking; takes the arenas'
    locks in turn). True if some memory was released; False if none or not available."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


class HeapTrimmer:
    """Calls `trim()` every `interval_s` seconds on a worker thread until cancelled. `runs`
    and `last_ms` say how often and how long it took."""

    def __init__(self, interval_s: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"the trim interval must be positive, got {interval_s!r}")
        self.interval_s = interval_s
        self.runs = 0
        self.last_ms = 0.0

    async def run(self) -> None:
        if not available():
            log.debug("no malloc_trim in this C library: the heap is not trimmed")
            return
        while True:
            await asyncio.sleep(self.interval_s)
            started = time.perf_counter()
            await asyncio.to_thread(trim)
            self.last_ms = (time.perf_counter() - started) * 1e3
            self.runs += 1
            log.debug("heap trimmed in %.2f ms", self.last_ms)


__all__ = ["HeapTrimmer", "available", "trim"]
