"""`/metrics`: the server's figures in the Prometheus text format (`prometheus_client`).

One `ServerMetrics` per application, with its own `CollectorRegistry` (no module globals:
`create_app` makes it, so tests may build many applications in one process). It holds

* what happens, counted as it happens (hooks set by `attach`): bids by result
  (`gavel_bids_total{result}`: accepted, held, rejected) and refusals by reason
  (`gavel_bids_refused_total{reason}`: the engine's and the gateway's codes, a bounded set, see
  `MAX_REASONS`), the time from a bid's arrival on the websocket to its ack
  (`gavel_bid_ack_seconds`), the group commit's batches (`gavel_group_commit_rows`,
  `gavel_group_commit_appends`) and the published checkpoints (`gavel_checkpoints_published_total`,
  `gavel_checkpoint_interval_seconds`, `gavel_checkpoint_published_timestamp_seconds`);
* what is, read at each scrape (`LiveCollector`): the ledger's stored, signed and published
  sizes, each notary's last co-signed size and lag (one series per notary of the policy), lots
  by status, websocket connections, and the viewers of each lot that is open now (one series
  per open lot: a closed lot's series disappears), plus the total of viewers.

Served two ways, both off by default for anyone else (docs/operations.md):

* `GET /metrics` on the server's own address, to a staff session of the admin or auditor
  role only (`Authorization: Bearer`; 401 without a session, 403 with another role);
* on a separate admin address, without a token, when `--metrics-port` is given
  (`--metrics-host`, default 127.0.0.1): what a Prometheus scrape job points at.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ..accounts import Role, Session
from ..errors import NotAllowed, NotAuthenticated
from ..rules import LotStatus
from ..service import ACTIVE_STATUSES, AuctionService, ServiceError
from ..storage import LedgerHead
from .api import NotaryBoard
from .errors import error_response
from .ws import Hub

#: Distinct refusal reasons given their own series; any further one is counted as `OTHER`.
MAX_REASONS = 64
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
#: Acks, in seconds: a bid is acked once its entry is durable (group commit, fsync).
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
INTERVAL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

#: The staff roles that may read `/metrics` on the server's own address.
METRICS_ROLES = frozenset({Role.ADMIN, Role.AUDITOR})

#: `session_of(request, token)`: the valid session of a bearer token, or None.
SessionOf = Callable[[web.Request, str], Awaitable[Session | None]]


class ServerMetrics:
    """The figures of one server. `attach(...)` once its parts run, `detach()` before they
    stop; `scrape()` renders the text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.bids = Counter(
            "gavel_bids",
            "Bids answered on the websocket, by result (accepted, held, rejected)",
            ["result"],
            registry=registry,
        )
        self.refusals = Counter(
            "gavel_bids_refused",
            "Bids refused, by reason (engine and gateway codes; OTHER past 64 distinct)",
            ["reason"],
            registry=registry,
        )
        self.ack_latency = Histogram(
            "gavel_bid_ack_seconds",
            "Seconds from a bid's arrival on the websocket to its ack (entry durable)",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "gavel_group_commit_rows",
            "Rows (history records and ledger entries) written per group-commit transaction",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.batch_appends = Histogram(
            "gavel_group_commit_appends",
            "Lot batches merged into one group-commit transaction",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.checkpoints = Counter(
            "gavel_checkpoints_published",
            "Checkpoints published (co-signed by the notaries' quorum when the policy has one)",
            registry=registry,
        )
        self.checkpoint_interval = Histogram(
            "gavel_checkpoint_interval_seconds",
            "Seconds between two published checkpoints",
            buckets=INTERVAL_BUCKETS,
            registry=registry,
        )
        self._reasons: set[str] = set()
        self._last_publish: float | None = None
        self._live = LiveCollector()
        registry.register(self._live)

    # -- hooks --

    def attach(self, service: AuctionService, hub: Hub | None, board: NotaryBoard) -> None:
        """Start counting: hook the hub's acks, the group commit and the checkpointer."""
        self._live.service, self._live.hub, self._live.board = service, hub, board
        if hub is not None:
            hub.on_bid = self.observe_bid
        if service.writer is not None:
            service.writer.on_batch = self.observe_batch
        if service.checkpointer is not None:
            service.checkpointer.on_publish = self.observe_checkpoint

    def detach(self) -> None:
        live = self._live
        if live.hub is not None:
            live.hub.on_bid = None
        service = live.service
        if service is not None and service.writer is not None:
            service.writer.on_batch = None
        if service is not None and service.checkpointer is not None:
            service.checkpointer.on_publish = None
        live.service, live.hub = None, None

    def observe_bid(self, ack: dict[str, Any], seconds: float) -> None:
        result = ack.get("result")
        result = result if result in ("accepted", "held", "rejected") else "other"
        self.bids.labels(result=result).inc()
        self.ack_latency.observe(seconds)
        if result == "rejected":
            self.refusals.labels(reason=self._reason(ack.get("reason"))).inc()

    def _reason(self, reason: object) -> str:
        """A bounded label: a known-shaped code, at most `MAX_REASONS` of them."""
        if not isinstance(reason, str) or not _REASON.fullmatch(reason):
            return "OTHER"
        if reason not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                return "OTHER"
            self._reasons.add(reason)
        return reason

    def observe_batch(self, appends: int, rows: int) -> None:
        self.batch_appends.observe(appends)
        self.batch_rows.observe(rows)

    def observe_checkpoint(self, head: LedgerHead) -> None:
        now = time.monotonic()
        if self._last_publish is not None:
            self.checkpoint_interval.observe(now - self._last_publish)
        self._last_publish = now
        self._live.published_at = time.time()
        self.checkpoints.inc()

    # -- scraping --

    async def scrape(self) -> bytes:
        """The text format, after reading the stored ledger size (off the event loop)."""
        service = self._live.service
        if service is not None and service.ledger is not None:
            ledger: Any = service.ledger
            self._live.stored = int(await service.read(ledger.ledger_end))
        return generate_latest(self.registry)


class LiveCollector(Collector):
    """What is, at each scrape: read from the running parts, nothing kept between scrapes
    (so a lot's viewer series is gone once the lot is no longer open)."""

    def __init__(self) -> None:
        self.service: AuctionService | None = None
        self.hub: Hub | None = None
        self.board: NotaryBoard | None = None
        self.stored: int | None = None
        self.published_at: float | None = None

    def describe(self) -> Iterable[Metric]:
        return ()  # not collected at registration: the parts do not run yet

    def collect(self) -> Iterable[Metric]:
        service = self.service
        if service is None:
            return
        stored = GaugeMetricFamily("gavel_ledger_entries", "Ledger entries stored")
        stored.add_metric([], float(self.stored or 0))
        yield stored
        signed = service.signed_checkpoint
        published = service.checkpoint
        for name, doc, head in (
            ("gavel_ledger_signed_size", "Tree size of the latest signed checkpoint", signed),
            (
                "gavel_ledger_published_size",
                "Tree size of the latest published (co-signed) checkpoint",
                published,
            ),
        ):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], float(head.size if head is not None else 0))
            yield family
        if self.published_at is not None:
            when = GaugeMetricFamily(
                "gavel_checkpoint_published_timestamp_seconds",
                "Unix time of the last checkpoint this server published",
            )
            when.add_metric([], self.published_at)
            yield when
        yield from self._notaries(service)
        yield from self._lots(service)
        if self.hub is not None:
            yield from self._viewers(service, self.hub)

    def _notaries(self, service: AuctionService) -> Iterable[Metric]:
        checkpointer = service.checkpointer
        if checkpointer is None or self.board is None or not checkpointer.notaries:
            return
        self.board.observe(service)
        cosigned = GaugeMetricFamily(
            "gavel_notary_cosigned_size",
            "Largest tree size each notary of the policy is known to have co-signed",
            labels=["notary"],
        )
        lag = GaugeMetricFamily(
            "gavel_notary_lag_entries",
            "Entries stored beyond what each notary has co-signed",
            labels=["notary"],
        )
        size = self.stored or 0
        for notary in checkpointer.notaries:  # the policy's notaries: a bounded set
            last = self.board.last_cosigned.get(notary.name, 0)
            cosigned.add_metric([notary.name], float(last))
            lag.add_metric([notary.name], float(max(0, size - last)))
        yield cosigned
        yield lag
        rounds = GaugeMetricFamily(
            "gavel_checkpoint_unpublished_rounds",
            "Rounds of cosignature requests that did not reach the quorum (since start)",
        )
        rounds.add_metric([], float(checkpointer.unpublished_rounds))
        yield rounds

    @staticmethod
    def _lots(service: AuctionService) -> Iterable[Metric]:
        counts = {status.value: 0 for status in LotStatus}  # a bounded set of labels
        for view in service.views():
            counts[view.status] = counts.get(view.status, 0) + 1
        lots = GaugeMetricFamily("gavel_lots", "Lots by status", labels=["status"])
        for status, count in sorted(counts.items()):
            lots.add_metric([status.lower()], float(count))
        yield lots

    @staticmethod
    def _viewers(service: AuctionService, hub: Hub) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "gavel_websocket_connections", "Websocket connections open now"
        )
        connections.add_metric([], float(hub.connections))
        yield connections
        viewers = hub.viewers()
        total = GaugeMetricFamily(
            "gavel_viewers", "Lot subscriptions on the websocket now, every lot together"
        )
        total.add_metric([], float(sum(viewers.values())))
        yield total
        per_lot = GaugeMetricFamily(
            "gavel_lot_viewers",
            "Websocket subscriptions of each lot open now (closed lots have no series)",
            labels=["lot"],
        )
        for lot, count in sorted(viewers.items()):
            state = service.state(lot)
            if state is not None and state.status in ACTIVE_STATUSES:
                per_lot.add_metric([lot], float(count))
        yield per_lot


def add_metrics_route(
    app: web.Application,
    metrics_of: Callable[[web.Request], ServerMetrics],
    session_of: SessionOf,
) -> None:
    """`GET /metrics` on the server's own address: admin and auditor sessions only."""

    async def metrics(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        session = None
        if scheme.lower() == "bearer" and token.strip():
            session = await session_of(request, token.strip())
        if session is None:
            return error_response(NotAuthenticated("/metrics needs an admin or auditor session"))
        if session.role not in METRICS_ROLES:
            return error_response(NotAllowed("/metrics is for admin and auditor sessions"))
        return _text(await metrics_of(request).scrape())

    app.router.add_get("/metrics", metrics)


def _text(body: bytes) -> web.Response:
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def admin_app(scrape: Callable[[], Awaitable[bytes]]) -> web.Application:
    """The admin address's application: `GET /metrics` without a token (bind it to an
    address only the monitoring system reaches)."""
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        return _text(await scrape())

    app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def serve_admin(
    scrape: Callable[[], Awaitable[bytes]], host: str, port: int
) -> AsyncIterator[int]:
    """Listen on `host:port` for `GET /metrics` inside the `async with`; gives the port (0
    picks a free one). Raises `ServiceError` when it cannot listen."""
    runner = web.AppRunner(admin_app(scrape), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{host}:{port}"
            raise ServiceError(
                f"cannot listen for /metrics on {where}: {exc.strerror or exc}"
            ) from exc
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
