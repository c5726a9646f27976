"""The pages of `auction/web/static/` (`/`, `/lot/{lot_id}`, `/register`, `/console`,
`/auditor`, `/my`, the staff pages) and `/static/{name}`: never cached stale
(`Cache-Control: no-cache`), a 404 in the error shape for anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path

from aiohttp import web

from ..errors import NotFound
from .errors import error_response


@dataclass(frozen=True)
class Page:
    """A page: its body in `auction/web/static/` (what follows the site header), its title,
    its scripts there, and the links of its site header."""

    body: str
    title: str
    scripts: tuple[str, ...]
    nav: tuple[str, ...]


#: Links of the site headers: path → words.
LINKS = {
    "/": "Catalogue",
    "/register": "Register to bid",
    "/my": "My auctions",
    "/auditor": "Auditor",
    "/console": "Console",
    "/console/dashboard": "Dashboard",
    "/console/staff": "Staff sessions",
}

PUBLIC = ("/", "/register", "/my", "/auditor")
STAFF = ("/console", "/console/dashboard", "/console/staff")

#: Pages: path → page (docs/protocol.md, the web client).
PAGES = {
    "/": Page("index.html", "Catalogue", ("catalogue.js",), PUBLIC),
    "/lot/{lot_id}": Page("lot.html", "Lot room", ("lot.js",), PUBLIC),
    "/register": Page("register.html", "Register to bid", ("register.js",), PUBLIC),
    "/console": Page(
        "console.html",
        "Auctioneer console",
        ("console.js", "consolefacts.js", "consolesales.js"),
        ("/", "/my", "/auditor", "/console/dashboard"),
    ),
    "/auditor": Page("auditor.html", "Auditor", ("auditor.js",), PUBLIC),
    "/my": Page("my.html", "My auctions", ("my.js",), PUBLIC),
    "/console/dashboard": Page(
        "dashboard.html", "Dashboard", ("dashboard.js",), (*STAFF, "/auditor")
    ),
    "/console/staff": Page("staff.html", "Staff sessions", ("staff.js",), STAFF),
    "/sale/{sale_id}": Page("sale.html", "Sale", ("sale.js",), PUBLIC),
}

#: The same pages by the name of their body, for `/static/{name}`.
BY_NAME = {page.body: (path, page) for path, page in PAGES.items()}

HEAD = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Gavel · {title}</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/style.css">
{scripts}</head>
<body>
  <header class="site">
    <a class="brand" href="/">Gavel</a>
    <nav aria-label="Site">
{links}    </nav>
  </header>
"""

TAIL = """</body>
</html>
"""


def _current(here: bool) -> str:
    return ' aria-current="page"' if here else ""


def render(path: str, page: Page, body: str) -> str:
    """The whole document of `page` served at `path`: the one head and site header of every
    page, then `body`; the header's link to `path` itself is marked as the current page."""
    scripts = "".join(
        f'  <script type="module" src="/static/{escape(name)}"></script>\n' for name in page.scripts
    )
    links = "".join(
        f'      <a href="{escape(href)}"{_current(href == path)}>{escape(LINKS[href])}</a>\n'
        for href in page.nav
    )
    head = HEAD.format(title=escape(page.title), scripts=scripts, links=links)
    return head + body + TAIL


CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


async def read(name: str) -> web.Response:
    """`/static/{name}`: a file of `auction/web/static/`, a page whole (`render`)."""
    suffix = Path(name).suffix
    kind = CONTENT_TYPES.get(suffix)
    entry = resources.files(__package__).joinpath("static", name)
    if kind is None or "/" in name or name.startswith(".") or not entry.is_file():
        return error_response(NotFound("no such page"))
    body = await asyncio.to_thread(entry.read_bytes)
    if name in BY_NAME:
        body = render(*BY_NAME[name], body.decode("utf-8")).encode("utf-8")
    headers = {"Cache-Control": "no-cache"}
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)


async def static_file(request: web.Request) -> web.Response:
    return await read(request.match_info["name"])


def add_pages(app: web.Application) -> None:
    def page(name: str) -> Callable[[web.Request], object]:
        async def handler(request: web.Request) -> web.Response:
            return await read(name)

        return handler

    for path, entry in PAGES.items():
        app.router.add_get(path, page(entry.body))  # type: ignore[arg-type]
    app.router.add_get("/static/{name}", static_file)
