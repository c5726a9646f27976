"""Bids' idempotency keys per (account, lot) (docs/protocol.md §2.4)."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from ..verify import BidRequest


class IdempotencyIndex:
    """Keys seen per (account, lot), with the fingerprint of their terms and the answer sent.

    `check` tells the adapter whether a request is new, a resend (answer with the stored ack)
    or a conflicting reuse. Answers are kept as their JSON text (a third of the dict's size).
    Bounded: the oldest keys are forgotten first (`capacity`), and `forget_lot` drops a closed
    lot's keys; the ledger keeps them all, so an auditor can still see every request.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, account: str, request: BidRequest) -> tuple[str, dict[str, Any] | None]:
        """("new", None), ("resend", ack or None if still pending) or ("conflict", None)."""
        key = (account, request.lot, request.idempotency_key)
        seen = self._seen.get(key)
        if seen is None:
            return "new", None
        fingerprint, ack = seen
        if fingerprint != request.fingerprint():
            return "conflict", None
        return "resend", None if ack is None else json.loads(ack)

    def reserve(self, account: str, request: BidRequest) -> None:
        self._store(account, request, None)

    def forget(self, account: str, request: BidRequest) -> None:
        """Drop a reserved key whose request never reached the engine (it failed before being
        stored), so that a resend is treated as new."""
        self._seen.pop((account, request.lot, request.idempotency_key), None)

    def complete(self, account: str, request: BidRequest, ack: dict[str, Any]) -> None:
        key = (account, request.lot, request.idempotency_key)
        if key in self._seen:
            self._seen[key] = (request.fingerprint(), json.dumps(ack, ensure_ascii=False))

    def remember(self, account: str, request: BidRequest, ack: dict[str, Any]) -> None:
        """Know a request answered before a restart (read back from the ledger)."""
        self._store(account, request, json.dumps(ack, ensure_ascii=False))

    def forget_lot(self, lot: str) -> int:
        """Drop every key of `lot` (it closed a while ago); returns how many."""
        keys = [key for key in self._seen if key[1] == lot]
        for key in keys:
            del self._seen[key]
        return len(keys)

    def _store(self, account: str, request: BidRequest, ack: str | None) -> None:
        key = (account, request.lot, request.idempotency_key)
        self._seen[key] = (request.fingerprint(), ack)
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
