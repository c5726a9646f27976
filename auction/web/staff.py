"""Staff sessions from the console, for the admin role (docs/protocol.md §1.5).

* `GET /console/staff`: the page (`static/staff.html`);
* `GET /api/staff/sessions`: the active sessions made here (session id, role, label, created,
  expires; never a token);
* `POST /api/staff/sessions` `{"role", "label"}`: a new session; the answer (201) is the only
  place its token ever appears;
* `DELETE /api/staff/sessions/{session}`: revoke it; its token is refused from then on.

Each creation and revocation is a `document` ledger entry signed by the house key:

    {"v": 1, "kind": "staff_session", "action": "created" | "revoked",
     "session": "st-…", "role": "auditor", "by": "<the admin session's account id>"}

(opaque ids, no label, no personal data). Staff accounts hold no signing key, so the entry is
attributed to the admin by its account id under the house's signature, not signed by the
admin itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from chain import EntryType

from ..accounts import Role
from ..errors import BadInput, NotFound
from ..staff import GRANTABLE, LABEL, StaffStore
from .api import Components, bearer_session
from .bodies import read_json_body

STAFF_STORE = web.AppKey("staff_store", StaffStore)
_NO_STORE = {"Cache-Control": "no-store"}

Parts = Callable[[web.Request], Components]


def entry_body(action: str, session: str, role: str, by: str) -> dict[str, Any]:
    """The ledger body of a staff session's creation or revocation (module docstring)."""
    return {
        "v": 1,
        "kind": "staff_session",
        "action": action,
        "session": session,
        "role": role,
        "by": by,
    }


class _Staff:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def _admin(self, request: web.Request) -> tuple[str, Components, StaffStore]:
        parts = self._parts(request)
        session = await bearer_session(request, parts, Role.ADMIN)
        return session.account, parts, request.app[STAFF_STORE]

    async def list(self, request: web.Request) -> web.Response:
        _, parts, store = await self._admin(request)
        active = await asyncio.to_thread(store.active, parts.service.now())
        body = {"sessions": [session.to_json() for session in active]}
        return web.json_response(body, headers=_NO_STORE)

    async def create(self, request: web.Request) -> web.Response:
        admin, parts, store = await self._admin(request)
        body = await read_json_body(request)
        role_text = body.get("role")
        roles = {role.value: role for role in GRANTABLE}
        if not isinstance(role_text, str) or role_text not in roles:
            raise BadInput(f"role must be one of {', '.join(roles)}", code="BAD_ROLE")
        label = body.get("label")
        if not isinstance(label, str) or LABEL.fullmatch(label) is None:
            raise BadInput(
                "label must be 1 to 40 letters, digits, spaces, dots, dashes or underscores, "
                "starting with a letter or digit, and must not be a person's name",
                code="BAD_LABEL",
            )
        service = parts.service
        now = service.now()
        session, token = await asyncio.to_thread(store.create, roles[role_text], label, admin, now)
        try:
            seq = await service.record(
                EntryType.DOCUMENT, entry_body("created", session.session_id, role_text, admin)
            )
        except Exception:
            await asyncio.to_thread(store.undo, session.session_id, service.now())
            raise
        answer = session.to_json() | {"token": token, "entry": seq}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def revoke(self, request: web.Request) -> web.Response:
        admin, parts, store = await self._admin(request)
        service = parts.service
        session_id = request.match_info["session"]
        revoked = await asyncio.to_thread(store.revoke, session_id, admin, service.now())
        if revoked is None:
            raise NotFound("there is no such active staff session", code="UNKNOWN_SESSION")
        seq = await service.record(
            EntryType.DOCUMENT, entry_body("revoked", session_id, revoked.role, admin)
        )
        answer = {"session": session_id, "revoked_us": revoked.revoked_us, "entry": seq}
        return web.json_response(answer, headers=_NO_STORE)


def add_staff_routes(app: web.Application, parts: Parts) -> None:
    """Register the staff routes; the store opens with the accounts (same database)."""
    api = _Staff(parts)
    app.router.add_get("/api/staff/sessions", api.list)
    app.router.add_post("/api/staff/sessions", api.create)
    app.router.add_delete("/api/staff/sessions/{session}", api.revoke)

    async def context(app: web.Application) -> AsyncIterator[None]:
        from .app import ACCOUNTS

        app[STAFF_STORE] = await asyncio.to_thread(StaffStore, app[ACCOUNTS])
        yield

    app.cleanup_ctx.append(context)


__all__ = ["STAFF_STORE", "add_staff_routes", "entry_body"]
