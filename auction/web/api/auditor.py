"""The auditor page's data: the ledger head and what each notary co-signed."""

from __future__ import annotations

import base64

from aiohttp import web

from chain import ChainError, parse_note

from .common import NO_STORE, ApiRoutes


def _cosignatures(note: bytes) -> int:
    try:
        return max(0, len(parse_note(note).signatures) - 1)
    except ChainError:
        return 0


class AuditorRoutes(ApiRoutes):
    """The auditor's page data."""

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
        return web.json_response(answer, headers=NO_STORE)
