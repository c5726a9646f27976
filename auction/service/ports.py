"""The service's I/O behind small protocols (STYLE rule 10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from chain import EntryBundle, Tile

from ..rules import (
    LotRules,
)
from ..storage import (
    HistoryRecord,
    LedgerHead,
    LedgerRecord,
    StoredLot,
)
from ..verify import IdentityBook


class Store(Protocol):
    """What the service needs from storage (`auction.storage.Storage` is the real one).

    Methods are blocking; the service calls them on its storage thread, one at a time.
    """

    def load(self) -> list[StoredLot]: ...

    def add_sale(self, sale_id: str, title: str) -> None: ...

    def add_lot(
        self, lot_id: str, rules: LotRules, title: str, sale_id: str | None = None
    ) -> StoredLot: ...

    def append(self, records: Sequence[HistoryRecord | LedgerRecord]) -> Sequence[int] | None: ...

    def close(self) -> None: ...


@runtime_checkable
class IdentityStore(Protocol):
    """A store that knows the signed-bid rules' state of its ledger (`Storage`)."""

    def identity_book(self) -> IdentityBook: ...


@runtime_checkable
class LedgerStore(Protocol):
    """What the service and the HTTP API need from a store that keeps the ledger
    (`auction.storage.Storage`). A store without these methods runs without checkpoints.

    `sign_checkpoint` and `publish_checkpoint` run on the storage thread; the readers on the
    reader threads (`AuctionService.read`).
    """

    def sign_checkpoint(self) -> LedgerHead | None: ...

    def publish_checkpoint(self, head: LedgerHead) -> None: ...

    def published_checkpoint(self) -> LedgerHead | None: ...

    def signed_checkpoint(self) -> LedgerHead | None: ...

    def ledger_policy(self) -> bytes: ...

    def checkpoint_sizes(self) -> list[int]: ...

    def checkpoint_note(self, size: int) -> bytes | None: ...

    def ledger_tile(self, tile: Tile | EntryBundle) -> bytes: ...

    def ledger_receipt(self, seq: int, head: LedgerHead) -> tuple[bytes, bytes]: ...

    def ledger_consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...


class Journal(Protocol):
    """Durable append of history records; returns only once they are stored."""

    async def append(self, records: Sequence[HistoryRecord]) -> Sequence[int]: ...
