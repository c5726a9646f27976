"""The service's copy of the signed-bid rules' state (`auction.verify.IdentityBook`).

Bids and kyc-verified registrations are checked against it at ingress, before the rules and
before anything is logged; `key` and `idv` entries, stored by this instance or another, update
it. The ledger writer checks the same rules again in its transaction (`auction.storage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from chain import EntryType

from ..verify import IdentityBook, SignedBid, SignedBidError
from .errors import RequestRefused

logger = logging.getLogger(__name__)


class BidGate:
    """Checks commands against the identity book; learns the book's entries as they are stored."""

    def __init__(self, book: IdentityBook | None = None) -> None:
        self._book = book if book is not None else IdentityBook()

    def replace(self, book: IdentityBook) -> None:
        """Start from the store's book (read back when the service starts)."""
        self._book = book

    def learn(
        self, seq: int, entry_type: str, time_us: int, body: Mapping[str, Any], kid: str | None
    ) -> None:
        """A stored `key` or `idv` entry (signed by `kid`) updates the book; anything else, or
        an entry the book refuses (the store refused it first), changes nothing."""
        book = self._book.copy()
        try:
            if entry_type == EntryType.KEY:
                book.key(body)
            elif entry_type == EntryType.IDV:
                book.idv(seq, time_us, body, kid)
            else:
                return
        except SignedBidError as exc:
            logger.error("ledger entry %d does not update the identity book: %s", seq, exc)
            return
        self._book = book

    def check(self, lot_id: str, command: Any, request: SignedBid | None, ingress: int) -> None:
        """Raise `RequestRefused` when `command` with its signed `request` breaks the
        signed-bid rules at `ingress`."""
        try:
            self._book.check(lot_id, command, request, ingress)
        except SignedBidError as exc:
            raise RequestRefused(exc.reason, exc.message) from exc
