"""The exceptions of `auction.service` (STYLE rule 5)."""

from __future__ import annotations

from ..errors import Conflict, GavelError, RefusedByRules, Unavailable


class ServiceError(GavelError):
    """Base of every exception raised by `auction.service` (and the demo built on it).

    Storage failures reach callers as `auction.storage.StorageError`, engine misuse as
    `auction.rules.RulesError`; rule refusals are never exceptions but `Rejected` events.
    """


class ServiceClosed(ServiceError, Unavailable):
    """The service is not running (not started yet, or stopping): the command was not taken.

    A command whose lot stopped before it was stored also gets this error; its outcome is then
    unknown to the caller, who must read the lot again before retrying.
    """


class LotExists(ServiceError, Conflict):
    """`add_lot` with an id that is already served."""


class NotWriter(ServiceError, Conflict):
    """This instance does not write that lot now (another instance of the cluster does)."""


class RequestRefused(ServiceError, RefusedByRules):
    """A bid's signed request (or a registration's identity) breaks the signed-bid rules
    (`auction.verify.IdentityBook`): the command was neither applied nor logged. `reason` is
    a stable code (`SignedBidError.BAD_SIGNATURE`, `NO_REQUEST`, `NO_IDENTITY`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}", code=reason)
        self.reason = reason
        self.message = message
