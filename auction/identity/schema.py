"""The compliance tables of identities (SQLAlchemy Core), created by `auction.storage`'s schema
migration 4 (`migrate_identities`), in the same database as the lots and the ledger.

* `gavel_identity_version`: every version of every account's identity, append-only: a new
  check adds version n + 1, an old row is never replaced. Each holds the personal data and the
  salt (both NULL once erased), the attestation the provider signed (what the ledger holds), the
  document's fingerprint (`auction.identity.binding`), and for a re-verification the compliance
  account that allowed it and its reason;
* `gavel_identity_fingerprint`: which account each document is bound to. Its primary key is
  the fingerprint, so two accounts can never hold one document, even when they verify it at the
  same instant on two servers;
* `gavel_identity_alert`: refused attempts to verify a document bound to another account (and
  duplicates found in data stored before fingerprints existed), for compliance. No personal
  data: accounts, document type, fingerprint, time;
* `gavel_identity_permit`: compliance decisions allowing one re-verification, with a reason.

Before version 4 an account had one row in `gavel_identity`, replaced by each new check; the
migration copies each such row as version 1 and drops that table (it would otherwise keep
personal data out of reach of erasure). Their fingerprints are computed when the server next
starts (`IdentityRecords.backfill`): computing one needs the server's secret.

Only SQLAlchemy: `auction.storage` imports this module.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

IDENTITY_METADATA = sa.MetaData()

IDENTITY_VERSIONS = sa.Table(
    "gavel_identity_version",
    IDENTITY_METADATA,
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("document_type", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=True, index=True),  # NULL: not yet known
    sa.Column("personal_data", sa.Text, nullable=True),  # JSON; NULL once erased
    sa.Column("salt", sa.LargeBinary(64), nullable=True),  # NULL once erased
    sa.Column("attestation", sa.Text, nullable=False),  # JSON, no personal data
    sa.Column("idv_entry", sa.BigInteger, nullable=True),
    sa.Column("verified_us", sa.BigInteger, nullable=False),
    sa.Column("erased_us", sa.BigInteger, nullable=True),
    sa.Column("authorised_by", sa.String(32), nullable=True),  # compliance account
    sa.Column("reason", sa.Text, nullable=True),
)

IDENTITY_FINGERPRINTS = sa.Table(
    "gavel_identity_fingerprint",
    IDENTITY_METADATA,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(32), nullable=False, index=True),
    sa.Column("document_type", sa.String(32), nullable=False),
    sa.Column("bound_us", sa.BigInteger, nullable=False),
)

IDENTITY_ALERTS = sa.Table(
    "gavel_identity_alert",
    IDENTITY_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("account", sa.String(32), nullable=False, index=True),  # who tried
    sa.Column("holder", sa.String(32), nullable=True),  # who holds the document
    sa.Column("document_type", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
)

IDENTITY_PERMITS = sa.Table(
    "gavel_identity_permit",
    IDENTITY_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(32), nullable=False, index=True),
    sa.Column("granted_by", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("granted_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("used_us", sa.BigInteger, nullable=True),
)

#: The table of schema versions 1-3 (one row per account, replaced by each check).
_LEGACY_IDENTITIES = sa.Table(
    "gavel_identity",
    sa.MetaData(),
    sa.Column("account", sa.String(32), primary_key=True),
    sa.Column("personal_data", sa.Text, nullable=True),
    sa.Column("salt", sa.LargeBinary(64), nullable=True),
    sa.Column("attestation", sa.Text, nullable=False),
    sa.Column("idv_entry", sa.BigInteger, nullable=True),
    sa.Column("verified_us", sa.BigInteger, nullable=False),
    sa.Column("erased_us", sa.BigInteger, nullable=True),
)


def document_type_of(attestation: str) -> str:
    """The document type an attestation's `method` names (`document:PRC_RESIDENT_ID`)."""
    method = str(json.loads(attestation).get("method", ""))
    return method.partition(":")[2] or "UNKNOWN"


def migrate_identities(connection: sa.Connection) -> None:
    """Schema version 4: create the tables above; copy each row of `gavel_identity` (if an
    older version made it) as version 1 of its account, then drop that table."""
    IDENTITY_METADATA.create_all(connection)
    if not sa.inspect(connection).has_table(_LEGACY_IDENTITIES.name):
        return
    for row in connection.execute(sa.select(_LEGACY_IDENTITIES)).all():
        connection.execute(
            IDENTITY_VERSIONS.insert().values(
                account=row.account,
                version=1,
                document_type=document_type_of(row.attestation),
                fingerprint=None,
                personal_data=row.personal_data,
                salt=row.salt,
                attestation=row.attestation,
                idv_entry=row.idv_entry,
                verified_us=row.verified_us,
                erased_us=row.erased_us,
            )
        )
    _LEGACY_IDENTITIES.drop(connection)


__all__ = [
    "IDENTITY_ALERTS",
    "IDENTITY_FINGERPRINTS",
    "IDENTITY_METADATA",
    "IDENTITY_PERMITS",
    "IDENTITY_VERSIONS",
    "document_type_of",
    "migrate_identities",
]
