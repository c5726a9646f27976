"""The headers every response carries (docs/protocol.md §5): a Content-Security-Policy
(pages: only this origin's scripts, styles, images and connections, no inline script,
no framing; everything else: nothing at all), `X-Content-Type-Options: nosniff`,
`Referrer-Policy: no-referrer`, no framing, and `Cache-Control: no-store` on every
answer to a request that carried credentials (`Authorization`).
"""

from __future__ import annotations

import re

from aiohttp import web

#: The pages' policy: this origin only, no inline or evaluated script, no plugins, no framing.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'{ws}; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


#: Everything that is not a page (JSON, text, tiles, video) may load nothing.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"


_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The headers every response carries (docs/protocol.md §5)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if response.content_type == "text/html":
        host = request.host
        ws = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
        headers["Content-Security-Policy"] = PAGE_POLICY.format(ws=ws)
    else:
        headers.setdefault("Content-Security-Policy", DATA_POLICY)
    if "Authorization" in request.headers:
        headers["Cache-Control"] = "no-store"
