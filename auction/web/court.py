"""The court's route (docs/protocol.md §1 "Court orders"):

    POST /api/court/lots/{lot}/orders   {"type": "Pause"|"Suspend"|"Resume"|"Cancel",
                                         "reason": "...", "basis": "..."}

A court session (`gavel staff --role court`) only. The order is the engine command with
`by = COURT`, and its ledger entry names the session's account as who gave it
(`auction.court`). Answers like the console's commands: `200 {"events", "lot"}`, the
engine's refusal as `422` with its reason (logged like every command).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ..accounts import Role
from ..court import CourtOrder, order_command
from ..errors import BadInput, NotFound, RefusedByRules, Unavailable
from ..rules import CodecError, RulesError, rejection
from ..service import NotWriter, public_events
from ..verify import COURT_ORDERS, OrderError
from .api import Components, bearer_session
from .bodies import read_json_body

_NO_STORE = {"Cache-Control": "no-store"}


def add_court_routes(app: web.Application, parts: Callable[[web.Request], Components]) -> None:
    """Register the court's route (after `add_api_routes`, whose middleware answers errors)."""

    async def order(request: web.Request) -> web.Response:
        components = parts(request)
        session = await bearer_session(request, components, Role.COURT)
        body = await read_json_body(request)
        service = components.service
        lot = request.match_info["lot"]
        if service.view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        kind, reason, basis = body.get("type"), body.get("reason"), body.get("basis", "")
        if not isinstance(kind, str) or kind not in COURT_ORDERS:
            raise BadInput(f"type must be one of {', '.join(COURT_ORDERS)}", code="UNKNOWN_ORDER")
        if "by" in body:
            raise BadInput("an order is the court's: leave out 'by'", code="BAD_ORDER")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise BadInput("reason must be a text of 1 to 500 characters", code="BAD_ORDER")
        if not isinstance(basis, str) or len(basis) > 200:
            raise BadInput("basis must be a text of at most 200 characters", code="BAD_ORDER")
        try:
            command = order_command(kind, reason, basis)
        except (OrderError, CodecError, RulesError) as exc:
            raise BadInput(f"the order is not valid: {exc}", code="BAD_ORDER") from exc
        try:
            events, entry = await service.submit_logged(
                lot, command, order=CourtOrder(session.account).to_json()
            )
        except NotWriter:
            raise Unavailable(
                "send court orders to the server instance that runs this lot", code="NOT_WRITER"
            ) from None
        refusal = rejection(events)
        if refusal is not None:
            raise RefusedByRules(refusal.detail, code=refusal.reason.value)
        view = service.view(lot)
        answer = {
            "events": list(public_events(events)),
            "entry": entry,
            "lot": view.to_json() if view is not None else None,
        }
        return web.json_response(answer, headers=_NO_STORE)

    app.router.add_post("/api/court/lots/{lot}/orders", order)


__all__ = ["add_court_routes"]
