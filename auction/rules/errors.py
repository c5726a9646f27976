"""The rules engine's exception tree and the typed rejection reasons (rules C4).

Two kinds of failure exist in the engine:

* a *rejection*: a well-formed command that the rules refuse (a bid below the minimum, a bid
  after the end, ...). The engine does not raise for these; it returns the unchanged state and
  one `Rejected` event carrying a `RejectReason`, so that the rejection can be logged as evidence.
* an *error*: something a caller did wrong before the rules were even consulted (a command built
  with a float amount, an illegal state-table transition, an invalid configuration). These raise
  a subclass of `RulesError`; adapters translate them into a rejection or an HTTP 400.
"""

from __future__ import annotations

import enum

from ..errors import BadInput, Conflict, GavelError, Malformed, RefusedByRules


class RejectReason(enum.StrEnum):
    """Why a command was refused. The first eight are the ones named by rules C4."""

    LATE = "LATE"
    BELOW_MIN = "BELOW_MIN"
    OFF_GRID = "OFF_GRID"
    NO_DEPOSIT = "NO_DEPOSIT"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    SELF_OUTBID = "SELF_OUTBID"
    SUSPENDED = "SUSPENDED"
    DUPLICATE = "DUPLICATE"
    # Beyond C4: more precise reasons that adapters and bidders need.
    UNKNOWN_LOT = "UNKNOWN_LOT"
    NOT_REGISTERED = "NOT_REGISTERED"
    BARRED = "BARRED"
    NOT_OPEN = "NOT_OPEN"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    WRONG_CURRENCY = "WRONG_CURRENCY"
    JUMP_NEEDS_CONFIRMATION = "JUMP_NEEDS_CONFIRMATION"
    PROXY_DISABLED = "PROXY_DISABLED"
    MAX_LOWER_NOT_ALLOWED = "MAX_LOWER_NOT_ALLOWED"
    RETRACTION_NOT_ALLOWED = "RETRACTION_NOT_ALLOWED"
    UNKNOWN_BID = "UNKNOWN_BID"
    ILLEGAL_STATE = "ILLEGAL_STATE"
    NOT_DUE = "NOT_DUE"
    RESUME_EXPIRED = "RESUME_EXPIRED"
    ASK_TAKEN = "ASK_TAKEN"
    NO_BIDS = "NO_BIDS"
    DWELL_NOT_ELAPSED = "DWELL_NOT_ELAPSED"
    NOT_PERMITTED = "NOT_PERMITTED"
    DUPLICATE_CODE = "DUPLICATE_CODE"
    BALANCE_NOT_DUE = "BALANCE_NOT_DUE"
    DECLINED = "DECLINED"  # rules C14.1: the clerk did not take a held online bid


class RulesError(GavelError):
    """Base of every exception raised by `auction.rules`."""


class CommandError(RulesError, BadInput):
    """A command could not even be built: wrong types, negative or absurd amounts, empty ids.

    `reason` is the rejection the adapter should report (usually `INVALID_AMOUNT`).
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}", code=reason.value)
        self.reason = reason
        self.detail = detail


class ConfigError(RulesError, BadInput):
    """A lot's rules are inconsistent (e.g. a judicial deposit outside 5..20 %)."""


class IllegalTransition(RulesError, Conflict):
    """The state table has no transition for (state, event). Names both."""

    def __init__(self, state: enum.Enum, event: str) -> None:
        super().__init__(f"no transition from {state.value} on {event}")
        self.state = state
        self.event = event


class RelistError(RulesError, RefusedByRules):
    """A relisting plan breaks rules C10 (too early, too late, price cut too deep, ...)."""


class CodecError(RulesError, Malformed):
    """A stored or received command/event could not be decoded."""
