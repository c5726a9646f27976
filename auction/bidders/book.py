"""What the server remembers for each bidder beyond the engine's state (an adapter over SQL,
beside `auction.accounts`): the lots they registered for, their acceptance of each lot's
bidding notice (竞买须知), the answer and ledger entry of each bid they sent, the sign-in code
that lets a second browser log into the same account, and the documents made for a lot's sale
(the 成交确认书: its bytes here, only its SHA-256 on the ledger).

Tables (SQLAlchemy Core, created idempotently in the accounts' database):

* `gavel_my_lot`: (account, lot) with the registration time: the lots of "My auctions", kept
  after a lot has closed and left memory;
* `gavel_notice_acceptance`: (account, lot) → when the bidder accepted the lot's notice (and
  the SHA-256 of the notice text they were shown, when the page had one);
* `gavel_bid_record`: (account, lot, idempotency key) → kind, amount, the answer (`accepted` /
  `rejected`, reason, message) and the bid's ledger entry;
* `gavel_signin`: account → SHA-256 of its current sign-in code (a new code replaces it);
* `gavel_document`: (lot, kind) → the account it is for, name, content type, bytes, SHA-256,
  the ledger `document` entry that anchors it.

Every method is blocking (callers use a worker thread). Failures are `AccountError`s.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ..accounts import AccountUnavailable

_METADATA = sa.MetaData()

MY_LOTS = sa.Table(
    "gavel_my_lot",
    _METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("lot", sa.String(128), primary_key=True),
    sa.Column("registered_us", sa.BigInteger, nullable=False),
)

NOTICES = sa.Table(
    "gavel_notice_acceptance",
    _METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("lot", sa.String(128), primary_key=True),
    sa.Column("accepted_us", sa.BigInteger, nullable=False),
    sa.Column("notice_sha256", sa.String(64), nullable=True),
)

BIDS = sa.Table(
    "gavel_bid_record",
    _METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("lot", sa.String(128), primary_key=True),
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("entry", sa.BigInteger, nullable=True),
    sa.Column("t_us", sa.BigInteger, nullable=False),
)

SIGNIN = sa.Table(
    "gavel_signin",
    _METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

DOCUMENTS = sa.Table(
    "gavel_document",
    _METADATA,
    sa.Column("lot", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(32), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("entry", sa.BigInteger, nullable=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

#: A sign-in code: 20 base32 characters (100 bits) in groups of four.
SIGNIN_GROUPS = 5


@dataclass(frozen=True, slots=True)
class BidRecord:
    lot: str
    idempotency_key: str
    kind: str
    amount: int
    currency: str
    result: str
    reason: str | None
    message: str | None
    entry: int | None
    t_us: int


@dataclass(frozen=True, slots=True)
class Document:
    lot: str
    kind: str
    account: str
    name: str
    content_type: str
    body: bytes
    sha256: str
    entry: int | None
    created_us: int


def _hash(code: str) -> str:
    normal = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(normal.encode("ascii", "replace")).hexdigest()


def new_signin_code() -> str:
    """`ABCD-EFGH-…`: random, typed by a person or carried in a link."""
    text = base64.b32encode(secrets.token_bytes(SIGNIN_GROUPS * 4 * 5 // 8)).decode("ascii")
    text = text.rstrip("=")[: SIGNIN_GROUPS * 4]
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _insert_bid(connection: sa.Connection, account: str, record: BidRecord) -> None:
    found = connection.execute(
        sa.select(BIDS.c.entry).where(
            BIDS.c.account == account,
            BIDS.c.lot == record.lot,
            BIDS.c.idempotency_key == record.idempotency_key,
        )
    ).first()
    if found is None:
        connection.execute(
            BIDS.insert().values(
                account=account,
                lot=record.lot,
                idempotency_key=record.idempotency_key,
                kind=record.kind,
                amount=record.amount,
                currency=record.currency,
                result=record.result,
                reason=record.reason,
                message=record.message,
                entry=record.entry,
                t_us=record.t_us,
            )  # fmt: skip
        )


class BidderBook:
    """Open with `BidderBook(engine)` on the accounts' engine (`AccountStore.engine`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable(f"the bidder tables are unavailable: {exc}") from exc

    def _run(self, what: str, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.SQLAlchemyError as exc:
            raise AccountUnavailable(f"{what}: the database failed") from exc

    # -- my lots --

    def add_lot(self, account: str, lot: str, now_us: int) -> None:
        """Remember that `account` registered for `lot` (idempotent)."""

        def insert(connection: sa.Connection) -> None:
            found = connection.execute(
                sa.select(MY_LOTS.c.lot).where(MY_LOTS.c.account == account, MY_LOTS.c.lot == lot)
            ).first()
            if found is None:
                connection.execute(
                    MY_LOTS.insert().values(account=account, lot=lot, registered_us=now_us)
                )

        self._run("remember a lot", insert)

    def lots(self, account: str) -> list[str]:
        rows = self._run(
            "read my lots",
            lambda connection: connection.execute(
                sa.select(MY_LOTS.c.lot)
                .where(MY_LOTS.c.account == account)
                .order_by(MY_LOTS.c.registered_us, MY_LOTS.c.lot)
            ).all(),
        )
        return [row.lot for row in rows]

    # -- the bidding notice --

    def accept_notice(self, account: str, lot: str, notice_sha256: str | None, now_us: int) -> int:
        """Record the acceptance (the first one stays); returns when it was accepted."""

        def upsert(connection: sa.Connection) -> int:
            row = connection.execute(
                sa.select(NOTICES.c.accepted_us).where(
                    NOTICES.c.account == account, NOTICES.c.lot == lot
                )
            ).first()
            if row is not None:
                return int(row.accepted_us)
            connection.execute(
                NOTICES.insert().values(
                    account=account, lot=lot, accepted_us=now_us, notice_sha256=notice_sha256
                )
            )
            return now_us

        return int(self._run("accept the notice", upsert))

    def notice_accepted(self, account: str, lot: str) -> int | None:
        """When `account` accepted `lot`'s notice, or None."""
        row = self._run(
            "read the notice acceptance",
            lambda connection: connection.execute(
                sa.select(NOTICES.c.accepted_us).where(
                    NOTICES.c.account == account, NOTICES.c.lot == lot
                )
            ).first(),
        )
        return None if row is None else int(row.accepted_us)

    # -- bids --

    def record_bid(self, account: str, record: BidRecord) -> None:
        """Keep a bid's answer; a resend's answer (same key) changes nothing."""
        self.record_bids([(account, record)])

    def record_bids(self, answers: Sequence[tuple[str, BidRecord]]) -> None:
        """`record_bid` for several answers, in one transaction."""

        def insert(connection: sa.Connection) -> None:
            for account, record in answers:
                _insert_bid(connection, account, record)

        self._run("record bids", insert)

    def bids(self, account: str, lot: str) -> list[BidRecord]:
        rows = self._run(
            "read bids",
            lambda connection: connection.execute(
                sa.select(BIDS)
                .where(BIDS.c.account == account, BIDS.c.lot == lot)
                .order_by(BIDS.c.t_us)
            ).all(),
        )
        return [
            BidRecord(
                row.lot,
                row.idempotency_key,
                row.kind,
                row.amount,
                row.currency,
                row.result,
                row.reason,
                row.message,
                row.entry,
                row.t_us,
            )
            for row in rows
        ]

    # -- sign-in codes --

    def new_signin(self, account: str, now_us: int) -> str:
        """A new sign-in code for `account`, replacing any earlier one. Only its hash is kept:
        the code is shown once."""
        code = new_signin_code()

        def replace(connection: sa.Connection) -> None:
            connection.execute(SIGNIN.delete().where(SIGNIN.c.account == account))
            connection.execute(
                SIGNIN.insert().values(account=account, code_hash=_hash(code), created_us=now_us)
            )

        self._run("make a sign-in code", replace)
        return code

    def signin_account(self, code: str) -> str | None:
        """The account whose current sign-in code is `code`, or None."""
        row = self._run(
            "read a sign-in code",
            lambda connection: connection.execute(
                sa.select(SIGNIN.c.account).where(SIGNIN.c.code_hash == _hash(code))
            ).first(),
        )
        return None if row is None else str(row.account)

    def signin_made(self, account: str) -> int | None:
        row = self._run(
            "read a sign-in code",
            lambda connection: connection.execute(
                sa.select(SIGNIN.c.created_us).where(SIGNIN.c.account == account)
            ).first(),
        )
        return None if row is None else int(row.created_us)

    # -- documents --

    def add_document(self, document: Document) -> bool:
        """Keep a document; False (nothing changed) if the lot has one of that kind already."""

        def insert(connection: sa.Connection) -> bool:
            found = connection.execute(
                sa.select(DOCUMENTS.c.lot).where(
                    DOCUMENTS.c.lot == document.lot, DOCUMENTS.c.kind == document.kind
                )
            ).first()
            if found is not None:
                return False
            connection.execute(
                DOCUMENTS.insert().values(
                    lot=document.lot,
                    kind=document.kind,
                    account=document.account,
                    name=document.name,
                    content_type=document.content_type,
                    body=document.body,
                    sha256=document.sha256,
                    entry=document.entry,
                    created_us=document.created_us,
                )  # fmt: skip
            )
            return True

        try:
            return bool(self._run("keep a document", insert))
        except AccountUnavailable:
            if self.document(document.lot, document.kind) is not None:
                return False  # another instance kept it first
            raise

    def set_document_entry(self, lot: str, kind: str, entry: int) -> None:
        self._run(
            "anchor a document",
            lambda connection: connection.execute(
                DOCUMENTS.update()
                .where(DOCUMENTS.c.lot == lot, DOCUMENTS.c.kind == kind)
                .values(entry=entry)
            ),
        )

    def document(self, lot: str, kind: str) -> Document | None:
        row = self._run(
            "read a document",
            lambda connection: connection.execute(
                sa.select(DOCUMENTS).where(DOCUMENTS.c.lot == lot, DOCUMENTS.c.kind == kind)
            ).first(),
        )
        if row is None:
            return None
        return Document(
            row.lot,
            row.kind,
            row.account,
            row.name,
            row.content_type,
            bytes(row.body),
            row.sha256,
            row.entry,
            row.created_us,
        )

    def documents(self, lot: str) -> Sequence[Document]:
        rows = self._run(
            "read documents",
            lambda connection: connection.execute(
                sa.select(DOCUMENTS.c.kind).where(DOCUMENTS.c.lot == lot)
            ).all(),
        )
        found = [self.document(lot, row.kind) for row in rows]
        return [document for document in found if document is not None]


__all__ = ["BidRecord", "BidderBook", "Document", "new_signin_code"]
