"""The compliance records of identities (an adapter over SQL, beside `AccountStore`): versions,
document fingerprints, alerts and re-verification permits (tables: `auction.identity.schema`).

Every method is blocking (the caller runs it on a worker thread) and raises `AccountError`s:
`DocumentInUse` when a document is bound to another account, `AccountUnavailable` when the
database fails. The uniqueness of a document across accounts is the fingerprint table's primary
key: two simultaneous claims of one fingerprint by two accounts cannot both succeed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ..accounts import AccountError, AccountStore, AccountUnavailable
from ..errors import Conflict
from .binding import FINGERPRINT_KEY_SIZE, Permit, stored_fingerprint
from .schema import (
    IDENTITY_ALERTS,
    IDENTITY_FINGERPRINTS,
    IDENTITY_PERMITS,
    IDENTITY_VERSIONS,
)

#: The fingerprint secret inside a data directory (base64, mode 0600); for a database URL it is
#: the `gavel_secret` row of this name.
FINGERPRINT_KEY_FILE = "identity-fingerprint.key"
FINGERPRINT_SECRET_NAME = "identity-fingerprint"

#: How long a compliance permit to re-verify stays usable.
PERMIT_TTL_US = 24 * 3600 * 1_000_000

T = TypeVar("T")


class AlertKind(enum.StrEnum):
    #: A verification with a document bound to another account was refused.
    DUPLICATE_DOCUMENT = "DUPLICATE_DOCUMENT"
    #: A verified account tried to verify a different document without compliance's leave.
    IDENTITY_CHANGE_REFUSED = "IDENTITY_CHANGE_REFUSED"
    #: Found when fingerprinting identities stored before fingerprints existed: two accounts
    #: had verified one document. The later one counts as unverified.
    DUPLICATE_FOUND_ON_UPGRADE = "DUPLICATE_FOUND_ON_UPGRADE"


class DocumentInUse(AccountError, Conflict):
    """The identity document is bound to another account (one person, one account)."""

    code = "DOCUMENT_IN_USE"

    def __init__(self, holder: str) -> None:
        super().__init__(
            "This identity document is already verified on another account. "
            "One person may hold one account."
        )
        self.holder = holder


@dataclass(frozen=True, slots=True)
class IdentityVersion:
    """One version of an account's identity. `personal_data` and `salt` are None once erased;
    `attestation` (what the ledger holds) and `fingerprint` stay. `holder` is the account the
    fingerprint is bound to (another account: this identity does not count)."""

    account: str
    version: int
    document_type: str
    fingerprint: str | None
    personal_data: Mapping[str, Any] | None
    salt: bytes | None
    attestation: Mapping[str, Any]
    idv_entry: int | None
    verified_us: int
    erased_us: int | None
    authorised_by: str | None
    reason: str | None
    holder: str | None

    @property
    def expires_us(self) -> int:
        return int(self.attestation["expires_us"])

    @property
    def bound_elsewhere(self) -> bool:
        return self.holder is not None and self.holder != self.account

    def to_json(self) -> dict[str, Any]:
        """For the compliance role: everything, the salt excepted."""
        return {
            "version": self.version,
            "document_type": self.document_type,
            "personal_data": dict(self.personal_data) if self.personal_data else None,
            "erased": self.erased_us is not None,
            "erased_us": self.erased_us,
            "verified_us": self.verified_us,
            "expires_us": self.expires_us,
            "idv_entry": self.idv_entry,
            "commit": self.attestation.get("commit"),
            "fingerprint": self.fingerprint,
            "authorised_by": self.authorised_by,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: int
    kind: str
    account: str
    holder: str | None
    document_type: str
    fingerprint: str | None
    at_us: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.alert_id,
            "kind": self.kind,
            "account": self.account,
            "holder": self.holder,
            "document_type": self.document_type,
            "fingerprint": self.fingerprint,
            "at_us": self.at_us,
        }


def fingerprint_key(data_dir: Path | None, accounts: AccountStore) -> bytes:
    """The fingerprint secret: `DATA/identity-fingerprint.key` (mode 0600, made on first use)
    for a data directory, so that the database alone cannot reverse a fingerprint; the
    `gavel_secret` table for a database URL (shared by every instance). Blocking."""
    if data_dir is None:
        return accounts.secret(FINGERPRINT_SECRET_NAME, FINGERPRINT_KEY_SIZE)
    path = data_dir / FINGERPRINT_KEY_FILE
    try:
        return base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, binascii.Error) as exc:
        raise AccountUnavailable(f"cannot read {path}: {exc}") from exc
    key = secrets.token_bytes(FINGERPRINT_KEY_SIZE)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")
    return key


def _execute(statement: sa.Executable, connection: sa.Connection) -> None:
    connection.execute(statement)


def _version(row: Any) -> IdentityVersion:
    return IdentityVersion(
        account=row.account,
        version=row.version,
        document_type=row.document_type,
        fingerprint=row.fingerprint,
        personal_data=json.loads(row.personal_data) if row.personal_data else None,
        salt=row.salt,
        attestation=json.loads(row.attestation),
        idv_entry=row.idv_entry,
        verified_us=row.verified_us,
        erased_us=row.erased_us,
        authorised_by=row.authorised_by,
        reason=row.reason,
        holder=row.holder,
    )


def _versions_query() -> sa.Select[Any]:
    return sa.select(IDENTITY_VERSIONS, IDENTITY_FINGERPRINTS.c.account.label("holder")).join(
        IDENTITY_FINGERPRINTS,
        IDENTITY_FINGERPRINTS.c.fingerprint == IDENTITY_VERSIONS.c.fingerprint,
        isouter=True,
    )


class IdentityRecords:
    """The identity tables over `engine` (the accounts database, migrated by `Storage.open`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _run(self, what: str, function: Callable[[sa.Connection], T]) -> T:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable(f"{what}: the database failed") from exc

    # -- versions --

    def versions(self, account: str) -> list[IdentityVersion]:
        """Every version of the account's identity, oldest first."""
        query = _versions_query().where(IDENTITY_VERSIONS.c.account == account)
        rows = self._run(
            "read identities",
            lambda connection: connection.execute(query.order_by(IDENTITY_VERSIONS.c.version)),
        )
        return [_version(row) for row in rows]

    def latest(self, account: str) -> IdentityVersion | None:
        """The account's newest identity version, or None if it never verified."""
        query = (
            _versions_query()
            .where(IDENTITY_VERSIONS.c.account == account)
            .order_by(IDENTITY_VERSIONS.c.version.desc())
            .limit(1)
        )
        row = self._run("read identity", lambda connection: connection.execute(query).first())
        return None if row is None else _version(row)

    def append_version(
        self,
        account: str,
        *,
        document_type: str,
        fingerprint: str,
        personal_data: Mapping[str, Any],
        salt: bytes,
        attestation: Mapping[str, Any],
        idv_entry: int | None,
        now_us: int,
        permit: Permit | None,
    ) -> int:
        """Add the account's next identity version (never replacing one); returns its number.
        Two concurrent appends for one account cannot take the same number (primary key)."""

        def append(connection: sa.Connection) -> int:
            newest = connection.execute(
                sa.select(sa.func.max(IDENTITY_VERSIONS.c.version)).where(
                    IDENTITY_VERSIONS.c.account == account
                )
            ).scalar()
            version = int(newest or 0) + 1
            connection.execute(
                IDENTITY_VERSIONS.insert().values(
                    account=account,
                    version=version,
                    document_type=document_type,
                    fingerprint=fingerprint,
                    personal_data=json.dumps(
                        dict(personal_data), ensure_ascii=False, sort_keys=True
                    ),
                    salt=salt,
                    attestation=json.dumps(dict(attestation), sort_keys=True),
                    idv_entry=idv_entry,
                    verified_us=now_us,
                    erased_us=None,
                    authorised_by=permit.granted_by if permit else None,
                    reason=permit.reason if permit else None,
                )
            )
            return version

        return self._run("record identity", append)

    def erase(self, account: str, now_us: int) -> bool:
        """Clear the personal data and salt of every version of the account's identity; the
        attestations and the fingerprints stay (see docs/protocol.md, erasure). Returns whether
        there was any personal data."""

        def erase(connection: sa.Connection) -> bool:
            done = connection.execute(
                IDENTITY_VERSIONS.update()
                .where(
                    IDENTITY_VERSIONS.c.account == account,
                    IDENTITY_VERSIONS.c.personal_data.is_not(None),
                )
                .values(personal_data=None, salt=None, erased_us=now_us)
            )
            return bool(done.rowcount)

        return self._run("erase personal data", erase)

    # -- fingerprints --

    def holder(self, fingerprint: str) -> str | None:
        """The account the document is bound to, or None."""
        return self._holder(fingerprint)

    def _holder(self, fingerprint: str) -> str | None:
        query = sa.select(IDENTITY_FINGERPRINTS.c.account).where(
            IDENTITY_FINGERPRINTS.c.fingerprint == fingerprint
        )
        row = self._run("read fingerprint", lambda connection: connection.execute(query).first())
        return None if row is None else str(row.account)

    def claim(self, account: str, fingerprint: str, document_type: str, now_us: int) -> bool:
        """Bind the document to `account`. Returns True if this call bound it, False if it
        already was bound to `account`; raises `DocumentInUse` if another account holds it.
        The insert comes first: the primary key decides between simultaneous claims."""
        row = {
            "fingerprint": fingerprint,
            "account": account,
            "document_type": document_type,
            "bound_us": now_us,
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(IDENTITY_FINGERPRINTS.insert().values(**row))
            return True
        except sa_exc.IntegrityError:
            pass
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable("bind identity: the database failed") from exc
        holder = self._holder(fingerprint)
        if holder == account:
            return False
        raise DocumentInUse(holder or "")

    def release(self, account: str, fingerprint: str) -> None:
        """Undo a `claim` that returned True and whose verification then failed (no version of
        the account has this fingerprint)."""
        used = sa.select(IDENTITY_VERSIONS.c.version).where(
            IDENTITY_VERSIONS.c.account == account,
            IDENTITY_VERSIONS.c.fingerprint == fingerprint,
        )
        self._run(
            "release identity",
            lambda connection: connection.execute(
                IDENTITY_FINGERPRINTS.delete().where(
                    IDENTITY_FINGERPRINTS.c.fingerprint == fingerprint,
                    IDENTITY_FINGERPRINTS.c.account == account,
                    ~sa.exists(used),
                )
            ),
        )

    def backfill(self, key: bytes, now_us: int) -> tuple[int, int]:
        """Fingerprint the versions stored before fingerprints existed (schema migration 4),
        oldest first, binding each document to the first account that verified it; a later
        account with the same document gets a `DUPLICATE_FOUND_ON_UPGRADE` alert (and counts
        as unverified). Versions already erased cannot be fingerprinted. Idempotent. Returns
        `(fingerprinted, duplicates)`."""
        query = (
            sa.select(IDENTITY_VERSIONS)
            .where(
                IDENTITY_VERSIONS.c.fingerprint.is_(None),
                IDENTITY_VERSIONS.c.personal_data.is_not(None),
            )
            .order_by(IDENTITY_VERSIONS.c.verified_us, IDENTITY_VERSIONS.c.account)
        )
        rows = self._run("read identities", lambda connection: connection.execute(query).all())
        done = duplicates = 0
        for row in rows:
            fingerprint = stored_fingerprint(key, json.loads(row.personal_data))
            if fingerprint is None:
                continue
            try:
                self.claim(row.account, fingerprint, row.document_type, now_us)
            except DocumentInUse as exc:
                duplicates += 1
                self.add_alert(
                    AlertKind.DUPLICATE_FOUND_ON_UPGRADE,
                    row.account,
                    exc.holder,
                    row.document_type,
                    fingerprint,
                    now_us,
                )
            statement = (
                IDENTITY_VERSIONS.update()
                .where(
                    IDENTITY_VERSIONS.c.account == row.account,
                    IDENTITY_VERSIONS.c.version == row.version,
                    IDENTITY_VERSIONS.c.fingerprint.is_(None),
                )
                .values(fingerprint=fingerprint)
            )
            self._run("fingerprint identity", partial(_execute, statement))
            done += 1
        return done, duplicates

    # -- alerts --

    def add_alert(
        self,
        kind: AlertKind,
        account: str,
        holder: str | None,
        document_type: str,
        fingerprint: str | None,
        now_us: int,
    ) -> None:
        values = {
            "kind": kind.value,
            "account": account,
            "holder": holder,
            "document_type": document_type,
            "fingerprint": fingerprint,
            "at_us": now_us,
        }
        self._run(
            "record alert",
            lambda connection: connection.execute(IDENTITY_ALERTS.insert().values(**values)),
        )

    def alerts(self, limit: int = 500) -> list[Alert]:
        """The newest alerts, newest first."""
        query = sa.select(IDENTITY_ALERTS).order_by(IDENTITY_ALERTS.c.id.desc()).limit(limit)
        rows = self._run("read alerts", lambda connection: connection.execute(query).all())
        return [
            Alert(
                row.id,
                row.kind,
                row.account,
                row.holder,
                row.document_type,
                row.fingerprint,
                row.at_us,
            )
            for row in rows
        ]

    # -- compliance permits --

    def grant_permit(
        self, account: str, granted_by: str, reason: str, now_us: int, ttl_us: int = PERMIT_TTL_US
    ) -> tuple[int, int]:
        """Allow one re-verification of `account` for `ttl_us`; returns `(permit id,
        expires_us)`."""
        expires = now_us + ttl_us
        values = {
            "account": account,
            "granted_by": granted_by,
            "reason": reason,
            "granted_us": now_us,
            "expires_us": expires,
            "used_us": None,
        }

        def insert(connection: sa.Connection) -> int:
            result = connection.execute(IDENTITY_PERMITS.insert().values(**values))
            key = result.inserted_primary_key
            assert key is not None  # an insert of one row
            return int(key[0])

        return self._run("grant permit", insert), expires

    def open_permit(self, account: str, now_us: int) -> Permit | None:
        """The account's newest unused, unexpired permit, or None."""
        query = (
            sa.select(IDENTITY_PERMITS)
            .where(
                IDENTITY_PERMITS.c.account == account,
                IDENTITY_PERMITS.c.used_us.is_(None),
                IDENTITY_PERMITS.c.expires_us > now_us,
            )
            .order_by(IDENTITY_PERMITS.c.id.desc())
            .limit(1)
        )
        row = self._run("read permit", lambda connection: connection.execute(query).first())
        return None if row is None else Permit(row.id, row.granted_by, row.reason)

    def use_permit(self, permit_id: int, now_us: int, *, undo: bool = False) -> bool:
        """Mark the permit used (False if it already was); `undo`: unused again."""
        table = IDENTITY_PERMITS
        where = [table.c.id == permit_id]
        where.append(table.c.used_us.is_not(None) if undo else table.c.used_us.is_(None))
        statement = table.update().where(*where).values(used_us=None if undo else now_us)
        result = self._run("use permit", lambda connection: connection.execute(statement))
        return bool(result.rowcount)

    def permits(self, account: str) -> list[dict[str, Any]]:
        """Every permit granted for the account, oldest first (for the compliance view)."""
        query = (
            sa.select(IDENTITY_PERMITS)
            .where(IDENTITY_PERMITS.c.account == account)
            .order_by(IDENTITY_PERMITS.c.id)
        )
        rows = self._run("read permits", lambda connection: connection.execute(query).all())
        return [
            {
                "id": row.id,
                "granted_by": row.granted_by,
                "reason": row.reason,
                "granted_us": row.granted_us,
                "expires_us": row.expires_us,
                "used_us": row.used_us,
            }
            for row in rows
        ]


__all__ = [
    "FINGERPRINT_KEY_FILE",
    "PERMIT_TTL_US",
    "Alert",
    "AlertKind",
    "DocumentInUse",
    "IdentityRecords",
    "IdentityVersion",
    "fingerprint_key",
]
