"""The server's settings: everything `create_app` needs (`gavel serve` and `gavel demo`
fill them from the command line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cluster import ClusterSettings
from ..demo.showcase import Timeline
from ..gateway import ATTESTATION_VALIDITY_US, BIDS_PER_SECOND, IDEMPOTENCY_GRACE_S
from ..storage import system_clock
from ..throttle import WriteLimits
from ..video import VideoSettings
from .ws import MAX_CONNECTIONS_PER_ADDRESS


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `create_app` needs. `database_url` (`postgresql://...`) wins over `data_dir`
    (SQLite in `data_dir/gavel.db`). `duration` compresses the demo's timeline into a run of
    that many seconds; `None` serves until stopped. `demo`: seed the demo's lots on the first
    start and run its bots and clerks (`gavel serve` runs without)."""

    data_dir: Path = Path("gavel-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    bots: int = 5
    duration: float | None = None
    seed: int | None = None
    #: The living catalogue's speed (`auction.demo.schedule.Pace.at`); the demo runs it unless
    #: it runs the `duration` showcase without a speed.
    speed: float | None = None
    #: A tlog-policy to trust instead of the store's (`gavel demo`: the log key, its notaries
    #: and the quorum); with notaries, checkpoints are published only once co-signed.
    policy: bytes | None = None
    #: A new log requires every bid to carry its bidder's signed request (ledger spec).
    signed_bids: bool = True
    demo: bool = True
    #: The server clock (UTC µs); tests inject one to move time.
    clock: Callable[[], int] = system_clock
    attestation_validity_us: int = ATTESTATION_VALIDITY_US
    heartbeat_s: float = 15.0
    #: Bids each account may send per second (token bucket, burst of the same size).
    bids_per_second: int = BIDS_PER_SECOND
    #: How long after a lot closes its bids' idempotency keys are still answered (seconds).
    idempotency_grace_s: float = IDEMPOTENCY_GRACE_S
    #: Websocket connections one client address may hold at once.
    connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    #: Rates of account creation, identity checks, registrations and deposits per address and
    #: per session, and the bound on an account's non-bid ledger entries an hour
    #: (`auction.throttle`, docs/protocol.md §1.1); `WriteLimits.off()`: none.
    write_limits: WriteLimits = WriteLimits()
    #: Live video (`auction.video`); None: the defaults, recordings in `data_dir/recordings`,
    #: the console's video files in `data_dir/media`, ICE limited to loopback when the server
    #: listens on a loopback address.
    video: VideoSettings | None = None
    #: One of several instances on one PostgreSQL database (`auction.cluster`); None: the
    #: only server.
    cluster: ClusterSettings | None = None
    #: Hold the checkpoints until `AuctionService.release_checkpoints()` (the CLI releases them
    #: once the server listens: its notaries read the entries from it before co-signing).
    hold_checkpoints: bool = False
    #: Every this many seconds, give the C allocator's free memory back to the system
    #: (`auction.heap`; glibc's malloc_trim); 0: never.
    heap_trim_s: float = 60.0
    #: Every this many seconds, record each live lot's viewer count for the staff dashboard
    #: (`auction.web.dashboard`); 0: never.
    viewer_sample_s: float = 10.0
    #: A separate admin address serving `GET /metrics` without a token (`auction.web.metrics`);
    #: None: none (`/metrics` on the main address is for admin and auditor sessions only).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def video_settings(self) -> VideoSettings:
        if self.video is not None:
            return self.video
        loopback = self.host in ("127.0.0.1", "::1", "localhost")
        recordings = Path(self.data_dir) / "recordings"
        if self.cluster is not None:  # each instance records the lots it writes
            recordings = recordings / self.cluster.instance
        return VideoSettings(
            recordings_dir=recordings,
            media_dir=Path(self.data_dir) / "media",  # the console's video files
            loopback_only=loopback,
        )

    @property
    def storage_target(self) -> str | os.PathLike[str]:
        """What to hand to `Storage.open`."""
        return self.database_url or self.data_dir

    @property
    def timeline(self) -> Timeline:
        return Timeline.for_duration(self.duration)

    @property
    def living(self) -> bool:
        """Whether the demo keeps a living catalogue (`auction.demo.living`) rather than the
        short showcase of a `duration` run."""
        return self.demo and (self.duration is None or self.speed is not None)
