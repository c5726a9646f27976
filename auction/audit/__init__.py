"""The auditor: check a whole exported ledger, a receipt, or two views of one log.

Offline by default (ledger spec §5). The pieces, each raising only :class:`AuditFailure`
subclasses:

- sources (STYLE rule 10): :class:`LedgerSource` is what the auditor reads; it is either an
  export directory (:class:`DirectorySource`, bounded reads confined to the directory) or a
  server's ``/log/`` (:class:`HttpSource`, bounded responses). A missing file is a
  :class:`MissingFileError`, which the pipeline turns into a verdict at the step that needed
  the file; any other read failure is a :class:`SourceError` and gives no verdict at all.
- :func:`verify_ledger`: nine numbered, fail-closed steps (:class:`AuditStep`) over every
  entry and every checkpoint. It returns an :class:`AuditReport` or raises
  :class:`AuditError` naming the first failing step, the entry ``seq`` (``None`` for a
  log-wide failure) and, for the replay, the lot.
- :func:`verify_receipt_files`: a ``c2sp.org/tlog-proof`` receipt and its entry, offline.
- :func:`compare`: two views of one log; if they conflict, :func:`write_evidence` stores a
  self-contained equivocation evidence file that :func:`verify_evidence` (or anyone with the
  log's vkey and an RFC 9162 implementation) can check.

Which failure is "first": steps are ordered, so the reported failure is the one with the
lowest step number, and within that step the lowest ``seq`` (log-wide failures last). All
per-entry checks run in one streaming pass: after a failure at step *s* the pass goes on with
the steps below *s* only, so that a lower step failing further on still wins.

Kid matching (step 7): an entry's ``actor.kid`` names a key valid at that point of the log
when it equals, for that key, the vkey text, ``<name>+<hex key id>``, the 8-digit hex key id
(any case) or the key name; when several valid keys match, one of them must verify.

Errors (STYLE rule 5), split by what the caller can conclude: :class:`AuditFailure` is the one
base; :class:`AuditError`, :class:`ReceiptError` and :class:`EvidenceError` are verdicts
(something does not verify: exit 1); :class:`NoVerdict` and its :class:`SourceError`,
:class:`MissingFileError`, :class:`OversizeError` mean nothing was concluded (exit 2).
"""

from __future__ import annotations

from ..verify import Step as AuditStep
from .compare import EVIDENCE_VERSION, ComparisonReport, compare, verify_evidence, write_evidence
from .errors import (
    AuditError,
    AuditFailure,
    EvidenceError,
    MissingFileError,
    NoVerdict,
    OversizeError,
    ReceiptError,
    SourceError,
)
from .pipeline import DEFAULT_CLOCK_SKEW_US, Progress, verify_ledger
from .receipts import ReceiptReport, verify_receipt_files
from .report import AuditReport
from .sources import DirectorySource, HttpSource, LedgerSource, open_source

__all__ = [
    "AuditError",
    "AuditFailure",
    "AuditReport",
    "AuditStep",
    "ComparisonReport",
    "DEFAULT_CLOCK_SKEW_US",
    "DirectorySource",
    "EVIDENCE_VERSION",
    "EvidenceError",
    "HttpSource",
    "LedgerSource",
    "MissingFileError",
    "NoVerdict",
    "OversizeError",
    "Progress",
    "ReceiptError",
    "ReceiptReport",
    "SourceError",
    "compare",
    "open_source",
    "verify_evidence",
    "verify_ledger",
    "verify_receipt_files",
    "write_evidence",
]
