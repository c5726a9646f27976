"""The compliance officer's routes: a lot's bidders' identities, erasing
personal data, an account's identity history, re-verification, alerts.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ...accounts import Role
from ...errors import Conflict, NotFound
from ...rules import LotStatus
from ...service import ACTIVE_STATUSES
from ..bodies import read_json_body
from .common import NO_STORE, ApiRoutes, text_field

logger = logging.getLogger(__name__)


class ComplianceRoutes(ApiRoutes):
    """The compliance officer's routes."""

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
        return web.json_response({"lot": lot, "identities": rows}, headers=NO_STORE)

    async def erase(self, request: web.Request) -> web.Response:
        await self._session(request, Role.COMPLIANCE)
        parts = self._parts(request)
        account = request.match_info["account"]
        erased = await parts.gateway.erase_personal_data(account)
        if not erased:
            raise NotFound("no personal data is held for that account", code="NOTHING_TO_ERASE")
        return web.json_response({"account": account, "erased": True}, headers=NO_STORE)

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
        return web.json_response(answer, headers=NO_STORE)

    async def allow_reverification(self, request: web.Request) -> web.Response:
        session = await self._session(request, Role.COMPLIANCE)
        body = await read_json_body(request)
        reason = text_field(body, "reason", 500).strip()
        account = request.match_info["account"]
        gateway = self._parts(request).gateway
        permit, expires = await gateway.identities.allow_reverification(
            account, session.account, reason
        )
        answer = {"account": account, "permit": permit, "reason": reason, "expires_us": expires}
        return web.json_response(answer, status=201, headers=NO_STORE)

    async def alerts(self, request: web.Request) -> web.Response:
        await self._session(request, Role.COMPLIANCE)
        alerts = await self._parts(request).gateway.identities.alerts()
        return web.json_response(
            {"alerts": [alert.to_json() for alert in alerts]}, headers=NO_STORE
        )
