"""The bidder's routes: accounts, identity checks, the lot list and a lot's
bids, registrations and deposits.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from ...accounts import Role
from ...catalogue.listing import DEFAULT_RESULTS, MAX_RESULTS, listing
from ...errors import BadInput, NotFound
from ...rules import BidAccepted
from ..bodies import read_json_body
from .common import NO_STORE, ApiRoutes, idempotency_key_field, query_integer, text_field


class BidderRoutes(ApiRoutes):
    """Accounts, identity, lots, registrations and deposits: the bidder's routes."""

    async def create_account(self, request: web.Request) -> web.Response:
        body = await read_json_body(request)
        text = text_field(body, "public_key", 64)
        try:
            public_key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("public_key must be base64", code="MALFORMED") from None
        account, token, expires = await self._parts(request).gateway.create_account(public_key)
        answer = {"account": account, "session": token, "expires_us": expires}
        return web.json_response(answer, status=201, headers=NO_STORE)

    async def verify_identity(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        body = await read_json_body(request)
        name = text_field(body, "name")
        document_type = text_field(body, "document_type", 32)
        document = text_field(body, "document", 200)
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
        return web.json_response(answer, status=201, headers=NO_STORE)

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
        return web.json_response(answer, headers=NO_STORE)

    async def register(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        await read_json_body(request)
        gateway = self._parts(request).gateway
        registration = await gateway.register(session.account, request.match_info["lot"])
        return web.json_response(registration.to_json(), status=201, headers=NO_STORE)

    async def deposit(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.BIDDER)
        body = await read_json_body(request)
        key = idempotency_key_field(body)
        gateway = self._parts(request).gateway
        answer = await gateway.freeze_deposit(session.account, request.match_info["lot"], key)
        return web.json_response(answer, status=202, headers=NO_STORE)

    async def list_lots(self, request: web.Request) -> web.Response:
        service = self._parts(request).service
        query = request.query
        results = query_integer(query, "results", DEFAULT_RESULTS, 0, MAX_RESULTS)
        before = query_integer(query, "before", None, 0, 2**63 - 1)
        page = listing(service.views(), results=results, before=before)
        body = {
            "now_us": service.now(),
            "lots": [view.to_json() for view in page.lots],
            "older_results": page.older_results,
        }
        return web.json_response(body, headers=NO_STORE)

    async def show_lot(self, request: web.Request) -> web.Response:
        service = self._parts(request).service
        view = service.view(request.match_info["lot"])
        if view is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        return web.json_response({"now_us": service.now(), "lot": view.to_json()}, headers=NO_STORE)

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
        return web.json_response(body, headers=NO_STORE)
