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

* `/log/openings/<begin>-<end>` (or `/log/openings/<seq>`): JSON `{"openings": {"<seq>":
  {name: {"nonce", "value"}}}}`, the openings of the sealed values of entries `[begin, end)`
  of the signed tree (at most 4,096 entries; docs/ledger.md): served only to the log's notaries
  (read authorization over the path `openings/<span>`) and to auditor sessions; 403 to anyone
  else. A bidder finds the openings that concern them in their receipts (`openings` member).

Entry bundles and receipts are public at all times: a proxy maximum, and a lot's hidden
reserve, are written as sealed values (docs/ledger.md §2) and opened to everyone by the lot's
`reveal` entry at its close, so no byte of an open lot's maximum or reserve is on the public
log. A bidder's receipt of their own entry
carries its openings (their maximum included). Logs written before maxima were sealed hold some
in the clear: such an entry of a lot that has not closed yet is served, in its entry bundle or
its receipt, only to the log's notaries (a request signed with the notary's own key, see
`notary.readauth`), to auditor sessions (`Authorization: Bearer`), and, for a receipt, to the
bidder whose maximum it is; anyone else gets `403` with the reason.

Store reads run on the service's reader threads (`AuctionService.read`), never on the loop.
"""

from __future__ import annotations

import base64
import logging
import re
import time
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

from .. import sealed
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
_SPAN = re.compile(r"(0|[1-9][0-9]{0,18})(?:-(0|[1-9][0-9]{0,18}))?")
#: The most entries one `/log/openings/` request covers.
OPENINGS_SPAN = 4096


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
    app.router.add_get("/log/openings/{span}", routes.openings)


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
    """The proxy maximum an entry records in the clear (a `SetMax` command or a `MaxSet`
    event with its `amount`: logs written before maxima were sealed), if any."""
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
    if isinstance(command, Mapping) and command.get("type") == "SetMax" and "amount" in command:
        return Maximum(lot, str(command.get("bidder", "")))
    events = body.get("events")
    for event in events if isinstance(events, Sequence) and not isinstance(events, str) else ():
        if isinstance(event, Mapping) and event.get("type") == "MaxSet" and "amount" in event:
            return Maximum(lot, str(event.get("bidder", "")))
    return None


def _bidder_of(entry: bytes) -> tuple[str, str] | None:
    """The lot and the bidder of the command an entry records (its `bidder` field), if any."""
    try:
        body = parse_entry(entry).body
    except ChainError:
        return None
    lot, command = body.get("lot"), body.get("command")
    if isinstance(lot, str) and isinstance(command, Mapping):
        bidder = command.get("bidder")
        if isinstance(bidder, str):
            return lot, bidder
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
                # the notary signs with its wall clock: compare with ours (the service's
                # clock may be a simulated one)
                name = verify_read_authorization(
                    header, origin, path, await self._witnesses(service), int(time.time())
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
        reader = _PUBLIC
        if request.headers.get("Authorization"):
            reader = await self._reader(request, service, f"receipt/{seq}")
        if maximum is not None and still_sealed(service, (maximum,)):
            own = reader.kind == "bidder" and maximum.bidder in _names_of(
                service, maximum.lot, reader.account
            )
            if reader.kind not in ("notary", "auditor") and not own:
                return self._sealed_answer(f"entry {seq}", reader)
            headers |= _SEALED_HEADERS
        if reader.kind != "public" and b'"sealed"' in entry:
            opened = await self._openings_of(service, seq, seq + 1)
            mine = opened.get(seq) or {}
            if reader.kind not in ("notary", "auditor"):  # a bidder: their own values only
                own_max = _own_command(service, entry, reader.account)
                mine = {
                    k: v
                    for k, v in mine.items()
                    if _concerns({k: v}, reader.account) or (own_max and sealed.is_max_name(k))
                }
            if mine:
                body["openings"] = mine
                headers |= _SEALED_HEADERS
        return web.json_response(body, headers=headers)

    async def _openings_of(
        self, service: AuctionService, begin: int, end: int
    ) -> dict[int, dict[str, object]]:
        reader = getattr(service.ledger, "ledger_openings", None)
        if reader is None:
            return {}
        found: dict[int, dict[str, object]] = await service.read(reader, begin, end)
        return found

    async def openings(self, request: web.Request) -> web.Response:
        service = self._service_of(request)
        span = request.match_info["span"]
        match = _SPAN.fullmatch(span)
        if match is None:
            return _error(400, "ask for /log/openings/<seq> or /log/openings/<begin>-<end>")
        begin = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else begin + 1
        if not begin < end <= begin + OPENINGS_SPAN:
            return _error(400, f"a span holds 1 to {OPENINGS_SPAN} entries, begin before end")
        head = service.signed_checkpoint
        if service.ledger is None or head is None or end > head.size:
            return _error(404, "beyond the signed tree")
        reader = await self._reader(request, service, f"openings/{span}")
        if reader.kind not in ("notary", "auditor"):
            message = (
                "the openings of sealed values are served only to the log's notaries and to"
                " auditors (docs/ledger.md); a bidder finds their own in their receipts"
            )
            if reader.refused is not None:
                message += f"; your credentials were not accepted: {reader.refused}"
            response = _error(403, message)
            response.headers["Vary"] = "Authorization"
            return response
        try:
            opened = await self._openings_of(service, begin, end)
        except StorageError:
            return _error(500, "the openings cannot be read")
        payload = {"openings": {str(seq): value for seq, value in sorted(opened.items())}}
        return web.json_response(payload, headers=dict(_SEALED_HEADERS))


def _names_of(service: AuctionService, lot: str, account: str | None) -> tuple[str, ...]:
    """How the ledger may name `account` in `lot`: its alias there (and, in a log written
    before aliases, the account id itself)."""
    if account is None:
        return ()
    house = getattr(service.ledger, "house", None)
    key = getattr(house, "alias_key", None)
    if not isinstance(key, bytes):
        return (account,)
    return (account, sealed.alias(key, lot, account))


def _own_command(service: AuctionService, entry: bytes, account: str | None) -> bool:
    """Whether the command `entry` records is `account`'s own (so its maximum is theirs)."""
    found = _bidder_of(entry)
    return found is not None and found[1] in _names_of(service, found[0], account)


def _concerns(openings: Mapping[str, object], account: str | None) -> bool:
    """Whether the openings of one entry are `account`'s own (its link, request or identity)."""
    if account is None:
        return False
    for name, item in openings.items():
        value = item.get("value") if isinstance(item, Mapping) else None
        if name.startswith(sealed.LINK) and isinstance(value, Mapping):
            if value.get("account") == account:
                return True
        elif name == "request" and isinstance(value, Mapping):
            payload = value.get("payload")
            if isinstance(payload, Mapping) and payload.get("account") == account:
                return True
        elif name == "account" and value == account:
            return True
    return False
