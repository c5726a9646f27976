"""The lot state and a capture clock, burned into the picture before the shared encode.

* The banner (lot title; price, leader, time left, "EXTENDED", phase) is drawn with Pillow
  into an 8-bit mask only when its text changes (a state change, or the countdown's second),
  then blended into the Y plane with numpy on every frame: the banner rows are dimmed and the
  text is lifted to white; chroma under it is set neutral. About 0.03 ms per frame.
* The clock strip in the bottom rows carries the capture time (server UTC ms, modulo 2^32) as
  36 black/white blocks: guard bits `1 0`, 32 bits MSB first, guard bits `0 1`. Block width is
  height/30 at any scale, so a page reads it at every rendition (`player.js` does, to show
  "video is N s behind" and to measure glass-to-glass latency).

Works on the planes of a yuv420p frame in place (numpy views on the frame's buffers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from streaming.model import OverlayState, overlay_lines

Plane = npt.NDArray[np.uint8]

STRIP_GUARD_START = (1, 0)
STRIP_GUARD_END = (0, 1)
STRIP_DATA_BITS = 32
STRIP_BLOCKS = len(STRIP_GUARD_START) + STRIP_DATA_BITS + len(STRIP_GUARD_END)
STRIP_BLOCKS_PER_HEIGHT = 30
BLACK = 16
WHITE = 235
NEUTRAL_CHROMA = 128


def strip_block_size(height: int) -> float:
    return height / STRIP_BLOCKS_PER_HEIGHT


def strip_bits(capture_ms: int) -> tuple[int, ...]:
    value = capture_ms & 0xFFFFFFFF
    data = tuple((value >> (STRIP_DATA_BITS - 1 - i)) & 1 for i in range(STRIP_DATA_BITS))
    return STRIP_GUARD_START + data + STRIP_GUARD_END


def decode_strip(samples: Sequence[int], reference_ms: int) -> int | None:
    """The capture time from the luma sampled at the centre of each of the 36 blocks, unwrapped
    to the value nearest `reference_ms`; None when the guards are not there (no strip)."""
    if len(samples) != STRIP_BLOCKS:
        return None
    bits = [1 if s >= 128 else 0 for s in samples]
    if tuple(bits[:2]) != STRIP_GUARD_START or tuple(bits[-2:]) != STRIP_GUARD_END:
        return None
    value = 0
    for bit in bits[2:-2]:
        value = (value << 1) | bit
    base = reference_ms - (reference_ms & 0xFFFFFFFF)
    candidates = (base - (1 << 32) + value, base + value, base + (1 << 32) + value)
    return min(candidates, key=lambda c: abs(c - reference_ms))


def plane_view(buffer: object, *, width: int, height: int, line_size: int) -> Plane:
    """A writable (height, width) view on a frame plane with `line_size` bytes per row."""
    flat: Plane = np.frombuffer(buffer, dtype=np.uint8)  # type: ignore[call-overload]
    view: Plane = flat[: height * line_size].reshape(height, line_size)[:, :width]
    return view


FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian fonts-dejavu-core: has ¥ £ €
)


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The overlay's font at `size` pixels (DejaVu Sans, else Pillow's bundled one)."""
    return _font(size)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)  # Pillow's bundled font (no ¥ glyph)


class OverlayRenderer:
    """Draws one lot's banner and clock strip into frames of one size. Not thread-safe: use it
    from one thread at a time (the pipeline calls it from its single encode job)."""

    def __init__(self, width: int, height: int, *, clock_strip: bool = True) -> None:
        self.width = width
        self.height = height
        self.clock_strip = clock_strip
        self.banner_rows = max(24, (height * 14 // 100) // 4 * 4)
        self.strip_rows = max(4, int(round(strip_block_size(height))) // 2 * 2)
        self._lines: tuple[str, str] | None = None
        self._mask: Plane | None = None
        self.renders = 0
        big = max(10, self.banner_rows * 36 // 100)
        small = max(9, self.banner_rows * 30 // 100)
        self._title_font = _font(big)
        self._detail_font = _font(small)
        block = strip_block_size(height)
        self._block_edges = [int(round(i * block)) for i in range(STRIP_BLOCKS + 1)]

    def _render(self, lines: tuple[str, str]) -> Plane:
        image = Image.new("L", (self.width, self.banner_rows), 0)
        draw = ImageDraw.Draw(image)
        margin = max(4, self.banner_rows // 10)
        draw.text((margin, margin // 2), lines[0], fill=WHITE, font=self._title_font)
        draw.text(
            (margin, self.banner_rows * 52 // 100), lines[1], fill=WHITE, font=self._detail_font
        )
        self.renders += 1
        return np.asarray(image, dtype=np.uint8)

    def apply(
        self, y: Plane, u: Plane, v: Plane, state: OverlayState | None, capture_ms: int
    ) -> None:
        """Burn the banner for `state` (none when None) and the clock strip for `capture_ms`
        into the Y/U/V planes (views of one yuv420p frame of this renderer's size)."""
        if state is not None:
            lines = overlay_lines(state, capture_ms)
            if lines != self._lines or self._mask is None:
                self._mask = self._render(lines)
                self._lines = lines
            rows = self.banner_rows
            band = y[:rows]
            np.right_shift(band, 2, out=band)
            np.maximum(band, self._mask, out=band)
            u[: rows // 2] = NEUTRAL_CHROMA
            v[: rows // 2] = NEUTRAL_CHROMA
        if self.clock_strip:
            rows = self.strip_rows
            strip = y[self.height - rows :]
            strip[:] = BLACK
            edges = self._block_edges
            for i, bit in enumerate(strip_bits(capture_ms)):
                if bit:
                    strip[:, edges[i] : edges[i + 1]] = WHITE
            u[(self.height - rows) // 2 :] = NEUTRAL_CHROMA
            v[(self.height - rows) // 2 :] = NEUTRAL_CHROMA


def sample_strip(y: Plane) -> list[int]:
    """The luma at the centre of each strip block of a decoded frame's Y plane (for tests and
    tools; `player.js` does the same in the page)."""
    height, _ = y.shape
    block = strip_block_size(height)
    row = height - max(1, int(block // 4))
    return [int(y[row, int((i + 0.5) * block)]) for i in range(STRIP_BLOCKS)]
