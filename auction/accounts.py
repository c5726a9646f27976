"""Accounts, sessions and the compliance table (an adapter over SQL, beside `Storage`).

Tables (SQLAlchemy Core, created idempotently in the same database as the lots and the ledger):

* `gavel_account`: the account id (`acct-<16 hex>`) and the raw Ed25519 public key bound to it;
* `gavel_session`: bearer sessions (only the SHA-256 of the token is stored) with a role:
  `bidder`, `watcher`, `auctioneer`, `compliance`, `auditor`, `court` or `admin`, and an
  expiry;
* (the compliance tables of identities are `auction.identity.schema`'s, made by the schema
  migrations of `auction.storage`, and read and written by `auction.identity.records`);
* `gavel_secret`: server secrets that must survive a restart (the bidder-code key, and the
  identity provider's key when there is no data directory).

Every method is blocking: the web adapter calls them on a worker thread. Failures are
`AccountError`s carrying the HTTP status and a stable code.
"""

from __future__ import annotations

import enum
import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from .errors import Conflict, GavelError, NotFound, Unavailable
from .storage import database_url

#: Sessions last 12 hours unless said otherwise (docs/protocol.md §1).
SESSION_TTL_US = 12 * 3600 * 1_000_000

_METADATA = sa.MetaData()

ACCOUNTS = sa.Table(
    "gavel_account",
    _METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("public_key", sa.LargeBinary(32), nullable=True, unique=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

SESSIONS = sa.Table(
    "gavel_session",
    _METADATA,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(32), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
)

SECRETS = sa.Table(
    "gavel_secret",
    _METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary(64), nullable=False),
)


class Role(enum.StrEnum):
    BIDDER = "bidder"
    AUCTIONEER = "auctioneer"
    COMPLIANCE = "compliance"
    #: Reads the whole ledger, sealed entries included (docs/protocol.md §4); nothing else.
    AUDITOR = "auditor"
    #: Gives court orders (pause, suspend, resume, cancel a lot: rules C11), recorded as the
    #: court's with this session's account (`auction.court`); nothing else.
    COURT = "court"
    #: A bidder's account seen from a browser without its key (a sign-in code made the
    #: session, `auction.web.me`): reads the account's lots, receipts and documents; changes
    #: nothing and cannot bid.
    WATCHER = "watcher"
    #: Creates, lists and revokes the other staff sessions from the console
    #: (`auction.web.staff`); reads the dashboard; nothing else.
    ADMIN = "admin"


class AccountError(GavelError):
    """Base of this module's errors: `code` (stable, for the client) and `message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class AccountUnavailable(AccountError, Unavailable):
    """The database cannot be reached or written."""

    code = "UNAVAILABLE"


class KeyInUse(AccountError, Conflict):
    """That public key is already bound to another account."""

    code = "KEY_IN_USE"


class UnknownAccount(AccountError, NotFound):
    code = "UNKNOWN_ACCOUNT"


@dataclass(frozen=True, slots=True)
class Session:
    """A valid bearer session."""

    account: str
    role: Role
    expires_us: int


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


class AccountStore:
    """Accounts, sessions, identities and secrets. Open with `AccountStore.open(target)` (the
    same target as `Storage.open`: a data directory or a database URL); `close()` when done."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, target: str | os.PathLike[str]) -> AccountStore:
        """Connect and create the tables if missing. Raises `AccountUnavailable`."""
        try:
            url = database_url(target)
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"check_same_thread": False})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            _METADATA.create_all(engine, checkfirst=True)
        except (sa_exc.SQLAlchemyError, OSError) as exc:
            raise AccountUnavailable(f"the accounts database is unavailable: {exc}") from exc
        except Exception as exc:  # StorageError from database_url
            raise AccountUnavailable(str(exc)) from exc
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        """The connection pool (`auction.identity.records` shares it)."""
        return self._engine

    def _run(self, what: str, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.IntegrityError as exc:
            raise KeyInUse(f"{what}: already exists") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable(f"{what}: the database failed") from exc

    # -- accounts and sessions --

    def create_account(self, public_key: bytes | None, now_us: int) -> str:
        """A new account bound to `public_key` (None: a staff account with no bidding key)."""
        account = "acct-" + secrets.token_hex(8)

        def insert(connection: sa.Connection) -> None:
            if public_key is not None:
                found = connection.execute(
                    sa.select(ACCOUNTS.c.account).where(ACCOUNTS.c.public_key == public_key)
                ).first()
                if found is not None:
                    raise KeyInUse("that public key already belongs to an account")
            connection.execute(
                ACCOUNTS.insert().values(account=account, public_key=public_key, created_us=now_us)
            )

        self._run("create account", insert)
        return account

    def create_session(
        self, account: str, role: Role, now_us: int, ttl_us: int = SESSION_TTL_US
    ) -> tuple[str, int]:
        """A new bearer token for `account` with `role`; returns `(token, expires_us)`."""
        token = secrets.token_urlsafe(32)
        expires = now_us + ttl_us
        self._run(
            "create session",
            lambda connection: connection.execute(
                SESSIONS.insert().values(
                    token_hash=_token_hash(token),
                    account=account,
                    role=role.value,
                    expires_us=expires,
                )  # fmt: skip
            ),
        )
        return token, expires

    def session(self, token: str, now_us: int) -> Session | None:
        """The session of `token` if it exists and has not expired."""
        row = self._run(
            "read session",
            lambda connection: connection.execute(
                sa.select(SESSIONS).where(SESSIONS.c.token_hash == _token_hash(token))
            ).first(),
        )
        if row is None or row.expires_us <= now_us:
            return None
        return Session(row.account, Role(row.role), row.expires_us)

    def public_key(self, account: str) -> bytes | None:
        """The raw public key bound to `account` (None: unknown account or no key)."""
        row = self._run(
            "read account",
            lambda connection: connection.execute(
                sa.select(ACCOUNTS.c.public_key).where(ACCOUNTS.c.account == account)
            ).first(),
        )
        return None if row is None else row.public_key

    # -- secrets --

    def secret(self, name: str, size: int = 32) -> bytes:
        """The named secret, made (random, `size` bytes) on first use."""

        def get_or_make(connection: sa.Connection) -> bytes:
            row = connection.execute(
                sa.select(SECRETS.c.value).where(SECRETS.c.name == name)
            ).first()
            if row is not None:
                return bytes(row.value)
            value = secrets.token_bytes(size)
            connection.execute(SECRETS.insert().values(name=name, value=value))
            return value

        return bytes(self._run("read secret", get_or_make))


__all__ = [
    "SESSION_TTL_US",
    "AccountError",
    "AccountStore",
    "AccountUnavailable",
    "KeyInUse",
    "Role",
    "Session",
    "UnknownAccount",
]
