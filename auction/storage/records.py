"""Values in and out of the store (STYLE rule 3): history and ledger records to
append, lots as rebuilt, projections, checkpoints and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain import Ed25519Signer, EntryType

from ..rules import LotRules, LotState, Rejected
from ..verify import SignedBid
from .errors import LedgerEntryRefused


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One command applied to a lot, with what the engine answered.

    `n` is the lot's command index (0, 1, ...), `ingress_us` the server time stamped when the
    command was received (the `now` the engine was given); `events` is the engine's whole answer,
    a single `Rejected` when `accepted` is false.
    """

    lot_id: str
    n: int
    ingress_us: int
    command: Any
    events: tuple[Any, ...]
    accepted: bool
    request: SignedBid | None = None  # a signed bid's request: in the ledger entry only
    order: Mapping[str, Any] | None = None  # who gave a court order: in the ledger entry only

    @classmethod
    def of(
        cls,
        lot_id: str,
        n: int,
        ingress_us: int,
        command: Any,
        events: tuple[Any, ...],
        request: SignedBid | None = None,
        order: Mapping[str, Any] | None = None,
    ) -> HistoryRecord:
        """Build the record of one `apply(...)`; `accepted` is derived from the events."""
        rejected = len(events) == 1 and isinstance(events[0], Rejected)
        return cls(lot_id, n, ingress_us, command, tuple(events), not rejected, request, order)


#: Entry types written by `LedgerRecord`s (not lot commands, not the server's own framing).
_RECORDED_TYPES = frozenset(
    {EntryType.IDV, EntryType.STREAM_SEGMENT, EntryType.KEY, EntryType.DOCUMENT}
)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One ledger entry that is not a lot command (`idv`, `stream_segment`, `key`), appended
    through the same group commit as history records.

    `signer` is the actor (`actor.kid` = its vkey); None: the house key.
    """

    entry_type: EntryType
    body: Mapping[str, Any]
    time_us: int
    signer: Ed25519Signer | None = None

    def __post_init__(self) -> None:
        if self.entry_type not in _RECORDED_TYPES:
            raise LedgerEntryRefused(
                "NOT_RECORDABLE", f"{self.entry_type!r} entries are written by the server only"
            )
        if not isinstance(self.body, Mapping):
            raise LedgerEntryRefused("MALFORMED", "an entry body is a JSON object")


@dataclass(frozen=True, slots=True)
class StoredLot:
    """A lot as rebuilt from storage: its catalogue entry and its state after replay.

    `commands` is the number of history rows (the next `n`), `bids` the number of accepted bids
    (`BidAccepted` events) in its history.
    """

    lot_id: str
    sale_id: str | None
    sale_title: str | None
    title: str
    rules: LotRules
    created_at: int
    state: LotState
    commands: int
    bids: int


@dataclass(frozen=True, slots=True)
class Registration:
    """Projection of `BidderRegistered`: who holds which code on a lot (sealed data, C2.4)."""

    lot_id: str
    bidder_id: str
    code: str
    priority_rank: int | None
    registered_at: int


@dataclass(frozen=True, slots=True)
class Deposit:
    """Projection of the latest `DepositChanged` of a bidder on a lot (rules C3)."""

    lot_id: str
    bidder_id: str
    state: str
    amount: int
    reference: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class LedgerHead:
    """A signed checkpoint of the ledger: tree `size`, its `root`, and the signed `note`
    (C2SP signed note bytes, with cosignatures once notaries sign)."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True, slots=True)
class Counts:
    """How much is stored: lots, history rows (commands) and the events inside them, ledger
    entries, the log's origin and its latest published checkpoint."""

    sales: int
    lots: int
    commands: int
    events: int
    ledger_entries: int = 0
    origin: str | None = None
    checkpoint: LedgerHead | None = None
