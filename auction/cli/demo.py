"""`gavel demo`: the living catalogue (or the short showcase) with bidding bots and, by
default, three notary processes; a summary read back from storage at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence

from notary.cli import stop_on_signals

from ..demo.showcase import (
    DEMO_QUORUM,
    DemoNotary,
    free_port,
    prepare_notaries,
    start_notaries,
    stop_notaries,
    summary,
)
from ..storage import POLICY_FILE, Storage
from ..web import DRIVERS, SERVICE, Settings, create_app
from ..web.app import LIVING
from ..web.limits import GuardedRunner
from .serve import announce, listen

#: Seconds the demo waits at the end for its last checkpoint to be co-signed and published.
SETTLE_TIMEOUT = 10.0


async def run_demo(settings: Settings, *, notaries: int = 0) -> str:
    """Serve the demo until SIGINT/SIGTERM or `settings.duration` seconds, shut down cleanly,
    and return the summary read back from storage.

    With `notaries` > 0: first make (or reuse) the notaries' keys under `DATA/notaries/`, write
    `DATA/policy` (log key, notaries, quorum min(notaries, 2)), start one `gavel notary serve`
    process per notary (on the port the server will use), then the server; at the end, stop
    the bots, let the last checkpoint be co-signed and published, stop the server, then the
    notaries (SIGTERM, killed after a timeout)."""
    stop = asyncio.Event()
    demo_notaries: list[DemoNotary] = []
    with stop_on_signals(stop):  # installed first: a signal at any point means "shut down"
        async with _notaries_stopped(demo_notaries):
            if notaries:
                prepared, policy = await asyncio.to_thread(_prepare_notaries, settings, notaries)
                demo_notaries.extend(prepared)
                port = settings.port or await asyncio.to_thread(free_port)  # the notaries need it
                settings = dataclasses.replace(settings, policy=policy, port=port)
                host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
                log_url = f"http://{host}:{port}"
                await start_notaries(demo_notaries, log_url, settings.data_dir / POLICY_FILE)
            app = create_app(settings)
            runner = GuardedRunner(app, handle_signals=False)
            try:
                await runner.setup()
                port = await listen(runner, settings)
                await announce(app, "gavel demo", settings.host, port)
                for notary in demo_notaries:
                    print(f"gavel demo: notary {notary.name} on {notary.url}", flush=True)
                living = app.get(LIVING)
                if living is not None:
                    print(f"gavel demo: living catalogue: {living.describe()}", flush=True)
                    print(f"gavel demo: data in {settings.data_dir.resolve()}", flush=True)
                if settings.duration is None:
                    print("gavel demo: press Ctrl-C to stop", flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.duration)
                if demo_notaries:  # the bots stop, the last entries get co-signed and published
                    await app[DRIVERS].stop()
                    await app[SERVICE].settle(SETTLE_TIMEOUT)
            finally:
                await runner.cleanup()
    return await asyncio.to_thread(_read_summary, settings, demo_notaries)


@contextlib.asynccontextmanager
async def _notaries_stopped(notaries: Sequence[DemoNotary]) -> AsyncIterator[None]:
    """Stop the demo's notary processes (those started) when the block ends, however."""
    try:
        yield
    finally:
        await stop_notaries(notaries)


def _prepare_notaries(settings: Settings, count: int) -> tuple[list[DemoNotary], bytes]:
    """The demo's notaries and policy (blocking): the log key comes from the store (created on
    its first opening); the policy is written to `DATA/policy` for the notary processes."""
    with Storage.open(settings.storage_target, signed_bids=settings.signed_bids) as store:
        house = store.house
        assert house is not None  # opened writable
        notaries, policy = prepare_notaries(
            settings.data_dir, house.vkey, count, min(count, DEMO_QUORUM)
        )
        store.use_policy(policy)
    path = settings.data_dir / POLICY_FILE
    if not path.exists() or path.read_bytes() != policy:  # --db: no data directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(policy)
    return notaries, policy


def _read_summary(settings: Settings, notaries: Sequence[DemoNotary] = ()) -> str:
    with Storage.open(settings.storage_target, read_only=True) as store:
        return summary(store.load(), store.counts(), store.location, notaries, store.final_sales())
