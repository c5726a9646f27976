"""`create_app(settings)`: the composition root (STYLE rule 8).

It wires, each as one `cleanup_ctx` (opened in order, closed in reverse) under typed
`web.AppKey`s, with no module-level state:

1. the storage and the auction service (`Storage.open(..., signed_bids=...)`; the demo's lots
   are seeded on the first start when `settings.demo`);
   then the live video (`auction.video.install_video`: the streaming sub-app at `/stream/`,
   the signaling routes under `/api/lots/{lot}/stream/`, a test-pattern stream for every live
   lot with the lot's state burned in, its segments hashed into `stream_segment` entries);
2. the accounts store (accounts, sessions, the compliance table) in the same database;
3. the gateway: the identity provider (its key in `DATA/idp.key`, mode 0600, or in the
   database for a URL; added to the ledger as an `idv` actor key at start), the simulated
   payment provider and the bidding path shared by the websocket and the demo's bots;
4. the websocket hub (`/ws`, docs/protocol.md §2);
   then the metrics (`auction.web.metrics`: hooks on the hub, the group commit and the
   checkpointer; the admin address of `settings.metrics_port`, if any);
5. the demo's simulated participants, only when `settings.demo`;
6. the heap trimmer (`auction.heap`: the C allocator's free memory given back every
   `settings.heap_trim_s` seconds).

Routes: the pages of `auction/web/static/` (`auction.web.pages`:
`/`, `/lot/{lot_id}`, `/register`, `/console`,
`/console/dashboard`, `/console/staff`, `/auditor`, and every file at `/static/{name}`), the
REST API (`auction.web.api`), the staff dashboard (`auction.web.dashboard`, with its visit
counter and viewer sampler) and staff sessions (`auction.web.staff`), `/ws`, `GET /healthz`,
`GET /metrics` (admin and auditor sessions), `GET /api/openapi.json` (the document of every
REST route, `auction.web.openapi`), and the ledger's read API under `/log/`
(`auction.web.log`). Every request gets an id for the log (`auction.logs.request_context`).

Every response carries the security headers of `auction.web.security` (docs/protocol.md §5).
The settings are `auction.web.settings.Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from ..accounts import AccountStore, Role, Session
from ..catalogue.facts import LotFactsStore
from ..catalogue.presence import Presence
from ..cluster import Cluster, add_cluster_routes
from ..demo.facts import seed_facts
from ..demo.living import LivingCatalogue, load_plan
from ..demo.property import seed_property
from ..demo.schedule import LotSpec
from ..demo.showcase import Drivers, catalogue, seed
from ..errors import GavelError
from ..gateway import Gateway, identity_seed, load_identity_keys
from ..heap import HeapTrimmer
from ..identity.records import fingerprint_key
from ..logs import request_context
from ..payments import PaymentProvider
from ..service import AuctionService
from ..storage import HistoryRecord, Storage
from ..video import VIDEO, install_video
from ..video.presentation import LotFacts, facts_of
from ..video.sources import stored_facts
from .api import Components, NotaryBoard, add_api_routes
from .court import add_court_routes
from .dashboard import add_dashboard_routes
from .evidence import add_evidence_routes
from .facts import FactsParts, add_facts_routes
from .log import add_log_routes
from .log_proof import add_log_proof_routes
from .me import install_me
from .metrics import ServerMetrics, add_metrics_route, serve_admin
from .openapi import add_openapi_route
from .pages import add_pages
from .ring import add_ring_routes
from .sales import add_sale_routes
from .security import security_headers
from .settings import Settings
from .staff import add_staff_routes
from .throttle import write_limits_middleware
from .video_api import add_video_console_routes
from .ws import Hub

logger = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", AuctionService)
STORE = web.AppKey("store", Storage)
ACCOUNTS = web.AppKey("accounts", AccountStore)
GATEWAY = web.AppKey("gateway", Gateway)
HUB = web.AppKey("hub", Hub)
DRIVERS = web.AppKey("drivers", Drivers)
LIVING = web.AppKey("living", LivingCatalogue)
CLUSTER = web.AppKey("cluster", Cluster)
HEAP = web.AppKey("heap", HeapTrimmer)
#: The ledger size of the snapshot the lots were loaded from: where a cluster member's feed starts.
LOADED_AT = web.AppKey("loaded_at", int)
NOTARY_BOARD = web.AppKey("notary_board", NotaryBoard)
FACTS = web.AppKey("facts", LotFactsStore)
PRESENCE = web.AppKey("presence", Presence)
METRICS = web.AppKey("metrics", ServerMetrics)
#: The port of the admin address serving `/metrics`, once it listens.
METRICS_PORT = web.AppKey("metrics_port", int)


def _auctioneer(app: web.Application) -> Callable[[str], Awaitable[bool | None]]:
    """Whether a bearer token is an auctioneer's session (who runs the lots' video): None
    when it is no valid session at all."""

    async def check(token: str) -> bool | None:
        gateway = app.get(GATEWAY)
        session = await gateway.session(token) if gateway is not None else None
        return None if session is None else session.role is Role.AUCTIONEER

    return check


def _stored_facts(app: web.Application) -> Callable[[object], LotFacts]:
    """A lot's facts and pictures for its video presentation, from the facts store once it
    runs (blocking)."""

    def read(view: object) -> LotFacts:
        store = app.get(FACTS)
        if store is None:
            return facts_of(view)
        try:
            return stored_facts(store, view)
        except Exception:  # the database: the lot goes on air with pictures drawn here
            logger.exception("the facts of lot %s could not be read", getattr(view, "lot_id", ""))
            return facts_of(view)

    return read


def create_app(settings: Settings) -> web.Application:
    """Build the application; run it with an `aiohttp.web.AppRunner` (startup opens the
    storage, the accounts, the gateway and the hub, seeds and starts the demo when asked;
    cleanup stops them in reverse order)."""
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[NOTARY_BOARD] = NotaryBoard()
    app.cleanup_ctx.append(_service_context)
    # The video stops before the service does.
    install_video(app, SERVICE, settings.video_settings, _auctioneer(app))
    if VIDEO in app:
        add_video_console_routes(app, VIDEO, _auctioneer(app))
        app[VIDEO].facts_for = _stored_facts(app)
    app.cleanup_ctx.append(_accounts_context)
    app.cleanup_ctx.append(_gateway_context)
    app.cleanup_ctx.append(_facts_context)
    if settings.cluster is not None:
        app.cleanup_ctx.append(_cluster_context)
        add_cluster_routes(app, lambda request: request.app[CLUSTER])
        app.middlewares.append(_video_at_writer)
    app.cleanup_ctx.append(_hub_context)
    app[METRICS] = ServerMetrics()
    app.cleanup_ctx.append(_metrics_context)
    if settings.demo:
        app.cleanup_ctx.append(_drivers_context)
    if settings.heap_trim_s > 0:
        app.cleanup_ctx.append(_heap_context)
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(security_headers)
    add_pages(app)
    add_api_routes(app, _components)  # its JSON error middleware answers `Throttled` too
    app.middlewares.append(write_limits_middleware(settings.write_limits, settings.clock))
    add_ring_routes(app, _components)
    add_court_routes(app, _components)
    add_facts_routes(app, _facts_parts)
    add_evidence_routes(
        app, _components, lambda request: request.app[SETTINGS].video_settings.recordings_dir
    )
    add_dashboard_routes(app, _components, settings.viewer_sample_s)
    add_staff_routes(app, _components)
    add_sale_routes(
        app,
        _components,
        lambda app: app[ACCOUNTS].engine,
        _demo_sales if settings.demo and settings.living else None,
    )
    app.router.add_get("/ws", _websocket)
    app.router.add_get("/healthz", healthz)
    add_metrics_route(app, lambda request: request.app[METRICS], _log_session)
    add_openapi_route(app)
    add_log_routes(app, _service, _log_session)
    add_log_proof_routes(app, _service)
    install_me(app, service=SERVICE, store=STORE, accounts=ACCOUNTS, gateway=GATEWAY)
    app.middlewares.insert(0, request_context)  # outermost: every log line of a request
    return app


async def _log_session(request: web.Request, token: str) -> Session | None:
    try:
        return await request.app[GATEWAY].session(token)
    except GavelError:
        return None


def _service(request: web.Request) -> AuctionService:
    return request.app[SERVICE]


def _components(request: web.Request) -> Components:
    app = request.app
    service, store = app[SERVICE], app[STORE]

    async def history(lot_id: str) -> Sequence[HistoryRecord]:
        return await service.read(store.history, lot_id)

    return Components(service, app[GATEWAY], app[ACCOUNTS], app[NOTARY_BOARD], history)


def _demo_sales(app: web.Application) -> tuple[AuctionService, Gateway, set[str] | None]:
    """What the living demo's sales need (`auction.demo.sales`): the bots leave its failing
    lots alone."""
    drivers = app.get(DRIVERS)
    return app[SERVICE], app[GATEWAY], drivers.unwanted if drivers is not None else None


def _facts_parts(request: web.Request) -> FactsParts:
    app = request.app
    return FactsParts(app[SERVICE], app[FACTS], app[GATEWAY], app[PRESENCE])


async def _facts_context(app: web.Application) -> AsyncIterator[None]:
    """A lot's facts and documents (`auction.catalogue.facts`); the demo's property lots get theirs
    (pictures drawn at start, announcements anchored in the ledger) on the first start."""
    store = LotFactsStore(app[STORE].engine())
    app[PRESENCE] = Presence()
    if app[SETTINGS].demo:
        await seed_facts(app[SERVICE], store)
    app[FACTS] = store
    yield


async def _websocket(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB].handle(request)


async def _service_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await asyncio.to_thread(
        Storage.open,
        settings.storage_target,
        clock=settings.clock,
        signed_bids=settings.signed_bids,
    )
    if settings.policy is not None:
        try:
            await asyncio.to_thread(store.use_policy, settings.policy)
        except BaseException:
            store.close()
            raise
    clustered = settings.cluster is not None
    service = AuctionService(
        store,
        clock=settings.clock,
        clustered=clustered,
        hold_checkpoints=settings.hold_checkpoints,
    )
    await service.start()
    # The lots were read in one snapshot of the database, at this ledger size: the cluster
    # follows the ledger from there (other instances may be appending all along).
    app[LOADED_AT] = store.loaded_size
    try:
        if settings.demo and not settings.living and not service.views():  # else: stored lots
            await seed(service, catalogue(service.now(), settings.timeline))
    except BaseException:
        await service.stop()
        raise
    app[SERVICE] = service
    app[STORE] = store
    yield
    await service.stop()


async def _accounts_context(app: web.Application) -> AsyncIterator[None]:
    accounts = await asyncio.to_thread(AccountStore.open, app[SETTINGS].storage_target)
    app[ACCOUNTS] = accounts
    yield
    await asyncio.to_thread(accounts.close)


async def _gateway_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    service = app[SERVICE]
    accounts = app[ACCOUNTS]
    directory = None if settings.database_url else Path(settings.data_dir)
    key_seed = await asyncio.to_thread(identity_seed, directory, accounts)
    keys = load_identity_keys(key_seed, settings.attestation_validity_us)
    await service.add_actor_key(keys.signer.vkey, "idv")  # before any idv entry
    code_secret = await asyncio.to_thread(accounts.secret, "bidder-code")
    fingerprints = await asyncio.to_thread(fingerprint_key, directory, accounts)
    gateway = Gateway(
        service,
        accounts,
        keys,
        PaymentProvider(),
        code_secret=code_secret,
        fingerprint_key=fingerprints,
        clock=settings.clock,
        bids_per_second=settings.bids_per_second,
        idempotency_grace_s=settings.idempotency_grace_s,
        entries_per_account_hour=settings.write_limits.entries_per_account_hour,
    )
    # Idempotency survives a restart: the newest signed bids and their answers, from the log;
    # so does the hourly bound on the accounts' other entries.
    store = app[STORE]
    size = await service.read(store.ledger_size)
    start = max(0, size - gateway.idempotency_memory)
    newest = await service.read(store.ledger_entries_opened, start, size)
    gateway.learn_answered(newest)
    gateway.learn_spent(newest)
    # Identities stored before document fingerprints existed get theirs (schema version 4).
    fingerprinted, duplicates = await gateway.identities.backfill()
    if fingerprinted:
        logger.warning(
            "identity: fingerprinted %d stored identities; %d duplicate(s) sent to compliance",
            fingerprinted,
            duplicates,
        )
    app[GATEWAY] = gateway
    yield
    await gateway.stop()


_STREAM_PATH = re.compile(
    r"/api/lots/(?P<lot>[^/]{1,128})/stream(/offer|/publish)?"
    r"|/api/console/lots/(?P<console_lot>[^/]{1,128})/video"
)


@web.middleware
async def _video_at_writer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Several instances: a lot's video is streamed (and recorded) by the instance writing
    it; another instance passes the viewer's signaling to it (`Cluster.proxy`)."""
    match = _STREAM_PATH.fullmatch(request.path)
    cluster = request.app.get(CLUSTER)
    if match is not None and cluster is not None:
        lot = match["lot"] or match["console_lot"]
        service = request.app[SERVICE]
        if service.view(lot) is not None and not service.leads(lot):
            return await cluster.proxy(request, lot)
        viewer = cluster.viewer_address(request)  # proxied: the viewer's own address counts
        if viewer is not None:
            return await handler(request.clone(remote=viewer))
    return await handler(request)


async def _cluster_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.cluster is not None
    secret = await asyncio.to_thread(app[ACCOUNTS].secret, "cluster")
    store, service, gateway = app[STORE], app[SERVICE], app[GATEWAY]
    cluster = Cluster(
        service,
        store,
        settings.cluster,
        secret,
        applied=app[LOADED_AT],
        clock=settings.clock,
        gateway=gateway,
    )
    store.fence = cluster.fence  # every write of lot history checks the fencing tokens
    store.on_entries = cluster.entries_stored  # to Redis and this instance's copies
    service.forwarder = cluster.forward_command  # a lot another instance writes
    service.signs_checkpoints = lambda: cluster.signer
    gateway.forward_bid = cluster.forward_bid
    await cluster.start()
    app[CLUSTER] = cluster
    yield
    await cluster.stop()


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    hub = Hub(
        app[SERVICE],
        app[GATEWAY],
        heartbeat_s=settings.heartbeat_s,
        max_per_address=settings.connections_per_address,
    )
    app[GATEWAY].notify = hub.notify
    hub.start()
    app[HUB] = hub
    yield
    await hub.stop()


async def _metrics_context(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]
    metrics.attach(app[SERVICE], app.get(HUB), app[NOTARY_BOARD])
    settings = app[SETTINGS]
    try:
        if settings.metrics_port is None:
            yield
        else:
            address = (settings.metrics_host, settings.metrics_port)
            async with serve_admin(metrics.scrape, *address) as port:
                app[METRICS_PORT] = port
                yield
    finally:
        metrics.detach()


async def _heap_context(app: web.Application) -> AsyncIterator[None]:
    trimmer = HeapTrimmer(app[SETTINGS].heap_trim_s)
    app[HEAP] = trimmer
    task = asyncio.create_task(trimmer.run(), name="heap-trim")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    hub = app.get(HUB)
    if hub is not None:
        await hub.stop()


async def _drivers_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    service = app[SERVICE]
    plan = None
    if settings.living:  # the schedule's start, seed and speed: stored on the first start
        directory, speed = Path(settings.data_dir), settings.speed or 1.0
        plan, _ = await asyncio.to_thread(load_plan, directory, service.now(), settings.seed, speed)
    drivers = Drivers(
        service,
        app[GATEWAY],
        bots=settings.bots,
        timeline=settings.timeline,
        seed=settings.seed,
        pace=plan.pace if plan is not None else None,
    )
    if plan is not None:
        store = app[FACTS]

        async def annotate(spec: LotSpec) -> int:
            return await seed_property(service, store, spec)

        living = LivingCatalogue(service, drivers, plan, annotate)
        await living.catch_up()  # the lots due now, before anyone else writes
        app[LIVING] = living
    drivers.start()
    if plan is not None:
        drivers.spawn(living.run(), "living-catalogue")
    app[DRIVERS] = drivers
    yield
    await drivers.stop()


_NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    status = 200 if service.running else 503
    body = {"status": "ok" if service.running else "stopping", "lots": len(service.views())}
    return web.json_response(body, status=status, headers=_NO_STORE)
