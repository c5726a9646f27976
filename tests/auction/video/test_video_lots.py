"""Live video on every open lot: a property lot's presentation over real aiortc peer
connections (SQLite, the ledger, `gavel audit stream`), demand-driven encoding, the console's
source route (test pattern ↔ file, uploads) and a browser-camera publish with a staff token."""

from __future__ import annotations

import asyncio
import fractions
import io
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from PIL import Image
from server_kit import new_bidder
from server_kit import running_server as running_auction
from stream_kit import wait_until
from video_kit import ledger_segments, running_server, video_settings

from auction.accounts import Role
from auction.cli import main as gavel
from auction.ledger_export import StoreSource, export_ledger
from auction.rules import SECOND, judicial
from auction.service import AuctionService
from auction.video import VIDEO
from auction.video.presentation import LotFacts, facts_of, kind_of, presentation_frames
from auction.video.sources import SourceChoiceError, parse_choice
from streaming.evidence import segment_files
from streaming.loadtest import Viewer
from streaming.model import SlideshowSource
from streaming.slideshow import SlideshowFrames, window

FLAT = "hz-flat-1502"
FLAT_TITLE = "Flat 1502, 89 m², Building 3, Wenyi West Road, Hangzhou"


def judicial_lot(service: AuctionService, seconds: float) -> Any:
    start = service.now() + SECOND // 2
    return judicial(
        start_price=210_000_000,
        step=1_000_000,
        start_at=start,
        end_at=start + int(seconds * SECOND),
        min_duration=0,
        window=SECOND,
        extend=SECOND,
    )


def rgb_at(viewer: Viewer, y_fraction: float, x_fraction: float) -> tuple[int, int, int]:
    frame = viewer.last_frame
    assert frame is not None
    image = frame.to_ndarray(format="rgb24")
    pixel = image[int(image.shape[0] * y_fraction), int(image.shape[1] * x_fraction)]
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


async def rate(viewer: Viewer, seconds: float) -> float:
    before = viewer.stats.frames
    await asyncio.sleep(seconds)
    return viewer.fps_between(before, seconds)


# --- pure parts ----------------------------------------------------------------------------


def test_presentation_frames_are_drawn_from_the_lot_facts() -> None:
    frames = presentation_frames(LotFacts(FLAT_TITLE, sale_title="Xihu District court"))
    assert len(frames) == 3  # title card, facade, floor plan
    pictures = [Image.open(io.BytesIO(f)) for f in frames]
    assert all(p.size == (960, 540) for p in pictures)
    assert len({p.tobytes() for p in pictures}) == 3
    assert presentation_frames(LotFacts(FLAT_TITLE)) == presentation_frames(LotFacts(FLAT_TITLE))
    assert kind_of(LotFacts("Parking space B2-117, Lvcheng Xixi Garden")) == "parking"
    assert kind_of(LotFacts("Omega Speedmaster, 2019")) == "object"
    own = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 10)).save(own, format="PNG")
    mine = presentation_frames(LotFacts("Villa", pictures=(own.getvalue(),)))
    assert len(mine) == 2 and mine[1] == own.getvalue()  # the lot's own pictures, as they are

    class View:
        lot_id, title, sale_title = "x", FLAT_TITLE, None
        address, area_m2 = "3 Wenyi West Road", 89

    facts = facts_of(View())
    assert facts.address == "3 Wenyi West Road" and facts.area_m2 == 89.0


def test_the_slideshow_pans_and_zooms_within_the_picture() -> None:
    boxes = [window(i, 90, (716, 404), 0) for i in range(90)]
    assert boxes[0] == (0.0, 0.0, 716.0, 404.0)  # the whole picture, then closer
    assert all(0 <= b[0] and b[2] <= 716 + 1e-6 and b[3] <= 404 + 1e-6 for b in boxes)
    widths = [b[2] - b[0] for b in boxes]
    assert widths == sorted(widths, reverse=True) and widths[-1] == pytest.approx(716 / 1.08)
    lefts = [b[0] for b in boxes]
    assert lefts == sorted(lefts) and lefts[-1] > lefts[0]  # and pans
    source = SlideshowFrames(SlideshowSource(presentation_frames(LotFacts(FLAT_TITLE))))
    first, later = source.render(0), source.render(40)
    assert (first.width, first.height, first.format.name) == (640, 360, "yuv420p")
    assert not np.array_equal(first.to_ndarray(), later.to_ndarray())  # it moves


def test_the_console_source_choice_is_checked() -> None:
    assert parse_choice("pattern", None).kind == "pattern"
    assert parse_choice("file", "clip.mp4").file == "clip.mp4"
    for kind, name in (
        ("screen", None),
        ("file", "../etc/passwd.mp4"),
        ("file", "notes.txt"),
        ("file", None),
        ("pattern", "clip.mp4"),
    ):
        with pytest.raises(SourceChoiceError):
            parse_choice(kind, name)


# --- a property lot on air -----------------------------------------------------------------


async def test_a_judicial_lot_streams_its_presentation_for_its_whole_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timed judicial lot (no auctioneer, no ring) is on air from its opening to its close:
    its presentation at 360p and 15 fps with its state burned in, recorded at that rate, and
    every segment anchored in the ledger; the recording passes `gavel audit stream`."""
    data, recordings = tmp_path / "data", tmp_path / "recordings"

    async def seed(service: AuctionService) -> None:
        await service.add_lot(FLAT, judicial_lot(service, 5), FLAT_TITLE)

    settings = video_settings(recordings, lots="all", close_tail_seconds=0.3)
    async with running_server(data, settings, seed) as running:
        hub = running.video.hub
        assert hub.status(FLAT).phase == "declared"
        await wait_until(lambda: hub.lot(FLAT) is not None, 5)  # opened by its own timer
        status = hub.status(FLAT)
        assert [(r["name"], r["width"]) for r in status.renditions] == [("360p", 640)]
        assert status.recording and status.encoding
        viewer = Viewer(running.session, running.base_url, FLAT)
        await viewer.connect()
        try:
            await wait_until(lambda: viewer.stats.frames > 10, 10)
            assert viewer.stats.widths == {640}
            fps = await rate(viewer, 2.0)
            assert 8 <= fps <= 17, fps  # the presentation's rate, not a live ring's 30
            lot = hub.lot(FLAT)
            assert lot is not None and lot.overlay_state is not None
            state = lot.overlay_state
            assert state.title == FLAT_TITLE and state.price_text == "start ¥2,100,000.00"
            assert state.ends_at_ms is not None and state.phase == "Open"
            metadata = [m for m in viewer.stats.messages if m.get("type") == "state"]
            assert metadata and metadata[-1]["ends_at"] == state.ends_at_ms
            # the picture is the presentation (the title card's dark blue), not the pattern
            r, g, b = rgb_at(viewer, 0.6, 0.5)
            assert b > r + 10, (r, g, b)
            await wait_until(lambda: hub.status(FLAT).phase == "ended", 12)
        finally:
            await viewer.close()
        sink = running.video.sink
        await wait_until(lambda: sink.pending == 0, 5)
        assert sink.failed == sink.dropped == sink.skipped == 0
    recording = recordings / FLAT / "360p"
    files = segment_files(recording)
    segments = ledger_segments(data)
    assert len(segments) == len(files) >= 3
    assert all(body["lot"] == FLAT and body["rendition"] == "360p" for _, body in segments)
    export = tmp_path / "export"
    source = StoreSource(data)
    try:
        export_ledger(source, export)
    finally:
        source.close()
    capsys.readouterr()
    assert gavel(["audit", "stream", str(recording), "--ledger", str(export)]) == 0
    assert f"lot {FLAT} rendition 360p" in capsys.readouterr().out


async def test_a_lot_nobody_watches_and_nothing_records_costs_no_encoding(
    tmp_path: Path,
) -> None:
    data, recordings = tmp_path / "data", tmp_path / "recordings"

    async def seed(service: AuctionService) -> None:
        await service.add_lot(FLAT, judicial_lot(service, 60), FLAT_TITLE)

    settings = video_settings(recordings, lots="all", record=False)
    async with running_server(data, settings, seed) as running:
        hub = running.video.hub
        await wait_until(lambda: hub.lot(FLAT) is not None, 5)
        lot = hub.lot(FLAT)
        assert lot is not None
        await asyncio.sleep(1.5)
        assert lot.frames_encoded == 0 and lot.frames_out == 0  # not even drawn
        status = hub.status(FLAT)
        assert status.live and not status.encoding and not status.recording
        viewer = Viewer(running.session, running.base_url, FLAT)
        await viewer.connect()
        await wait_until(lambda: viewer.stats.frames > 5, 10)
        assert lot.frames_encoded > 5 and hub.status(FLAT).encoding
        await viewer.close()
        await wait_until(lambda: not hub.status(FLAT).encoding, 10)
        encoded = lot.frames_encoded
        await asyncio.sleep(1.0)
        assert lot.frames_encoded == encoded  # stopped again
        # a second viewer later starts from a keyframe and decodes
        again = Viewer(running.session, running.base_url, FLAT)
        await again.connect()
        try:
            await wait_until(lambda: again.stats.frames > 5, 10)
        finally:
            await again.close()
    assert not (recordings / FLAT).exists()


# --- the console: source and camera ----------------------------------------------------------


def make_clip(path: Path, colour: tuple[int, int, int], frames: int = 45) -> None:
    """A small H.264 MP4 of one colour."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.options = {"tune": "zerolatency", "bf": "0"}
        image = np.zeros((180, 320, 3), dtype=np.uint8)
        image[:] = colour
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def is_red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 150 and g < 90 and b < 90


async def test_the_console_switches_a_lot_between_test_pattern_and_file(tmp_path: Path) -> None:
    settings = video_settings(
        tmp_path / "data" / "recordings", lots="all", max_upload_bytes=300_000
    )
    media = settings.media_directory
    media.mkdir(parents=True)
    make_clip(media / "viewing.mp4", (220, 30, 30))
    async with running_auction(tmp_path, video=settings) as server:
        service = server.service
        await service.add_lot(FLAT, judicial_lot(service, 120), FLAT_TITLE)
        hub = server.app[VIDEO].hub
        await wait_until(lambda: hub.lot(FLAT) is not None, 5)
        staff = {"Authorization": f"Bearer {await server.staff(Role.AUCTIONEER)}"}
        route = f"{server.url}/api/console/lots/{FLAT}/video"
        async with aiohttp.ClientSession() as http:
            async with http.get(route, headers=staff) as response:
                assert response.status == 200
                body = await response.json()
            assert body["source"] == {"kind": "presentation", "file": None}
            assert body["files"] == ["viewing.mp4"]
            assert body["rate"] == {"width": 640, "height": 360, "fps": 15}
            assert body["stream"]["live"] is True

            viewer = Viewer(http, server.url, FLAT)
            await viewer.connect()
            try:
                await wait_until(lambda: viewer.stats.frames > 3, 10)
                async with http.put(route, json={"source": "file", "file": "viewing.mp4"},
                                    headers=staff) as response:  # fmt: skip
                    assert response.status == 200, await response.text()
                    assert (await response.json())["source"]["file"] == "viewing.mp4"
                await wait_until(lambda: is_red(rgb_at(viewer, 0.6, 0.5)), 10)
                async with http.put(route, json={"source": "pattern"}, headers=staff) as response:
                    assert response.status == 200
                await wait_until(lambda: not is_red(rgb_at(viewer, 0.6, 0.5)), 10)
                frames = viewer.stats.frames
                await wait_until(lambda: viewer.stats.frames > frames + 5, 5)  # still on air

                # refused requests change nothing
                bidder = await new_bidder(http, server.url)
                refusals = (
                    ({}, {"source": "file", "file": "viewing.mp4"}, 401, "UNAUTHENTICATED"),
                    (bidder.auth, {"source": "pattern"}, 403, "FORBIDDEN"),
                    (staff, {"source": "screen"}, 422, "UNKNOWN_SOURCE"),
                    (staff, {"source": "file", "file": "../x.mp4"}, 422, "BAD_FILE_NAME"),
                    (staff, {"source": "file", "file": "absent.mp4"}, 404, "FILE_NOT_FOUND"),
                )
                for headers, payload, status, code in refusals:
                    async with http.put(route, json=payload, headers=headers) as response:
                        assert response.status == status, (payload, await response.text())
                        assert (await response.json())["error"]["code"] == code
                async with http.get(route, headers=staff) as response:
                    assert (await response.json())["source"]["kind"] == "pattern"

                # an uploaded file: probed with PyAV, kept, shown
                upload = f"{route}/file?name=walkthrough.mp4"
                clip = tmp_path / "walk.mp4"
                make_clip(clip, (220, 30, 30), frames=20)
                async with http.post(upload, data=clip.read_bytes(), headers=staff) as response:
                    assert response.status == 201, await response.text()
                    uploaded = await response.json()
                assert uploaded["source"] == {"kind": "file", "file": uploaded["uploaded"]}
                assert (media / uploaded["uploaded"]).read_bytes() == clip.read_bytes()
                await wait_until(lambda: is_red(rgb_at(viewer, 0.6, 0.5)), 10)
                for data, status, code in (
                    (b"not a video at all" * 10, 422, "UNUSABLE_VIDEO"),
                    (b"\0" * 400_000, 413, "TOO_LARGE"),
                ):
                    async with http.post(upload, data=data, headers=staff) as response:
                        assert response.status == status
                        assert (await response.json())["error"]["code"] == code
                async with http.post(f"{route}/file?name=x.exe", data=b"1", headers=staff) as r:
                    assert r.status == 415
                assert sorted(p.name for p in media.iterdir()) == sorted(
                    ["viewing.mp4", uploaded["uploaded"]]
                )  # nothing left of the refused uploads
            finally:
                await viewer.close()


class Camera(VideoStreamTrack):
    """The publishing browser's camera: a flat grey picture (luma ~200) with a dark square."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.full((480, 640, 3), 200, dtype=np.uint8)
        image[200:280, 280:360] = 30
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def publish(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[RTCPeerConnection, int, dict[str, Any]]:
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(Camera(), direction="sendonly")
    await publisher.setLocalDescription(await publisher.createOffer())
    offer = {"sdp": publisher.localDescription.sdp, "type": "offer"}
    async with http.post(url, json=offer, headers=headers) as response:
        return publisher, response.status, await response.json()


async def test_a_console_camera_publishes_a_property_lot(tmp_path: Path) -> None:
    """The console page's browser camera, played by an aiortc client: it publishes with the
    auctioneer's token, the server takes its video track as the lot's source (the overlay is
    still burned in), and the lot goes back to its presentation when the camera leaves."""
    settings = video_settings(tmp_path / "data" / "recordings", lots="all")
    async with running_auction(tmp_path, video=settings) as server:
        service = server.service
        await service.add_lot(FLAT, judicial_lot(service, 120), FLAT_TITLE)
        hub = server.app[VIDEO].hub
        await wait_until(lambda: hub.lot(FLAT) is not None, 5)
        staff = {"Authorization": f"Bearer {await server.staff(Role.AUCTIONEER)}"}
        url = f"{server.url}/api/lots/{FLAT}/stream/publish"
        async with aiohttp.ClientSession() as http:
            bidder = await new_bidder(http, server.url)
            for headers in ({}, bidder.auth):
                refused, status, body = await publish(http, url, headers)
                await refused.close()
                assert status == 401 and body["error"]["code"] == "NOT_AUTHORIZED"
            async with http.put(f"{server.url}/api/console/lots/{FLAT}/video",
                                json={"source": "camera"}, headers=staff) as response:  # fmt: skip
                assert response.status == 200
            viewer = Viewer(http, server.url, FLAT)
            await viewer.connect()
            publisher, status, answer = await publish(http, url, staff)
            try:
                assert status == 200, answer
                await publisher.setRemoteDescription(RTCSessionDescription(**answer))
                await wait_until(lambda: hub.status(FLAT).camera, 10)

                def camera_on_air() -> bool:
                    frame = viewer.last_frame
                    if frame is None:
                        return False
                    y = frame.to_ndarray(format="gray")
                    centre, side = int(y[y.shape[0] // 2, y.shape[1] // 2]), int(y[-40, 40])
                    return centre < 70 and side > 160

                await wait_until(camera_on_air, 10)
                lot = hub.lot(FLAT)
                assert lot is not None and lot.overlay_state is not None  # still burned in
            finally:
                await publisher.close()
            await wait_until(lambda: not hub.status(FLAT).camera, 10)
            await wait_until(lambda: not camera_on_air(), 10)  # the presentation again
            await viewer.close()


async def test_a_lot_presentation_shows_its_stored_pictures(tmp_path: Path) -> None:
    """The lot's facts and pictures (`auction.catalogue.facts`, entered from the console) are what
    its presentation is drawn from when it goes on air."""
    from auction.catalogue.facts import check_upload
    from auction.web.app import FACTS

    settings = video_settings(tmp_path / "data" / "recordings", lots="all")
    async with running_auction(tmp_path, video=settings) as server:
        service = server.service
        store = server.app[FACTS]
        picture = io.BytesIO()
        Image.new("RGB", (800, 450), (200, 40, 40)).save(picture, format="PNG")
        upload = check_upload("picture", "living-room.png", picture.getvalue())
        await asyncio.to_thread(
            store.put_facts, FLAT, {"address": "3 Wenyi West Road", "area": "89.5 m²"}, 0
        )
        await asyncio.to_thread(store.add_document, FLAT, upload, 1, 0)
        await service.add_lot(FLAT, judicial_lot(service, 120), "Flat 1502")
        video = server.app[VIDEO]
        await wait_until(lambda: video.hub.lot(FLAT) is not None, 5)
        lot = video.hub.lot(FLAT)
        assert lot is not None and isinstance(lot.spec, SlideshowSource)
        assert lot.spec.slides[1:] == (picture.getvalue(),)  # after the title card
        facts = video.facts_for(service.view(FLAT))
        assert facts.address == "3 Wenyi West Road" and facts.area_m2 == 89.5
