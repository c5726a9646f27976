"""Consistency proofs between published checkpoints, for every browser that keeps one.

`GET /log/proof/consistency?from=N&to=M` answers the RFC 9162 consistency proof (2.1.4) from
the tree of size `N` to the published checkpoint of size `M`, as `text/plain` in the
`gavel/consistency/v1` form of the evidence package (`auction.evidence.consistency_text`)::

    gavel/consistency/v1
    old N
    new M
    <base64 hash>        one per line, none from size 0 or between equal sizes

The lot room and the auditor page keep the last co-signed checkpoint they saw and check each
newer one against it with this proof (`static/witness.js`), so a log that shows different
histories to different people is caught by the people it lies to.

Errors (`text/plain`, a sentence): `400` for a missing or malformed `from`/`to`, or `from`
larger than `to`; `404` when `M` is not the size of a published checkpoint (or the server
keeps no ledger); `500` when the stored hashes cannot be read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from chain import MAX_TREE_SIZE

from ..errors import Malformed, NotFound
from ..evidence.package import consistency_text
from ..service import AuctionService
from ..storage import StorageError
from .errors import http_status

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_IMMUTABLE = "public, max-age=31536000, immutable"


class ProofRequestError(Malformed):
    """A proof request this route cannot read (400), with a sentence saying why."""

    code = "BAD_PROOF_REQUEST"


class NoSuchCheckpoint(NotFound):
    """The `to` size is not a published checkpoint's, or the server keeps no ledger (404)."""

    code = "UNKNOWN_CHECKPOINT"


@dataclass(frozen=True, slots=True)
class ConsistencyRequest:
    """The two tree sizes of a consistency proof request, `old <= new`."""

    old: int
    new: int


def parse_consistency_query(query: Mapping[str, str]) -> ConsistencyRequest:
    """Read `from` and `to` (decimal tree sizes, no leading zeros); raises
    :class:`ProofRequestError` (400) for anything else. The caller then checks that `to` is
    a published checkpoint's size."""
    sizes = []
    for name in ("from", "to"):
        text = query.get(name)
        if text is None:
            raise ProofRequestError(f"give both tree sizes: ?from=N&to=M ({name} is missing)")
        if not _SIZE.fullmatch(text) or int(text) > MAX_TREE_SIZE:
            raise ProofRequestError(f"{name} must be a tree size in decimal digits")
        sizes.append(int(text))
    old, new = sizes
    if old > new:
        raise ProofRequestError(
            f"from ({old}) is larger than to ({new}): a log only grows, ask the other way"
        )
    return ConsistencyRequest(old, new)


def add_log_proof_routes(
    app: web.Application, service_of: Callable[[web.Request], AuctionService]
) -> None:
    """Register `GET /log/proof/consistency`; `service_of(request)` gives the running service."""

    async def consistency(request: web.Request) -> web.Response:
        service = service_of(request)
        try:
            wanted = parse_consistency_query(request.query)
            if service.ledger is None:
                raise NoSuchCheckpoint("this server keeps no ledger")
            note = await service.read(service.ledger.checkpoint_note, wanted.new)
            if note is None:
                raise NoSuchCheckpoint(
                    f"no published checkpoint of size {wanted.new}: see /log/checkpoints"
                )
        except (ProofRequestError, NoSuchCheckpoint) as exc:
            return _text(exc.message + "\n", "no-store", http_status(exc))
        try:
            # RFC 9162 2.1.4.1; empty from 0 or between equal sizes (C2SP tlog-witness).
            proof = await service.read(
                service.ledger.ledger_consistency_proof, wanted.old, wanted.new
            )
        except StorageError:
            return _text("the proof cannot be built from the stored hashes\n", "no-store", 500)
        # Both sizes are fixed and `to` is published: the proof never changes.
        return _text(consistency_text(wanted.old, wanted.new, proof), _IMMUTABLE)

    app.router.add_get("/log/proof/consistency", consistency)


def _text(body: str, cache: str, status: int = 200) -> web.Response:
    headers = {"Cache-Control": cache, "Access-Control-Allow-Origin": "*"}
    return web.Response(
        text=body, status=status, content_type="text/plain", charset="utf-8", headers=headers
    )
