"""The notary's HTTP adapter: tlog-witness endpoints, log fetching, peer comparison (aiohttp).

:func:`create_app` is the composition root. Routes:

- ``POST /add-checkpoint`` - C2SP tlog-witness, decided by :mod:`notary.core`; one request at
  a time (an :class:`asyncio.Lock`), so that check and persist are atomic;
- ``GET /checkpoint`` and ``GET /<hex sha256(origin)>/checkpoint`` - the latest co-signed
  checkpoint with our cosignature, for monitors and peers (tlog-witness monitoring API);
- ``GET /status`` - JSON: last co-signed size and root, lag, refusals, peers.

A background task owned by the app compares views every ``peer_interval`` seconds: the log's
published checkpoint and each peer notary's latest co-signed checkpoint are checked for
consistency with ours (from our mirror when they are smaller, from the log's hash tiles when
they are larger). A conflict writes an evidence JSON file under ``D/evidence/``.

The node itself (what it co-signs, keeps and compares) is :mod:`notary.node`; reading the
log over HTTP is :mod:`notary.logsource`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from aiohttp import web

from chain import ChainError, parse_policy

from .core import MAX_REQUEST_BYTES, LogTrust
from .datadir import DataDir
from .errors import NotaryError, NotaryStateError, RequestError, RequestTooLargeError
from .logsource import HttpLog, LogSource
from .metrics import NotaryMetrics, scrape_node, serve_metrics
from .node import TEXT, NotaryNode, Settings

__all__ = [
    "NODE",
    "HttpLog",
    "LogSource",
    "NotaryNode",
    "Settings",
    "create_app",
]

logger = logging.getLogger("gavel.notary")


NODE: Final = web.AppKey("notary_node", NotaryNode)
_SESSION: Final = web.AppKey("notary_session", aiohttp.ClientSession)
METRICS: Final = web.AppKey("notary_metrics", NotaryMetrics)
#: The port of the admin address serving `/metrics`, once it listens.
METRICS_PORT: Final = web.AppKey("notary_metrics_port", int)


async def _read_body(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > MAX_REQUEST_BYTES:
            raise RequestTooLargeError(f"add-checkpoint body larger than {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def add_checkpoint(request: web.Request) -> web.Response:
    """``POST /add-checkpoint`` (C2SP tlog-witness)."""
    node = request.app[NODE]
    try:
        body = await _read_body(request)
    except RequestError as error:
        node.answers[error.http_status] += 1
        await node.keep_refusal(error, b"", node.now_us())
        return web.Response(status=error.http_status, text=error.message + "\n")
    started = time.perf_counter()
    status, answer, content_type = await node.add_checkpoint(body)
    request.app[METRICS].observe(status, time.perf_counter() - started)
    return web.Response(status=status, body=answer, headers={"Content-Type": content_type})


async def get_checkpoint(request: web.Request) -> web.Response:
    """``GET /checkpoint``: the latest co-signed checkpoint, log signature and ours."""
    node = request.app[NODE]
    origin_hash = request.match_info.get("origin_hash")
    if origin_hash is not None:
        if origin_hash != hashlib.sha256(node.trust.origin.encode()).hexdigest():
            return web.Response(status=404, text="unknown log\n")
    note = node.state.checkpoint
    if not note:
        return web.Response(status=404, text="nothing co-signed yet\n")
    return web.Response(body=note, headers={"Content-Type": TEXT, "Cache-Control": "no-cache"})


async def get_status(request: web.Request) -> web.Response:
    """``GET /status``: JSON for operators and tests."""
    report = await asyncio.to_thread(request.app[NODE].status)
    return web.json_response(report, dumps=lambda value: json.dumps(value, sort_keys=True))


async def _compare_forever(node: NotaryNode, session: aiohttp.ClientSession) -> None:
    interval = node.settings.peer_interval
    while True:
        await asyncio.sleep(interval)
        try:
            await node.compare_views(session)
        except NotaryError as exc:
            logger.error("comparing views failed: %s", exc)


def create_app(settings: Settings) -> web.Application:
    """The composition root: parse the policy, then wire store, key, log client and tasks.

    Startup (``AppRunner.setup``) takes the data directory's lock, opens the database, checks
    the mirror and rebuilds the replay; it raises :class:`NotaryError` if any of it fails.
    Cleanup cancels the comparison task and closes the session, executor and database.
    """
    try:
        policy = parse_policy(settings.policy)
    except ChainError as exc:
        raise NotaryStateError(f"policy: {exc}") from exc
    LogTrust.from_policy(policy)
    data_dir = DataDir(settings.data_dir)
    data_dir.load_signer()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(data_dir.exclusive())
            store = stack.enter_context(data_dir.open_store())
            executor = stack.enter_context(
                concurrent.futures.ThreadPoolExecutor(
                    max(1, settings.signature_threads), thread_name_prefix="notary-signatures"
                )
            )
            connector = aiohttp.TCPConnector(limit=32)
            async with aiohttp.ClientSession(connector=connector) as session:
                log = HttpLog(
                    session,
                    settings.log_url,
                    timeout=settings.fetch_timeout,
                    signer=data_dir.load_signer(),
                    origin=LogTrust.from_policy(policy).origin,
                    clock=settings.clock,
                )
                node = NotaryNode(settings, data_dir, store, policy, log, executor)
                await node.start()
                app[NODE] = node
                app[_SESSION] = session
                yield

    async def comparisons(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_compare_forever(app[NODE], app[_SESSION]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def metrics_address(app: web.Application) -> AsyncIterator[None]:
        node, metrics = app[NODE], app[METRICS]

        async def scrape() -> bytes:
            return await scrape_node(metrics, node.status, node.state.cosigned_at)

        assert settings.metrics_port is not None
        async with serve_metrics(scrape, settings.metrics_host, settings.metrics_port) as port:
            app[METRICS_PORT] = port
            yield

    app[METRICS] = NotaryMetrics()
    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(comparisons)
    if settings.metrics_port is not None:
        app.cleanup_ctx.append(metrics_address)
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/checkpoint", get_checkpoint)
    app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", get_checkpoint)
    app.router.add_get("/status", get_status)
    return app
