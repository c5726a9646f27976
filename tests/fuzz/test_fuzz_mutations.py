"""The fuzzers' shared parts: mutation strategies, the time bound, and the fuzzer registry shape.

Every ``tests/test_fuzz_*.py`` module exposes ``FUZZERS``: a mapping of a parser's name to
``(strategy, check)``. Its tests run each check under Hypothesis for a bounded number of cases
(CI); ``scripts/fuzz.py`` runs the same pairs for as long as asked. A ``check`` feeds one input
to the parser and fails when the parser raised anything but its documented errors, returned
something that breaks its contract, or took longer than the bound.

Strategies mutate valid inputs made by the real code (a signed checkpoint from ``chain``, a
receipt from ``tests/ledger_builder.py``, a bid frame signed like a browser's) as well as
drawing raw bytes: byte flips, insertions of tokens that matter to these formats (newlines, the
em dash of note signatures, ``../``, huge decimals, ``NaN``), deletions, duplications, line
swaps and truncations.
"""

from __future__ import annotations

import signal
import time

from fuzz_kit import Hang, bounded, mutated
from hypothesis import given, settings

# --------------------------------------------------------------------------------------------
# The helpers' own tests


SEEDS = (b"old 5\nAAAA\n\nexample.org/log\n5\nroot\n\n\xe2\x80\x94 k abc\n",)


def test_mutations_change_the_seed_and_vary() -> None:
    seen: set[bytes] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(mutated(SEEDS))
    def collect(data: bytes) -> None:
        seen.add(data)

    collect()
    assert SEEDS[0] not in seen or len(seen) > 1
    assert len(seen) > 50, "the mutator should produce many distinct inputs"
    assert any(b"\n" not in item for item in seen) or any(len(item) < 10 for item in seen)


def test_bounded_interrupts_a_hang() -> None:
    try:
        with bounded(0.05, "a sleeper"):
            time.sleep(5)
    except Hang as exc:
        assert "a sleeper" in str(exc)
    else:
        raise AssertionError("the hang was not interrupted")


def test_bounded_fails_a_slow_call() -> None:
    try:
        with bounded(0.05, "a slow call"):
            time.sleep(0.1)
    except AssertionError as exc:
        assert "a slow call took" in str(exc)
    else:
        raise AssertionError("the slow call passed")


def test_bounded_keeps_an_alarm_already_set() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with bounded(1.0, "a quick call"):
            pass
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0, "the earlier alarm was cancelled"
        time.sleep(0.5)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
