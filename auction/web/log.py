"""The ledger's read-only HTTP API, served by the auction server (C2SP tlog-tiles and friends).

Routes (all `GET`, all under `/log/`, relative paths as in tlog-tiles):

* `/log/checkpoint`: the latest published checkpoint (a signed note with the notaries'
  cosignatures when the policy names notaries, `text/plain`); 503 before the first one.
* `/log/tile/<L>/<N>[.p/<W>]` and `/log/tile/entries/<N>[.p/<W>]`: tiles and entry bundles of
  the tree of the latest *signed* checkpoint (`application/octet-stream`): notaries fetch the
  entries of a signed checkpoint before they co-sign it, and only then is it published. Full
  ones are immutable (`Cache-Control: public, max-age=31536000, immutable`), partial ones
  cached briefly.
  A path that is not exactly a canonical tile path (`..`, leading zeros, `.p/256`, ...) is 400;
  a tile beyond the signed tree is 404.
* `/log/policy`: the C2SP tlog-policy file naming the log key and the quorum.
* `/log/checkpoints`: the published checkpoints, one file name per line (the tree size
  zero-padded to 20 digits); `/log/checkpoints/<name>`: one of them (immutable).
* `/log/receipt/<seq>`: JSON `{"seq": n, "size": checkpoint size, "entry": base64 entry bytes,
  "proof": "c2sp.org/tlog-proof@v1 ..."}`: the entry and its tlog-proof against the latest
  published checkpoint (`chain.verify_receipt(proof, entry, None, policy)` checks it). 404 if
  the entry is not in that checkpoint yet.

Store reads run on the service's reader threads (`AuctionService.read`), never on the loop.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from aiohttp import web

from chain import EntryBundle, MalformedError, Tile, parse_tile_path

from ..service import AuctionService
from ..storage import LedgerHead, StorageError

#: Checkpoint file names: the tree size zero-padded to 20 digits (fits every uint64).
CHECKPOINT_NAME = re.compile(r"[0-9]{20}")

_IMMUTABLE = "public, max-age=31536000, immutable"
_PARTIAL = "public, max-age=5"
_FRESH = "no-cache"
_SEQ = re.compile(r"0|[1-9][0-9]{0,18}")


def checkpoint_name(size: int) -> str:
    """The file name of the checkpoint of `size` in `/log/checkpoints/` and in exports."""
    return f"{size:020d}"


def add_log_routes(
    app: web.Application, service_of: Callable[[web.Request], AuctionService]
) -> None:
    """Register the `/log/...` routes; `service_of(request)` gives the running service."""
    routes = _LogRoutes(service_of)
    app.router.add_get("/log/checkpoint", routes.checkpoint)
    app.router.add_get("/log/checkpoints", routes.checkpoint_index)
    app.router.add_get("/log/checkpoints/{name}", routes.checkpoint_file)
    app.router.add_get("/log/policy", routes.policy)
    app.router.add_get("/log/tile/{path:.*}", routes.tile)
    app.router.add_get("/log/receipt/{seq}", routes.receipt)


def _text(body: bytes, cache: str, status: int = 200) -> web.Response:
    headers = {"Cache-Control": cache, "Access-Control-Allow-Origin": "*"}
    return web.Response(
        body=body, status=status, content_type="text/plain", charset="utf-8", headers=headers
    )


def _error(status: int, message: str) -> web.Response:
    return _text(message.encode("utf-8") + b"\n", "no-store", status)


class _LogRoutes:
    def __init__(self, service_of: Callable[[web.Request], AuctionService]) -> None:
        self._service_of = service_of

    def _published(self, request: web.Request) -> tuple[AuctionService, LedgerHead | None]:
        service = self._service_of(request)
        return service, service.checkpoint

    async def checkpoint(self, request: web.Request) -> web.Response:
        service, head = self._published(request)
        if service.ledger is None or head is None:
            response = _error(503, "no checkpoint published yet")
            response.headers["Retry-After"] = "1"
            return response
        return _text(head.note, _FRESH)

    async def checkpoint_index(self, request: web.Request) -> web.Response:
        service = self._service_of(request)
        if service.ledger is None:
            return _error(404, "this server keeps no ledger")
        sizes = await service.read(service.ledger.checkpoint_sizes)
        return _text("".join(checkpoint_name(size) + "\n" for size in sizes).encode(), _FRESH)

    async def checkpoint_file(self, request: web.Request) -> web.Response:
        service = self._service_of(request)
        name = request.match_info["name"]
        if not CHECKPOINT_NAME.fullmatch(name):
            return _error(400, "a checkpoint name is its tree size in 20 digits")
        if service.ledger is None:
            return _error(404, "this server keeps no ledger")
        note = await service.read(service.ledger.checkpoint_note, int(name))
        if note is None:
            return _error(404, "no published checkpoint of that size")
        return _text(note, _IMMUTABLE)

    async def policy(self, request: web.Request) -> web.Response:
        service = self._service_of(request)
        if service.ledger is None:
            return _error(404, "this server keeps no ledger")
        return _text(await service.read(service.ledger.ledger_policy), _FRESH)

    async def tile(self, request: web.Request) -> web.Response:
        service = self._service_of(request)
        head = service.signed_checkpoint  # notaries fetch a candidate's entries before co-signing
        try:
            tile: Tile | EntryBundle = parse_tile_path("tile/" + request.match_info["path"])
        except MalformedError as exc:
            return _error(400, exc.message)
        if service.ledger is None or head is None or tile.leaf_end > head.size:
            return _error(404, "beyond the signed tree")
        try:
            data = await service.read(service.ledger.ledger_tile, tile)
        except StorageError:
            return _error(500, "the tile cannot be read")
        headers = {
            "Cache-Control": _PARTIAL if tile.is_partial else _IMMUTABLE,
            "Access-Control-Allow-Origin": "*",
        }
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)

    async def receipt(self, request: web.Request) -> web.Response:
        service, head = self._published(request)
        text = request.match_info["seq"]
        if not _SEQ.fullmatch(text):
            return _error(400, "seq must be a decimal entry number")
        seq = int(text)
        if service.ledger is None or head is None or seq >= head.size:
            return _error(404, "that entry is not in the published tree yet")
        try:
            entry, proof = await service.read(service.ledger.ledger_receipt, seq, head)
        except StorageError:
            return _error(500, "the receipt cannot be built")
        body = {
            "seq": seq,
            "size": head.size,
            "entry": base64.b64encode(entry).decode("ascii"),
            "proof": proof.decode("utf-8"),
        }
        headers = {"Cache-Control": _FRESH, "Access-Control-Allow-Origin": "*"}
        return web.json_response(body, headers=headers)
