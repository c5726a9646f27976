"""The web adapter of `auction.throttle`: the routes that write (account creation, identity
checks, registrations, deposits) pass the client address's and the session's token buckets
before their handler runs, and a `Throttled` refusal — from a bucket or from the gateway's
hourly bound — is answered `429` with `{"error": {"code", "message", "retry_after"}}` and a
`Retry-After` header (docs/protocol.md §1.1). Nothing a refused request asked for is written.

The client address is the TCP peer's (`request.remote`): a `X-Forwarded-For` header is not
trusted, since any client can send one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..throttle import RequestLimiter, WriteKind, WriteLimits

#: (method, route) → the kind of write it is.
WRITE_ROUTES: Mapping[tuple[str, str], WriteKind] = {
    ("POST", "/api/accounts"): WriteKind.ACCOUNT,
    ("POST", "/api/identity"): WriteKind.IDENTITY,
    ("POST", "/api/lots/{lot}/registrations"): WriteKind.REGISTRATION,
    ("POST", "/api/lots/{lot}/deposit"): WriteKind.DEPOSIT,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _session_key(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # the bucket is keyed by a digest: the table holds no usable token
    return hashlib.sha256(token.strip().encode()).hexdigest()[:32]


def write_limits_middleware(limits: WriteLimits, clock: Callable[[], int]) -> Middleware:
    """The middleware: limit the write routes (inside `api.json_errors`, which answers a
    `Throttled` as 429)."""
    limiter = RequestLimiter(limits)

    @web.middleware
    async def limit_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        kind = None if route is None else WRITE_ROUTES.get((request.method, route.canonical))
        if kind is not None:  # a refusal raises `Throttled`: `api.json_errors` answers it
            limiter.check(kind, request.remote or "unknown", _session_key(request), clock())
        return await handler(request)

    return limit_writes


__all__ = ["WRITE_ROUTES", "write_limits_middleware"]
