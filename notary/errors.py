"""The one exception tree of the ``notary`` package.

Every refusal a notary can give is a :class:`NotaryError` subclass carrying what the HTTP
adapter needs: ``http_status`` (C2SP tlog-witness codes for the envelope checks), ``reason`` (a
stable slug for status output and evidence), ``step`` (``"<number> <name>"`` of the failing
pipeline step), ``seq`` (the ledger entry at fault, if any), and ``evidence``: ``True`` when the
log's signature on the checkpoint verified before the refusal, so the request is authentic and
worth keeping as evidence of log misbehaviour (tlog-witness: a witness MAY log such requests).

The tree is split by who is at fault:

- the sender's bytes (:class:`RequestError` 400, :class:`RequestTooLargeError` 413),
- the checkpoint's origin or signature (:class:`UnknownLogError` 404,
  :class:`LogSignatureError` 403),
- the sender's idea of our state (:class:`SizeConflictError` 409, carrying our size),
- the log's tree (:class:`InconsistentCheckpointError` 422),
- the log's content, checked beyond the spec (:class:`RefusedContentError` 422),
- the log's availability (:class:`LogUnavailableError` 502),
- our own state or configuration (:class:`NotaryStateError` 500).

Foreign exceptions (``chain.ChainError``, ``auction.verify.EntryRejected``, ``OSError``,
``sqlite3.Error``, ``aiohttp.ClientError``) are translated once, where they happen, with
``raise NotaryError(...) from exc``.
"""

from __future__ import annotations

from typing import ClassVar, Self

__all__ = [
    "InconsistentCheckpointError",
    "LogSignatureError",
    "LogUnavailableError",
    "NotaryError",
    "NotaryStateError",
    "NotaryUnavailableError",
    "RefusedContentError",
    "RequestError",
    "RequestTooLargeError",
    "SizeConflictError",
    "UnknownLogError",
]


class NotaryError(Exception):
    """Base class of every refusal and failure raised by ``notary``.

    ``message`` is safe to send to the submitter (no key material, no local paths). The adapter
    answers with ``http_status`` and ``str(error)``, and keeps the request as evidence when
    ``evidence`` is true.
    """

    http_status: ClassVar[int] = 500
    reason: ClassVar[str] = "NOTARY_ERROR"

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        seq: int | None = None,
        evidence: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.seq = seq
        self.evidence = evidence
        self.checkpoint_size: int | None = None

    def authenticated(self, checkpoint_size: int) -> Self:
        """Mark the error as raised after the log signature verified; return ``self``."""
        self.evidence = True
        self.checkpoint_size = checkpoint_size
        return self

    def __str__(self) -> str:
        where = f"step {self.step}: " if self.step else ""
        return f"{where}{self.message}"


class RequestError(NotaryError):
    """The request body is malformed, or ``old`` is above the checkpoint size (HTTP 400)."""

    http_status = 400
    reason = "BAD_REQUEST"


class RequestTooLargeError(RequestError):
    """The request body exceeds :data:`notary.core.MAX_REQUEST_BYTES` (HTTP 413)."""

    http_status = 413
    reason = "TOO_LARGE"


class UnknownLogError(NotaryError):
    """tlog-witness: the checkpoint's origin is not a log this notary serves (HTTP 404)."""

    http_status = 404
    reason = "UNKNOWN_ORIGIN"


class LogSignatureError(NotaryError):
    """tlog-witness: no trusted log signature, or a known log key's signature fails (HTTP 403)."""

    http_status = 403
    reason = "BAD_LOG_SIGNATURE"


class SizeConflictError(NotaryError):
    """tlog-witness: ``old`` is not the size this notary last co-signed (HTTP 409).

    ``latest_size`` is that size; the adapter answers it as ``text/x.tlog.size`` and the client
    retries with a consistency proof from it.
    """

    http_status = 409
    reason = "SIZE_CONFLICT"

    def __init__(self, latest_size: int, message: str | None = None) -> None:
        super().__init__(message or f"the last co-signed size is {latest_size}")
        self.latest_size = latest_size


class InconsistentCheckpointError(NotaryError):
    """The checkpoint does not extend what this notary co-signed (HTTP 422).

    tlog-witness (C2SP/C2SP#280): a consistency proof that does not verify, the same size with
    another root, or a size-0 checkpoint whose root is not the empty tree's.
    """

    http_status = 422
    reason = "INCONSISTENT"


class RefusedContentError(NotaryError):
    """The new entries fail a check beyond the spec: hashes, chain, keys, time or rules (422).

    ``step`` names the pipeline step, ``seq`` the first entry at fault.
    """

    http_status = 422
    reason = "REFUSED_CONTENT"


class LogUnavailableError(NotaryError):
    """The notary could not fetch what it must check from the log (HTTP 502).

    Not evidence against the log: the client may retry later.
    """

    http_status = 502
    reason = "LOG_UNAVAILABLE"


class NotaryStateError(NotaryError):
    """The notary's own state, key or configuration is unusable (HTTP 500; CLI exit 1)."""

    http_status = 500
    reason = "NOTARY_STATE"


class NotaryUnavailableError(NotaryError):
    """The notary cannot store anything right now (its disk is full, its database is locked):
    nothing was co-signed; the log may retry later (HTTP 503). Not evidence against the log."""

    http_status = 503
    reason = "NOTARY_UNAVAILABLE"
