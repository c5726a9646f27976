#!/usr/bin/env python3
"""Run the parser fuzzers of ``tests/fuzz/`` for long: ``N`` cases or ``M`` minutes each.

The tests run every fuzzer for a few hundred cases (CI); this script runs the very same
strategies and checks (each module's ``FUZZERS``, and ``CONTEXT_FUZZERS`` that need a running
server, a notary process or a seed export directory) with fresh random seeds, batch after
batch, and prints the cases run, the failures and the time per parser. A failure is shrunk by
Hypothesis, printed with its minimal input, and the run goes on with the next parser. Exit
status: 0 when no parser failed, 1 otherwise.

    .venv/bin/python -m scripts.fuzz --minutes 1            # one minute per parser
    .venv/bin/python -m scripts.fuzz --examples 20000 --only note
    .venv/bin/python -m scripts.fuzz --list
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "test_fuzz_protocol",
    "test_fuzz_signaling",
    "test_fuzz_notes",
    "test_fuzz_receipts",
    "test_fuzz_tiles",
    "test_fuzz_export",
    "test_fuzz_notary",
    "test_fuzz_rest",
)
BATCH = 200


@dataclass
class Outcome:
    name: str
    cases: int = 0
    failures: int = 0
    seconds: float = 0.0
    error: str = ""


Pair = tuple[Any, Callable[[Any], None]]


def _import_paths() -> None:
    # The fuzzers live in the test modules of tests/fuzz, which import their helpers
    # (``fuzz_kit``, ``server_kit``, ... in tests/support) by bare name, as pytest runs them:
    # both directories go last on the path, so that ``chain`` stays the package
    # (run as ``python -m scripts.fuzz``, the root is first).
    sys.path.append(str(ROOT / "tests" / "support"))
    sys.path.append(str(ROOT / "tests" / "fuzz"))


def discover(only: str | None) -> dict[str, Callable[[], AbstractContextManager[Pair]]]:
    """Every fuzzer by name, as a context manager factory yielding (strategy, check)."""
    found: dict[str, Callable[[], AbstractContextManager[Pair]]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, pair in getattr(module, "FUZZERS", {}).items():
            found[name] = _constant(pair)
        for name, factory in getattr(module, "CONTEXT_FUZZERS", {}).items():
            found[name] = factory
    if only:
        found = {name: factory for name, factory in found.items() if only in name}
    return found


def _constant(pair: Pair) -> Callable[[], AbstractContextManager[Pair]]:
    @contextmanager
    def factory() -> Iterator[Pair]:
        yield pair

    return factory


def run_one(
    name: str,
    factory: Callable[[], AbstractContextManager[Pair]],
    examples: int | None,
    seconds: float | None,
) -> Outcome:
    from hypothesis import HealthCheck, given, settings

    outcome = Outcome(name)
    started = time.perf_counter()
    with factory() as (strategy, check):

        def counted(value: Any) -> None:
            outcome.cases += 1
            check(value)

        while True:
            left = None if examples is None else examples - outcome.cases
            if left is not None and left <= 0:
                break
            if seconds is not None and time.perf_counter() - started >= seconds:
                break
            batch = BATCH if left is None else min(BATCH, left)
            test = settings(
                max_examples=batch,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(strategy)(counted))
            before = outcome.cases
            try:
                test()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a failure of the parser under test, incl. a hang
                outcome.failures += 1
                outcome.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                print(f"\n--- {name}: FAILED\n{traceback.format_exc()}", file=sys.stderr)
                break
            if outcome.cases == before:
                break  # the strategy has nothing new to give
    outcome.seconds = time.perf_counter() - started
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--examples", type=int, help="cases per parser")
    budget.add_argument("--minutes", type=float, help="minutes per parser")
    parser.add_argument("--only", help="run the parsers whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the parsers and exit")
    args = parser.parse_args(argv)
    _import_paths()
    fuzzers = discover(args.only)
    if args.list:
        print("\n".join(fuzzers))
        return 0
    examples: int | None = args.examples
    seconds = None if args.minutes is None else args.minutes * 60
    if examples is None and seconds is None:
        examples = 1000
    outcomes: list[Outcome] = []
    print(f"{'parser':<28} {'cases':>9} {'failures':>9} {'seconds':>9}", flush=True)
    for name, factory in fuzzers.items():
        outcome = run_one(name, factory, examples, seconds)
        outcomes.append(outcome)
        print(
            f"{name:<28} {outcome.cases:>9} {outcome.failures:>9} {outcome.seconds:>9.1f}",
            flush=True,
        )
    total = sum(o.cases for o in outcomes)
    failed = [o for o in outcomes if o.failures]
    print(f"{'total':<28} {total:>9} {len(failed):>9} {sum(o.seconds for o in outcomes):>9.1f}")
    for outcome in failed:
        print(f"FAILED {outcome.name}: {outcome.error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
