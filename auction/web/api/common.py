"""What the API's route groups share: the server's components, the session of a request,
the fields of a request body, and the middleware that answers every failure in the
error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from chain import ChainError, parse_note

from ...accounts import AccountStore, Role, Session
from ...errors import BadInput, GavelError, NotAllowed, NotAuthenticated, Unavailable
from ...gateway import Gateway
from ...service import AuctionService, ServiceError
from ...storage import HistoryRecord, StorageError
from ..errors import error_response, http_exception_response, http_status

logger = logging.getLogger(__name__)


T = TypeVar("T", int, None)
NO_STORE = {"Cache-Control": "no-store"}


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


def text_field(body: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadInput(f"{name!r} must be a non-empty text of at most {limit}", code="MALFORMED")
    return value


def idempotency_key_field(body: Mapping[str, Any]) -> str:
    """A deposit's `idempotency_key`: 1 to 128 printable characters, the rule of a bid's key
    (`auction.protocol`, docs/protocol.md §2.4)."""
    value = body.get("idempotency_key")
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise BadInput("'idempotency_key' must be 1 to 128 printable characters", code="MALFORMED")
    return value


def query_integer(query: Mapping[str, str], name: str, default: T, low: int, high: int) -> int | T:
    """A whole-number query parameter within `low..high`, or `default` when absent."""
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}", code="BAD_QUERY")
    return int(text)


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


class ApiRoutes:
    """A group of routes over the running components."""

    def __init__(self, parts: Callable[[web.Request], Components]) -> None:
        self._parts = parts

    async def _session(self, request: web.Request, role: Role | None = None) -> Session:
        return await bearer_session(request, self._parts(request), role)
