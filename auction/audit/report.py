"""What :func:`~auction.audit.verify_ledger` concludes: the audit report."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..verify.steps import Step as AuditStep

if TYPE_CHECKING:
    from .errors import AuditError


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_ledger` established. Fields of a step that did not pass are empty.

    :meth:`to_json` is deterministic (sorted keys, no wall-clock time): two runs over the
    same source give the same bytes.
    """

    source: str
    origin: str | None
    log_key: str | None
    checkpoint_size: int | None
    checkpoint_root: bytes | None
    history: tuple[int, ...] | None  # sizes of the checkpoint history; None: unavailable
    entries: int
    entry_types: Mapping[str, int]
    lots: Mapping[str, Mapping[str, Any]]
    commands: int
    rejected: int
    sales: int
    witnesses: tuple[str, ...]
    cosigners: tuple[str, ...]
    quorum: str | None
    steps_passed: tuple[AuditStep, ...]
    notes: tuple[str, ...]
    failure: AuditError | None = None
    idv_entries: int = 0  # identity attestations verified (step 8)
    bid_signatures: int = 0  # bidders' signed requests verified (step 8)

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        failed = self.failure.step if self.failure else None
        history = "unavailable"
        if self.history is not None:
            verified = AuditStep.CONSISTENCY in self.steps_passed
            history = "verified" if verified else "not verified"
        steps = []
        for step in AuditStep:
            status = "passed" if step in self.steps_passed else "not checked"
            if step == failed:
                status = "failed"
            steps.append({"step": int(step), "name": step.title, "status": status})
        root = base64.b64encode(self.checkpoint_root).decode() if self.checkpoint_root else None
        return {
            "ok": self.ok,
            "source": self.source,
            "origin": self.origin,
            "log_key": self.log_key,
            "checkpoint": {"size": self.checkpoint_size, "root": root},
            "checkpoints": {
                "history": history,
                "sizes": list(self.history or ()),
            },
            "entries": self.entries,
            "entry_types": dict(self.entry_types),
            "lots": {lot: dict(outcome) for lot, outcome in self.lots.items()},
            "commands": self.commands,
            "rejected": self.rejected,
            "sales": self.sales,
            "idv_entries": self.idv_entries,
            "bid_signatures_verified": self.bid_signatures,
            "notaries": {
                "policy": list(self.witnesses),
                "cosigned_latest": list(self.cosigners),
                "quorum": self.quorum,
            },
            "steps": steps,
            "notes": list(self.notes),
            "failure": self.failure.to_dict() if self.failure else None,
        }

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys, two-space indent, final newline)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
