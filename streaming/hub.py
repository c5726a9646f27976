"""The stream hub: the live lots, and every peer connection (viewers and publishers).

The auction server drives it with plain values (`declare_lot`, `open_lot`, `update_overlay`,
`close_lot`); the HTTP adapter in `app.py` hands it checked offers. It owns every peer
connection and background task it makes and closes them in `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from streaming.errors import (
    BadOffer,
    CameraNotAccepted,
    ConfigurationError,
    LotNotFound,
    LotNotLive,
    NegotiationFailed,
    NotAuthorized,
    PublishingDisabled,
    SignalingError,
    TooManyViewers,
    TooManyViewersFromAddress,
)
from streaming.loopback import loopback_only_ice
from streaming.model import (
    GENESIS_SHA256,
    OverlayState,
    Rendition,
    SourceSpec,
    StreamPhase,
    TestPatternSource,
    check_lot_id,
    is_valid_lot_id,
)
from streaming.pipeline import METADATA_CHANNEL, LotStream, ViewerTrack, rendition_info
from streaming.settings import IceServer, StreamSettings
from streaming.signaling import (
    Offer,
    check_publisher_offer,
    check_viewer_offer,
    choose_rendition,
    filter_candidates,
    is_loopback_address,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str
    type: str = "answer"


@dataclass(frozen=True, slots=True)
class LotStatus:
    lot_id: str
    phase: StreamPhase
    codec: str | None
    overlay: bool
    renditions: tuple[dict[str, object], ...]
    default_rendition: str | None
    viewers: int
    camera: bool
    frames_out: int
    failed: str | None
    ice_servers: tuple[dict[str, object], ...] = ()
    encoding: bool = False
    recording: bool = False

    @property
    def live(self) -> bool:
        return self.phase == "live"

    def to_json(self) -> dict[str, object]:
        return {
            "lot_id": self.lot_id,
            "live": self.live,
            "phase": self.phase,
            "codec": self.codec,
            "overlay": self.overlay,
            "renditions": list(self.renditions),
            "default_rendition": self.default_rendition,
            "viewers": self.viewers,
            "camera": self.camera,
            "frames_out": self.frames_out,
            "failed": self.failed,
            "ice_servers": list(self.ice_servers),
            "encoding": self.encoding,
            "recording": self.recording,
        }


@dataclass(eq=False, slots=True)
class _Peer:
    pc: RTCPeerConnection
    lot_id: str
    role: str
    created: float = field(default_factory=time.monotonic)
    address: str | None = None  # a viewer's client address (the per-address cap)
    track: MediaStreamTrack | None = None
    closing: bool = False
    close_task: asyncio.Task[None] | None = None


class StreamHub:
    """Create it with the settings, `await start()` before the first offer, `await close()` at
    shutdown. Everything else is synchronous except answering offers and closing lots."""

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self._lots: dict[str, LotStream] = {}
        self._phases: dict[str, StreamPhase] = {}
        self._peers: set[_Peer] = set()
        self._publishers: dict[str, _Peer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._negotiations = asyncio.Semaphore(settings.max_concurrent_negotiations)
        self._exit = contextlib.ExitStack()
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.loopback_only and not self._started:
            self._exit.enter_context(loopback_only_ice())
        self._started = True

    async def close_peers(self) -> None:
        """Close every peer connection (graceful shutdown: before the lots stop)."""
        await asyncio.gather(*(self._drop(peer) for peer in list(self._peers)))

    async def close(self) -> None:
        """Close every peer connection, stop every lot (closing its last segment), cancel and
        await every task the hub started."""
        await self.close_peers()
        for lot_id in list(self._lots):
            await self.close_lot(lot_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        self._exit.close()
        self._started = False

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- lots (driven by the auction server) -----------------------------------------------

    def declare_lot(self, lot_id: str) -> None:
        """Make the lot known but not live: offers get 409 `LOT_NOT_LIVE` instead of 404."""
        check_lot_id(lot_id)
        self._phases.setdefault(lot_id, "declared")

    def open_lot(
        self,
        lot_id: str,
        source: SourceSpec | None = None,
        overlay: OverlayState | None = None,
        *,
        first_segment_index: int = 0,
        prev_segment_sha256_hex: str = GENESIS_SHA256,
        renditions: tuple[Rendition, ...] | None = None,
        record: bool = True,
    ) -> None:
        """Start streaming the lot (default source: the test pattern). A lot streamed before
        continues its evidence chain: pass the index after its last `stream_segment` entry
        and that entry's digest. `renditions`: this lot's own encodes instead of the
        settings' (the first is the default, the largest is recorded); `record=False`: no
        evidence recording. Raises `ConfigurationError` (bad id, already live) or
        `SourceError` (a file that cannot be read or passed through)."""
        check_lot_id(lot_id)
        if lot_id in self._lots:
            raise ConfigurationError(f"lot {lot_id!r} is already live")
        settings = self.settings
        if renditions is not None and renditions != settings.renditions:
            settings = dataclasses.replace(
                settings,
                renditions=renditions,
                default_rendition=renditions[0].name,
                record_rendition=None,
            )
        lot = LotStream(
            lot_id,
            source if source is not None else TestPatternSource(),
            settings,
            first_segment_index=first_segment_index,
            prev_segment_sha256_hex=prev_segment_sha256_hex,
            record=record,
        )
        if overlay is not None:
            lot.update_overlay(overlay)
        self._lots[lot_id] = lot
        self._phases[lot_id] = "live"
        lot.start()

    async def close_lot(self, lot_id: str) -> None:
        """Stop the lot's stream, close its viewers and publisher, and wait until its last
        evidence segment reached the sink. The lot stays known (offers get 409)."""
        lot = self._lots.pop(lot_id, None)
        if lot is None:
            return
        self._phases[lot_id] = "ended"
        await asyncio.gather(*(self._drop(p) for p in list(self._peers) if p.lot_id == lot_id))
        await lot.stop()

    def update_overlay(self, lot_id: str, state: OverlayState) -> None:
        """Show `state` in the lot's picture from the next frame on and announce it on the
        timed-metadata channels. Ignored for a lot that is not live."""
        lot = self._lots.get(lot_id)
        if lot is not None:
            lot.update_overlay(state)

    def switch_source(self, lot_id: str, source: SourceSpec) -> None:
        """Show `source` in the live lot's picture from its first frame on; viewers and the
        recording go on. Raises `LotNotFound`/`LotNotLive`, `ConfigurationError` (a
        passed-through file) or `SourceError` (a file that cannot be read)."""
        self._live_lot(lot_id).replace_source(source)

    def lot(self, lot_id: str) -> LotStream | None:
        return self._lots.get(lot_id)

    def status(self, lot_id: str) -> LotStatus:
        phase = self._phases.get(lot_id)
        if phase is None:
            raise LotNotFound(lot_id)
        ice_servers = tuple(_client_ice_server(s) for s in self.settings.client_ice_servers)
        lot = self._lots.get(lot_id)
        if lot is None:
            return LotStatus(lot_id, phase, None, False, (), None, 0, False, 0, None, ice_servers)
        counts = lot.viewer_count()
        renditions = tuple(
            {**rendition_info(feed), "viewers": counts[name]} for name, feed in lot.feeds.items()
        )
        viewers = (
            sum(counts.values()) if lot.shared or not lot.frame_tracks else self._count(lot_id)
        )
        return LotStatus(
            lot_id=lot_id,
            phase=phase,
            codec=lot.codec,
            overlay=lot.overlay,
            renditions=renditions,
            default_rendition=lot.default_rendition,
            viewers=viewers,
            camera=lot.camera_connected,
            frames_out=lot.frames_out,
            failed=lot.failed,
            ice_servers=ice_servers,
            encoding=lot.encoding,
            recording=lot.recording,
        )

    def _count(self, lot_id: str, address: str | None = None) -> int:
        return sum(
            1
            for p in self._peers
            if p.lot_id == lot_id
            and p.role == "viewer"
            and (address is None or p.address == address)
        )

    def _live_lot(self, lot_id: str) -> LotStream:
        if not is_valid_lot_id(lot_id):
            raise LotNotFound(lot_id[:80])
        lot = self._lots.get(lot_id)
        if lot is not None:
            return lot
        phase = self._phases.get(lot_id)
        if phase is None:
            raise LotNotFound(lot_id)
        raise LotNotLive(lot_id, phase)

    def check_live(self, lot_id: str) -> None:
        """Raise `LotNotFound` (404) or `LotNotLive` (409) unless the lot streams now."""
        self._live_lot(lot_id)

    # --- signaling ------------------------------------------------------------------------

    def _configuration(self) -> RTCConfiguration:
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.settings.ice_servers
        ]
        return RTCConfiguration(iceServers=servers)

    def _remote_sdp(self, offer: Offer) -> str:
        if self.settings.loopback_only:
            return filter_candidates(offer.sdp, is_loopback_address)
        return offer.sdp

    async def answer_viewer(
        self, lot_id: str, offer: Offer, rendition: str | None, address: str | None = None
    ) -> Answer:
        """Answer a receive-only viewer's offer: the viewer gets the shared packets of the
        chosen rendition and, if its offer has a data channel labelled "gavel-meta", the
        timed metadata. `address`: the client's address; each may hold at most
        `max_viewers_per_address` viewers of a lot (`TooManyViewersFromAddress`, 429).
        Raises `SignalingError` subclasses only."""
        check_viewer_offer(offer)
        lot = self._live_lot(lot_id)
        name = choose_rendition(rendition, lot.feeds, lot.default_rendition)
        limit = self.settings.max_viewers_per_address
        if address is not None and self._count(lot_id, address) >= limit:
            raise TooManyViewersFromAddress(
                f"your address already watches lot {lot_id!r} {limit} times (at most {limit}); "
                "close another player first"
            )
        if self._count(lot_id) >= self.settings.max_viewers_per_lot:
            raise TooManyViewers(f"lot {lot_id!r} has its maximum of viewers; try again later")

        def prepare(peer: _Peer) -> None:
            track = lot.subscribe(name)
            peer.track = track
            transceiver = peer.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codecs(lot.codec))
            if isinstance(track, ViewerTrack):
                track.use_prepacked(transceiver.sender)

                # PLI/FIR of this viewer go to the shared encoder of its current rendition
                # (RTCRtpSender._send_keyframe is the hook aiortc calls for both).
                def keyframe_request() -> None:
                    track.feed.request_keyframe()

                setattr(transceiver.sender, "_send_keyframe", keyframe_request)  # noqa: B010

            @peer.pc.on("datachannel")
            def on_datachannel(channel: RTCDataChannel) -> None:
                if channel.label == METADATA_CHANNEL:
                    lot.attach_channel(channel, track)

        return await self._negotiate(lot_id, "viewer", offer, prepare, address)

    async def authorize_publisher(self, lot_id: str, token: str | None) -> None:
        """Raise `PublishingDisabled` (403) or `NotAuthorized` (401) unless `token` may
        publish the lot's camera; then `answer_publisher`."""
        authorizer = self.settings.publisher_authorizer
        if authorizer is None:
            raise PublishingDisabled("this server accepts no published camera")
        if token is None:
            raise NotAuthorized("send Authorization: Bearer <token> to publish")
        if not await authorizer(lot_id, token):
            raise NotAuthorized(f"this token may not publish lot {lot_id[:80]!r}")

    async def answer_publisher(self, lot_id: str, offer: Offer) -> Answer:
        """Answer the auctioneer console's offer (it sends video; call `authorize_publisher`
        first): the camera replaces the lot's picture from its first decoded frame on."""
        check_publisher_offer(offer)
        lot = self._live_lot(lot_id)
        if not lot.overlay:
            raise CameraNotAccepted(f"lot {lot_id!r} streams a file passed through")
        previous = self._publishers.get(lot_id)
        if previous is not None:
            await self._drop(previous)

        def prepare(peer: _Peer) -> None:
            self._publishers[lot_id] = peer

            @peer.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video":
                    self._spawn(self._wait_for_camera(peer, lot, track))
                else:
                    self._spawn(_discard(track))

        return await self._negotiate(lot_id, "publisher", offer, prepare)

    async def _wait_for_camera(self, peer: _Peer, lot: LotStream, track: MediaStreamTrack) -> None:
        try:
            frame = await asyncio.wait_for(track.recv(), self.settings.connect_timeout_s)
        except (TimeoutError, MediaStreamError):
            log.warning("publisher of lot %s sent no video", lot.lot_id)
            await self._drop(peer)
            return
        if isinstance(frame, av.VideoFrame) and not peer.closing:
            lot.attach_camera(track, frame.reformat(format="yuv420p"))

    async def _negotiate(
        self,
        lot_id: str,
        role: str,
        offer: Offer,
        prepare: Callable[[_Peer], None],
        address: str | None = None,
    ) -> Answer:
        peer = _Peer(RTCPeerConnection(self._configuration()), lot_id, role, address=address)
        self._peers.add(peer)

        @peer.pc.on("connectionstatechange")
        def on_state() -> None:
            if peer.pc.connectionState in ("failed", "closed"):
                self._spawn(self._drop(peer))

        phase = "offer"
        try:
            async with asyncio.timeout(self.settings.negotiation_timeout_s):
                async with self._negotiations:
                    prepare(peer)
                    remote = RTCSessionDescription(sdp=self._remote_sdp(offer), type="offer")
                    await peer.pc.setRemoteDescription(remote)
                    phase = "answer"
                    answer = await peer.pc.createAnswer()
                    await peer.pc.setLocalDescription(answer)
        except SignalingError:
            await self._drop(peer)
            raise
        except TimeoutError as exc:
            await self._drop(peer)
            raise NegotiationFailed("the WebRTC negotiation timed out") from exc
        except OperationError as exc:
            await self._drop(peer)
            raise BadOffer(f"no usable codec in the offer: {exc}", code="NO_COMMON_CODEC") from exc
        except Exception as exc:  # aiortc's SDP parser and state machine are foreign code
            await self._drop(peer)
            if phase == "offer":
                raise BadOffer(f"the SDP was refused: {exc!s:.200}", code="BAD_SDP") from exc
            raise NegotiationFailed(f"no answer could be made: {exc!s:.200}") from exc
        self._spawn(self._watch(peer))
        local = peer.pc.localDescription
        return Answer(sdp=local.sdp, type=local.type)

    async def _watch(self, peer: _Peer) -> None:
        """Close a peer that has not connected within `connect_timeout_s`."""
        await asyncio.sleep(self.settings.connect_timeout_s)
        if peer.pc.connectionState != "connected":
            await self._drop(peer)

    async def _drop(self, peer: _Peer) -> None:
        """Forget the peer and close its connection (once; callers may be cancelled without
        cancelling the close: a cancelled `pc.close()` breaks aiortc's own close task)."""
        if peer.close_task is None:
            peer.closing = True
            self._peers.discard(peer)
            if self._publishers.get(peer.lot_id) is peer:
                del self._publishers[peer.lot_id]
            if peer.track is not None:
                peer.track.stop()
            peer.close_task = asyncio.ensure_future(peer.pc.close())
            self._closing.add(peer.close_task)
            peer.close_task.add_done_callback(self._closing.discard)
        await asyncio.shield(peer.close_task)

    def peer_count(self) -> int:
        return len(self._peers)


def _client_ice_server(server: IceServer) -> dict[str, object]:
    """An RTCIceServer dictionary for the browser."""
    out: dict[str, object] = {"urls": list(server.urls)}
    if server.username:
        out["username"] = server.username
    if server.credential:
        out["credential"] = server.credential
    return out


def _codecs(codec: str) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in capabilities if c.mimeType.lower() == f"video/{codec}".lower()]
    chosen += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    return list(chosen)


async def _discard(track: MediaStreamTrack) -> None:
    """Read and drop a track we do not use (a publisher's audio), so it cannot pile up."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
