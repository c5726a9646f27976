"""Authenticated reads of a log by its notaries (pure).

A log may hold entries it serves only to its notaries for a while (gavel: entry bundles and
receipts holding the proxy maximum of a lot that has not closed, docs/protocol.md §4). A notary
proves who it is with its own cosigner key (the one the policy names), so no shared secret has
to be handed out: it signs, with the ``cosignature/v1`` framing and its clock as timestamp,

    gavel/log-read/v1\\n<log origin>\\n<path under /log/>\\n

and sends ``Authorization: Gavel-Notary <key name> <base64(timestamp[8] || signature[64])>``.
The text cannot be read as a checkpoint (its second line is not a tree size), so such a
signature is never a cosignature of anything. The log accepts it when the key name belongs to
a witness of its policy, the signature verifies over the path asked for, and the timestamp is
within ``window`` seconds of its own clock (a captured header only re-reads the same path for
a few minutes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import ClassVar, Final

from chain import ChainError, CosignatureSigner, CosignatureVerifier

from .errors import NotaryError

__all__ = [
    "READ_SCHEME",
    "READ_WINDOW_S",
    "ReadAuthorizationError",
    "read_authorization",
    "read_message",
    "verify_read_authorization",
]

READ_SCHEME: Final = "Gavel-Notary"
READ_WINDOW_S: Final = 300
_PREFIX: Final = b"gavel/log-read/v1\n"
_MAX_HEADER: Final = 512


class ReadAuthorizationError(NotaryError):
    """A notary's read authorization is missing, malformed, stale or does not verify."""

    http_status: ClassVar[int] = 403
    reason: ClassVar[str] = "READ_UNAUTHORIZED"


def read_message(origin: str, path: str) -> bytes:
    """The text a notary signs to read ``path`` (relative to ``/log/``) of log ``origin``."""
    if "\n" in origin or "\n" in path:
        raise ReadAuthorizationError("origin and path are single lines")
    return _PREFIX + origin.encode("utf-8") + b"\n" + path.encode("utf-8") + b"\n"


def read_authorization(signer: CosignatureSigner, origin: str, path: str, now_s: int) -> str:
    """The ``Authorization`` header value for reading ``path`` of ``origin`` at ``now_s``."""
    signature = signer.cosign(read_message(origin, path), now_s)
    encoded = base64.b64encode(signature.signature).decode("ascii")
    return f"{READ_SCHEME} {signer.name} {encoded}"


def verify_read_authorization(
    header: str,
    origin: str,
    path: str,
    witnesses: Iterable[CosignatureVerifier],
    now_s: int,
    window: int = READ_WINDOW_S,
) -> str:
    """The key name of the notary that signed ``header`` for ``path``; raises
    :class:`ReadAuthorizationError` (never echoing the header) otherwise."""
    if len(header) > _MAX_HEADER:
        raise ReadAuthorizationError("the notary authorization is too long")
    parts = header.split(" ")
    if len(parts) != 3 or parts[0] != READ_SCHEME:
        raise ReadAuthorizationError(f"expected '{READ_SCHEME} <key name> <signature>'")
    _, name, encoded = parts
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ReadAuthorizationError("the notary signature is not base64") from None
    candidates = [verifier for verifier in witnesses if verifier.name == name]
    if not candidates:
        raise ReadAuthorizationError("that key is not a notary of this log's policy")
    message = read_message(origin, path)
    for verifier in candidates:
        try:
            verified = verifier.verify(message, signature)
        except ChainError:
            continue
        if verified.timestamp is None or abs(verified.timestamp - now_s) > window:
            raise ReadAuthorizationError(
                f"the notary authorization is older or newer than {window} s"
            )
        return name
    raise ReadAuthorizationError("the notary signature does not verify for this path")
