"""The ledger store's errors (one tree: these extend :class:`chain.errors.ChainError`)."""

from __future__ import annotations

from ..errors import ChainError

__all__ = ["SignedHeadConflict", "StoredDataError"]


class SignedHeadConflict(ChainError):
    """The signed-head lock is not where the signer expected it: another signer (another
    process, or a stale copy of this one) signed meanwhile, or a second root for one size was
    attempted. The caller must not sign; it must stop and let an operator look (HTTP 409)."""

    http_status = 409
    reason = "SIGNED_HEAD_CONFLICT"


class StoredDataError(ChainError):
    """The stored ledger is incomplete or inconsistent: a row is missing, a leaf hash
    recomputed from the stored bytes differs from the stored one, or the stored tree does not
    have the root that was signed. Serve nothing from it until an operator looked (HTTP 500)."""

    http_status = 500
    reason = "STORED_DATA"
