"""The auditor's errors (STYLE rule 5), split by what the caller can conclude.

:class:`AuditFailure` is the one base; :class:`AuditError`, :class:`ReceiptError` and
:class:`EvidenceError` are verdicts (something does not verify: exit 1); :class:`NoVerdict`
and its :class:`SourceError`, :class:`MissingFileError`, :class:`OversizeError` mean
nothing was concluded (exit 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import GavelError

if TYPE_CHECKING:
    from ..verify.steps import Step as AuditStep
    from .report import AuditReport


class AuditFailure(GavelError):
    """Base of every error this module raises; adapters catch this one only.

    ``exit_code`` is what a CLI should exit with: 1 when the ledger (or receipt, or pair of
    views) failed verification, 2 when no verdict could be reached.
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoVerdict(AuditFailure):
    """The audit could not run to a verdict (say nothing about the log's validity)."""

    exit_code = 2


class SourceError(NoVerdict):
    """The source could not be read (I/O error, network, refused path): no verdict."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingFileError(SourceError):
    """A file of the export layout is absent (no such file, HTTP 404).

    :func:`verify_ledger` turns it into an :class:`AuditError` at the step that needed it.
    """


class OversizeError(SourceError):
    """A file is larger than the layout allows for it; read no further."""


class AuditError(AuditFailure):
    """Verification failed: the first failing ``step``, the entry ``seq`` (``None`` when the
    failure concerns the log as a whole), the ``lot`` (replay failures) and a message.

    ``report`` is the report up to the failure (set by :func:`verify_ledger`): print it with
    :meth:`AuditReport.to_json` for a machine-readable verdict.
    """

    def __init__(
        self,
        step: AuditStep,
        seq: int | None,
        message: str,
        *,
        lot: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.seq = seq
        self.lot = lot
        self.path = path  # the export's file at fault (step 10), e.g. "receipts/12.entry"
        self.report: AuditReport | None = None

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f", {self.path}"
        elif self.seq is not None:
            where = f", entry {self.seq}" + (f" (lot {self.lot})" if self.lot else "")
        elif self.lot:
            where = f", lot {self.lot}"
        return f"audit failed at step {self.step.label}{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON-ready values."""
        value: dict[str, Any] = {
            "step": int(self.step),
            "name": self.step.title,
            "seq": self.seq,
            "lot": self.lot,
            "message": self.message,
        }
        if self.path is not None:
            value["file"] = self.path
        return value


class ReceiptError(AuditFailure):
    """A receipt failed at ``step`` (``"<number> <name>"``: chain's six receipt steps, then
    ``"7 actor"``), or its files could not be used."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step

    def __str__(self) -> str:
        return f"receipt failed at step {self.step}: {self.message}"


class EvidenceError(AuditFailure):
    """An equivocation evidence file does not prove what it claims (or two views could not be
    compared: different logs, a view whose own data is inconsistent)."""
