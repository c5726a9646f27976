"""The internal routes other instances call (`/internal/v1/...`), refused
without the cluster's secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import Conflict, GavelError, Malformed, NotAllowed, Unavailable
from ..rules import RulesError, decode, encode
from ..service import NotWriter, RequestRefused, ServiceError
from ..storage import StorageError
from ..verify import BidMalformed, SignedBid
from .forwarding import Forwarding
from .state import first_line


def add_cluster_routes(
    app: web.Application, cluster: Callable[[web.Request], InternalRoutes]
) -> None:
    """The internal routes: `POST /internal/v1/command`, `POST /internal/v1/bid` and
    `GET /internal/v1/instances`, each refused (403) without the cluster's secret."""

    def route(name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            bound: Handler = getattr(cluster(request), name)
            return await bound(request)

        return _answering(handler)

    app.router.add_post("/internal/v1/command", route("_command_route"))
    app.router.add_post("/internal/v1/bid", route("_bid_route"))
    app.router.add_get("/internal/v1/instances", route("_instances_route"))


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _answering(handler: Handler) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        from ..web.errors import http_status

        try:
            return await handler(request)
        except GavelError as exc:  # an internal refusal: `{"code", "message"}`
            body = {"code": exc.code, "message": exc.message}
            return web.json_response(body, status=http_status(exc))

    return answer


class InternalRoutes(Forwarding):
    """Answers the other instances' forwarded commands and bids."""

    async def _internal_body(self, request: web.Request) -> dict[str, Any]:
        if not self._authorized(request):
            raise NotAllowed("internal route: instances of this cluster only")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise Malformed("the body is not JSON") from None
        if not isinstance(body, dict):
            raise Malformed("the body is not an object")
        after = body.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise Malformed("after is a ledger size")
        if not await self.wait_applied(after):
            raise Unavailable("this instance has not caught up with the sender", code="BEHIND")
        return body

    async def _command_route(self, request: web.Request) -> web.Response:
        body = await self._internal_body(request)
        lot_id = body.get("lot")
        if not isinstance(lot_id, str):
            raise Malformed("lot is a string")
        if not self.service.leads(lot_id):
            raise Conflict(f"this instance does not write lot {lot_id!r}", code="NOT_WRITER")
        signed: SignedBid | None = None
        try:
            command = decode(body.get("command"))
            raw = body.get("request")
            if raw is not None:
                signed = SignedBid.from_json(raw)
        except (RulesError, BidMalformed, KeyError, TypeError) as exc:
            raise Malformed(f"not a command: {exc}") from exc
        try:
            events, entry = await self.service.submit_logged(
                lot_id, command, request=signed, forward=False
            )
        except NotWriter:
            words = f"this instance does not write lot {lot_id!r}"
            raise Conflict(words, code="NOT_WRITER") from None
        except RequestRefused as exc:
            return web.json_response(
                {"code": "REFUSED", "reason": exc.reason, "message": exc.message}, status=422
            )
        except RulesError as exc:
            return web.json_response({"code": "INVALID", "message": str(exc)}, status=422)
        except (ServiceError, StorageError) as exc:
            raise Unavailable(first_line(exc)) from exc
        return web.json_response({"events": [encode(item) for item in events], "entry": entry})

    async def _bid_route(self, request: web.Request) -> web.Response:
        body = await self._internal_body(request)
        account, bid = body.get("account"), body.get("bid")
        if not isinstance(account, str) or not isinstance(bid, dict):
            raise Malformed("account and bid are required")
        try:
            parsed = SignedBid(
                lot=str(bid["lot"]),
                kind=str(bid["kind"]),
                amount=int(bid["amount"]),
                currency=str(bid["currency"]),
                idempotency_key=str(bid["idempotency_key"]),
                signature=base64.b64decode(str(bid["signature"]), validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error, BidMalformed) as exc:
            raise Malformed(f"not a bid: {exc}") from exc
        if not self.service.leads(parsed.lot):
            raise Conflict(f"this instance does not write lot {parsed.lot!r}", code="NOT_WRITER")
        assert self.gateway is not None
        ack = await self.gateway.bid(account, parsed, forward=False)
        return web.json_response({"ack": ack})

    async def _instances_route(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            raise NotAllowed("internal route: instances of this cluster only")
        return web.json_response({"instances": await self._blocking(self.instances)})
