"""The OpenAPI document (`auction/web/openapi.json`, served at `/api/openapi.json`) against
the code: every route of the application is documented and every documented route exists,
and real requests and answers of the main flows validate against it (`openapi-core`)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse
from repo_kit import REPO
from server_kit import Server, add_lots, new_bidder, running_server, wait_open

from auction.accounts import Role
from auction.cluster import ClusterSettings
from auction.web import Settings, create_app
from auction.web.openapi import OPENAPI_PATH, openapi_document
from auction.web.pages import PAGES

#: Not REST: the pages, their static files, the video player's files and the websocket
#: (docs/protocol.md §2).
NOT_REST = {*PAGES, "/static/{name}", "/ws"}


def spec() -> dict[str, Any]:
    return dict(json.loads(openapi_document()))


def application_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route, `{name:regex}` written `{name}`."""
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        assert route.resource is not None
        info = route.resource.get_info()
        path = info.get("formatter") or info.get("path")
        assert isinstance(path, str), info
        path = re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", path)
        if path not in NOT_REST:
            routes.add((route.method.lower(), path))
    return routes


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    cluster = ClusterSettings(instance="a", url="http://127.0.0.1:1", redis_url=None)
    apps = [
        create_app(Settings(data_dir=tmp_path / "d", demo=False)),
        create_app(Settings(data_dir=tmp_path / "d", demo=False, cluster=cluster)),
    ]
    served: set[tuple[str, str]] = set()
    for app in apps:
        served |= application_routes(app)
    documented = {
        (method, path)
        for path, operations in spec()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert served - documented == set(), "routes missing from auction/web/openapi.json"
    assert documented - served == set(), "documented routes the application does not have"
    assert len(served) >= 35


def test_the_document_is_valid_and_the_docs_copy_is_the_same_file() -> None:
    OpenAPI.from_dict(spec())  # raises if not a valid OpenAPI 3.1 document
    assert (REPO / "docs" / "openapi.json").read_bytes() == openapi_document()
    for path, operations in spec()["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("operationId"), (method, path)


class Checked:
    """An HTTP client whose every request and answer is validated against the document."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.openapi = OpenAPI.from_dict(spec())
        self.checked: list[tuple[str, str, int]] = []

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        pattern: str | None = None,
        *,
        refused: bool = False,
    ) -> tuple[int, Any]:
        """`refused`: a request the document itself says is refused (no session); only the
        answer is validated."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(
            method, self.url + path, data=data, headers=headers
        ) as response:
            raw = await response.read()
            status = response.status
            content_type = response.content_type
            answer_headers = dict(response.headers)
        request = MockRequest(
            self.url,
            method.lower(),
            path,  # openapi-core finds the template and its parameters itself
            headers=headers,
            data=data,
        )
        if not refused:
            self.openapi.validate_request(request)
        self.openapi.validate_response(
            request, MockResponse(raw, status, answer_headers, content_type)
        )
        self.checked.append((method, pattern or path, status))
        return status, json.loads(raw) if content_type == "application/json" else raw


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        yield running


async def test_real_flows_validate_against_the_document(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        api = Checked(http, server.url)
        status, document = await api.call("GET", OPENAPI_PATH)
        assert status == 200 and document == spec()
        assert (await api.call("GET", "/healthz"))[0] == 200
        await add_lots(server, open_in=0.2)
        status, catalogue = await api.call("GET", "/api/lots")
        assert status == 200 and {lot["lot_id"] for lot in catalogue["lots"]} == {"watch", "flat"}
        status, missing = await api.call("GET", "/api/lots/nothing", pattern="/api/lots/{lot}")
        assert status == 404 and missing["error"]["code"] == "UNKNOWN_LOT"
        # an account, its identity, a registration with a deposit
        status, refused = await api.call("POST", "/api/accounts", {"public_key": "short"})
        assert status == 422 and refused["error"]["code"] == "MALFORMED"
        bidder = await new_bidder(http, server.url)
        status, verified = await api.call(
            "POST",
            "/api/identity",
            {
                "name": "张三丰",
                "document_type": "PRC_RESIDENT_ID",
                "document": "11010519491231002X",
            },
            bidder.session,
        )
        assert status == 201 and verified["verified"] is True, verified
        await wait_open(server, "watch", "flat")
        status, registration = await api.call(
            "POST",
            "/api/lots/flat/registrations",
            {},
            bidder.session,
            "/api/lots/{lot}/registrations",
        )
        assert status == 201 and registration["deposit"]["state"] == "REQUIRED"
        status, notice = await api.call(
            "POST", "/api/lots/flat/notice", {"accept": True}, bidder.session
        )
        assert status == 201 and notice["accepted"] is True
        status, hold = await api.call(
            "POST",
            "/api/lots/flat/deposit",
            {"idempotency_key": "dep-1"},
            bidder.session,
            "/api/lots/{lot}/deposit",
        )
        assert status == 202 and hold["state"] in ("PENDING", "FROZEN")
        status, me = await api.call("GET", "/api/me", token=bidder.session)
        assert status == 200 and me["registrations"][0]["lot"] == "flat"
        assert (await api.call("GET", "/api/me", refused=True))[0] == 401
        status, mine = await api.call("GET", "/api/me/lots", token=bidder.session)
        assert status == 200 and [lot["lot"] for lot in mine["lots"]] == ["flat"]
        # the console and the public views of the lot
        auctioneer = await server.staff(Role.AUCTIONEER)
        status, paused = await api.call(
            "POST",
            "/api/console/lots/watch/commands",
            {"type": "Pause", "reason": "technical fault"},
            auctioneer,
            "/api/console/lots/{lot}/commands",
        )
        assert status == 200 and paused["lot"]["status"] == "PAUSED"
        status, bids = await api.call("GET", "/api/lots/watch/bids", pattern="/api/lots/{lot}/bids")
        assert status == 200 and bids["bids"] == []
        status, bidders = await api.call(
            "GET", "/api/console/lots/flat/bidders", token=auctioneer,
            pattern="/api/console/lots/{lot}/bidders",
        )  # fmt: skip
        assert status == 200 and len(bidders["bidders"]) == 1
        status, facts = await api.call("GET", "/api/lots/watch/facts")
        assert status == 200 and facts["lot"] == "watch"
        status, summary = await api.call("GET", "/api/facts")
        assert status == 200 and set(summary["lots"]) == {"watch", "flat"}
        assert (await api.call("GET", "/api/words"))[0] == 200
        assert await server.service.settle(10)
        status, auditor = await api.call("GET", "/api/auditor")
        assert status == 200 and auditor["log_size"] > 0
        status, receipt = await api.call("GET", "/log/receipt/0", pattern="/log/receipt/{seq}")
        assert status == 200 and receipt["seq"] == 0
    assert len(api.checked) == 20


def test_an_answer_that_drifted_from_the_document_fails() -> None:
    openapi = OpenAPI.from_dict(spec())
    request = MockRequest("http://127.0.0.1", "get", "/api/lots/watch")
    lot = {"now_us": 1, "lot": {"lot_id": "watch"}}  # a LotView without its fields
    with pytest.raises(OpenAPIError):
        openapi.validate_response(request, MockResponse(json.dumps(lot).encode(), 200))
    refusal = {"error": {"code": "lower", "message": "x"}}  # codes are upper case
    with pytest.raises(OpenAPIError):
        openapi.validate_response(request, MockResponse(json.dumps(refusal).encode(), 404))
