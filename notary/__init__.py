"""Gavel's notary: a C2SP tlog-witness that also mirrors the log and replays its rules.

A notary node runs as its own process with its own key, data directory and SQLite state
(``gavel notary init|serve|status|evidence``). Before it co-signs a checkpoint it checks what
every C2SP witness checks (origin, log signature, sizes, consistency proof) and then, beyond
the spec, fetches the new entries, recomputes leaves and root, checks ``seq``/``prev``, actor
signatures, times, and replays the auction rules with the server's engine.

This package root re-exports the pure core (:mod:`notary.core`) and the exception tree
(:mod:`notary.errors`) only; the adapters are imported explicitly: :mod:`notary.store`
(SQLite), :mod:`notary.server` (aiohttp app) with :mod:`notary.node` (the node it serves) and
:mod:`notary.logsource` (reading the log), :mod:`notary.client` (what the log calls),
:mod:`notary.cli` (operator commands).
"""

from __future__ import annotations

from .content import check_signatures_serially, verify_actor_checks, verify_increment
from .core import (
    DEFAULT_MAX_INCREMENT,
    DEFAULT_MAX_SKEW_US,
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    ActorCheck,
    ActorKeys,
    AddCheckpoint,
    ConsistentCheckpoint,
    Increment,
    LedgerCursor,
    LogTrust,
    MirroredEntry,
    NotaryState,
    SignatureChecker,
    check_envelope,
    compact_root,
    cosign,
    format_add_checkpoint,
    format_size,
    parse_add_checkpoint,
)
from .errors import (
    InconsistentCheckpointError,
    LogSignatureError,
    LogUnavailableError,
    NotaryError,
    NotaryStateError,
    RefusedContentError,
    RequestError,
    RequestTooLargeError,
    SizeConflictError,
    UnknownLogError,
)

__all__ = [
    "DEFAULT_MAX_INCREMENT",
    "DEFAULT_MAX_SKEW_US",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "ActorCheck",
    "ActorKeys",
    "AddCheckpoint",
    "ConsistentCheckpoint",
    "Increment",
    "InconsistentCheckpointError",
    "LedgerCursor",
    "LogSignatureError",
    "LogTrust",
    "LogUnavailableError",
    "MirroredEntry",
    "NotaryError",
    "NotaryState",
    "NotaryStateError",
    "RefusedContentError",
    "RequestError",
    "RequestTooLargeError",
    "SignatureChecker",
    "SizeConflictError",
    "UnknownLogError",
    "check_envelope",
    "check_signatures_serially",
    "compact_root",
    "cosign",
    "format_add_checkpoint",
    "format_size",
    "parse_add_checkpoint",
    "verify_actor_checks",
    "verify_increment",
]
