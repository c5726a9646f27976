"""The one table from ``auction``'s errors to HTTP statuses, and the error answer's shape.

Handlers raise :class:`auction.errors.GavelError` subclasses; only this module decides the
status. Every error answer is ``{"error": {"code": …, "message": …}}`` (docs/protocol.md §1).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import (
    BadInput,
    Conflict,
    GavelError,
    Malformed,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    PaymentDeclined,
    RefusedByRules,
    Throttled,
    TimedOut,
    TooLarge,
    Unavailable,
    WrongMediaType,
)

__all__ = [
    "HTTP_STATUS",
    "error_body",
    "error_from_status",
    "error_response",
    "http_exception_response",
    "http_status",
]

#: The HTTP status of each kind of error; a subclass answers its nearest listed ancestor's.
HTTP_STATUS: dict[type[GavelError], int] = {
    Malformed: 400,
    NotAuthenticated: 401,
    NotAllowed: 403,
    PaymentDeclined: 402,
    NotFound: 404,
    TimedOut: 408,
    Conflict: 409,
    TooLarge: 413,
    WrongMediaType: 415,
    BadInput: 422,
    RefusedByRules: 422,
    Throttled: 429,
    Unavailable: 503,
    GavelError: 500,
}

_NO_STORE = {"Cache-Control": "no-store"}


def http_status(error: GavelError) -> int:
    """The status to answer ``error`` with (its nearest class in :data:`HTTP_STATUS`)."""
    for cls in type(error).__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_body(error: GavelError) -> dict[str, Any]:
    """``{"error": {"code", "message"}}`` (and ``retry_after`` for a throttled request)."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int):
        body["retry_after"] = retry_after
    body.update(error.details())
    return {"error": body}


def error_response(error: GavelError) -> web.Response:
    """The JSON answer for ``error``, never cached; ``Retry-After`` when throttled."""
    headers = dict(_NO_STORE)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    return web.json_response(error_body(error), status=http_status(error), headers=headers)


#: The code of an aiohttp refusal raised before a handler ran (no route, wrong method).
_HTTP_EXCEPTION_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}


def http_exception_response(exc: web.HTTPException) -> web.Response:
    """An aiohttp refusal (`web.HTTPNotFound`, ...) in the error answer's shape."""
    code = _HTTP_EXCEPTION_CODES.get(exc.status, "HTTP_ERROR")
    return web.json_response(
        {"error": {"code": code, "message": exc.reason}}, status=exc.status, headers=_NO_STORE
    )


def error_from_status(status: int, code: str, message: str) -> GavelError:
    """The error another instance answered with `status` (the table read backwards), for
    passing its refusal on unchanged."""
    for cls, listed in HTTP_STATUS.items():
        if listed == status:
            return cls(message, code=code)
    return Unavailable(message, code=code)
