"""Errors of the store (STYLE rule 5): one tree rooted in `StorageError`, and the one
place where database, driver and ledger errors are translated into it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import exc as sa_exc

from chain import ChainError
from chain import store as ledger_store

from ..errors import Conflict, GavelError, Unavailable


class StorageError(GavelError):
    """Base of every exception raised by `auction.storage`; foreign database errors are
    translated into a subclass at the boundary and chained (`raise ... from exc`)."""


class StorageUnavailable(StorageError, Unavailable):
    """The database cannot be opened or reached (bad path, server down, lock timeout).

    The caller may retry later; nothing was written by the failed call.
    """


class StorageConflict(StorageError, Conflict):
    """A write broke a uniqueness or reference rule (a lot id used twice, a history row `n`
    already stored, a lot in an unknown sale). Nothing was written by the failed call."""


class SchemaError(StorageError):
    """The database's schema is newer than this code, or a migration failed."""


class CorruptHistory(StorageError):
    """A stored row cannot be read back (undecodable JSON, a gap in a lot's `n`).

    The lot must not be served; an operator must compare the data with its ledger.
    """

    def __init__(self, lot_id: str, n: int | None, detail: str) -> None:
        where = f"lot {lot_id!r}" if n is None else f"lot {lot_id!r} row {n}"
        super().__init__(f"{where}: {detail}")
        self.lot_id = lot_id
        self.n = n
        self.detail = detail


class HistoryDiverged(CorruptHistory):
    """Replaying a lot's stored commands through the engine gives other events than stored.

    Either the stored data was altered or the engine changed its rules: the highest-severity
    bug (rules: "server, notary and auditor must never disagree"). `expected` holds the events
    the engine derives now, `stored` the ones on disk, both as JSON-ready values.
    """

    def __init__(self, lot_id: str, n: int, expected: Any, stored: Any) -> None:
        super().__init__(lot_id, n, "replayed events differ from the stored events")
        self.expected = expected
        self.stored = stored


class LedgerCorrupt(StorageError):
    """The stored ledger cannot be trusted: a row is missing, a leaf hash recomputed from the
    stored bytes differs, the tree does not have the signed root, or the house key does not
    match entry 0. Nothing may be signed or served until an operator looked."""


class LedgerEntryRefused(StorageError):
    """An entry was refused before anything was written: a bid request or an `idv` entry that
    breaks the signed-bid rules (`auction.verify.IdentityBook`), a malformed `key` entry, or an
    entry type that cannot be recorded directly. `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class LotFenced(StorageConflict):
    """Another server instance took this lot over (its fencing token moved): this
    instance's commands for the lot were not written and it must stop serving the lot."""

    def __init__(self, lot_id: str, message: str) -> None:
        super().__init__(message)
        self.lot_id = lot_id


class CheckpointConflict(StorageConflict):
    """The signed-head compare-and-swap failed: another signer (another process on the same
    database, or a stale copy) signed meanwhile. Nothing was signed; the caller retries later
    (the next attempt re-reads the stored tree and checks it against the signed head)."""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate SQLAlchemy, driver and ledger errors into `StorageError`s, once, at the
    boundary."""
    try:
        yield
    except StorageError:
        raise
    except ledger_store.SignedHeadConflict as exc:
        raise CheckpointConflict(f"{what}: {exc}") from exc
    except ledger_store.StoredDataError as exc:
        raise LedgerCorrupt(f"{what}: {exc}") from exc
    except ChainError as exc:
        raise StorageError(f"{what}: {exc}") from exc
    except sa_exc.IntegrityError as exc:
        raise StorageConflict(f"{what}: {_first_line(exc.orig)}") from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StorageUnavailable(f"{what}: {_first_line(exc.orig)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StorageError(f"{what}: {_first_line(exc)}") from exc


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
