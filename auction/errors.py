"""The one exception tree of the ``auction`` package.

Every error ``auction`` raises on purpose is a :class:`GavelError`. Each carries ``code``, the
stable code a client sees (upper case with underscores, the spelling of the engine's rejection
reasons, e.g. ``UNKNOWN_LOT``), and ``message``, a sentence the person at fault understands.

The tree is split by who is at fault and what they can do about it::

    GavelError                  a fault of ours (a bug, a bad configuration)
    ├── BadInput                the request is understood but its content is refused
    │   ├── Malformed           the request cannot even be read (not JSON, wrong shape)
    │   ├── TooLarge            the request is over a documented size limit
    │   ├── TimedOut            the request did not arrive in time
    │   └── WrongMediaType      the body is not of a type the route takes
    ├── NotAuthenticated        no valid session or credential
    ├── NotAllowed              authenticated, but not allowed to do this
    ├── NotFound                what the request names does not exist (for this caller)
    ├── Conflict                the request contradicts the present state (already done, closed)
    │   └── PaymentDeclined     the payment provider refuses: not enough money
    ├── RefusedByRules          the auction rules or the signed-bid rules refuse the request
    ├── Throttled               a rate or count limit refuses the request for now
    └── Unavailable             a part we need cannot be reached now; retrying later may work

Status codes (HTTP, websocket) are not here: the adapters map these classes to them in one
table (:mod:`auction.web.errors`). A module that needs its own error subclasses the class that
says who is at fault, e.g. ``class KeyInUse(Conflict)``.

Foreign exceptions (``OSError``, SQLAlchemy, aiohttp) are translated once, where they happen,
with ``raise Unavailable(...) from exc``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CODE_SPELLING",
    "BadInput",
    "Conflict",
    "GavelError",
    "Malformed",
    "NotAllowed",
    "NotAuthenticated",
    "NotFound",
    "PaymentDeclined",
    "RefusedByRules",
    "Throttled",
    "TimedOut",
    "TooLarge",
    "Unavailable",
    "WrongMediaType",
]

#: The one spelling of an error code across the server, the documents and the web client.
CODE_SPELLING: re.Pattern[str] = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")


class GavelError(Exception):
    """Base of every error ``auction`` raises on purpose.

    ``code`` is the class's code unless the raiser names a more precise one. The caller should
    answer the client with ``code`` and ``message`` (the adapter picks the status) and log
    ``str(error)``.
    """

    code: str = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def details(self) -> dict[str, Any]:
        """Further members of the error answer a client can act on (none by default)."""
        return {}


class BadInput(GavelError):
    """The request is understood, but what it asks is invalid (a bad amount, an unknown preset).

    Nothing changed; the client must correct the request, not retry it as it is.
    """

    code = "INVALID"


class Malformed(BadInput):
    """The request cannot be read at all: not JSON, not an object, not UTF-8."""

    code = "MALFORMED"


class TooLarge(BadInput):
    """The request is over a documented size limit."""

    code = "TOO_LARGE"


class TimedOut(BadInput):
    """The request's body did not arrive within the documented time."""

    code = "TIMEOUT"


class WrongMediaType(BadInput):
    """The body is not of a media type the route takes."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class NotAuthenticated(GavelError):
    """No session, or one that is unknown or expired: the client must sign in again."""

    code = "UNAUTHENTICATED"


class NotAllowed(GavelError):
    """The caller is known but may not do this (a role, a verification or a key is missing)."""

    code = "FORBIDDEN"


class NotFound(GavelError):
    """What the request names does not exist, or not for this caller."""

    code = "NOT_FOUND"


class Conflict(GavelError):
    """The request contradicts the present state: already done, already taken, lot closed."""

    code = "CONFLICT"


class PaymentDeclined(Conflict):
    """The payment provider refuses to move the money (not enough on the account)."""

    code = "INSUFFICIENT_FUNDS"


class RefusedByRules(GavelError):
    """The auction rules or the signed-bid rules refuse the request; nothing was applied."""

    code = "REFUSED"


class Throttled(GavelError):
    """A limit refuses the request for now (``auction.throttle.Throttled`` says how long)."""

    code = "RATE_LIMITED"


class Unavailable(GavelError):
    """A part the request needs (storage, ledger, video, another instance) cannot be reached
    now; the client may retry later."""

    code = "UNAVAILABLE"
