"""A presentation as a frame source: still pictures in turn, each with a slow pan and zoom.

The pictures are decoded once (Pillow) and cropped to fill a picture `MARGIN` times the
output size; each frame is a window of it, scaled to the output size in one Pillow call
(`resize` with a `box`, sub-pixel, so the motion is smooth at 15 fps), then converted to
yuv420p by a scaler kept across frames. About 1-2 ms per 360p frame, on the executor the
pipeline hands over (the lot's own worker thread), never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image, UnidentifiedImageError

from streaming.errors import SourceError
from streaming.model import SlideshowSource
from streaming.sources import Pacer, wall_clock_us

#: How much larger than the output the pictures are kept: the room for the pan and zoom.
MARGIN = 1.12
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
    zoom = 1.0 + (MARGIN - 1.0) * (t if forward else 1.0 - t)  # 1: whole picture
    big_w, big_h = big
    win_w, win_h = big_w / zoom, big_h / zoom
    along = t if forward else 1.0 - t
    left = (big_w - win_w) * along
    top = (big_h - win_h) * 0.5
    return (left, top, left + win_w, top + win_h)


class SlideshowFrames:
    """The frame source of a `SlideshowSource` (see the module docstring)."""

    def __init__(
        self, spec: SlideshowSource, executor: concurrent.futures.Executor | None = None
    ) -> None:
        self.spec = spec
        self.width, self.height, self.fps = spec.width, spec.height, spec.fps
        self._slides = [decode_slide(data, spec.width, spec.height) for data in spec.slides]
        self._frames_per_slide = max(1, round(spec.seconds_per_slide * spec.fps))
        self._pacer = Pacer(spec.fps)
        self._index = 0
        self._scaler = VideoReformatter()
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
        number = index // self._frames_per_slide
        slide = self._slides[number % len(self._slides)]
        box = window(index, self._frames_per_slide, slide.size, number)
        picture = slide.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)
        rgb = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
        return self._scaler.reformat(rgb, format="yuv420p")

    def close(self) -> None:
        return None  # the pictures go with the object (a job may still be rendering one)
