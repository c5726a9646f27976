"""The REST API of docs/protocol.md §1 (an adapter: parse, call the gateway or the service,
answer JSON). Errors always have the shape `{"error": {"code", "message"}}`.

`add_api_routes(app, components)` registers the routes; `components(request)` gives the running
server's parts (`Components`), which the composition root (`auction.web.app`) owns.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from chain import ChainError, parse_note

from ..accounts import AccountStore, Role, Session
from ..catalogue.listing import DEFAULT_RESULTS, MAX_RESULTS, listing
from ..errors import (
    BadInput,
    Conflict,
    GavelError,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    RefusedByRules,
    Unavailable,
)
from ..gateway import Gateway
from ..rules import (
    AcceptOnline,
    Authority,
    BidAccepted,
    Cancel,
    CloseLot,
    CodecError,
    ConfigError,
    DeclineOnline,
    FairWarning,
    FloorBid,
    Hammer,
    LotStatus,
    NextLot,
    OpenLot,
    OpenRing,
    PassLot,
    Pause,
    Reopen,
    Resume,
    RulesError,
    SetAsk,
    SetAutoAccept,
    SetIncrement,
    Suspend,
    UndoLastBid,
    decode,
    english_timed,
    fixed_price,
    judicial,
    live_auctioneer,
    rejection,
)
from ..service import ACTIVE_STATUSES, AuctionService, LotExists, ServiceError, public_events
from ..storage import HistoryRecord, StorageConflict, StorageError
from ..words import command_refusal_words, without_engine_names
from .bodies import read_json_body
from .errors import error_response, http_exception_response, http_status
from .lot_input import check_id, check_parameters

logger = logging.getLogger(__name__)

T = TypeVar("T", int, None)

_NO_STORE = {"Cache-Control": "no-store"}

#: Commands the console may send (rules C11 authority commands, C14 the live ring).
CONSOLE_COMMANDS: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (
        OpenLot,
        CloseLot,
        Pause,
        Suspend,
        Resume,
        Cancel,
        OpenRing,
        SetAsk,
        SetIncrement,
        SetAutoAccept,
        FloorBid,
        AcceptOnline,
        DeclineOnline,
        FairWarning,
        Hammer,
        PassLot,
        UndoLastBid,
        Reopen,
        NextLot,
    )
}

#: Lot presets the console can create from, and the parameters each accepts.
PRESETS: Mapping[str, tuple[Callable[..., Any], frozenset[str]]] = {
    "JUDICIAL_CN": (
        judicial,
        frozenset(
            {
                "start_price",
                "step",
                "start_at",
                "end_at",
                "appraisal",
                "currency",
                "deposit_pct_basis_points",
                "min_duration",
                "window",
                "extend",
                "legal_timezone",
            }
        ),  # fmt: skip
    ),
    "ENGLISH_TIMED": (
        english_timed,
        frozenset(
            {
                "start_price",
                "start_at",
                "end_at",
                "reserve",
                "currency",
                "deposit",
                "legal_timezone",
            }
        ),
    ),
    "LIVE_AUCTIONEER": (
        live_auctioneer,
        frozenset(
            {
                "start_price",
                "start_at",
                "currency",
                "fair_warning_dwell",
                "deposit",
                "legal_timezone",
            }
        ),
    ),
    "FIXED_PRICE_SALE": (
        fixed_price,
        frozenset(
            {
                "price",
                "start_at",
                "end_at",
                "currency",
                "deposit_pct_basis_points",
                "priority_window",
                "legal_timezone",
            }
        ),  # fmt: skip
    ),
}


@dataclass(slots=True)
class NotaryBoard:
    """What the auditor page shows about each notary: its last co-signed size, remembered
    from the cosignature rounds and the published checkpoints seen so far."""

    last_cosigned: dict[str, int] = field(default_factory=dict)

    def observe(self, service: AuctionService) -> None:
        checkpointer = service.checkpointer
        if checkpointer is None:
            return
        last_round = checkpointer.last_round
        if last_round is not None:
            for result in last_round.cosigned:
                self._saw(result.notary, result.size)
            for refused in last_round.refused:
                if refused.size is not None:
                    self._saw(refused.notary, refused.size)
        head = service.checkpoint
        if head is not None:
            try:
                names = {signature.name for signature in parse_note(head.note).signatures}
            except ChainError:
                names = set()
            for notary in checkpointer.notaries:
                if notary.name in names:
                    self._saw(notary.name, head.size)

    def _saw(self, name: str, size: int) -> None:
        self.last_cosigned[name] = max(size, self.last_cosigned.get(name, 0))


@dataclass(frozen=True, slots=True)
class Components:
    service: AuctionService
    gateway: Gateway
    accounts: AccountStore
    notaries: NotaryBoard
    #: A lot's stored history (commands and events), read off the event loop.
    history: Callable[[str], Awaitable[Sequence[HistoryRecord]]]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every `/api/` failure as `{"error": {"code", "message"}}`, its status from the one
    table in `auction.web.errors`."""
    try:
        return await handler(request)
    except (ServiceError, StorageError) as exc:
        logger.warning("request %s failed: %s", request.path, exc)
        return error_response(Unavailable("the auction is not available right now"))
    except GavelError as exc:
        if http_status(exc) == 500:
            logger.error("request %s %s failed: %s", request.method, request.path, exc)
        return error_response(exc)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return http_exception_response(exc)
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        # A fault of ours: logged with its traceback, answered in the documented shape.
        logger.exception("request %s %s failed", request.method, request.path)
        return error_response(GavelError("the server failed to handle this request"))


def add_api_routes(app: web.Application, parts: Callable[[web.Request], Components]) -> None:
    """Register `/api/...`; `parts(request)` gives the running components."""
    api = _Api(parts)
    app.middlewares.append(json_errors)
    app.router.add_post("/api/accounts", api.create_account)
    app.router.add_post("/api/identity", api.verify_identity)
    app.router.add_get("/api/me", api.me)
    app.router.add_get("/api/lots", api.list_lots)
    app.router.add_get("/api/lots/{lot}", api.show_lot)
    app.router.add_get("/api/lots/{lot}/bids", api.bids)
    app.router.add_post("/api/lots/{lot}/registrations", api.register)
    app.router.add_post("/api/lots/{lot}/deposit", api.deposit)
    app.router.add_post("/api/console/lots", api.create_lot)
    app.router.add_post("/api/console/lots/{lot}/commands", api.command)
    app.router.add_get("/api/compliance/lots/{lot}/identities", api.identities)
    app.router.add_delete("/api/compliance/accounts/{account}/personal-data", api.erase)
    app.router.add_get("/api/compliance/accounts/{account}/identity", api.identity_history)
    app.router.add_post(
        "/api/compliance/accounts/{account}/reverification", api.allow_reverification
    )
    app.router.add_get("/api/compliance/alerts", api.alerts)
    app.router.add_get("/api/auditor", api.auditor)


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json_body(request)  # the one reader: auction/web/bodies.py


def refuse_claimed_authority(by: object) -> None:
    """The console acts as the clerk (or an administrator): an order recorded as the court's
    comes only from a court session (`auction.web.court`), the platform's from the server."""
    if by == Authority.COURT.value:
        raise NotAllowed(
            "only a court session can give an order as the court "
            "(POST /api/court/lots/{lot}/orders); the console acts as the clerk",
            code="COURT_ONLY",
        )
    if by == Authority.PLATFORM.value:
        raise NotAllowed(
            "only the server itself pauses a lot as the platform", code="PLATFORM_ONLY"
        )


def _text(body: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadInput(f"{name!r} must be a non-empty text of at most {limit}", code="MALFORMED")
    return value


def _idempotency_key(body: Mapping[str, Any]) -> str:
    """A deposit's `idempotency_key`: 1 to 128 printable characters, the rule of a bid's key
    (`auction.protocol`, docs/protocol.md §2.4)."""
    value = body.get("idempotency_key")
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise BadInput("'idempotency_key' must be 1 to 128 printable characters", code="MALFORMED")
    return value


def _query_integer(query: Mapping[str, str], name: str, default: T, low: int, high: int) -> int | T:
    """A whole-number query parameter within `low..high`, or `default` when absent."""
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}", code="BAD_QUERY")
    return int(text)


def _integer(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name!r} must be an integer", code="MALFORMED")
    return value


async def bearer_session(
    request: web.Request,
    parts: Components | Gateway,
    role: Role | frozenset[Role] | None = None,
) -> Session:
    """The request's valid session (`Authorization: Bearer`), with `role` (or one of the
    roles) when given; `NotAuthenticated` (401) or `NotAllowed` (403) otherwise. `parts`: the
    components, or just the gateway that knows the sessions."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("sign in first (Authorization: Bearer …)")
    gateway = parts if isinstance(parts, Gateway) else parts.gateway
    session = await gateway.session(token.strip())
    if session is None:
        raise NotAuthenticated("your session is invalid or has expired")
    if isinstance(role, Role) and session.role is not role:
        raise NotAllowed(f"this needs the {role.value} role")
    if isinstance(role, frozenset) and session.role not in role:
        raise NotAllowed("this is not open to your role")
    return session


class _Api:
    def __init__(self, parts: Callable[[web.Request], Components]) -> None:
        self._parts = parts

    async def _session(self, request: web.Request, role: Role | None = None) -> Session:
        return await bearer_session(request, self._parts(request), role)

    # -- accounts and identity --

    async def create_account(self, request: web.Request) -> web.Response:
        body = await _body(request)
        text = _text(body, "public_key", 64)
        try:
            public_key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("public_key must be base64", code="MALFORMED") from None
        account, token, expires = await self._parts(request).gateway.create_account(public_key)
        answer = {"account": account, "session": token, "expires_us": expires}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def verify_identity(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        body = await _body(request)
        name = _text(body, "name")
        document_type = _text(body, "document_type", 32)
        document = _text(body, "document", 200)
        attestation, seq = await self._parts(request).gateway.verify_identity(
            session.account, name, document_type, document
        )
        answer = {
            "verified": True,
            "attestation": {
                "provider": attestation.provider,
                "commit": attestation.commit,
                "level": attestation.level,
                "expires_us": attestation.expires_us,
            },
            "idv_entry": seq,
        }
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def me(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        gateway = self._parts(request).gateway
        key = await gateway.bidder_key(session.account)
        verified = (
            key is not None
            and key.verified_until_us is not None
            and key.verified_until_us > gateway.now()
        )
        answer = {
            "account": session.account,
            "role": session.role.value,
            "verified": verified,
            "verified_until_us": key.verified_until_us if key is not None else None,
            "registrations": [r.to_json() for r in gateway.registrations(session.account)],
        }
        return web.json_response(answer, headers=_NO_STORE)

    # -- registration and deposits --

    async def register(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        await _body(request)
        gateway = self._parts(request).gateway
        registration = await gateway.register(session.account, request.match_info["lot"])
        return web.json_response(registration.to_json(), status=201, headers=_NO_STORE)

    async def deposit(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        body = await _body(request)
        key = _idempotency_key(body)
        gateway = self._parts(request).gateway
        answer = await gateway.freeze_deposit(session.account, request.match_info["lot"], key)
        return web.json_response(answer, status=202, headers=_NO_STORE)

    # -- the catalogue --

    async def list_lots(self, request: web.Request) -> web.Response:
        service = self._parts(request).service
        query = request.query
        results = _query_integer(query, "results", DEFAULT_RESULTS, 0, MAX_RESULTS)
        before = _query_integer(query, "before", None, 0, 2**63 - 1)
        page = listing(service.views(), results=results, before=before)
        body = {
            "now_us": service.now(),
            "lots": [view.to_json() for view in page.lots],
            "older_results": page.older_results,
        }
        return web.json_response(body, headers=_NO_STORE)

    async def show_lot(self, request: web.Request) -> web.Response:
        service = self._parts(request).service
        view = service.view(request.match_info["lot"])
        if view is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        return web.json_response(
            {"now_us": service.now(), "lot": view.to_json()}, headers=_NO_STORE
        )

    async def bids(self, request: web.Request) -> web.Response:
        parts = self._parts(request)
        lot = request.match_info["lot"]
        view = parts.service.view(lot)
        if view is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        records = await parts.history(lot)
        history = [
            {
                "seq": event.seq,
                "code": event.code,
                "amount": event.amount,
                "bid_type": event.bid_type.value,
                "t_us": event.t,
            }
            for record in records
            for event in record.events
            if isinstance(event, BidAccepted)
        ]
        body = {"lot": lot, "currency": view.currency, "bids": history}
        return web.json_response(body, headers=_NO_STORE)

    # -- the console (auctioneer) --

    async def create_lot(self, request: web.Request) -> web.Response:
        await self._session(request, Role.AUCTIONEER)
        body = await _body(request)
        service = self._parts(request).service
        preset_name = _text(body, "preset", 32)
        if preset_name not in PRESETS:
            raise BadInput(f"preset must be one of {sorted(PRESETS)}", code="UNKNOWN_PRESET")
        lot_id = check_id(_text(body, "lot", 64), "lot")
        title = _text(body, "title")
        preset, allowed = PRESETS[preset_name]
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict) or not set(parameters) <= allowed:
            extra = sorted(set(parameters) - allowed) if isinstance(parameters, dict) else []
            raise BadInput(
                f"unknown parameters {extra}; use {sorted(allowed)}", code="BAD_PARAMETERS"
            )
        if "legal_timezone" in parameters:
            check_time_zone(parameters["legal_timezone"])
        check_parameters({k: v for k, v in parameters.items() if k != "legal_timezone"})
        try:
            rules = preset(**parameters)
        except (ConfigError, RulesError, TypeError) as exc:
            words = without_engine_names(str(exc))
            raise BadInput(f"these rules are not valid: {words}", code="BAD_PARAMETERS") from exc
        sale = body.get("sale")
        if sale is not None:
            sale = check_id(_text(body, "sale", 64), "sale")
            sale_title = _text(body, "sale_title") if "sale_title" in body else sale
            with contextlib.suppress(StorageConflict):  # the sale exists: the lot joins it
                await service.add_sale(sale, sale_title)
        try:
            view = await service.add_lot(lot_id, rules, title, sale)
        except (LotExists, StorageConflict):
            raise Conflict(f"a lot {lot_id!r} already exists", code="LOT_EXISTS") from None
        return web.json_response({"lot": view.to_json()}, status=201, headers=_NO_STORE)

    async def command(self, request: web.Request) -> web.Response:
        await self._session(request, Role.AUCTIONEER)
        body = await _body(request)
        service = self._parts(request).service
        lot = request.match_info["lot"]
        if service.view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        kind = body.get("type")
        if not isinstance(kind, str) or kind not in CONSOLE_COMMANDS:
            raise BadInput(
                f"type must be one of {sorted(CONSOLE_COMMANDS)}", code="UNKNOWN_COMMAND"
            )
        fields = {field.name for field in dataclasses.fields(CONSOLE_COMMANDS[str(kind)])}
        if "by" in fields and "by" not in body:
            body["by"] = Authority.CLERK.value
        if "by" in fields:
            refuse_claimed_authority(body["by"])
        try:
            command = decode(body)
        except (CodecError, RulesError) as exc:
            raise BadInput(f"the command is not valid: {exc}", code="BAD_COMMAND") from exc
        events = await service.submit(lot, command)
        refusal = rejection(events)
        if refusal is not None:
            words = command_refusal_words(refusal.command, refusal.reason, service.state(lot))
            raise RefusedByRules(words, code=refusal.reason.value)
        view = service.view(lot)
        answer = {
            "events": list(public_events(events)),
            "lot": view.to_json() if view is not None else None,
        }
        return web.json_response(answer, headers=_NO_STORE)

    # -- compliance --

    async def identities(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.COMPLIANCE)
        parts = self._parts(request)
        lot = request.match_info["lot"]
        state = await parts.service.full_state(lot)
        if state is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        if state.status in ACTIVE_STATUSES or state.status is LotStatus.SCHEDULED:
            raise Conflict(
                "identities stay sealed until the lot has closed (rules C2.4)", code="NOT_CLOSED"
            )
        logger.warning(
            "compliance: %s opened the identities of lot %s", session.account, lot
        )  # the access is itself logged
        rows = []
        for account, bidder in sorted(state.bidders.items()):
            versions = await parts.gateway.identities.history(account)
            identity = versions[-1] if versions else None
            rows.append(
                {
                    "code": bidder.code,
                    "account": account,
                    "personal_data": dict(identity.personal_data)
                    if identity is not None and identity.personal_data is not None
                    else None,
                    "erased": identity is not None and identity.erased_us is not None,
                    "versions": [version.to_json() for version in versions],
                }
            )
        return web.json_response({"lot": lot, "identities": rows}, headers=_NO_STORE)

    async def erase(self, request: web.Request) -> web.Response:
        await self._session(request, Role.COMPLIANCE)
        parts = self._parts(request)
        account = request.match_info["account"]
        erased = await parts.gateway.erase_personal_data(account)
        if not erased:
            raise NotFound("no personal data is held for that account", code="NOTHING_TO_ERASE")
        return web.json_response({"account": account, "erased": True}, headers=_NO_STORE)

    async def identity_history(self, request: web.Request) -> web.Response:
        """Every version of an account's identity, its permits and alerts: sealed, like the
        lot view, while the account is registered on a lot that has not closed."""
        session = await self._session(request, Role.COMPLIANCE)
        gateway = self._parts(request).gateway
        account = request.match_info["account"]
        if gateway.open_lots(account):
            raise Conflict(
                "this account is registered for a lot that has not closed; its identity stays"
                " sealed until then (rules C2.4)",
                code="NOT_CLOSED",
            )
        versions = await gateway.identities.history(account)
        if not versions:
            raise NotFound("that account has no verified identity", code="NOT_VERIFIED")
        logger.warning("compliance: %s opened the identity history of %s", session.account, account)
        alerts = [
            alert.to_json()
            for alert in await gateway.identities.alerts()
            if account in (alert.account, alert.holder)
        ]
        answer = {
            "account": account,
            "versions": [version.to_json() for version in versions],
            "bound_elsewhere": versions[-1].bound_elsewhere,
            "permits": await gateway.identities.permits(account),
            "alerts": alerts,
        }
        return web.json_response(answer, headers=_NO_STORE)

    async def allow_reverification(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.COMPLIANCE)
        body = await _body(request)
        reason = _text(body, "reason", 500).strip()
        account = request.match_info["account"]
        gateway = self._parts(request).gateway
        permit, expires = await gateway.identities.allow_reverification(
            account, session.account, reason
        )
        answer = {"account": account, "permit": permit, "reason": reason, "expires_us": expires}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def alerts(self, request: web.Request) -> web.Response:
        await self._session(request, Role.COMPLIANCE)
        alerts = await self._parts(request).gateway.identities.alerts()
        return web.json_response(
            {"alerts": [alert.to_json() for alert in alerts]}, headers=_NO_STORE
        )

    # -- the auditor page --

    async def auditor(self, request: web.Request) -> web.Response:
        parts = self._parts(request)
        service = parts.service
        size = 0
        if service.ledger is not None:
            size = await service.read(service.ledger.ledger_size)  # type: ignore[attr-defined]
        head = service.checkpoint
        parts.notaries.observe(service)
        checkpointer = service.checkpointer
        notaries = []
        for notary in checkpointer.notaries if checkpointer is not None else ():
            last = parts.notaries.last_cosigned.get(notary.name)
            notaries.append(
                {
                    "name": notary.name,
                    "url": notary.url,
                    "last_cosigned_size": last,
                    "lag": size - last if last is not None else None,
                }
            )
        answer = {
            "now_us": service.now(),
            "log_size": size,
            "checkpoint": None
            if head is None
            else {
                "size": head.size,
                "root": base64.b64encode(head.root).decode("ascii"),
                "note": head.note.decode("utf-8"),
                "cosignatures": _cosignatures(head.note),
            },
            "notaries": notaries,
        }
        return web.json_response(answer, headers=_NO_STORE)


def check_time_zone(value: object) -> None:
    """A lot's legal time zone must be an IANA zone name the server knows (rules C15)."""
    try:
        if not isinstance(value, str) or not value or len(value) > 64:
            raise ValueError(value)
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise BadInput(
            "'legal_timezone' must be a time zone name such as Asia/Shanghai or Europe/London",
            code="BAD_PARAMETERS",
        ) from None


def _cosignatures(note: bytes) -> int:
    try:
        return max(0, len(parse_note(note).signatures) - 1)
    except ChainError:
        return 0


__all__ = [
    "Components",
    "NotaryBoard",
    "add_api_routes",
    "bearer_session",
    "refuse_claimed_authority",
]
