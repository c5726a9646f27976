"""A presentation as a frame source: still pictures in turn, each with a slow pan and zoom.

The pictures are decoded once (Pillow), cropped to fill a picture `MARGIN` times the output
size and split into its Y, U and V planes (BT.601, as yuv420p). Each frame is a window of
them, scaled to the output size by one Pillow call per plane (`resize` with a `box`:
sub-pixel, so the motion is smooth at 15 fps) and copied into the frame's planes: about 1 ms
of CPU per 360p frame (converting an RGB window per frame cost 3), on the executor the
pipeline hands over (the lot's own worker thread), never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from streaming.errors import SourceError
from streaming.model import SlideshowSource
from streaming.overlay import plane_view
from streaming.sources import Pacer, wall_clock_us

#: How much larger than the output the pictures are kept: the room for the pan and zoom.
MARGIN = 1.12
#: The closest view: 1/ZOOM of the picture (its edges, where the text of a title card is,
#: stay in sight).
ZOOM = 1.08
#: Largest picture accepted (pixels): a bigger one is refused, not decoded.
MAX_PIXELS = 40_000_000


def _fill(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled and centre-cropped to exactly `width` × `height`."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    scaled_w = max(width, round(image.width * scale))
    scaled_h = max(height, round(image.height * scale))
    image = image.resize((scaled_w, scaled_h), Image.Resampling.BILINEAR)
    left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
    return image.crop((left, top, left + width, top + height))


def yuv_planes(image: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The Y plane and the half-size U and V planes of an RGB picture (BT.601, limited
    range: what libswscale makes of rgb24 for yuv420p)."""
    rgb = np.asarray(image, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def plane(values: npt.NDArray[np.float32]) -> Image.Image:
        return Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8))

    half = (image.width // 2, image.height // 2)
    return (
        plane(y),
        plane(u).resize(half, Image.Resampling.BILINEAR),
        plane(v).resize(half, Image.Resampling.BILINEAR),
    )


def decode_slide(data: bytes, width: int, height: int) -> Image.Image:
    """One picture (PNG/JPEG bytes) ready for the slideshow; `SourceError` if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise SourceError(f"a slideshow picture is larger than {MAX_PIXELS} pixels")
            image.load()
            return _fill(image, round(width * MARGIN) // 2 * 2, round(height * MARGIN) // 2 * 2)
    except (UnidentifiedImageError, OSError) as exc:
        raise SourceError(f"a slideshow picture cannot be read: {exc}") from exc


def window(
    index: int, frames_per_slide: int, big: tuple[int, int], slide_number: int
) -> tuple[float, float, float, float]:
    """The part of the (large) picture shown at frame `index` of a slide, as a Pillow box:
    even slides zoom in while panning right, odd ones zoom out while panning left (pure)."""
    t = (index % frames_per_slide) / max(1, frames_per_slide - 1)
    forward = slide_number % 2 == 0
    zoom = 1.0 + (ZOOM - 1.0) * (t if forward else 1.0 - t)  # 1: whole picture
    big_w, big_h = big
    win_w, win_h = big_w / zoom, big_h / zoom
    along = t if forward else 1.0 - t
    left = (big_w - win_w) * (0.3 + 0.4 * along)
    top = (big_h - win_h) * 0.5
    return (left, top, left + win_w, top + win_h)


class SlideshowFrames:
    """The frame source of a `SlideshowSource` (see the module docstring)."""

    def __init__(
        self, spec: SlideshowSource, executor: concurrent.futures.Executor | None = None
    ) -> None:
        self.spec = spec
        self.width, self.height, self.fps = spec.width, spec.height, spec.fps
        # decoded by the first `render`, on the lot's thread: not on the event loop
        self._slides: list[tuple[Image.Image, Image.Image, Image.Image]] = []
        self._frames_per_slide = max(1, round(spec.seconds_per_slide * spec.fps))
        self._pacer = Pacer(spec.fps)
        self._index = 0
        self._executor = executor

    def use_executor(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor

    async def next_frame(self) -> tuple[av.VideoFrame, int]:
        await self._pacer.wait()
        index, self._index = self._index, self._index + 1
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._executor, self.render, index)
        return frame, wall_clock_us()

    def render(self, index: int) -> av.VideoFrame:
        """Frame `index` of the show (a new yuv420p frame). Blocking."""
        if not self._slides:
            spec = self.spec
            self._slides = [
                yuv_planes(decode_slide(data, spec.width, spec.height)) for data in spec.slides
            ]
        number = index // self._frames_per_slide
        planes = self._slides[number % len(self._slides)]
        box = window(index, self._frames_per_slide, planes[0].size, number)
        half_box = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for source, target, area in zip(
            planes, frame.planes, (box, half_box, half_box), strict=True
        ):
            picture = source.resize(
                (target.width, target.height), Image.Resampling.BILINEAR, box=area
            )
            view = plane_view(
                target, width=target.width, height=target.height, line_size=target.line_size
            )
            view[:] = np.asarray(picture)
        return frame

    def close(self) -> None:
        return None  # the pictures go with the object (a job may still be rendering one)
