"""`Storage`: the store, composed of its parts, and how it is opened and closed."""

from __future__ import annotations

import os

from .base import Clock, system_clock
from .catalogue import _Catalogue
from .checkpoints import _Checkpoints
from .database import _check_exists, _data_directory, connect
from .history import _History
from .ledger_reads import _LedgerReads
from .openings import _Openings
from .startup import _Startup


class Storage(_Startup, _Catalogue, _History, _Checkpoints, _Openings, _LedgerReads):
    """Sales, lots and lot histories in SQLite or PostgreSQL.

    Open with `Storage.open(target)`, which creates or migrates the schema; call `close()`
    (or use it as a context manager) when done. Every method is blocking and translates database
    failures into `StorageError`s. One writer at a time: the caller serializes `append` calls
    (the service runs them on a single thread).
    """

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str],
        *,
        clock: Clock = system_clock,
        read_only: bool = False,
        signed_bids: bool = False,
    ) -> Storage:
        """Open (and create or migrate) the database at `target`: a data directory, a
        `sqlite:///...` URL or a `postgresql://...` URL. The caller must `close()` it.

        On first start this makes the house key (`DIR/house.key`, or the `ledger_house` table
        for a URL) and writes the `house` entry (entry 0), then the ledger entries of any lots
        and history stored before the ledger existed; a data directory also gets `DIR/policy`.
        With `read_only`, nothing is created or migrated (the database must exist and be
        current) and only reads are allowed (e.g. `gavel ledger export`). A log created with
        `signed_bids` says `"signed_bids": true` in its house entry: every PlaceBid / SetMax
        must then carry its bidder's signed request (`HistoryRecord.request`) and every
        kyc-verified registration an `idv` entry; an existing log keeps its own setting.
        """
        if read_only:
            _check_exists(target)
        engine = connect(target)
        store = cls(engine, clock=clock)
        store._directory = _data_directory(target)
        try:
            if read_only:
                store._check_schema()
            else:
                store._migrate()
                store._open_house(_data_directory(target), signed_bids)
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    @property
    def location(self) -> str:
        """Where the data is, without any password: a file path or a database URL."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite":
            return url.database or ":memory:"
        return url.render_as_string(hide_password=True)
