"""Shared helpers of the tests, first written for `test_dashboard.py`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["svg_with_axes"]


SVG = "{http://www.w3.org/2000/svg}"


def svg_with_axes(body: bytes) -> ET.Element:
    """Parse `body` as SVG and check it has axes with tick labels, and no script."""
    root = ET.fromstring(body)
    assert root.tag == f"{SVG}svg"
    ids = {element.get("id", "") for element in root.iter()}
    assert "axes_1" in ids and any(i.startswith("xtick_") for i in ids), sorted(ids)[:20]
    assert any(i.startswith("ytick_") for i in ids)
    assert not any(element.tag == f"{SVG}script" for element in root.iter())
    assert b"<script" not in body and b"javascript:" not in body
    return root
