"""A notary's figures in the Prometheus text format (`prometheus_client`), served on a separate
admin address (`gavel notary serve --metrics-port P [--metrics-host H]`), never on the
notary's public port.

One `NotaryMetrics` per application, with its own `CollectorRegistry` (no module globals):

* `gavel_notary_add_checkpoint_total{status}`: add-checkpoint answers by HTTP status (200
  co-signed, 409 a size conflict, 422 refused after checking, 503 the log unreachable, ...);
* `gavel_notary_add_checkpoint_seconds`: how long each took (fetching, checking, replaying);
* read at each scrape from the notary's store: `gavel_notary_cosigned_size` (the last
  co-signed tree size), `gavel_notary_log_size_seen`, `gavel_notary_lag_entries` (entries
  seen but not co-signed), `gavel_notary_mirrored_entries`, `gavel_notary_refusals`,
  `gavel_notary_conflicts` and `gavel_notary_cosigned_timestamp_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from .errors import NotaryStateError

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: HTTP statuses the notary answers: a bounded set of labels (anything else: "other").
_STATUSES = frozenset({200, 400, 403, 404, 409, 413, 422, 500, 502, 503})


class NotaryMetrics:
    """Counters fed by the add-checkpoint handler; `scrape(report)` renders them with the
    store's figures of `report` (`NotaryNode.status()`, read off the event loop)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "gavel_notary_add_checkpoint",
            "add-checkpoint requests answered, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "gavel_notary_add_checkpoint_seconds",
            "Seconds to answer an add-checkpoint request (fetch, check, replay, co-sign)",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._state = _StoreCollector()
        self.registry.register(self._state)

    def observe(self, status: int, seconds: float) -> None:
        self.answers.labels(status=str(status) if status in _STATUSES else "other").inc()
        self.seconds.observe(seconds)

    def scrape(self, report: dict[str, Any], cosigned_at: int) -> bytes:
        self._state.report, self._state.cosigned_at = report, cosigned_at
        try:
            return generate_latest(self.registry)
        finally:
            self._state.report = None


class _StoreCollector(Collector):
    def __init__(self) -> None:
        self.report: dict[str, Any] | None = None
        self.cosigned_at = 0

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        report = self.report
        if report is None:
            return
        gauges = (
            ("gavel_notary_cosigned_size", "Tree size of the last checkpoint co-signed", "size"),
            ("gavel_notary_log_size_seen", "Largest log size seen", "log_size_seen"),
            ("gavel_notary_lag_entries", "Entries seen but not co-signed yet", "lag"),
            ("gavel_notary_mirrored_entries", "Entries kept in the mirror", "mirrored_entries"),
            ("gavel_notary_refusals", "Refusals recorded as evidence", "refusals"),
        )
        for name, documentation, key in gauges:
            family = GaugeMetricFamily(name, documentation)
            family.add_metric([], float(report.get(key) or 0))
            yield family
        conflicts = GaugeMetricFamily(
            "gavel_notary_conflicts", "Conflicting views of the log recorded (forks, rollbacks)"
        )
        conflicts.add_metric([], float(len(report.get("conflicts") or ())))
        yield conflicts
        when = GaugeMetricFamily(
            "gavel_notary_cosigned_timestamp_seconds", "Unix time of the last cosignature"
        )
        when.add_metric([], float(self.cosigned_at))
        yield when


def _text(body: bytes) -> web.Response:
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


@contextlib.asynccontextmanager
async def serve_metrics(scrape: Callable[[], Any], host: str, port: int) -> AsyncIterator[int]:
    """Listen on `host:port` for `GET /metrics` inside the `async with` (`scrape()` is awaited
    for the body); gives the port. Raises `NotaryStateError` when it cannot listen."""
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        return _text(await scrape())

    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            where = f"{host}:{port}"
            message = f"cannot listen for /metrics on {where}: {exc.strerror or exc}"
            raise NotaryStateError(message) from exc
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def scrape_node(
    metrics: NotaryMetrics, status: Callable[[], dict[str, Any]], cosigned_at: int
) -> bytes:
    """The text format with the store's figures (`status()` runs in a thread)."""
    report = await asyncio.to_thread(status)
    return metrics.scrape(report, cosigned_at)
