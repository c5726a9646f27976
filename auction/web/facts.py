"""The lot page's facts and documents over REST (docs/protocol.md §1.5), and the plain-words
tables the pages use (an adapter over `auction.catalogue.facts` and `auction.words`).

Reading: `GET /api/words`, `GET /api/facts` (a summary of every lot, for the catalogue),
`GET /api/lots/{lot}/facts`, `POST /api/lots/{lot}/views` (the lot page counts a visit) and
`GET /api/lots/{lot}/documents/{id}` (the bytes, never as active content). Writing (the
auctioneer): `PUT /api/console/lots/{lot}/facts` and `POST /api/console/lots/{lot}/documents`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..accounts import Role
from ..catalogue.facts import (
    KINDS,
    MAX_DOCUMENT_BYTES,
    MAX_PICTURE_BYTES,
    LotFactsStore,
    StoredDocument,
    TooLarge,
    anchor_document,
    check_facts,
    check_upload,
)
from ..catalogue.presence import VISITOR, Presence
from ..errors import BadInput, NotFound, TimedOut
from ..gateway import Gateway
from ..rules import Fixed, LotRules
from ..rules.config import Format
from ..service import AuctionService
from ..words import (
    FORMAT_WORDS,
    extension_rule_words,
    how_to_buy_words,
    money,
    priority_rights_words,
    words_tables,
)
from .api import bearer_session
from .bodies import read_json_body

_NO_STORE = {"Cache-Control": "no-store"}

#: An upload (at most 8 MiB) must arrive within this long once its head has (slow clients,
#: as `auction.web.limits.BODY_TIMEOUT_S` for JSON bodies).
UPLOAD_TIMEOUT_S = 60.0

#: What a document is served with, beyond the security headers every response has: never
#: rendered as a page, never run (docs/protocol.md §5).
DOCUMENT_POLICY = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; sandbox"


@dataclass(frozen=True, slots=True)
class FactsParts:
    service: AuctionService
    store: LotFactsStore
    gateway: Gateway
    presence: Presence


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def lot_terms(rules: LotRules) -> dict[str, Any]:
    """The terms of sale a buyer reads, from the lot's rules: prices, deposit, step and the
    extension rule, as numbers (minor units) and as text."""
    currency = rules.currency
    step = rules.increment.step if isinstance(rules.increment, Fixed) else None
    deposit = rules.deposit if rules.deposit_required else 0
    if rules.format is Format.FIXED_PRICE_SALE:  # one price: no step, no bidding rule
        return _fixed_price_terms(rules, deposit)
    return {
        "format": FORMAT_WORDS.get(rules.format, "Auction"),
        "currency": currency,
        "start_price": rules.start_price,
        "start_price_text": money(rules.start_price, currency),
        "appraisal": rules.appraisal,
        "appraisal_text": money(rules.appraisal, currency) if rules.appraisal else None,
        "deposit": deposit,
        "deposit_text": money(deposit, currency) if deposit else "No deposit",
        "step": step,
        "step_text": money(step, currency)
        if step is not None
        else "Grows with the price (a table of steps)",
        "extension_rule": extension_rule_words(rules),
        "priority_rights": priority_rights_words(rules),
        "bids_irrevocable": rules.retraction.value == "NEVER",
        "start_at": rules.start_at,
        "end_at": rules.end_at,
        "timezone": rules.legal_timezone,
    }


def _fixed_price_terms(rules: LotRules, deposit: int) -> dict[str, Any]:
    """A fixed-price sale's terms: the price and how to buy it, with no step and no extension
    rule (`step`, `step_text` and `extension_rule` are null)."""
    currency = rules.currency
    return {
        "format": FORMAT_WORDS.get(rules.format, "Auction"),
        "currency": currency,
        "start_price": rules.start_price,
        "start_price_text": money(rules.start_price, currency),
        "fixed_price": rules.start_price,
        "fixed_price_text": money(rules.start_price, currency),
        "how_to_buy": how_to_buy_words(rules),
        "appraisal": rules.appraisal,
        "appraisal_text": money(rules.appraisal, currency) if rules.appraisal else None,
        "deposit": deposit,
        "deposit_text": money(deposit, currency) if deposit else "No deposit",
        "step": None,
        "step_text": None,
        "extension_rule": None,
        "priority_rights": priority_rights_words(rules),
        "bids_irrevocable": rules.retraction.value == "NEVER",
        "start_at": rules.start_at,
        "end_at": rules.end_at,
        "timezone": rules.legal_timezone,
    }


def add_facts_routes(app: web.Application, parts: Callable[[web.Request], FactsParts]) -> None:
    """Register the routes above; `parts(request)` gives the running components."""
    routes = _FactsRoutes(parts)
    app.router.add_get("/api/words", routes.words)
    app.router.add_get("/api/facts", routes.summary)
    app.router.add_get("/api/lots/{lot}/facts", routes.lot_facts)
    app.router.add_post("/api/lots/{lot}/views", routes.count_view)
    app.router.add_get("/api/lots/{lot}/documents/{document}", routes.document)
    app.router.add_put("/api/console/lots/{lot}/facts", routes.put_facts)
    app.router.add_post("/api/console/lots/{lot}/documents", routes.upload)


class _FactsRoutes:
    def __init__(self, parts: Callable[[web.Request], FactsParts]) -> None:
        self._parts = parts

    async def _staff(self, request: web.Request) -> None:
        await bearer_session(request, self._parts(request).gateway, Role.AUCTIONEER)

    def _known(self, request: web.Request) -> str:
        lot = request.match_info["lot"]
        if self._parts(request).service.view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        return lot

    async def words(self, request: web.Request) -> web.Response:
        return web.json_response(words_tables())

    async def summary(self, request: web.Request) -> web.Response:
        parts = self._parts(request)
        lots = [view.lot_id for view in parts.service.views()]
        answer = await asyncio.to_thread(_summaries, parts.store, lots)
        now = parts.service.now()
        for lot, summary in answer.items():
            summary["watching"] = parts.presence.watching(lot, now)
        return web.json_response({"lots": answer}, headers=_NO_STORE)

    async def lot_facts(self, request: web.Request) -> web.Response:
        parts = self._parts(request)
        lot = self._known(request)
        answer = await asyncio.to_thread(_full, parts.store, lot)
        answer["watching"] = parts.presence.watching(lot, parts.service.now())
        return web.json_response(answer, headers=_NO_STORE)

    async def count_view(self, request: web.Request) -> web.Response:
        """A lot page is open: `{"visitor": id}` (random, made by the page) every
        `presence.HEARTBEAT_S`; a new visitor is counted as a view."""
        parts = self._parts(request)
        lot = self._known(request)
        visitor = (await read_json_body(request)).get("visitor")
        now = parts.service.now()
        if not isinstance(visitor, str) or not VISITOR.fullmatch(visitor):
            raise BadInput("visitor must be 16 to 64 letters, digits, - or _", code="MALFORMED")
        if parts.presence.seen(lot, visitor, now):
            views = await asyncio.to_thread(parts.store.count_view, lot, now)
        else:
            views = (await asyncio.to_thread(parts.store.facts, [lot])).get(lot, ({}, 0))[1]
        answer = {"lot": lot, "views": views, "watching": parts.presence.watching(lot, now)}
        return web.json_response(answer, headers=_NO_STORE)

    async def document(self, request: web.Request) -> web.Response:
        parts = self._parts(request)
        lot = request.match_info["lot"]
        text = request.match_info["document"]
        if not (text.isascii() and text.isdigit() and len(text) <= 12):  # a row id, no more
            raise NotFound("there is no such document", code="UNKNOWN_DOCUMENT")
        document_id = int(text)
        stored, data = await asyncio.to_thread(parts.store.document, lot, document_id)
        return web.Response(body=data, headers=_document_headers(stored))

    async def put_facts(self, request: web.Request) -> web.Response:
        await self._staff(request)
        parts = self._parts(request)
        lot = self._known(request)
        facts = check_facts(await read_json_body(request))
        await asyncio.to_thread(parts.store.put_facts, lot, facts, parts.service.now())
        answer = await asyncio.to_thread(_full, parts.store, lot)
        return web.json_response(answer, headers=_NO_STORE)

    async def upload(self, request: web.Request) -> web.Response:
        """The file is the raw request body; `?kind=` and `?name=` say what it is. Checked
        (size, sniffed type) before anything is stored or anchored."""
        await self._staff(request)
        parts = self._parts(request)
        lot = self._known(request)
        kind = request.query.get("kind", "")
        if kind not in KINDS:
            raise BadInput(f"kind must be one of: {', '.join(sorted(KINDS))}", code="BAD_FACTS")
        limit = MAX_PICTURE_BYTES if kind == "picture" else MAX_DOCUMENT_BYTES
        data = await _read_bounded(request, limit)
        upload = check_upload(kind, request.query.get("name", ""), data, request.content_type)
        _, entry = await anchor_document(
            parts.service, lot, upload.kind, upload.name, upload.content_type, upload.data
        )
        stored = await asyncio.to_thread(
            parts.store.add_document, lot, upload, entry, parts.service.now()
        )
        return web.json_response({"document": stored.to_json()}, status=201, headers=_NO_STORE)


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """The raw body, refused (413, nothing read past the limit) when longer than `limit`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"the file has {declared:,} bytes; at most {limit:,} are accepted")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(UPLOAD_TIMEOUT_S):
            while True:
                chunk = await request.content.read(64 * 1024)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the file is larger than the {limit:,} bytes accepted")
                chunks.append(chunk)
    except TimeoutError:
        raise TimedOut(f"the file did not arrive within {UPLOAD_TIMEOUT_S:g} seconds") from None


def _document_headers(stored: StoredDocument) -> dict[str, str]:
    content_type = stored.content_type
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    # A PDF is downloaded, never opened in the page's origin; pictures and text show inline.
    disposition = "attachment" if stored.content_type == "application/pdf" else "inline"
    fallback = "".join(c if c.isascii() and c.isprintable() else "_" for c in stored.name)
    quoted = urllib.parse.quote(stored.name, safe="")
    return {
        "Content-Type": content_type,
        "Content-Disposition": f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOCUMENT_POLICY,
        "Cache-Control": "public, max-age=3600",
        "ETag": f'"{stored.sha256}"',
        "Digest": f"sha-256={stored.sha256}",
    }


def _summaries(store: LotFactsStore, lots: list[str]) -> dict[str, Any]:
    facts = store.facts(lots)
    registered = store.registered(lots)
    documents = store.documents(lots)
    answer = {}
    for lot in lots:
        rules = store.rules(lot)
        if rules is None:
            continue
        text, views = facts.get(lot, ({}, 0))
        held = documents.get(lot, [])
        pictures = [d for d in held if d.kind == "picture"]
        answer[lot] = {
            "facts": text,
            "terms": lot_terms(rules),
            "registered": registered.get(lot, 0),
            "views": views,
            "cover": pictures[0].to_json() if pictures else None,
            "pictures": len(pictures),
            "documents": len(held) - len(pictures),
        }
    return answer


def _full(store: LotFactsStore, lot: str) -> dict[str, Any]:
    rules = store.rules(lot)
    if rules is None:
        raise NotFound("there is no such lot", code="UNKNOWN_LOT")
    text, views = store.facts([lot]).get(lot, ({}, 0))
    held = store.documents([lot]).get(lot, [])
    return {
        "lot": lot,
        "facts": text,
        "terms": lot_terms(rules),
        "registered": store.registered([lot]).get(lot, 0),
        "views": views,
        "pictures": [d.to_json() for d in held if d.kind == "picture"],
        "documents": [d.to_json() for d in held if d.kind != "picture"],
    }


__all__ = ["DOCUMENT_POLICY", "FactsParts", "add_facts_routes", "lot_terms"]
