"""Fuzzing every route of the server: no input makes any route answer 500.

The routes are read from the aiohttp application's router (`routes_of(app)`), so a route added
later is fuzzed without touching this file. A real server (`create_app`, SQLite, two lots, a
bidder, staff sessions of every role) runs on its own loop in a thread; each case is one raw
HTTP/1.1 request over a socket (no client-side normalisation) with one hostile shape:

* bodies: nesting 9 to 50,000 deep, lone surrogates (escaped `"\\ud800"` and as raw UTF-8
  bytes), non-ASCII digits (`"١٢٣"`, and as a bare JSON number), huge integers (`10**19`,
  4,001 digits, `1e400`, `NaN`), every field given every JSON type, non-object bodies,
  invalid UTF-8, a byte-order mark, oversize bodies (declared, and chunked without a length),
  and a valid body mutated byte by byte;
* path parameters: lone surrogates and invalid UTF-8 percent-encoded, non-ASCII digits,
  4,000-digit numbers, `../`, NUL, 300-character ids.

Each request goes with no session or with a session of each role, so that every route's body
is read past its authorization. Checks: the status is below 500, and an `/api/` refusal is the
documented `{"error": {"code", "message"}}` JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from fuzz_kit import Check, bounded, mutated, run_fuzzer
from hypothesis import strategies as st
from server_kit import add_lots, new_bidder, running_server, wait_open

from auction.accounts import Role
from auction.video import VideoSettings
from auction.web import Settings, create_app
from streaming.model import Rendition, TestPatternSource

# --------------------------------------------------------------------------------------------
# The routes


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # with `{name}` placeholders

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(
            part[1:-1].split(":", 1)[0]
            for part in self.path.split("/")
            if part.startswith("{") and part.endswith("}")
        )


def routes_of(app: web.Application) -> list[Route]:
    """Every (method, path) the application's router serves (HEAD is GET's twin: left out)."""
    found: set[Route] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path")
        if path is None:  # a static directory or a sub-application: its prefix
            prefix = info.get("prefix")
            if prefix is not None:
                found.add(Route("GET", str(prefix) + "/{rest}"))
            continue
        for route in resource:
            if route.method not in ("HEAD", "*"):
                found.add(Route(route.method, str(path)))
    return sorted(found, key=lambda route: (route.path, route.method))


#: A valid body for the routes that take one (a route not listed gets `{"x": 1}`).
SEEDS: dict[str, dict[str, Any]] = {
    "/api/accounts": {"public_key": "A" * 43 + "="},
    "/api/identity": {"name": "张三", "document_type": "PRC_RESIDENT_ID", "document": "1" * 18},
    "/api/lots/{lot}/deposit": {"idempotency_key": "k-1"},
    "/api/lots/{lot}/notice": {"accept": True},
    "/api/sessions": {"code": "ABCD-EFGH-IJKL-MNOP-QRST"},
    "/api/console/lots": {
        "preset": "ENGLISH_TIMED",
        "lot": "fz-1",
        "title": "A lot",
        "sale": "s-1",
        "sale_title": "A sale",
        "parameters": {
            "start_price": 100,
            "start_at": 1_795_000_000_000_000,
            "end_at": 1_795_000_600_000_000,
            "currency": "USD",
            "legal_timezone": "Asia/Shanghai",
        },
    },
    "/api/console/lots/{lot}/commands": {"type": "Pause", "reason": "fault", "basis": "b"},
    "/api/court/lots/{lot}/orders": {"type": "Pause", "reason": "order", "basis": "Art 28"},
    "/api/lots/{lot_id}/stream/offer": {"sdp": "v=0\r\nm=video 9 UDP 96\r\n", "type": "offer"},
    "/api/lots/{lot_id}/stream/publish": {"sdp": "v=0\r\nm=video 9 UDP 96\r\n", "type": "offer"},
}

# --------------------------------------------------------------------------------------------
# The shapes

SURROGATE = "\ud800"
ARABIC_DIGITS = "\u0661\u0662\u0663"  # ١٢٣
FULLWIDTH_DIGITS = "\uff11\uff12\uff13"  # １２３
JSON_TYPES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x" * 300,
    [],
    [1, 2],
    {},
    {"a": "b"},
    SURROGATE,
    ARABIC_DIGITS,
    FULLWIDTH_DIGITS,
    10**19,
    -(10**30),
    "\x1b[31mred\u202e",
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")  # ensure_ascii: surrogates as \ud800 escapes


def _deep(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + "1" + closer * depth).encode()


def fixed_bodies(seed: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The named body shapes every body-taking route gets (the deterministic grid)."""
    text = json.dumps(seed)
    first = next(iter(seed))
    shapes: list[tuple[str, bytes]] = [
        ("valid", _dumps(seed)),
        ("deep 9", _deep(9)),
        ("deep 3000", _deep(3000)),
        ("deep 50000 objects", _deep(50_000, '{"a":')),
        ("deep inside a field", _dumps(seed)[:-1] + b', "z": ' + _deep(20) + b"}"),
        ("lone surrogate escaped", _dumps(seed | {first: SURROGATE})),
        ("lone surrogate key", _dumps(seed | {SURROGATE: 1})),
        (
            "surrogate as UTF-8 bytes",
            _dumps(seed).replace(b"{", b'{"k": "\xed\xa0\x80",', 1),
        ),
        ("non-ASCII digits", _dumps(seed | {first: ARABIC_DIGITS})),
        ("non-ASCII bare number", text.replace("{", '{"n": ' + ARABIC_DIGITS + ",", 1).encode()),
        ("fullwidth bare number", text.replace("{", '{"n": ' + FULLWIDTH_DIGITS + ",", 1).encode()),
        ("19-digit integer", _dumps(seed | {first: 10**19})),
        ("4001-digit integer", text.replace("{", '{"n": 1' + "0" * 4000 + ",", 1).encode()),
        ("1e400", text.replace("{", '{"n": 1e400,', 1).encode()),
        ("NaN", text.replace("{", '{"n": NaN,', 1).encode()),
        ("array", b"[1, 2]"),
        ("string", b'"hello"'),
        ("number", b"12"),
        ("null", b"null"),
        ("invalid UTF-8", b'{"a": "\xff\xfe"}'),
        ("byte-order mark", b"\xef\xbb\xbf" + _dumps(seed)),
        ("UTF-16", text.encode("utf-16")),
        ("truncated", _dumps(seed)[:-3]),
        ("NUL in text", _dumps(seed | {first: "a\x00b"})),
        ("control characters", _dumps(seed | {first: "\x1b[2J\u202eevil"})),
        ("oversize", b'{"a": "' + b"x" * 20_000 + b'"}'),
    ]
    for name in seed:
        for value in JSON_TYPES:
            shapes.append((f"{name} = {json.dumps(value)[:20]}", _dumps(seed | {name: value})))
        if isinstance(seed[name], dict):
            for inner in seed[name]:
                for value in (SURROGATE, ARABIC_DIGITS, 10**19, 10**18, 0, -1, "1", [], None):
                    shapes.append(
                        (
                            f"{name}.{inner} = {json.dumps(value)[:20]}",
                            _dumps(seed | {name: seed[name] | {inner: value}}),
                        )
                    )
    return shapes


#: Percent-encoded path parameter values (the known good one is added per route).
PATH_VALUES = (
    "%ED%A0%80",  # a surrogate, UTF-8 encoded
    "%FF%FE",
    "%D9%A1%D9%A2",  # ١٢
    "%EF%BC%91",  # １
    "%C2%B2",  # ² (a digit to str.isdigit, not to int)
    "9" * 4000,
    "-1",
    "..%2F..%2Fetc%2Fpasswd",
    "%2E%2E",
    "a%00b",
    "%1B%5B2J",
    "x" * 300,
    "%E2%80%AE",  # right-to-left override
)


# --------------------------------------------------------------------------------------------
# The server and the requests


@dataclass
class Target:
    url: str
    routes: list[Route]
    values: dict[str, str]  # path parameter name -> a value that exists
    sessions: dict[str, str]  # "bidder", "auctioneer", ... -> bearer token


class _ServerThread:
    """`create_app` with two lots, a bidder and a session of every role, on its own loop in a
    thread, so that synchronous Hypothesis checks can talk to it over real sockets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.target: Target | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-rest", daemon=True)

    def __enter__(self) -> Target:
        self._thread.start()
        if not self._ready.wait(60) or self.target is None:
            raise RuntimeError("the server did not start") from self._error
        return self.target

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import aiohttp

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        video = VideoSettings(  # every open lot streams: the offers reach the video's parser
            recordings_dir=self.folder / "recordings",
            lots="all",
            pattern=TestPatternSource(width=160, height=90, fps=5, noise=0),
            renditions=(Rendition("90p", 160, 90, 100_000),),
            default_rendition="90p",
            loopback_only=True,
        )
        async with running_server(self.folder, video=video) as server:
            await add_lots(server, open_in=0.1)
            await wait_open(server, "watch")
            async with aiohttp.ClientSession() as http:
                bidder = await new_bidder(http, server.url)
            sessions = {"bidder": bidder.session}
            for role in Role:
                if role is not Role.BIDDER:
                    sessions[role.value] = await server.staff(role)
            values = {
                "lot": "watch",
                "lot_id": "watch",
                "account": bidder.account,
                "name": "app.js",
                "seq": "0",
                "path": "0/000",
                "rest": "player.js",
                "bid": "1",
            }
            self.target = Target(server.url, routes_of(server.app), values, sessions)
            self._ready.set()
            await self._stop.wait()


def request(
    url: str,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
) -> tuple[int, bytes]:
    """One raw HTTP/1.1 request; the status and the body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part)
            for part in (body[i : i + 4096] for i in range(0, len(body), 4096))
        )
        payload += b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT", "PATCH", "DELETE"):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        try:
            connection.sendall(head + payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading an oversize body
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                chunks.append(chunk)
    response = b"".join(chunks)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), response[:200]
    _, _, answer = rest.partition(b"\r\n\r\n")
    return int(status_line.split(b" ", 2)[1]), answer


def fill(route: Route, values: dict[str, str], override: tuple[str, str] | None = None) -> str:
    path = route.path
    for name in route.parameters:
        value = values.get(name, "x")
        if override is not None and override[0] == name:
            value = override[1]
        start = path.index("{" + name)
        path = path[:start] + value + path[path.index("}", start) + 1 :]
    return quote(path, safe="/%:@!$&'()*+,;=-._~")


@dataclass(frozen=True, slots=True)
class Case:
    route: Route
    shape: str
    body: bytes = b""
    path_value: tuple[str, str] | None = None
    session: str | None = None
    chunked: bool = False


def check_answer(case: Case, status: int, answer: bytes) -> None:
    where = f"{case.route.method} {case.route.path} [{case.shape}] as {case.session}"
    assert status < 500, f"{where}: {status} {answer[:300]!r}"
    if case.route.path.startswith("/api/") and status >= 400:
        try:
            error = json.loads(answer)["error"]
        except (ValueError, KeyError, TypeError) as exc:
            shown = answer[:200]
            raise AssertionError(f"{where}: {status} not the JSON error shape: {shown!r}") from exc
        assert isinstance(error["code"], str) and error["code"], where
        assert isinstance(error["message"], str) and error["message"], where


def run_case(target: Target, case: Case) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if case.session is not None:
        headers["Authorization"] = f"Bearer {target.sessions[case.session]}"
    path = fill(case.route, target.values, case.path_value)
    with bounded(10.0, f"{case.route.method} {case.route.path}"):
        status, answer = request(
            target.url, case.route.method, path, case.body, headers, chunked=case.chunked
        )
    check_answer(case, status, answer)
    return status, answer


def takes_body(route: Route) -> bool:
    return route.method in ("POST", "PUT", "PATCH", "DELETE")


def grid(target: Target) -> list[Case]:
    """The deterministic cases: every body shape for every body-taking route (under every
    session), every path shape for every route with parameters."""
    cases: list[Case] = []
    roles = [None, *target.sessions]
    for route in target.routes:
        for name in route.parameters:
            for value in PATH_VALUES:
                for session in roles:
                    cases.append(Case(route, f"{name}={value[:12]}", b"", (name, value), session))
        if not takes_body(route):
            continue
        seed = SEEDS.get(route.path, {"x": 1})
        for shape, body in fixed_bodies(seed):
            for session in roles:
                cases.append(Case(route, shape, body, None, session))
        cases.append(
            Case(route, "oversize chunked", b"[" + b" " * 40_000 + b"]", None, "auctioneer", True)
        )
    return cases


def cases(target: Target) -> st.SearchStrategy[Case]:
    """Random cases: a route, a session, and a shape or a mutated valid body."""

    @st.composite
    def one(draw: st.DrawFn) -> Case:
        route = draw(st.sampled_from(target.routes))
        session = draw(st.sampled_from([None, *target.sessions]))
        if route.parameters and draw(st.booleans()):
            name = draw(st.sampled_from(route.parameters))
            value = draw(
                st.sampled_from(PATH_VALUES)
                | st.text(max_size=20).map(
                    lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
                )
            )
            return Case(route, f"{name}={value[:12]}", b"", (name, value), session)
        seed = SEEDS.get(route.path, {"x": 1})
        if draw(st.booleans()):
            shape, body = draw(st.sampled_from(fixed_bodies(seed)))
            return Case(route, shape, body, None, session)
        body = draw(mutated((_dumps(seed),)))
        return Case(route, "mutated", body, None, session)

    return one()


@contextlib.contextmanager
def rest_server() -> Iterator[Target]:
    folder = Path(tempfile.mkdtemp(prefix="gavel-fuzz-rest-"))
    try:
        with _ServerThread(folder) as target:
            yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _with_cases() -> Iterator[tuple[st.SearchStrategy[Any], Check]]:
    with rest_server() as target:
        yield cases(target), lambda case: run_case(target, case) and None


CONTEXT_FUZZERS: dict[str, Callable[[], Any]] = {"http every route": _with_cases}


# --------------------------------------------------------------------------------------------
# The tests


def test_routes_come_from_the_router(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, demo=False))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/api/brand-new/{thing}", handler)
    routes = routes_of(app)
    assert Route("POST", "/api/brand-new/{thing}") in routes
    assert Route("POST", "/api/console/lots") in routes
    assert Route("POST", "/api/lots/{lot_id}/stream/offer") in routes
    assert Route("GET", "/log/receipt/{seq}") in routes
    assert len(routes) >= 25
    assert {route.parameters for route in routes} >= {("lot",), ("seq",), ("lot_id",)}


def test_every_route_every_shape_no_500() -> None:
    with rest_server() as target:
        everything = grid(target)
        statuses: dict[int, int] = {}
        for case in everything:
            status, _ = run_case(target, case)
            statuses[status] = statuses.get(status, 0) + 1
        body_routes = [route for route in target.routes if takes_body(route)]
        print(
            f"\n{len(target.routes)} routes ({len(body_routes)} with a body), "
            f"{len(everything)} cases, statuses {dict(sorted(statuses.items()))}"
        )
        assert len(body_routes) >= 9
        assert 500 not in statuses
        # the shapes reached the body reader: its typed refusals were answered
        assert statuses.get(400, 0) > 100 and statuses.get(413, 0) > 0


def test_fuzz_every_route() -> None:
    with _with_cases() as pair:
        run_fuzzer({"rest": pair}, "rest", 400)
