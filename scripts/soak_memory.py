"""Where a process's anonymous memory is, from /proc/PID/smaps: glibc's main heap, its thread
arenas, the rest."""

from __future__ import annotations

import re

#: glibc maps each heap of a thread arena at a multiple of this (HEAP_MAX_SIZE on 64-bit).
GLIBC_HEAP_ALIGN = 64 << 20

_SMAPS_RANGE = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)")


def anon_breakdown(smaps: str) -> tuple[int, int, int, int]:
    """Anonymous memory in KiB from the text of /proc/PID/smaps: `(main heap, thread arenas,
    number of thread-arena heaps, the rest)`, summing to the process's anonymous pages. The
    main heap is the `[heap]` mapping (glibc's main arena); a thread arena's heap is an
    unnamed mapping that starts at a multiple of 64 MiB and ends inside it (glibc's layout);
    the rest is everything else: mmapped blocks, thread stacks, CPython's object arenas
    (pymalloc maps its own), copied pages of libraries. On another C library the first two
    are 0."""
    heap = arenas = count = rest = 0
    kind = "rest"
    for line in smaps.splitlines():
        match = _SMAPS_RANGE.fullmatch(line)
        if match is not None:
            start, end, name = int(match[1], 16), int(match[2], 16), match[4].strip()
            if name == "[heap]":
                kind = "heap"
            elif (
                not name
                and start % GLIBC_HEAP_ALIGN == 0
                and end - start <= GLIBC_HEAP_ALIGN
                and match[3].startswith("rw")
            ):
                kind = "arena"
                count += 1
            else:
                kind = "rest"
        elif line.startswith("Anonymous:"):
            kib = int(line.split()[1])
            if kind == "heap":
                heap += kib
            elif kind == "arena":
                arenas += kib
            else:
                rest += kib
    return heap, arenas, count, rest


def proc_anon_breakdown(pid: int) -> tuple[int, int, int, int]:
    """`anon_breakdown` of process `pid` (zeros if its smaps cannot be read)."""
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            return anon_breakdown(smaps.read())
    except OSError:
        return 0, 0, 0, 0
