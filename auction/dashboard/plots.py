"""The dashboard's plots: SVG drawn by matplotlib (the Agg-free SVG backend, no GUI) from the
tables of `auction.dashboard.analytics`. Blocking and CPU-bound: call from a worker thread.

Each function takes the tables (and a lot id where the plot is per lot) and returns SVG bytes.
The SVG holds paths and text only (matplotlib writes no script); the web adapter serves it as
`image/svg+xml` with the data CSP and `nosniff`, for use as an `<img>` source only.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import matplotlib

from ..errors import NotFound

matplotlib.use("svg")  # before pyplot: no display, no Agg needed

import matplotlib.dates as mdates  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..video import CURRENCY_DIGITS  # noqa: E402
from .analytics import FUNNEL_STEPS, PER_LOT, PLOTS, STEP_WORDS, Table  # noqa: E402

_SIZE = (7.0, 3.6)
_COLOURS = ("#1f5f8b", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#7f8c8d")


class NoSuchPlot(NotFound, ValueError):
    """An unknown plot name."""


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _major(amount: int, currency: str) -> float:
    """Minor units as the currency's major unit (cents → dollars, fen → yuan, yen → yen)."""
    digits: int = CURRENCY_DIGITS.get(currency, 2)
    return float(amount) / float(10**digits)


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=_SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _times(values: list[int], zone: str) -> list[float]:
    """Times (UTC µs) as matplotlib date numbers (the axis shows them in `zone`)."""
    tz = ZoneInfo(zone)
    moments = [datetime.fromtimestamp(v / 1_000_000, tz=UTC).astimezone(tz) for v in values]
    return [float(x) for x in mdates.date2num(moments)]  # type: ignore[no-untyped-call]


def _empty(axes: Axes, words: str) -> None:
    axes.text(0.5, 0.5, words, ha="center", va="center", transform=axes.transAxes)


def _time_axis(axes: Axes, zone: str) -> None:
    tz = ZoneInfo(zone)
    locator = mdates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))  # type: ignore[no-untyped-call]
    axes.set_xlabel(f"time ({zone})")


def funnel_plot(tables: Mapping[str, Table], lot: str) -> bytes:
    rows = [r for r in tables["funnel"].rows if r[0] == "lot" and r[1] == lot]
    counts = {r[2]: r[4] for r in rows}
    figure, axes = _figure(f"Lot {lot}: from visit to sale")
    values = [counts.get(step, 0) for step in FUNNEL_STEPS]
    labels = [STEP_WORDS[step] for step in FUNNEL_STEPS]
    bars = axes.barh(labels[::-1], values[::-1], color=_COLOURS[0])
    axes.bar_label(bars, padding=3)
    axes.set_xlabel("people")
    return _svg(figure)


def bids_plot(tables: Mapping[str, Table], lot: str, zone: str, currency: str) -> bytes:
    rows = [r for r in tables["bids"].rows if r[0] == lot]
    figure, axes = _figure(f"Lot {lot}: bids and price")
    bids = [r for r in rows if r[1] == "bid"]
    if bids:
        times = _times([r[2] for r in bids], zone)
        amounts = [_major(r[5], currency) for r in bids]
        axes.step(times, amounts, where="post", color=_COLOURS[0], label="price")
        axes.plot(times, amounts, "o", color=_COLOURS[0], markersize=3, label="bid")
    extensions = [r for r in rows if r[1] == "extension"]
    for i, moment in enumerate(_times([r[2] for r in extensions], zone)):
        label = "soft-close extension" if i == 0 else None
        axes.axvline(moment, color=_COLOURS[1], linestyle="--", linewidth=1, label=label)
    if not bids:
        _empty(axes, "no bids yet")
    else:
        axes.legend(loc="upper left", fontsize=8)
        _time_axis(axes, zone)
    axes.set_ylabel(f"amount ({currency})")
    return _svg(figure)


def bidders_plot(tables: Mapping[str, Table], lot: str, zone: str) -> bytes:
    rows = [r for r in tables["bidders"].rows if r[0] == lot]
    figure, axes = _figure(f"Lot {lot}: bidders active per minute")
    if rows:
        times = _times([r[1] for r in rows], zone)
        axes.bar(times, [r[3] for r in rows], width=1 / 1440, align="edge", color=_COLOURS[2])
        _time_axis(axes, zone)
    else:
        _empty(axes, "no bids yet")
    axes.set_ylabel("bidders")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


def watchers_plot(tables: Mapping[str, Table], lot: str, zone: str) -> bytes:
    rows = [r for r in tables["watchers"].rows if r[0] == lot]
    figure, axes = _figure(f"Lot {lot}: watchers of the live stream")
    if rows:
        times, viewers = _times([r[1] for r in rows], zone), [r[3] for r in rows]
        axes.step(times, viewers, where="post", color=_COLOURS[3])
        _time_axis(axes, zone)
    else:
        _empty(axes, "no stream samples")
    axes.set_ylabel("viewers")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


def hammer_plot(tables: Mapping[str, Table]) -> bytes:
    """Each sold lot's hammer price and appraisal as a share of its start price (comparable
    across lots and currencies; the amounts are in the table)."""
    rows = tables["hammer"].rows
    figure, axes = _figure("Hammer price and appraisal against the start price")
    if rows:
        names = [str(r[0]) for r in rows]
        positions = list(range(len(rows)))
        width = 0.38
        apprs = [r[4] * 100 / r[3] if r[4] != "" and r[3] else 0.0 for r in rows]
        hammers = [r[2] * 100 / r[3] if r[3] else 0.0 for r in rows]
        left = [p - width / 2 for p in positions]
        right = [p + width / 2 for p in positions]
        if any(r[4] != "" for r in rows):
            axes.bar(left, apprs, width, label="appraisal", color=_COLOURS[4])
        bars = axes.bar(right, hammers, width, label="hammer", color=_COLOURS[0])
        axes.bar_label(bars, fmt="%.0f%%", padding=2, fontsize=8)
        axes.axhline(100, color=_COLOURS[5], linestyle="--", linewidth=1, label="start price")
        axes.set_xticks(positions, names)
        axes.legend(fontsize=8)
    else:
        _empty(axes, "no lot sold yet")
    axes.set_ylabel("% of the start price")
    axes.set_xlabel("lot")
    return _svg(figure)


def deposits_plot(tables: Mapping[str, Table]) -> bytes:
    rows = tables["deposits"].rows
    figure, axes = _figure("Deposits by lot and state")
    lots = sorted({str(r[0]) for r in rows})
    states = sorted({str(r[2]) for r in rows})
    if rows:
        bottom = [0] * len(lots)
        for i, state in enumerate(states):
            heights = [sum(1 for r in rows if r[0] == lot and r[2] == state) for lot in lots]
            axes.bar(lots, heights, bottom=bottom, label=state, color=_COLOURS[i % 6])
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        late = sum(1 for r in rows if r[8] in ("late", "overdue"))
        decided = sum(1 for r in rows if r[8] != "")
        axes.legend(fontsize=8, title=f"{late} of {decided} decisions late", title_fontsize=8)
        axes.tick_params(axis="x", labelrotation=25)
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
    else:
        _empty(axes, "no deposits yet")
    axes.set_xlabel("lot")
    axes.set_ylabel("bidders")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(figure)


def plot(
    name: str,
    tables: Mapping[str, Table],
    lot: str | None = None,
    zone: str = "UTC",
    currency: str = "",
) -> bytes:
    """The SVG of plot `name` (`PLOTS`); `lot` is required for the per-lot ones."""
    if name not in PLOTS:
        raise NoSuchPlot(name)
    if name in PER_LOT and lot is None:
        raise NoSuchPlot(f"{name} needs a lot")
    if name == "funnel":
        return funnel_plot(tables, str(lot))
    if name == "bids":
        return bids_plot(tables, str(lot), zone, currency)
    if name == "bidders":
        return bidders_plot(tables, str(lot), zone)
    if name == "watchers":
        return watchers_plot(tables, str(lot), zone)
    if name == "hammer":
        return hammer_plot(tables)
    return deposits_plot(tables)


__all__ = ["PER_LOT", "PLOTS", "NoSuchPlot", "plot"]
