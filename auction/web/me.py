"""The bidder is remembered: "My auctions" (docs/protocol.md §1, "My auctions").

`install_me(app, ...)` adds, beside the REST API of `auction.web.api`:

* `GET /api/me/lots`, `GET /api/me/lots/{lot}`: the session's own lots with their state for
  the bidder (`auction.bidders.mylots.summarize`), from the server's records, so any browser logged
  into the account sees the same;
* `GET /api/me/lots/{lot}/documents/{kind}`: a document made for the bidder (the sale
  confirmation), and `GET /api/console/lots/{lot}/documents/{kind}` for staff;
* `POST /api/lots/{lot}/notice`: the bidder accepts the lot's bidding notice (竞买须知); a
  `POST /api/lots/{lot}/deposit` without it is refused `409 NOTICE_NOT_ACCEPTED` (a
  middleware, before the deposit route runs);
* `POST /api/me/signin-code` (a new sign-in code for the account, shown once) and
  `POST /api/sessions` (a new session from that code: how a second browser logs in);
* (the `/my` page is one of `auction.web.pages.PAGES`);
* a cleanup context that opens the bidder book (`auction.bidders.book`), has the gateway record
  each bid's answer in it, and runs the `SaleClerk` that makes each sale's confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from ..accounts import AccountError, AccountStore, Role, Session
from ..bidders.book import BidderBook, BidRecord
from ..bidders.confirmation import SaleClerk
from ..bidders.mylots import by_lot, summarize
from ..errors import BadInput, Conflict, GavelError, NotAllowed, NotAuthenticated, NotFound
from ..gateway import Gateway
from ..service import AuctionService
from ..storage import Storage
from ..verify import SignedBid
from .api import bearer_session
from .bodies import read_json_body
from .errors import error_response

logger = logging.getLogger(__name__)

BOOK = web.AppKey("bidder_book", BidderBook)
CLERK = web.AppKey("sale_clerk", SaleClerk)

_NO_STORE = {"Cache-Control": "no-store"}
_DEPOSIT = re.compile(r"/api/lots/(?P<lot>[^/]{1,128})/deposit")
_REGISTRATION = re.compile(r"/api/lots/(?P<lot>[^/]{1,128})/registrations")
_HEX64 = re.compile(r"[0-9a-f]{64}")
STAFF_ROLES = frozenset({Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR})
#: Who reads a bidder's lots: the bidder's own browser, or another one signed in with a code.
READERS = frozenset({Role.BIDDER, Role.WATCHER})
BIDDER = frozenset({Role.BIDDER})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install_me(
    app: web.Application,
    *,
    service: web.AppKey[AuctionService],
    store: web.AppKey[Storage],
    accounts: web.AppKey[AccountStore],
    gateway: web.AppKey[Gateway],
) -> None:
    """Register the routes, the page, the deposit-notice middleware and the context (call
    after the service, accounts and gateway contexts were appended)."""
    routes = _Me(service, store, accounts, gateway)

    async def context(app: web.Application) -> AsyncIterator[None]:
        book = await asyncio.to_thread(BidderBook, app[accounts].engine)
        app[BOOK] = book
        the_gateway = app[gateway]

        def answered(account: str, request: SignedBid, ack: dict[str, Any]) -> None:
            record = BidRecord(
                lot=request.lot,
                idempotency_key=request.idempotency_key,
                kind=request.kind,
                amount=request.amount,
                currency=request.currency,
                result=str(ack.get("result")),
                reason=ack.get("reason"),
                message=ack.get("message"),
                entry=ack.get("entry"),
                t_us=the_gateway.now(),
            )
            routes.recorder.add(account, record)

        the_gateway.answered = answered
        routes.recorder.start(book)
        clerk = SaleClerk(app[service], app[store], book, the_gateway.identity)
        clerk.start()
        app[CLERK] = clerk
        yield
        await clerk.stop()
        await routes.recorder.stop()
        await routes.recorder.flush(book)  # what came in last

    app.cleanup_ctx.append(context)
    app.middlewares.append(routes.notice_first)
    app.router.add_get("/api/me/lots", routes.lots)
    app.router.add_get("/api/me/lots/{lot}", routes.lot)
    app.router.add_get("/api/me/lots/{lot}/documents/{kind}", routes.my_document)
    app.router.add_get("/api/console/lots/{lot}/documents/{kind}", routes.staff_document)
    app.router.add_post("/api/lots/{lot}/notice", routes.accept_notice)
    app.router.add_post("/api/me/signin-code", routes.signin_code)
    app.router.add_post("/api/sessions", routes.signin)


class BidRecorder:
    """Writes the bids' answers off the bid's path, several per transaction: an ack never
    waits for it (the bid itself is in the lot's history; only its entry number would be
    missed if the server stopped before the write)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[str, BidRecord]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, account: str, record: BidRecord) -> None:
        self._waiting.append((account, record))
        self._wake.set()

    def start(self, book: BidderBook) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(book), name="bid-recorder")

    async def _run(self, book: BidderBook) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush(book)

    async def flush(self, book: BidderBook) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            await asyncio.to_thread(book.record_bids, batch)
        except AccountError as exc:
            logger.warning("%d bid answers were not recorded: %s", len(batch), exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class _Me:
    def __init__(
        self,
        service: web.AppKey[AuctionService],
        store: web.AppKey[Storage],
        accounts: web.AppKey[AccountStore],
        gateway: web.AppKey[Gateway],
    ) -> None:
        self._service = service
        self._store = store
        self._accounts = accounts
        self._gateway = gateway
        self.recorder = BidRecorder()

    async def _session(self, request: web.Request, roles: frozenset[Role]) -> Session:
        return await bearer_session(request, request.app[self._gateway], roles)

    async def _summary(self, app: web.Application, account: str, lot: str) -> Any:
        service = app[self._service]
        view = service.view(lot)
        if view is None:
            return None
        book = app[BOOK]
        records = await service.read(app[self._store].history, lot)

        def mine() -> tuple[Any, Any, Any]:
            return (
                book.bids(account, lot),
                book.documents(lot),
                book.notice_accepted(account, lot),
            )

        bids, documents, notice = await asyncio.to_thread(mine)
        return summarize(account, view, records, bids, documents, notice, service.now())

    # -- pages and routes --

    async def lots(self, request: web.Request) -> web.Response:
        session = await self._session(request, READERS)
        app = request.app
        book = app[BOOK]
        names = list(await asyncio.to_thread(book.lots, session.account))
        for registration in app[self._gateway].registrations(session.account):
            if registration.lot not in names:
                names.append(registration.lot)
        summaries = [await self._summary(app, session.account, lot) for lot in names]
        made = await asyncio.to_thread(book.signin_made, session.account)
        answer = {
            "account": session.account,
            "now_us": app[self._service].now(),
            "lots": by_lot(summaries),
            "signin_code_made_us": made,
        }
        return web.json_response(answer, headers=_NO_STORE)

    async def lot(self, request: web.Request) -> web.Response:
        session = await self._session(request, READERS)
        lot = request.match_info["lot"]
        if request.app[self._service].view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        summary = await self._summary(request.app, session.account, lot)
        if summary is None:
            raise NotFound("you have not registered for this lot", code="NOT_REGISTERED")
        return web.json_response({"lot": summary}, headers=_NO_STORE)

    async def _document(self, request: web.Request, account: str | None) -> web.Response:
        lot, kind = request.match_info["lot"], request.match_info["kind"]
        document = await asyncio.to_thread(request.app[BOOK].document, lot, kind)
        if document is None or (account is not None and document.account != account):
            raise NotFound("there is no such document for you on this lot", code="NO_DOCUMENT")
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{document.name}"',
            "X-Content-SHA256": document.sha256,
        }
        if document.entry is not None:
            headers["X-Ledger-Entry"] = str(document.entry)
        return web.Response(body=document.body, headers=headers, content_type="text/plain",
                            charset="utf-8")  # fmt: skip

    async def my_document(self, request: web.Request) -> web.Response:
        session = await self._session(request, READERS)
        return await self._document(request, session.account)

    async def staff_document(self, request: web.Request) -> web.Response:
        await self._session(request, STAFF_ROLES)
        return await self._document(request, None)

    async def accept_notice(self, request: web.Request) -> web.Response:
        session = await self._session(request, BIDDER)
        body = await read_json_body(request)
        lot = request.match_info["lot"]
        if request.app[self._service].view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        if body.get("accept") is not True:
            raise BadInput('send {"accept": true} to accept the notice', code="MALFORMED")
        digest = body.get("notice_sha256")
        if digest is not None and (not isinstance(digest, str) or not _HEX64.fullmatch(digest)):
            raise BadInput("notice_sha256 must be 64 lowercase hex digits", code="MALFORMED")
        now = request.app[self._service].now()
        accepted = await asyncio.to_thread(
            request.app[BOOK].accept_notice, session.account, lot, digest, now
        )
        answer = {"lot": lot, "accepted": True, "accepted_us": accepted}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def signin_code(self, request: web.Request) -> web.Response:
        session = await self._session(request, BIDDER)
        now = request.app[self._service].now()
        code = await asyncio.to_thread(request.app[BOOK].new_signin, session.account, now)
        answer = {"account": session.account, "code": code, "made_us": now}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def signin(self, request: web.Request) -> web.Response:
        body = await read_json_body(request)
        code = body.get("code")
        if not isinstance(code, str) or not 8 <= len(code) <= 64:
            raise BadInput("code must be the sign-in code (e.g. ABCD-EFGH-…)", code="MALFORMED")
        app = request.app
        account = await asyncio.to_thread(app[BOOK].signin_account, code)
        if account is None:
            raise NotAuthenticated(
                "that sign-in code is not valid (a newer one replaces it)", code="UNKNOWN_CODE"
            )
        now = app[self._service].now()
        token, expires = await asyncio.to_thread(
            app[self._accounts].create_session, account, Role.WATCHER, now
        )
        answer = {"account": account, "session": token, "expires_us": expires}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    # -- the middleware --

    @web.middleware
    async def notice_first(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A deposit needs the notice accepted first; a registration is remembered."""
        if request.method != "POST":
            return await handler(request)
        deposit = _DEPOSIT.fullmatch(request.path)
        if deposit is not None:
            try:
                session = await self._session(request, BIDDER)
            except (NotAuthenticated, NotAllowed):
                return await handler(request)  # the route answers 401 / 403 itself
            lot = deposit["lot"]
            registration = request.app[self._gateway].registration(session.account, lot)
            if (
                registration is not None  # else the route says why (not registered, ...)
                and registration.deposit_amount > 0
                and registration.deposit_state != "EXEMPT"
            ):
                book = request.app[BOOK]
                if await asyncio.to_thread(book.notice_accepted, session.account, lot) is None:
                    return error_response(
                        Conflict(
                            "accept the bidding notice (竞买须知) of this lot before the deposit "
                            "is frozen",
                            code="NOTICE_NOT_ACCEPTED",
                        )
                    )
            return await handler(request)
        registering = _REGISTRATION.fullmatch(request.path)
        response = await handler(request)
        if registering is not None and response.status == 201:
            try:
                session = await self._session(request, BIDDER)
                now = request.app[self._service].now()
                await asyncio.to_thread(
                    request.app[BOOK].add_lot, session.account, registering["lot"], now
                )
            except GavelError as exc:  # registered all the same: the engine
                logger.warning("registration not remembered in My auctions: %s", exc)
        return response


__all__ = ["BOOK", "CLERK", "install_me"]
