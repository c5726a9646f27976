"""Staff sessions made from the console by an admin (an adapter over SQL, beside
`auction.accounts`; blocking, call from a worker thread).

`gavel_staff_session` keeps, for each staff session an admin created: its id (`st-<16 hex>`,
what the list shows and what a revocation names), the SHA-256 of its token (the token itself
is shown once, in the answer to its creation, and never stored), the staff account, its role,
its label (what the session is for, e.g. "desk-2" or "night-auditor": a label, never a
person's name), when it was made and expires, the admin account that made it, and when (and
by whom) it was revoked. Revoking deletes the bearer session from `gavel_session`, so the token
is refused at once everywhere.

Sessions made by `gavel staff` on the server's machine are not in this table: the console
neither lists nor revokes them (they expire after 12 hours).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .accounts import SESSIONS, AccountStore, AccountUnavailable, Role, _token_hash

#: The roles an admin may give from the console.
GRANTABLE = (Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR, Role.COURT)
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")

_METADATA = sa.MetaData()

STAFF = sa.Table(
    "gavel_staff_session",
    _METADATA,
    sa.Column("session_id", sa.String(24), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("label", sa.String(40), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(32), nullable=False),
    sa.Column("revoked_us", sa.BigInteger, nullable=True),
    sa.Column("revoked_by", sa.String(32), nullable=True),
)


@dataclass(frozen=True, slots=True)
class StaffSession:
    session_id: str
    role: str
    label: str
    created_us: int
    expires_us: int
    created_by: str
    revoked_us: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session_id,
            "role": self.role,
            "label": self.label,
            "created_us": self.created_us,
            "expires_us": self.expires_us,
        }


class StaffStore:
    """The staff sessions table (module docstring)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self._engine = accounts.engine
        try:
            _METADATA.create_all(self._engine, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable(f"cannot create the staff table: {exc}") from exc

    def _run(self, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable("the staff sessions table failed") from exc

    def create(
        self, role: Role, label: str, created_by: str, now_us: int
    ) -> tuple[StaffSession, str]:
        """A new staff account and session with `role`: `(session, token)`."""
        account = self._accounts.create_account(None, now_us)
        token, expires = self._accounts.create_session(account, role, now_us)
        session = StaffSession(
            "st-" + secrets.token_hex(8), role.value, label, now_us, expires, created_by, None
        )
        self._run(
            lambda connection: connection.execute(
                STAFF.insert().values(
                    session_id=session.session_id,
                    token_hash=_token_hash(token),
                    account=account,
                    role=role.value,
                    label=label,
                    created_us=now_us,
                    expires_us=expires,
                    created_by=created_by,
                )
            )
        )
        return session, token

    def active(self, now_us: int) -> list[StaffSession]:
        """The sessions neither revoked nor expired, oldest first."""
        query = (
            sa.select(STAFF)
            .where(STAFF.c.revoked_us.is_(None) & (STAFF.c.expires_us > now_us))
            .order_by(STAFF.c.created_us, STAFF.c.session_id)
        )
        rows = self._run(lambda connection: connection.execute(query).all())
        return [
            StaffSession(
                r.session_id, r.role, r.label, r.created_us, r.expires_us, r.created_by, None
            )
            for r in rows
        ]

    def revoke(self, session_id: str, by: str, now_us: int) -> StaffSession | None:
        """Revoke an active session (its bearer token stops working at once); None if there
        is no such active session."""

        def revoke(connection: sa.Connection) -> StaffSession | None:
            row = connection.execute(
                sa.select(STAFF).where(
                    (STAFF.c.session_id == session_id) & STAFF.c.revoked_us.is_(None)
                )
            ).first()
            if row is None or row.expires_us <= now_us:
                return None
            connection.execute(SESSIONS.delete().where(SESSIONS.c.token_hash == row.token_hash))
            connection.execute(
                STAFF.update()
                .where(STAFF.c.session_id == session_id)
                .values(revoked_us=now_us, revoked_by=by)
            )
            return StaffSession(
                row.session_id, row.role, row.label, row.created_us, row.expires_us,
                row.created_by, now_us,
            )  # fmt: skip

        result: StaffSession | None = self._run(revoke)
        return result

    def undo(self, session_id: str, now_us: int) -> None:
        """Revoke a session whose creation could not be recorded on the ledger."""
        self.revoke(session_id, "undo", now_us)


__all__ = ["GRANTABLE", "LABEL", "StaffSession", "StaffStore"]
