"""Several server instances on one PostgreSQL database, with Redis pub/sub between them.

`gavel serve --db postgresql://... --redis redis://... --instance NAME --advertise URL` runs
one instance; start as many as wanted, on as many machines as reach the database. Clients may
use any instance. The parts (docs/scaling.md has the reasoning and the ceilings):

* **One writer per lot.** Every instance keeps a copy of every lot; exactly one instance
  *writes* a lot: the holder of the lot's PostgreSQL session advisory lock (a lock per lot in
  `lot_owners.lock_id`, held on one dedicated connection per instance). Taking a lot bumps its
  fencing token (`lot_owners.token`) in the same turn as the ledger's; every write transaction
  of lot history checks that the token is still this instance's (`Storage.fence`), so a writer
  that lost its lock without noticing cannot write. A lot without a writer is taken by the
  live instance its rendezvous hash prefers, or by any live instance after `orphan_grace_s`.
  An instance killed with SIGKILL loses its connection, hence its locks, at once; another
  instance catches up with the ledger, rebuilds the lot from its stored history and writes it.
* **Commands reach the writer.** A bid arriving at another instance goes to the writer's
  gateway over HTTP (`POST /internal/v1/bid`), which answers it as its own (idempotency keys,
  limits, signature, ack); other commands (registration, deposits, the console) go to
  `POST /internal/v1/command`. Each request carries how much of the ledger the sender has
  seen; the writer first catches up that far (read-your-writes across instances, e.g. an
  `idv` entry written by the instance that verified the bidder). A bid is resent until the
  deadline if the writer dies meanwhile: the next writer knows every stored bid's key.
* **One ledger.** Every ledger write takes `LEDGER_LOCK` (a transaction advisory lock) and
  integrates what others appended before sequencing its own entries: one sequence, group
  commit in each instance, the signed-head compare-and-swap under it. One instance at a time
  (the holder of lock 0) signs checkpoints and asks the notaries; the others serve them.
* **Followers.** Every stored entry reaches every instance: published on Redis right after
  the commit (`gavel:<origin>:ledger`, the entries' bytes), and read from PostgreSQL when a
  message is missing, when Redis is unavailable (polled every `poll_degraded_s`) or as a
  safety net (`poll_s`). Each instance applies the commands of the lots it does not write to
  its copies (the engine is deterministic) and publishes the updates to its websockets; its
  gateway learns the answered bids' keys. Without Redis, acknowledgements are unchanged and
  updates arrive by polling.

The layers, each on the one before: `settings`, `locks`, `state`, `follower`,
`ownership`, `forwarding`, `routes`, and `instance` (`Cluster`: start and stop).
"""

from __future__ import annotations

from .follower import decode_entries, encode_entries
from .instance import Cluster, running
from .ownership import preferred
from .routes import add_cluster_routes
from .settings import CLUSTER_HEADER, VIEWER_ADDRESS_HEADER, ClusterError, ClusterSettings

__all__ = [
    "CLUSTER_HEADER",
    "Cluster",
    "ClusterError",
    "ClusterSettings",
    "VIEWER_ADDRESS_HEADER",
    "add_cluster_routes",
    "decode_entries",
    "encode_entries",
    "preferred",
    "running",
]
