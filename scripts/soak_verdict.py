"""The soak's verdict (pure): its samples, the memory slope, PASS or FAIL and why, the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .harness.report import fixed_row
from .harness.stats import least_squares


@dataclass(frozen=True)
class Sample:
    """One sampling point: seconds since the load started and what was measured."""

    t_s: float
    rss_kib: int
    fds: int
    anon_kib: int = 0  # RssAnon: the heap; what the memory verdict is about
    acks: int = 0
    ack_p50_ms: float = float("nan")
    ack_p99_ms: float = float("nan")
    age_p50_ms: float = float("nan")
    age_p99_ms: float = float("nan")
    log_size: int = 0
    published: int = 0
    cosignatures: int = 0
    lots_closed: int = 0
    errors: int = 0
    viewers: int = 0  # viewers whose peer connection is connected
    viewer_fps: float = float("nan")  # the fewest frames/s a viewer decoded over the interval
    viewers_stalled: int = 0  # viewers that decoded no frame over the interval
    # Where the anonymous memory is (`anon_breakdown`): glibc's main heap, its thread arenas
    # (and how many), and the rest (mmapped blocks, thread stacks, CPython's object arenas).
    heap_kib: int = 0
    arenas_kib: int = 0
    arenas: int = 0
    other_anon_kib: int = 0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rss_slope_kib_per_min: float
    fd_growth: int
    reasons: tuple[str, ...]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of `(seconds, value)` points, in value units per minute."""
    fit = least_squares(points)
    return 0.0 if fit is None else fit[0] * 60.0


def judge(
    samples: Sequence[Sample],
    *,
    errors: int,
    rss_slope_limit: float = 256.0,
    fd_growth_limit: int = 8,
    need_checkpoints: bool = True,
) -> Verdict:
    """PASS or FAIL for a run (see the module docstring)."""
    reasons: list[str] = []
    # a viewer that stopped receiving: no frame over an interval (the first is the warm-up)
    stalled = sum(s.viewers_stalled for s in samples[1:])
    if len(samples) < 4:
        reasons.append(f"only {len(samples)} samples: run longer than 4 intervals")
    second = list(samples[len(samples) // 2 :])
    slope = slope_per_minute([(s.t_s, float(s.anon_kib or s.rss_kib)) for s in second])
    quarter = max(1, len(samples) // 4)
    growth = 0
    if len(samples) >= 4:
        base = min(s.fds for s in samples[quarter : 2 * quarter])
        growth = min(s.fds for s in samples[-quarter:]) - base
    if errors or stalled:
        detail = f" ({stalled} of them: a viewer decoded no frame over an interval)"
        reasons.append(f"{errors + stalled} errors" + (detail if stalled else ""))
    if slope > rss_slope_limit:
        reasons.append(
            f"memory grows: anonymous RSS slope {slope:.0f} KiB/min over the second half "
            f"(limit {rss_slope_limit:.0f})"
        )
    if growth > fd_growth_limit:
        reasons.append(f"the open fds' floor grew by {growth} (limit {fd_growth_limit})")
    if need_checkpoints and second and second[-1].published <= samples[0].published:
        reasons.append("no checkpoint was published during the run")
    return Verdict(not reasons, slope, growth, tuple(reasons))


COLUMNS = (
    ("t_s", 7), ("rss_MiB", 8), ("anon_MiB", 8), ("fds", 5), ("acks", 6), ("ack_p50", 8),
    ("ack_p99", 8), ("age_p50", 8), ("age_p99", 8), ("log", 7), ("publ", 7), ("cosig", 5),
    ("lots", 5), ("err", 4), ("vwrs", 4), ("vfps", 5), ("stall", 5),
)  # fmt: skip
WIDTHS = [width for _, width in COLUMNS]


def table(samples: Sequence[Sample]) -> str:
    head = fixed_row([name for name, _ in COLUMNS], WIDTHS)
    return "\n".join([head, *(row(s) for s in samples)])


def row(s: Sample) -> str:
    values = (
        f"{s.t_s:.0f}", f"{s.rss_kib / 1024:.1f}", f"{s.anon_kib / 1024:.1f}", str(s.fds),
        str(s.acks), f"{s.ack_p50_ms:.1f}", f"{s.ack_p99_ms:.1f}", f"{s.age_p50_ms:.1f}",
        f"{s.age_p99_ms:.1f}", str(s.log_size), str(s.published), str(s.cosignatures),
        str(s.lots_closed), str(s.errors), str(s.viewers), f"{s.viewer_fps:.1f}",
        str(s.viewers_stalled),
    )  # fmt: skip
    return fixed_row(values, WIDTHS)
