"""Signatures the server has verified already (:class:`SignatureMemo`).

What the auction writes to the ledger and how a notary or auditor reads it back (entry
bodies, the signed-bid rules, the lot replay) is pure and lives in :mod:`auction.verify`,
which the notaries import without the server.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class SignatureMemo:
    """Ed25519 signatures this process has verified already (bounded, thread-safe).

    A bid verified where it entered (`SignedBid.verified_by`, the gateway) is not verified
    again by the identity books; a bid submitted without that (a test, a forwarded command)
    is checked by the service and by the ledger writer: with one memo shared by them (the
    store owns it; `IdentityBook.copy` keeps it), the curve arithmetic runs once. Only
    successes are kept, keyed by a hash of key, signature and message together. The checks
    of one bid are milliseconds apart: 8,192 entries (~1.1 MiB) hold the bids in flight."""

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def verify(
        self, key: Ed25519PublicKey, raw_key: bytes, signature: bytes, message: bytes
    ) -> None:
        """`key.verify(signature, message)` unless that exact triple verified before; raises
        `InvalidSignature`."""
        token = hashlib.sha256(b"%b%b%b" % (raw_key, signature, message)).digest()
        with self._lock:
            if token in self._seen:
                self._seen.move_to_end(token)
                return
        key.verify(signature, message)
        with self._lock:
            self._seen[token] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
