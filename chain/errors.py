"""The one exception tree of the ``chain`` package.

Every function in ``chain`` that can fail on input raises a subclass of :class:`ChainError` and
nothing else: parsers translate ``ValueError``, ``UnicodeDecodeError``, ``IndexError``,
``binascii.Error`` and ``cryptography`` exceptions once, at the boundary, with
``raise Ours(...) from exc``.

The tree is split by *who is at fault*:

- the sender of the bytes (:class:`MalformedError`, :class:`TooLargeError`),
- a signer or a claimed key (:class:`SignatureError`, :class:`UnknownOriginError`),
- the log's Merkle data (:class:`ProofError`),
- the trust policy not being met (:class:`PolicyError`),
- the meaning of a ledger entry (:class:`EntryError`, :class:`ActorSignatureError`),
- the caller's own configuration (:class:`ConfigurationError`).

Each class carries ``http_status``, the status an HTTP adapter should answer with (the values for
the witness path follow C2SP tlog-witness: 400, 403, 404, 422), and every instance can carry
``step``: the number and name of the verification step that failed, so that an auditor can report
"the first failing step". Adapters catch :class:`ChainError` only.
"""

from __future__ import annotations

from typing import ClassVar, Self

__all__ = [
    "ActorSignatureError",
    "ChainError",
    "ConfigurationError",
    "EntryError",
    "MalformedError",
    "PolicyError",
    "ProofError",
    "SignatureError",
    "TooLargeError",
    "UnknownOriginError",
]


class ChainError(Exception):
    """Base class of every error raised by ``chain``.

    ``message`` is safe to show to the party at fault (it never contains key material).
    ``step`` is set by the verification pipelines (``receipt.verify_receipt``) to
    ``"<number> <name>"`` of the step that failed, else ``None``.
    The caller should map ``http_status`` to its response and log ``str(error)``.
    """

    http_status: ClassVar[int] = 400
    reason: ClassVar[str] = "CHAIN_ERROR"

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.step = step

    def at_step(self, step: str) -> Self:
        """Record the pipeline step that failed and return ``self`` (for ``raise e.at_step(s)``)."""
        self.step = step
        return self

    def __str__(self) -> str:
        if self.step is None:
            return self.message
        return f"step {self.step}: {self.message}"


class MalformedError(ChainError):
    """The input is not syntactically valid (or not canonical): the sender is at fault.

    The caller should reject the input as a whole (HTTP 400) and not retry with the same bytes.
    """

    http_status = 400
    reason = "MALFORMED"


class TooLargeError(MalformedError):
    """The input exceeds a documented size bound before it was even parsed (HTTP 413)."""

    http_status = 413
    reason = "TOO_LARGE"


class SignatureError(ChainError):
    """A signature from a known key failed, or no trusted signature is present (HTTP 403).

    C2SP tlog-witness: 403 when no signature verifies against a trusted key or a known-key
    signature fails. The caller should refuse the note and may keep it as evidence.
    """

    http_status = 403
    reason = "BAD_SIGNATURE"


class UnknownOriginError(SignatureError):
    """The checkpoint's origin is not the one the caller trusts (tlog-witness: 404)."""

    http_status = 404
    reason = "UNKNOWN_ORIGIN"


class ProofError(ChainError):
    """An inclusion or consistency proof does not verify, or does not fit the sizes (HTTP 422).

    tlog-witness: 422 for a bad consistency proof. The caller should refuse and may keep the
    request as evidence of misbehaviour.
    """

    http_status = 422
    reason = "BAD_PROOF"


class PolicyError(ChainError):
    """The cosignatures present do not satisfy the trust policy's quorum (HTTP 403).

    The caller must not treat the checkpoint as published (fail-closed).
    """

    http_status = 403
    reason = "QUORUM_NOT_MET"


class EntryError(ChainError):
    """A ledger entry is well-formed but breaks a chain rule (seq, prev, time) (HTTP 422)."""

    http_status = 422
    reason = "BAD_ENTRY"


class ActorSignatureError(EntryError):
    """The entry's actor signature does not verify under the key given for ``actor.kid``."""

    reason = "BAD_ACTOR_SIGNATURE"


class ConfigurationError(ChainError):
    """The caller's own configuration is inconsistent (e.g. two keys with one name and id).

    This is a bug or misconfiguration on our side, not the peer's: HTTP 500.
    """

    http_status = 500
    reason = "CONFIGURATION"
