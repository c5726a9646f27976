"""Shared helpers of the tests, first written for `test_fuzz_mutations.py`."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

__all__ = ["Check", "Fuzzers", "bounded", "mutated", "run_fuzzer"]


Check = Callable[[Any], None]


Fuzzers = dict[str, tuple[st.SearchStrategy[Any], Check]]


TOKENS: tuple[bytes, ...] = (
    b"\n",
    b"\n\n",
    b"\r\n",
    b" ",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"\xe2\x80\x94 ",  # the em dash that starts a note signature line
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate (invalid UTF-8)
    b"\xf0\x9f\x92\xb0",
    b"+",
    b"-",
    b"=",
    b"==",
    b"/",
    b"../",
    b"..",
    b"%2e%2e",
    b"%2F",
    b"\\",
    b".p/",
    b"x",
    b"0",
    b"00",
    b"-1",
    b"255",
    b"256",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9" * 40,
    b"9" * 5000,
    b"NaN",
    b"Infinity",
    b"1e999",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b"[" * 3000,
    b"A" * 64,
)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_ops: int = 4) -> bytes:
    """One of ``seeds`` with 1..``max_ops`` byte- and line-level mutations."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=max_ops))):
        size = len(data)
        at = draw(st.integers(min_value=0, max_value=size))
        op = draw(st.integers(min_value=0, max_value=8))
        if op == 0 and size:
            data[min(at, size - 1)] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == 1:
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == 3:
            data[at : at + draw(st.integers(min_value=1, max_value=64))] = b""
        elif op == 4:
            end = min(size, at + draw(st.integers(min_value=1, max_value=64)))
            chunk = bytes(data[at:end])
            where = draw(st.integers(min_value=0, max_value=size))
            data[where:where] = chunk
        elif op == 5:
            del data[at:]
        elif op == 6 and size:
            data[min(at, size - 1)] = draw(st.integers(min_value=0, max_value=255))
        else:
            data[:] = _mutate_lines(draw, bytes(data))
    return bytes(data)


def _mutate_lines(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.split(b"\n")
    i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    op = draw(st.integers(min_value=0, max_value=3))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    elif op == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = draw(st.sampled_from(TOKENS)) + lines[i][: draw(st.integers(0, 80))]
    return b"\n".join(lines)


class Hang(BaseException):
    """A parser overran its time bound (a BaseException, so no parser can swallow it)."""


@contextlib.contextmanager
def bounded(seconds: float, what: str) -> Iterator[None]:
    """Fail when the block takes longer than ``seconds``; interrupt it (SIGALRM, main thread
    only) when it takes four times as long, so that a hang ends as a failure."""
    armed = threading.current_thread() is threading.main_thread()
    previous: Any = None
    pending = 0.0  # an alarm already set (pytest-timeout's), put back afterwards
    if armed:

        def _alarm(signum: int, frame: object) -> None:
            raise Hang(f"{what} did not return within {4 * seconds:g} s")

        previous = signal.signal(signal.SIGALRM, _alarm)
        pending, _ = signal.setitimer(signal.ITIMER_REAL, 4 * seconds)
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if pending:
                signal.setitimer(signal.ITIMER_REAL, max(pending - elapsed, 0.001))
    assert elapsed < seconds, f"{what} took {elapsed:.2f} s (bound {seconds:g} s)"


def run_fuzzer(fuzzers: Fuzzers, name: str, max_examples: int) -> None:
    """Run one registered fuzzer under Hypothesis for ``max_examples`` cases (the CI bound)."""
    strategy, check = fuzzers[name]
    settings(max_examples=max_examples, deadline=None, database=None)(given(strategy)(check))()
