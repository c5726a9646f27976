"""The auction service: one writer per lot, durable acknowledgements, timers, live views.

An adapter around the pure engine (STYLE rules 1 and 9; rules "each lot has exactly one
writer"):

* `LotActor` owns one lot: one asyncio task draining an `asyncio.Queue` of
  `(ingress time, command, future)`. The ingress time is stamped by the server clock when the
  command is submitted, so queue order is ingress order. The actor takes everything queued as a
  batch, applies each command through the engine, has the batch stored (group commit) and only
  then resolves the futures (rules C18: acknowledge after durable) and publishes.
* Each actor keeps one timer at `state.next_deadline()` that enqueues `OpenLot` or `CloseLot`
  behind the commands already queued: the rules C6 closing procedure drains earlier bids first;
  if one of them extended the end, `CloseLot` is refused `NOT_DUE` and the timer is set again.
* `AuctionService` owns the store, a single storage thread, one group-commit writer shared by
  all lots, every actor and every subscription. `start()` rebuilds lots from storage; `stop()`
  drains the queues, stops every task and closes the store.
* The ledger: the store writes one entry per stored command in the group commit's transaction
  (see `auction.storage`). A `Checkpointer` task signs checkpoints: within `checkpoint_delay`
  seconds of the first entry no checkpoint covers (0.5 s: at least once a second while entries
  arrive), at once after a batch that closed a lot (its `sale` entry is in the same batch), and
  a final one when the service stops. Ledger reads for the HTTP API run on a small pool of
  reader threads (`read`), never on the storage thread or the event loop.
"""

from .auction_service import AuctionService
from .checkpointer import CHECKPOINT_DELAY, Checkpointer
from .errors import LotExists, NotWriter, RequestRefused, ServiceClosed, ServiceError
from .group_commit import GroupCommitter
from .lot_actor import LotActor
from .ports import IdentityStore, Journal, LedgerStore, Store
from .views import ACTIVE_STATUSES, LotUpdate, LotView, Subscription, public_events

__all__ = [
    "ACTIVE_STATUSES",
    "AuctionService",
    "CHECKPOINT_DELAY",
    "Checkpointer",
    "GroupCommitter",
    "IdentityStore",
    "Journal",
    "LedgerStore",
    "LotActor",
    "LotExists",
    "LotUpdate",
    "LotView",
    "NotWriter",
    "RequestRefused",
    "ServiceClosed",
    "ServiceError",
    "Store",
    "Subscription",
    "public_events",
]
