"""Commands reach the writer: bids and other commands for a lot another
instance writes are posted to it (resent while the lot changes writer),
and live-video requests are passed to it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from typing import Any

import aiohttp
from aiohttp import web

from ..errors import Unavailable
from ..rules import CommandError, RejectReason, decode, encode
from ..service import RequestRefused, ServiceError
from ..verify import SignedBid
from .ownership import Ownership
from .settings import CLUSTER_HEADER, VIEWER_ADDRESS_HEADER


class _LocalNow(Exception):
    """The lot became this instance's while forwarding: handle it here."""


def _not_live() -> web.Response:
    from ..web.errors import error_response

    return error_response(
        Unavailable("the lot's video is not available right now", code="NOT_LIVE")
    )


class Forwarding(Ownership):
    """Sends what arrives here for a lot another instance writes to that instance."""

    async def _post(
        self, path: str, lot_id: str, body: dict[str, Any], *, resend: bool
    ) -> tuple[int, dict[str, Any]]:
        """POST `body` to the instance writing `lot_id`, following the lot when it changes
        writer. `resend`: also after a request whose answer was lost (idempotent requests)."""
        assert self._session is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.forward_deadline_s
        headers = {CLUSTER_HEADER: self._secret}
        fresh = False  # the known writer failed once: read who writes it now
        while True:
            if loop.time() >= deadline:
                raise ServiceError(f"no instance wrote lot {lot_id!r} in time")
            if self.service.leads(lot_id):
                raise _LocalNow()
            known = None if fresh else self._writers.get(lot_id)
            if known is None:
                known = await self._blocking(self.owner_url, lot_id)
                self._writers[lot_id] = known
            owner, url = known
            fresh = True  # every retry below reads the writer again
            if owner is None or url is None or owner == self.name:
                self._wake.set()
                await asyncio.sleep(0.05)  # between writers: the next round gives it one
                continue
            body["after"] = self.high_water
            try:
                timeout = aiohttp.ClientTimeout(total=max(0.1, deadline - loop.time()))
                async with self._session.post(
                    url.rstrip("/") + path, json=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    answer = await response.json(content_type=None)
            except aiohttp.ClientConnectorError:
                self._wake.set()  # its writer is gone: look for lots to take at once
                await asyncio.sleep(0.05)  # not sent; try the next writer
                continue
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if not resend:
                    raise ServiceError(
                        f"the instance writing lot {lot_id!r} did not answer"
                    ) from exc
                await asyncio.sleep(0.05)
                continue
            if status == 409 and isinstance(answer, dict) and answer.get("code") == "NOT_WRITER":
                await asyncio.sleep(0.05)
                continue
            if status == 503 and resend:
                await asyncio.sleep(0.05)
                continue
            self.forwarded += 1
            return status, answer if isinstance(answer, dict) else {}

    async def forward_command(
        self, lot_id: str, command: Any, request: SignedBid | None
    ) -> tuple[tuple[Any, ...], int | None]:
        body: dict[str, Any] = {
            "lot": lot_id,
            "command": encode(command),
            "request": request.to_json() if request is not None else None,
        }
        try:
            status, answer = await self._post("/internal/v1/command", lot_id, body, resend=False)
        except _LocalNow:
            return await self.service.submit_logged(lot_id, command, request=request)
        if status == 200:
            events = tuple(decode(item) for item in answer["events"])
            entry = answer.get("entry")
            if isinstance(entry, int):  # read-your-writes: this instance's copy has it too
                await self.wait_applied(entry + 1)
            return events, entry if isinstance(entry, int) else None
        code, message = str(answer.get("code")), str(answer.get("message"))
        if status == 422 and code == "REFUSED":
            raise RequestRefused(str(answer.get("reason")), message)
        if status == 422:
            raise CommandError(RejectReason.NOT_PERMITTED, message)
        raise ServiceError(f"the instance writing lot {lot_id!r} answered {status} {code}")

    async def forward_bid(self, account: str, bid: SignedBid) -> dict[str, Any]:
        from ..web.errors import error_from_status

        body: dict[str, Any] = {
            "account": account,
            "bid": {
                "lot": bid.lot,
                "kind": bid.kind,
                "amount": bid.amount,
                "currency": bid.currency,
                "idempotency_key": bid.idempotency_key,
                "signature": base64.b64encode(bid.signature).decode("ascii"),
            },
        }
        try:
            status, answer = await self._post("/internal/v1/bid", bid.lot, body, resend=True)
        except _LocalNow:
            assert self.gateway is not None
            return await self.gateway.bid(account, bid, forward=False)
        except ServiceError as exc:
            raise Unavailable("the bid could not reach its lot") from exc
        if status == 200 and isinstance(answer.get("ack"), dict):
            return dict(answer["ack"])
        raise error_from_status(  # the writer's refusal, passed on unchanged
            status if status >= 400 else 503,
            str(answer.get("code", "UNAVAILABLE")),
            str(answer.get("message", "the bid could not be placed")),
        )

    async def proxy(self, request: web.Request, lot_id: str) -> web.Response:
        """Pass a live-video request (`/api/lots/{lot}/stream...`) to the instance writing the
        lot, which streams and records it, and return its answer: a viewer may use any
        instance. One attempt (an offer is not resent); 503 if no writer answers."""
        assert self._session is not None
        owner, url = await self._blocking(self.owner_url, lot_id)
        if owner is None or url is None or owner == self.name:
            return _not_live()
        body = await request.read() if request.can_read_body else None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        for name in ("Authorization",):
            if name in request.headers:
                headers[name] = request.headers[name]
        if request.remote:
            headers[CLUSTER_HEADER] = self._secret
            headers[VIEWER_ADDRESS_HEADER] = request.remote
        try:
            async with self._session.request(
                request.method,
                url.rstrip("/") + request.rel_url.path_qs,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                payload = await response.read()
                return web.Response(
                    body=payload,
                    status=response.status,
                    content_type=response.content_type,
                )
        except (aiohttp.ClientError, TimeoutError):
            return _not_live()

    def viewer_address(self, request: web.Request) -> str | None:
        """The viewer's address another instance passed with the cluster's secret, or None
        (then the request's own address counts)."""
        forwarded = request.headers.get(VIEWER_ADDRESS_HEADER)
        if forwarded and 0 < len(forwarded) <= 64 and self._authorized(request):
            return forwarded
        return None

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get(CLUSTER_HEADER, "")
        return hmac.compare_digest(given.encode(), self._secret.encode())
