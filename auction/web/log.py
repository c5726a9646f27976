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

Sealed entries (docs/protocol.md §4): an entry that records a proxy maximum (a `SetMax`
command or a `MaxSet` event) of a lot that has not closed yet is served, in its entry bundle or
its receipt, only to the log's notaries (a request signed with the notary's own key, see
`notary.readauth`), to auditor sessions (`Authorization: Bearer`), and, for a receipt, to the
bidder whose maximum it is. Anyone else gets `403` with the reason. Once every such lot has
closed the same bytes are public. Hash tiles stay public: a leaf hash covers the entry's
signatures, so it cannot be used to guess a maximum.

Store reads run on the service's reader threads (`AuctionService.read`), never on the loop.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from chain import (
    ChainError,
    CosignatureVerifier,
    EntryBundle,
    MalformedError,
    Tile,
    parse_entry,
    parse_entry_bundle,
    parse_policy,
    parse_tile_path,
)
from notary.readauth import READ_SCHEME, ReadAuthorizationError, verify_read_authorization

from ..accounts import Role, Session
from ..service import ACTIVE_STATUSES, AuctionService
from ..storage import LedgerHead, StorageError

logger = logging.getLogger(__name__)

#: `session_of(request, token)`: the valid session of a bearer token, or None.
SessionOf = Callable[[web.Request, str], Awaitable[Session | None]]

#: Entry bundles whose maxima are remembered (full bundles never change; partial ones rarely).
_MAXIMA_CACHE = 4096

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
    app: web.Application,
    service_of: Callable[[web.Request], AuctionService],
    session_of: SessionOf | None = None,
) -> None:
    """Register the `/log/...` routes; `service_of(request)` gives the running service,
    `session_of(request, token)` a bearer token's session (None: no sessions, so sealed
    entries are served to notaries only)."""
    routes = _LogRoutes(service_of, session_of)
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


@dataclass(frozen=True, slots=True)
class Maximum:
    """A proxy maximum recorded by an entry: its lot and its bidder."""

    lot: str
    bidder: str


def maximum_of(entry: bytes) -> Maximum | None:
    """The proxy maximum an entry records (a `SetMax` command or a `MaxSet` event), if any."""
    if b'"SetMax"' not in entry and b'"MaxSet"' not in entry:
        return None
    try:
        body = parse_entry(entry).body
    except ChainError:
        return None
    lot = body.get("lot")
    if not isinstance(lot, str):
        return None
    command = body.get("command")
    if isinstance(command, Mapping) and command.get("type") == "SetMax":
        return Maximum(lot, str(command.get("bidder", "")))
    events = body.get("events")
    for event in events if isinstance(events, Sequence) and not isinstance(events, str) else ():
        if isinstance(event, Mapping) and event.get("type") == "MaxSet":
            return Maximum(lot, str(event.get("bidder", "")))
    return None


def still_sealed(service: AuctionService, maxima: Iterable[Maximum]) -> list[Maximum]:
    """The maxima whose lot has not closed yet (an unknown lot seals nothing)."""
    sealed = []
    for maximum in maxima:
        state = service.state(maximum.lot)
        if state is not None and state.status in ACTIVE_STATUSES:
            sealed.append(maximum)
    return sealed


@dataclass(frozen=True, slots=True)
class _Reader:
    """Who asks: a notary of the policy, an auditor, a bidder (`account`), or anyone."""

    kind: str  # "notary", "auditor", "bidder", "public"
    account: str | None = None
    refused: str | None = None  # why the credentials offered were not accepted


_PUBLIC = _Reader("public")
_SEALED_HEADERS = {"Cache-Control": "private, no-store", "Vary": "Authorization"}


class _LogRoutes:
    def __init__(
        self, service_of: Callable[[web.Request], AuctionService], session_of: SessionOf | None
    ) -> None:
        self._service_of = service_of
        self._session_of = session_of
        self._maxima: dict[tuple[int, int], tuple[Maximum, ...]] = {}
        self._policy: tuple[bytes, tuple[CosignatureVerifier, ...]] | None = None

    async def _witnesses(self, service: AuctionService) -> tuple[CosignatureVerifier, ...]:
        if service.ledger is None:
            return ()
        text = await service.read(service.ledger.ledger_policy)
        if self._policy is None or self._policy[0] != text:
            try:
                verifiers = tuple(w.verifier for w in parse_policy(text).witnesses)
            except ChainError:
                verifiers = ()
            self._policy = (text, verifiers)
        return self._policy[1]

    async def _reader(self, request: web.Request, service: AuctionService, path: str) -> _Reader:
        header = request.headers.get("Authorization", "")
        if not header:
            return _PUBLIC
        if header.startswith(READ_SCHEME + " "):
            head = service.signed_checkpoint
            if head is None:
                return _Reader("public", refused="no signed checkpoint yet")
            origin = head.note.split(b"\n", 1)[0].decode("utf-8", "replace")
            try:
                name = verify_read_authorization(
                    header, origin, path, await self._witnesses(service), service.now() // 10**6
                )
            except ReadAuthorizationError as exc:
                return _Reader("public", refused=exc.message)
            return _Reader("notary", name)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or self._session_of is None:
            return _Reader("public", refused="unknown authorization scheme")
        session = await self._session_of(request, token.strip())
        if session is None:
            return _Reader("public", refused="the session is invalid or has expired")
        if session.role is Role.AUDITOR:
            return _Reader("auditor", session.account)
        if session.role in (Role.BIDDER, Role.WATCHER):  # the bidder, from any browser
            return _Reader("bidder", session.account)
        return _Reader("public", refused=f"the {session.role.value} role does not read them")

    @staticmethod
    def _sealed_answer(what: str, reader: _Reader) -> web.Response:
        message = (
            f"{what} holds the proxy maximum of a lot that has not closed yet: until it closes"
            " it is served only to the log's notaries and to auditors (docs/protocol.md §4)"
        )
        if reader.refused is not None:
            message += f"; your credentials were not accepted: {reader.refused}"
        response = _error(403, message)
        response.headers["Vary"] = "Authorization"
        return response

    async def _bundle_maxima(
        self, service: AuctionService, bundle: EntryBundle, data: bytes
    ) -> tuple[Maximum, ...]:
        key = (bundle.index, bundle.width)
        known = self._maxima.get(key)
        if known is not None:
            return known
        if b'"SetMax"' not in data and b'"MaxSet"' not in data:
            found: tuple[Maximum, ...] = ()
        else:
            entries = parse_entry_bundle(bundle, data)  # ChainError: the caller answers 500
            found = tuple(m for m in map(maximum_of, entries) if m is not None)
        if len(self._maxima) >= _MAXIMA_CACHE:
            self._maxima.clear()
        self._maxima[key] = found
        return found

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
            maxima = (
                await self._bundle_maxima(service, tile, data)
                if isinstance(tile, EntryBundle)
                else ()
            )
        except (StorageError, ChainError):
            return _error(500, "the tile cannot be read")
        headers = {
            "Cache-Control": _PARTIAL if tile.is_partial else _IMMUTABLE,
            "Access-Control-Allow-Origin": "*",
        }
        if isinstance(tile, EntryBundle):
            headers["Vary"] = "Authorization"
        if still_sealed(service, maxima):
            reader = await self._reader(request, service, tile.path)
            if reader.kind not in ("notary", "auditor"):
                return self._sealed_answer(f"entry bundle {tile.path}", reader)
            headers |= _SEALED_HEADERS
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
        headers = {
            "Cache-Control": _FRESH,
            "Access-Control-Allow-Origin": "*",
            "Vary": "Authorization",
        }
        maximum = maximum_of(entry)
        if maximum is not None and still_sealed(service, (maximum,)):
            reader = await self._reader(request, service, f"receipt/{seq}")
            own = reader.kind == "bidder" and reader.account == maximum.bidder
            if reader.kind not in ("notary", "auditor") and not own:
                return self._sealed_answer(f"entry {seq}", reader)
            headers |= _SEALED_HEADERS
        return web.json_response(body, headers=headers)
