"""What an instance of the cluster holds: its settings, its lots and their
fencing tokens, how far it has applied the ledger, its connections and tasks.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import aiohttp

from ..service import AuctionService
from ..storage import Storage, system_clock
from .locks import AdvisoryLocks
from .settings import ClusterError, ClusterSettings

if TYPE_CHECKING:
    from ..gateway import Gateway


def first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class ClusterState:
    """The state the layers of an instance share (built by `Cluster`)."""

    def __init__(
        self,
        service: AuctionService,
        store: Storage,
        settings: ClusterSettings,
        secret: bytes,
        *,
        applied: int,
        clock: Callable[[], int] = system_clock,
        gateway: Gateway | None = None,
    ) -> None:
        if store.engine().dialect.name != "postgresql":
            raise ClusterError("several instances need PostgreSQL (--db postgresql://...)")
        self.service = service
        self.store = store
        self.settings = settings
        self.gateway = gateway
        self._secret = base64.urlsafe_b64encode(secret).decode("ascii")
        self._clock = clock
        self._engine = store.engine()
        self._locks = AdvisoryLocks(self._engine, store.advisory_namespace)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gavel-cluster")
        #: Lots this instance writes (or is about to) and their fencing tokens.
        self._tokens: dict[str, int] = {}
        self._lock_ids: dict[str, int] = {}
        self._orphans: dict[str, int] = {}
        self._writers: dict[str, tuple[str | None, str | None]] = {}  # lot -> (owner, url)
        self._signer = False
        self._applied = applied  # ledger entries [0, applied) are in this instance's copies
        self._own_end = applied
        self._grew = asyncio.Event()
        self._wake = asyncio.Event()  # a lot seems to have lost its writer: claim round now
        self._tail_lock = asyncio.Lock()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self._redis: Any = None
        self._redis_up = False
        self._channel = ""
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_failures = 0
        #: Counters for tests and measurements.
        self.takeovers = 0
        self.forwarded = 0
        self.redis_messages = 0
        self.polled_entries = 0

    # -- life cycle --

    @property
    def name(self) -> str:
        return self.settings.instance

    @property
    def signer(self) -> bool:
        """Whether this instance signs checkpoints now."""
        return self._signer

    @property
    def redis_up(self) -> bool:
        return self._redis_up

    @property
    def applied(self) -> int:
        """How many ledger entries this instance has applied (its copies' ledger size)."""
        return self._applied

    def owned(self) -> list[str]:
        return sorted(self._tokens)

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args))

    # -- ownership --

    # -- the followers' feed --

    @property
    def high_water(self) -> int:
        """The ledger size this instance has seen (applied, or written itself)."""
        return max(self._applied, self._own_end)
