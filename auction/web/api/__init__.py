"""The REST API of docs/protocol.md §1 (an adapter: parse, call the gateway or the service,
answer JSON). Errors always have the shape `{"error": {"code", "message"}}`.

`add_api_routes(app, components)` registers the routes; `components(request)` gives the running
server's parts (`Components`), which the composition root (`auction.web.app`) owns. One module
per audience: :mod:`.bidders` (accounts, identity, lots, registrations, deposits),
:mod:`.console` (the auctioneer's lots and commands), :mod:`.compliance`, :mod:`.auditor`;
what they share (components, sessions, request fields, the error middleware) is :mod:`.common`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .auditor import AuditorRoutes
from .bidders import BidderRoutes
from .common import Components, NotaryBoard, bearer_session, json_errors
from .compliance import ComplianceRoutes
from .console import (
    CONSOLE_COMMANDS,
    PRESETS,
    ConsoleRoutes,
    check_time_zone,
    refuse_claimed_authority,
)


def add_api_routes(app: web.Application, parts: Callable[[web.Request], Components]) -> None:
    """Register `/api/...`; `parts(request)` gives the running components."""
    bidders, console = BidderRoutes(parts), ConsoleRoutes(parts)
    compliance, auditor = ComplianceRoutes(parts), AuditorRoutes(parts)
    app.middlewares.append(json_errors)
    app.router.add_post("/api/accounts", bidders.create_account)
    app.router.add_post("/api/identity", bidders.verify_identity)
    app.router.add_get("/api/me", bidders.me)
    app.router.add_get("/api/lots", bidders.list_lots)
    app.router.add_get("/api/lots/{lot}", bidders.show_lot)
    app.router.add_get("/api/lots/{lot}/bids", bidders.bids)
    app.router.add_post("/api/lots/{lot}/registrations", bidders.register)
    app.router.add_post("/api/lots/{lot}/deposit", bidders.deposit)
    app.router.add_post("/api/console/lots", console.create_lot)
    app.router.add_post("/api/console/lots/{lot}/commands", console.command)
    app.router.add_get("/api/compliance/lots/{lot}/identities", compliance.identities)
    app.router.add_delete("/api/compliance/accounts/{account}/personal-data", compliance.erase)
    app.router.add_get("/api/compliance/accounts/{account}/identity", compliance.identity_history)
    app.router.add_post(
        "/api/compliance/accounts/{account}/reverification", compliance.allow_reverification
    )
    app.router.add_get("/api/compliance/alerts", compliance.alerts)
    app.router.add_get("/api/auditor", auditor.auditor)


__all__ = [
    "CONSOLE_COMMANDS",
    "Components",
    "NotaryBoard",
    "PRESETS",
    "add_api_routes",
    "bearer_session",
    "check_time_zone",
    "json_errors",
    "refuse_claimed_authority",
]
