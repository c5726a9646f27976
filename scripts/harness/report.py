"""Writing results: JSON files and fixed-width table rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_json(path: Path | str, data: Any) -> None:
    """`data` as indented JSON (values JSON does not know as their `str`), one final newline."""
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def fixed_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Cells right-aligned in columns of `widths` characters, one space apart."""
    return " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))
