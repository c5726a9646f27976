"""What each lot's video shows, and at which rate: the per-lot source choice of the console.

Sources an auction house uses:

* "presentation": the lot's pictures as a slow pan-and-zoom slideshow
  (`auction.video.presentation`), the default of every timed lot (judicial and timed online sales);
* "pattern": the synthetic test picture, the default of a live sale's lot;
* "file": a video file in the server's media directory (a name there, or a file uploaded
  from the console into it), decoded once with PyAV and looped;
* "camera": the auctioneer's or a camera operator's browser camera, published from the
  console page over WebRTC (`POST /api/lots/{lot}/stream/publish` with the staff token); until
  it publishes (and after it leaves) the lot shows its default picture.

Rates: a live sale's lot uses the server's renditions (360p and 720p at 30 fps); every other
lot its presentation renditions (360p at 15 fps): a slideshow or a viewing walk-through does
not need more, and it costs half the encoding.

The choices are kept in memory (a restart goes back to the defaults).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streaming.model import (
    FileSource,
    Rendition,
    SlideshowSource,
    SourceSpec,
    TestPatternSource,
)

from ..errors import BadInput, NotFound
from ..rules import Format
from .presentation import LotFacts, facts_of, presentation_frames

SourceKind = Literal["presentation", "pattern", "file", "camera"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("presentation", "pattern", "file", "camera")

#: A property lot's encode: 360p at 15 fps.
PRESENTATION_360P = Rendition("360p", 640, 360, 300_000, fps=15)

#: File names the console may use in the media directory (no directories, no dot first).
MEDIA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MEDIA_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".ivf", ".avi", ".m4v"})


class SourceChoiceError(BadInput, ValueError):
    """A source the console asked for that cannot be used; `code` is stable, the message
    says why in plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class MediaFileMissing(NotFound, SourceChoiceError):
    """The file the console named is not in the media directory."""


@dataclass(frozen=True, slots=True)
class SourceChoice:
    """One lot's choice: `file` is a name in the media directory (kind "file" only)."""

    kind: SourceKind
    file: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "file": self.file}


def is_live_sale(format_value: str) -> bool:
    return format_value == Format.LIVE_AUCTIONEER.value


def default_choice(format_value: str) -> SourceChoice:
    """A live sale's lot shows the test picture (or the auctioneer's camera once it
    publishes); every other lot its presentation."""
    return SourceChoice("pattern" if is_live_sale(format_value) else "presentation")


def parse_choice(kind: object, file: object) -> SourceChoice:
    """The console's `{"source", "file"}`, checked (pure)."""
    if kind not in SOURCE_KINDS:
        raise SourceChoiceError(
            "UNKNOWN_SOURCE", f"source must be one of {', '.join(SOURCE_KINDS)}"
        )
    assert isinstance(kind, str)
    if kind != "file":
        if file is not None:
            raise SourceChoiceError("BAD_SOURCE", "only the file source takes a file name")
        return SourceChoice(kind)
    if not isinstance(file, str) or not MEDIA_NAME.fullmatch(file):
        raise SourceChoiceError(
            "BAD_FILE_NAME",
            "give the name of a file in the server's media directory "
            "(letters, digits, dots, dashes; no folders)",
        )
    if Path(file).suffix.lower() not in MEDIA_SUFFIXES:
        raise SourceChoiceError(
            "BAD_FILE_NAME", f"a video file ends in one of {', '.join(sorted(MEDIA_SUFFIXES))}"
        )
    return SourceChoice("file", file)


def stored_facts(store: object, view: object) -> LotFacts:
    """The lot's facts as `auction.catalogue.facts.LotFactsStore` keeps them (address, area, kind,
    its pictures' bytes), on top of what its view says. Blocking (database reads)."""
    base = facts_of(view)
    lot_id = str(getattr(view, "lot_id", ""))
    read_facts = getattr(store, "facts", None)
    read_documents = getattr(store, "documents", None)
    read_document = getattr(store, "document", None)
    if read_facts is None or read_documents is None or read_document is None:
        return base
    fields = read_facts([lot_id]).get(lot_id, ({}, 0))[0]
    pictures = []
    for stored in read_documents([lot_id]).get(lot_id, []):
        if stored.kind == "picture":
            pictures.append(read_document(lot_id, stored.document_id)[1])
    area = re.search(r"\d+(?:\.\d+)?", fields.get("area", "") or "")
    return LotFacts(
        title=base.title,
        address=fields.get("address") or base.address,
        area_m2=float(area.group(0)) if area else base.area_m2,
        sale_title=base.sale_title,
        pictures=tuple(pictures[:8]) or base.pictures,
    )


def media_files(media_dir: Path) -> list[str]:
    """The video files the console can choose (blocking: a directory listing)."""
    if not media_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in media_dir.iterdir()
        if p.is_file() and MEDIA_NAME.fullmatch(p.name) and p.suffix.lower() in MEDIA_SUFFIXES
    )


class LotSources:
    """Per lot: the chosen source, the presentation pictures (made once per lot), and the
    `SourceSpec` and renditions the stream hub gets."""

    def __init__(
        self,
        *,
        media_dir: Path,
        pattern: TestPatternSource,
        live_renditions: tuple[Rendition, ...],
        presentation_renditions: tuple[Rendition, ...],
        facts_for: Callable[[object], LotFacts] = facts_of,
    ) -> None:
        self.facts_for = facts_for  # blocking: may read the lot's pictures from the database
        self.media_dir = media_dir
        self.pattern = pattern
        self.live_renditions = live_renditions
        self.presentation_renditions = presentation_renditions
        self._choices: dict[str, SourceChoice] = {}
        self._slides: dict[str, tuple[bytes, ...]] = {}

    def choice(self, lot_id: str, format_value: str) -> SourceChoice:
        return self._choices.get(lot_id) or default_choice(format_value)

    def choose(self, lot_id: str, choice: SourceChoice) -> None:
        self._choices[lot_id] = choice

    def renditions(self, format_value: str) -> tuple[Rendition, ...]:
        if is_live_sale(format_value):
            return self.live_renditions
        return self.presentation_renditions

    def prepare(self, view: object, *, again: bool = False) -> None:
        """Draw the lot's presentation now, from its facts and pictures (`again`: even if it
        was drawn before; blocking: ~50 ms a lot, run it on a thread)."""
        lot_id = str(getattr(view, "lot_id", ""))
        if again or lot_id not in self._slides:
            self._slides[lot_id] = presentation_frames(self.facts_for(view))

    def media_path(self, name: str) -> Path:
        """The file `name` of the media directory; `SourceChoiceError` when it is not there."""
        path = self.media_dir / name
        if not path.is_file():
            raise MediaFileMissing(
                "FILE_NOT_FOUND", f"there is no file {name!r} in the server's media directory"
            )
        return path

    def spec(
        self, view: object, choice: SourceChoice | None = None, *, fresh: bool = False
    ) -> SourceSpec:
        """What the lot's stream reads for `choice` (default: the lot's current choice);
        `fresh`: the presentation drawn again from the lot's current facts. Blocking."""
        lot_id = str(getattr(view, "lot_id", ""))
        format_value = str(getattr(view, "format", ""))
        choice = choice or self.choice(lot_id, format_value)
        size = self.renditions(format_value)[0]
        if choice.kind == "camera":
            # The camera replaces whatever picture runs once it publishes: until then, and
            # after it leaves, the lot's default picture.
            return self.spec(view, default_choice(format_value), fresh=fresh)
        if choice.kind == "file":
            assert choice.file is not None
            return FileSource(self.media_path(choice.file))
        if choice.kind == "pattern":
            if is_live_sale(format_value):
                return self.pattern
            return TestPatternSource(size.width, size.height, size.fps, self.pattern.noise)
        self.prepare(view, again=fresh)
        return SlideshowSource(self._slides[lot_id], size.width, size.height, size.fps)


__all__ = [
    "PRESENTATION_360P",
    "SOURCE_KINDS",
    "LotSources",
    "SourceChoice",
    "SourceChoiceError",
    "default_choice",
    "media_files",
    "parse_choice",
]
