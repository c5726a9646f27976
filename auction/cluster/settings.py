"""One instance's settings and the cluster's names: the instance name, the
headers of internal requests, the error of a cluster that cannot run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import GavelError

#: The header carrying the cluster's shared secret on internal requests.
CLUSTER_HEADER = "X-Gavel-Cluster"


#: A proxied viewer's own address (its per-address cap is counted by the writer), trusted
#: only with the cluster's secret (`Cluster.viewer_address`).
VIEWER_ADDRESS_HEADER = "X-Gavel-Viewer-Address"


#: An instance name: what `lot_owners.owner` and the logs say.
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class ClusterError(GavelError):
    """The cluster cannot run as configured (not PostgreSQL, a bad instance name, ...)."""


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """One instance's place in the cluster. `url`: where the other instances reach this one
    (its own listening address, e.g. `http://127.0.0.1:8081`)."""

    instance: str
    url: str
    redis_url: str | None = None
    #: How often the instance says it is alive and looks for lots without a writer.
    heartbeat_s: float = 0.25
    #: An instance silent this long is not preferred for lots any more.
    dead_after_s: float = 3.0
    #: A lot without a writer for this long is taken by any live instance.
    orphan_grace_s: float = 2.0
    #: Reading new entries from PostgreSQL: with Redis up (safety net) / without it.
    poll_s: float = 1.0
    poll_degraded_s: float = 0.25
    #: How long a forwarded bid is retried while its lot changes writer.
    forward_deadline_s: float = 10.0
    #: How long a writer waits to catch up to what a forwarded request's sender had seen.
    catch_up_s: float = 3.0

    def __post_init__(self) -> None:
        if not INSTANCE_NAME.fullmatch(self.instance):
            raise ClusterError(
                f"instance name {self.instance!r}: 1-63 of a-z, 0-9 and '-', not starting with '-'"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ClusterError(f"advertised URL {self.url!r} must start with http:// or https://")
