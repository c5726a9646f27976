"""Scanning every public byte of a running server (routes, pages, receipts, entry bundles),
for the commit-then-reveal tests (docs/ledger.md §2, §4 `reveal`)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
from privacy_kit import fetch
from server_kit import Server

from auction.web.pages import PAGES
from chain import TILE_WIDTH, Entry, EntryBundle, parse_entry

#: Public routes beyond the lot's own (`/api/lots/<lot>`, its bids, its pages).
PUBLIC_ROUTES = (
    "/api/lots",
    "/api/auditor",
    "/log/checkpoint",
    "/log/checkpoints",
    "/log/policy",
    "/healthz",
)
#: Per lot, more public routes (answering 200 for any lot).
LOT_FACTS = ("/api/lots/{lot}/facts",)
#: Routes that answer 200 without a lot.
MORE_ROUTES = ("/api/facts", "/api/sales", "/api/words")


async def scan(
    server: Server,
    http: aiohttp.ClientSession,
    lots: Sequence[str],
    *,
    facts: bool = False,
) -> tuple[dict[str, str], Counter[int]]:
    """Every public byte (routes, pages, receipts with their entries, every entry bundle of
    the signed tree) and the statuses of the receipts and bundles. `facts`: the lot facts,
    catalogue facts, sales and words routes as well."""
    url = server.url
    head = server.service.signed_checkpoint
    assert head is not None
    size = head.size
    public: dict[str, str] = {}
    paths = list(PUBLIC_ROUTES)
    if facts:
        paths += MORE_ROUTES
    for lot in lots:
        paths += [f"/api/lots/{lot}", f"/api/lots/{lot}/bids"]
        if facts:
            paths += [p.replace("{lot}", lot) for p in LOT_FACTS]
        paths += [p.replace("{lot_id}", lot).replace("{sale_id}", "some-sale") for p in PAGES]
    for path in paths:
        status, text, _ = await fetch(http, url + path)
        assert status == 200, path
        public[path] = text
    statuses: Counter[int] = Counter()
    for seq in range(size):
        status, text, _ = await fetch(http, f"{url}/log/receipt/{seq}")
        statuses[status] += 1
        public[f"receipt {seq}"] = text
    for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        for width in {TILE_WIDTH, size - index * TILE_WIDTH}:  # full, and the partial ones
            if 0 < width <= TILE_WIDTH and index * TILE_WIDTH + width <= size:
                path = EntryBundle(index, width).path
                status, public[path], _ = await fetch(http, f"{url}/log/{path}")
                statuses[status] += 1
    return public, statuses


def public_entries(public: dict[str, str]) -> list[Entry]:
    """The entries of the scanned receipts (`fetch` adds the decoded entry after the JSON)."""
    found = []
    for where, text in public.items():
        if where.startswith("receipt "):
            receipt, _ = json.JSONDecoder().raw_decode(text)
            found.append(parse_entry(base64.b64decode(receipt["entry"])))
    return sorted(found, key=lambda e: e.seq)


def plain(value: Any) -> Any:
    """An entry body (read-only mappings) as plain JSON values."""
    return json.loads(json.dumps(value, default=dict))
