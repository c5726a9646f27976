"""The service's side of several instances on one database (`auction.cluster`): which lots
this instance writes, handing a lot over, and following what the others store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..storage import StoredLot
from .checkpointer import Checkpointer
from .lot_actor import LotActor
from .ports import Store
from .signed_bids import BidGate
from .views import LotUpdate, LotView

T = TypeVar("T")


class _Host(Protocol):
    """What these methods use of `AuctionService`."""

    _actors: dict[str, LotActor]
    _clustered: bool
    _stop_timeout: float
    _store: Store
    _checkpointer: Checkpointer | None
    _bids: BidGate
    _running: bool

    def _check_running(self) -> None: ...

    async def read(self, function: Callable[..., T], *args: Any) -> T: ...

    def _load_lot(self, lot_id: str) -> StoredLot | None: ...

    def _start_actor(self, lot: StoredLot) -> LotActor: ...

    def _follow_lot(self, lot: StoredLot) -> LotActor: ...

    def _publish(self, update: LotUpdate) -> None: ...


class ClusterRole:
    """Mixed into `AuctionService`: the methods `auction.cluster` calls."""

    @property
    def clustered(self: _Host) -> bool:
        return self._clustered

    def leads(self: _Host, lot_id: str) -> bool:
        """Whether this instance writes `lot_id` (always, for a single server)."""
        actor = self._actors.get(lot_id)
        return actor is not None and (actor.leading or not self._clustered)

    def led(self: _Host) -> list[str]:
        """The lots this instance writes now."""
        return [lot_id for lot_id, actor in self._actors.items() if actor.leading]

    async def lead(self: _Host, lot_id: str) -> LotView | None:
        """Start writing `lot_id` (this instance was given it: `auction.cluster`): from the
        follower copy when it has every stored command of the lot, else rebuilt from its
        stored history; the actor and timer replace the follower copy. None if the lot is
        not stored."""
        self._check_running()
        current = self._actors.get(lot_id)
        if current is not None and current.leading:
            return current.view
        lot: StoredLot | None = None
        count = getattr(self._store, "lot_commands", None)
        if current is not None and count is not None:
            # The follower copy applied every command the ledger has of the lot so far (the
            # caller caught up after the previous writer was fenced out): when it holds as
            # many as are stored, it is the lot as stored, and the takeover reads no history.
            if await self.read(count, lot_id) == current.commands:
                lot = current.stored
        if lot is None:
            lot = await self.read(self._load_lot, lot_id)
        if lot is None:
            return None
        self._check_running()
        current = self._actors.get(lot_id)
        if current is not None and current.leading:
            return current.view
        actor = self._start_actor(lot)
        self._publish(LotUpdate(lot_id, actor.view, ()))
        return actor.view

    async def step_down(self: _Host, lot_id: str) -> None:
        """Stop writing `lot_id` (it was lost, or this instance stops): the actor stores what
        it had queued (fenced writes fail), then a follower copy replaces it."""
        actor = self._actors.get(lot_id)
        if actor is None or not actor.leading:
            return
        await actor.stop(self._stop_timeout)
        if self._actors.get(lot_id) is actor:
            self._follow_lot(actor.stored)

    async def adopt(self: _Host, lot_id: str) -> LotView | None:
        """A lot another instance added: load it and follow it."""
        if lot_id in self._actors:
            return self._actors[lot_id].view
        lot = await self.read(self._load_lot, lot_id)
        if lot is None or lot_id in self._actors or not self._running:
            return None
        actor = self._follow_lot(lot)
        self._publish(LotUpdate(lot_id, actor.view, ()))
        return actor.view

    async def reload(self: _Host, lot_id: str) -> None:
        """Re-load a follower copy from the database (it missed commands)."""
        actor = self._actors.get(lot_id)
        if actor is None or actor.leading:
            return
        lot = await self.read(self._load_lot, lot_id)
        if lot is not None and self._actors.get(lot_id) is actor:
            self._follow_lot(lot)
            self._publish(LotUpdate(lot_id, self._actors[lot_id].view, ()))

    def follow(self: _Host, lot_id: str, n: int, ingress: int, command: Any) -> bool | None:
        """Apply a command another instance stored to the follower copy (`LotActor.follow`);
        False for an unknown lot or one this instance writes."""
        actor = self._actors.get(lot_id)
        if actor is None:
            return False
        return actor.follow(n, ingress, command)

    def learn(self: _Host, seq: int, entry_type: str, time_us: int, body: Any, kid: str) -> None:
        """A `key` or `idv` entry another instance stored: the identity book learns it."""
        self._bids.learn(seq, entry_type, time_us, body, kid)

    def ledger_grew(self: _Host, closed: bool) -> None:
        """Entries were stored (by another instance): a checkpoint is due."""
        if self._checkpointer is not None:
            self._checkpointer.notify(urgent=closed)
