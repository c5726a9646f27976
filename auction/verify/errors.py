"""The errors of :mod:`auction.verify`: an entry that fails a step of the pipeline, a history
that breaks the rules, a signed bid that breaks the signed-bid rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..errors import GavelError, RefusedByRules

if TYPE_CHECKING:
    from .steps import Step


class ReplayError(GavelError):
    """The recorded history does not follow the rules (or cannot be read as a history).

    `seq` is the ledger entry at fault, `lot` the lot concerned (if known).
    """

    def __init__(self, seq: int, lot: str | None, message: str) -> None:
        where = f"entry {seq}" + (f" (lot {lot})" if lot else "")
        super().__init__(f"{where}: {message}")
        self.seq = seq
        self.lot = lot


class SignedBidError(RefusedByRules):
    """A bid request, an identity entry or a registration breaks the signed-bid rules.

    `reason` is one of the constants below (stable, for an API answer); nothing was applied.
    """

    NO_REQUEST: Final = "NO_REQUEST"
    NOT_A_BID: Final = "NOT_A_BID"
    MALFORMED: Final = "MALFORMED"
    MISMATCH: Final = "MISMATCH"
    NO_IDENTITY: Final = "NO_IDENTITY"
    EXPIRED: Final = "ATTESTATION_EXPIRED"
    BAD_SIGNATURE: Final = "BAD_SIGNATURE"
    NOT_A_PROVIDER: Final = "NOT_A_PROVIDER"
    BAD_ATTESTATION: Final = "ATTESTATION_INVALID"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EntryRejected(GavelError):
    """An entry fails a step of the verification pipeline (:mod:`auction.verify.pipeline`).

    ``step`` is the failing :class:`~auction.verify.steps.Step`, ``seq`` the entry at fault,
    ``lot`` the lot concerned (replay failures), ``message`` what is wrong in plain words. The
    auditor records it at its step; a notary refuses the checkpoint naming ``step.label``.
    """

    def __init__(self, step: Step, seq: int, message: str, *, lot: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.seq = seq
        self.lot = lot

    def __str__(self) -> str:
        return f"step {self.step.label}, entry {self.seq}: {self.message}"
