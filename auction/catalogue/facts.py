"""A lot's facts for buyers: address, area, description, pictures and the court's documents
(the announcement, the bidding notice 竞买须知, ...), each document anchored in the ledger by
its SHA-256 in a `document` entry.

Three layers:

* pure checks: `sniff` names a file's type from its bytes (PNG, JPEG, WebP pictures; PDF and
  UTF-8 plain text documents; nothing else, never HTML or SVG), `check_upload` bounds sizes and
  names and raises a typed `FactsError`, `check_facts` validates the text fields;
* `document_body(...)`: the ledger body of a `document` entry (docs/protocol.md §3.1; no
  personal data), and `anchor_document(service, ...)`, which records it and returns its seq
  (the sale confirmation uses the same pair with kind `"sale_confirmation"`);
* `LotFactsStore`: the tables `lot_facts` and `lot_documents` (created by the storage's
  migration 4, `create_tables`) on SQLite or PostgreSQL; blocking, call it off the event loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from chain import EntryType

from .. import errors
from ..errors import BadInput, Conflict, GavelError, NotFound, Unavailable
from ..rules import LotRules, decode

if TYPE_CHECKING:
    from ..service import AuctionService

logger = logging.getLogger(__name__)

#: Pictures: at most this many bytes each, and this many per lot.
MAX_PICTURE_BYTES = 4 * 1024 * 1024
MAX_PICTURES = 12
#: Documents (PDF or plain text): at most this many bytes each, and this many per lot.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_DOCUMENTS = 20
#: A picture's width × height at most (a decompression bomb is refused before decoding).
MAX_PIXELS = 40_000_000

PICTURE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
DOCUMENT_TYPES = frozenset({"application/pdf", "text/plain"})

#: Upload kinds: "picture" takes pictures, the others documents.
KINDS: Mapping[str, frozenset[str]] = {
    "picture": PICTURE_TYPES,
    "announcement": DOCUMENT_TYPES,  # the court's auction announcement (拍卖公告)
    "notice": DOCUMENT_TYPES,  # the bidding notice (竞买须知)
    "appraisal_report": DOCUMENT_TYPES,
}

#: The text fields staff enter, with their maximum lengths (characters).
FACT_FIELDS: Mapping[str, int] = {
    "address": 300,
    "area": 40,  # as written: "89.46 m²"
    "description": 4000,
    "property_kind": 60,  # "Flat", "Parking space"
    "priority_notice": 1500,  # who holds priority purchase rights, if the court names them
}

_KIND_NAME = re.compile(r"[a-z][a-z_]{0,31}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME_LIMIT = 120


# --- errors (STYLE rule 5) -------------------------------------------------------------------


class FactsError(GavelError):
    """Base of this module's errors: a stable `code` and a sentence."""

    code = "BAD_FACTS"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class BadFacts(FactsError, BadInput):
    """The facts or the document are refused as they are."""


class WrongType(FactsError, errors.WrongMediaType):
    """The bytes are not of a type this kind of upload accepts (checked by sniffing)."""

    code = "WRONG_TYPE"


class TooLarge(FactsError, errors.TooLarge):
    code = "TOO_LARGE"


class TooMany(FactsError, Conflict):
    code = "TOO_MANY"


class UnknownDocument(FactsError, NotFound):
    code = "UNKNOWN_DOCUMENT"


class FactsUnavailable(FactsError, Unavailable):
    code = "UNAVAILABLE"


# --- pure checks -----------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The content type of `data` from its first bytes, among the accepted ones; None for
    anything else (HTML, SVG, XML, scripts, archives, binary text)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if _plain_text(data):
        return "text/plain"
    return None


#: Beginnings a browser could take for markup if it ever sniffed (WHATWG MIME sniffing §7.1).
_MARKUP = re.compile(
    rb"\s*<(!doctype|html|head|body|script|iframe|svg|\?xml|!--|style|title|div|a\b|img|"
    rb"table|font|br|p\b|h1|b\b|object|embed)",
    re.IGNORECASE,
)


def _plain_text(data: bytes) -> bool:
    if not data or data.startswith(b"\xef\xbb\xbf" + b"<") or _MARKUP.match(data[:512]):
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(
        char in "\t\n\r\f" or unicodedata.category(char) not in ("Cc", "Cs", "Co", "Cn")
        for char in text
    )


def _check_picture(data: bytes, content_type: str) -> None:
    """Decode the header with Pillow: a real picture of the sniffed format, not a bomb."""
    from PIL import Image

    expected = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}[content_type]
    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise WrongType(f"the picture is too large: {width} × {height} pixels")
            image.verify()
    except FactsError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise WrongType(f"the file is not a readable {expected} picture") from exc


@dataclass(frozen=True, slots=True)
class Upload:
    """A checked upload: what goes into the store and the ledger."""

    kind: str
    name: str
    content_type: str
    size: int
    sha256: str
    data: bytes


def clean_name(name: str) -> str:
    """A file name safe to show and to put in Content-Disposition: no path, no control
    characters, at most 120 characters. Raises `FactsError` when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C" and c not in '"')
    if not base or base in (".", "..") or len(base) > _NAME_LIMIT:
        raise BadFacts(f"a file name of 1 to {_NAME_LIMIT} characters is needed")
    return base


def check_upload(kind: str, name: str, data: bytes, declared: str | None = None) -> Upload:
    """Check an upload of `kind` (`KINDS`): its size, its type sniffed from the bytes (and, if
    the sender `declared` one, that it agrees), and for pictures that they decode. Raises
    `WrongType` (415), `TooLarge` (413) or `FactsError` (422)."""
    accepted = KINDS.get(kind)
    if accepted is None:
        raise BadFacts(f"the kind of file must be one of: {', '.join(sorted(KINDS))}")
    name = clean_name(name)
    picture = accepted is PICTURE_TYPES
    limit = MAX_PICTURE_BYTES if picture else MAX_DOCUMENT_BYTES
    if len(data) > limit:
        raise TooLarge(f"the file has {len(data):,} bytes; at most {limit:,} are accepted")
    if not data:
        raise BadFacts("the file is empty")
    content_type = sniff(data)
    if content_type not in accepted:
        allowed = "PNG, JPEG or WebP pictures" if picture else "PDF or plain-text documents"
        raise WrongType(f"only {allowed} are accepted here")
    if declared is not None:
        claimed = declared.split(";", 1)[0].strip().lower()
        if claimed not in ("", "application/octet-stream", content_type):
            raise WrongType(f"the file says it is {claimed}, but its bytes are {content_type}")
    if picture:
        _check_picture(data, content_type)
    digest = hashlib.sha256(data).hexdigest()
    return Upload(kind, name, content_type, len(data), digest, data)


def check_facts(body: Mapping[str, Any]) -> dict[str, str]:
    """The text facts of a request body: only `FACT_FIELDS`, each text within its limit (an
    empty text clears the field). Raises `FactsError`."""
    unknown = sorted(set(body) - set(FACT_FIELDS))
    if unknown:
        raise BadFacts(f"unknown fields {unknown}; use {sorted(FACT_FIELDS)}")
    facts = {}
    for field, limit in FACT_FIELDS.items():
        value = body.get(field, "")
        if not isinstance(value, str) or len(value) > limit:
            raise BadFacts(f"{field!r} must be a text of at most {limit} characters")
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
            raise BadFacts(f"{field!r} contains control characters")
        facts[field] = value.strip()
    return facts


# --- the ledger ------------------------------------------------------------------------------


def document_body(
    lot: str, kind: str, name: str, content_type: str, size: int, sha256: str
) -> dict[str, Any]:
    """The body of a `document` ledger entry (docs/protocol.md §3.1): which lot, what kind of
    document, its file name, type, size in bytes and SHA-256 (hex). No personal data: the
    caller must not put a person's name in `name`. Raises `FactsError` on a malformed field."""
    if not lot or len(lot) > 128:
        raise BadFacts("a lot id is needed")
    if not _KIND_NAME.fullmatch(kind):
        raise BadFacts("a document kind is lower-case letters and underscores")
    if not _SHA256.fullmatch(sha256):
        raise BadFacts("sha256 must be 64 lower-case hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadFacts("size must be a whole number of bytes")
    return {
        "v": 1,
        "lot": lot,
        "kind": kind,
        "name": clean_name(name),
        "content_type": content_type,
        "size": size,
        "sha256": sha256,
    }


async def anchor_document(
    service: AuctionService,
    lot: str,
    kind: str,
    name: str,
    content_type: str,
    data: bytes,
) -> tuple[dict[str, Any], int]:
    """Record a `document` entry for `data` and return `(body, seq)` once it is durable.
    Raises `FactsError` for a malformed field, else what `AuctionService.record` raises."""
    digest = hashlib.sha256(data).hexdigest()
    body = document_body(lot, kind, name, content_type, len(data), digest)
    seq = await service.record(EntryType.DOCUMENT, body)
    return body, seq


# --- storage ---------------------------------------------------------------------------------

METADATA = sa.MetaData()

LOT_FACTS = sa.Table(
    "lot_facts",
    METADATA,
    sa.Column("lot_id", sa.String(128), primary_key=True),
    sa.Column("facts", sa.Text, nullable=False),  # JSON of FACT_FIELDS
    sa.Column("views", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

LOT_DOCUMENTS = sa.Table(
    "lot_documents",
    METADATA,
    sa.Column("document_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lot_id", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(_NAME_LIMIT * 4), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("entry", sa.BigInteger, nullable=False),  # the `document` ledger entry's seq
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

#: The storage's own catalogue table, read for a lot's rules (never written here).
_LOTS = sa.table("lots", sa.column("lot_id"), sa.column("rules"))
_REGISTRATIONS = sa.table("registrations", sa.column("lot_id"), sa.column("bidder_id"))


def create_tables(connection: Connection) -> None:
    """Create `lot_facts` and `lot_documents` (the storage's migration 4)."""
    METADATA.create_all(connection)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document's row without its bytes."""

    document_id: int
    lot_id: str
    kind: str
    name: str
    content_type: str
    size: int
    sha256: str
    entry: int
    created_us: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.document_id,
            "kind": self.kind,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "entry": self.entry,
            "created_us": self.created_us,
            "url": f"/api/lots/{self.lot_id}/documents/{self.document_id}",
        }


_META_COLUMNS = [c for c in LOT_DOCUMENTS.c if c.name != "content"]


def _document(row: Any) -> StoredDocument:
    return StoredDocument(
        row.document_id,
        row.lot_id,
        row.kind,
        row.name,
        row.content_type,
        row.size,
        row.sha256,
        row.entry,
        row.created_us,
    )


class LotFactsStore:
    """Facts and documents of lots, in the auction's database (the engine of
    `auction.storage.Storage`, whose migration made the tables). Every method blocks."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rules: dict[str, LotRules] = {}  # a lot's rules never change

    def _run(self, what: str, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.SQLAlchemyError as exc:
            logger.warning("lot facts: %s failed: %s", what, exc)
            raise FactsUnavailable(f"{what}: the database failed") from exc

    def put_facts(self, lot_id: str, facts: Mapping[str, str], now_us: int) -> None:
        """Replace the lot's text facts (`check_facts` first)."""
        text = json.dumps(dict(facts), ensure_ascii=False, sort_keys=True)

        def upsert(connection: Connection) -> None:
            done = connection.execute(
                LOT_FACTS.update()
                .where(LOT_FACTS.c.lot_id == lot_id)
                .values(facts=text, updated_us=now_us)
            )
            if done.rowcount == 0:
                connection.execute(
                    LOT_FACTS.insert().values(lot_id=lot_id, facts=text, views=0, updated_us=now_us)
                )

        self._run("store the facts", upsert)

    def facts(self, lot_ids: Sequence[str] | None = None) -> dict[str, tuple[dict[str, str], int]]:
        """`{lot: (facts, views)}` for the given lots (None: every lot with facts)."""

        def read(connection: Connection) -> dict[str, tuple[dict[str, str], int]]:
            query = sa.select(LOT_FACTS)
            if lot_ids is not None:
                query = query.where(LOT_FACTS.c.lot_id.in_(list(lot_ids)))
            return {
                row.lot_id: (json.loads(row.facts), int(row.views))
                for row in connection.execute(query)
            }

        return dict(self._run("read the facts", read))

    def count_view(self, lot_id: str, now_us: int) -> int:
        """Count one visit of the lot's page; returns the new count."""

        def bump(connection: Connection) -> int:
            done = connection.execute(
                LOT_FACTS.update()
                .where(LOT_FACTS.c.lot_id == lot_id)
                .values(views=LOT_FACTS.c.views + 1)
            )
            if done.rowcount == 0:
                connection.execute(
                    LOT_FACTS.insert().values(lot_id=lot_id, facts="{}", views=1, updated_us=now_us)
                )
            return int(
                connection.execute(
                    sa.select(LOT_FACTS.c.views).where(LOT_FACTS.c.lot_id == lot_id)
                ).scalar_one()
            )

        return int(self._run("count a view", bump))

    def registered(self, lot_ids: Sequence[str]) -> dict[str, int]:
        """Registered bidders per lot (the storage's registration projection)."""

        def count(connection: Connection) -> dict[str, int]:
            query = (
                sa.select(_REGISTRATIONS.c.lot_id, sa.func.count())
                .where(_REGISTRATIONS.c.lot_id.in_(list(lot_ids)))
                .group_by(_REGISTRATIONS.c.lot_id)
            )
            return {row[0]: int(row[1]) for row in connection.execute(query)}

        return dict(self._run("count registrations", count))

    def rules(self, lot_id: str) -> LotRules | None:
        """The lot's rules as stored (cached: they never change); None for an unknown lot."""
        known = self._rules.get(lot_id)
        if known is not None:
            return known
        raw = self._run(
            "read the rules",
            lambda connection: connection.execute(
                sa.select(_LOTS.c.rules).where(_LOTS.c.lot_id == lot_id)
            ).scalar(),
        )
        if raw is None:
            return None
        rules = decode(json.loads(raw) if isinstance(raw, str) else raw)
        if not isinstance(rules, LotRules):
            raise FactsUnavailable(f"the stored rules of {lot_id!r} are not readable")
        self._rules[lot_id] = rules
        return rules

    def add_document(self, lot_id: str, upload: Upload, entry: int, now_us: int) -> StoredDocument:
        """Store an anchored upload (`entry`: its ledger seq). Raises `TooMany` past the
        per-lot limits."""
        picture = upload.kind == "picture"

        def insert(connection: Connection) -> int:
            # Write first, count after (a SQLite reader that then writes could be refused
            # while the ledger writer holds the lock); over the limit, the rollback undoes it.
            result = connection.execute(
                LOT_DOCUMENTS.insert().values(
                    lot_id=lot_id,
                    kind=upload.kind,
                    name=upload.name,
                    content_type=upload.content_type,
                    size=upload.size,
                    sha256=upload.sha256,
                    entry=entry,
                    created_us=now_us,
                    content=upload.data,
                )
            )
            kinds = LOT_DOCUMENTS.c.kind == "picture"
            query = sa.select(sa.func.count()).where(
                LOT_DOCUMENTS.c.lot_id == lot_id, kinds if picture else sa.not_(kinds)
            )
            limit = MAX_PICTURES if picture else MAX_DOCUMENTS
            if connection.execute(query).scalar_one() > limit:
                raise TooMany(f"a lot has at most {limit} {'pictures' if picture else 'documents'}")
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

        document_id = self._run("store the document", insert)
        return StoredDocument(
            document_id,
            lot_id,
            upload.kind,
            upload.name,
            upload.content_type,
            upload.size,
            upload.sha256,
            entry,
            now_us,
        )

    def documents(self, lot_ids: Sequence[str]) -> dict[str, list[StoredDocument]]:
        """The documents of each lot (no bytes), pictures first, then by upload order."""

        def read(connection: Connection) -> dict[str, list[StoredDocument]]:
            query = (
                sa.select(*_META_COLUMNS)
                .where(LOT_DOCUMENTS.c.lot_id.in_(list(lot_ids)))
                .order_by(LOT_DOCUMENTS.c.lot_id, LOT_DOCUMENTS.c.document_id)
            )
            found: dict[str, list[StoredDocument]] = {}
            for row in connection.execute(query):
                found.setdefault(row.lot_id, []).append(_document(row))
            return found

        return dict(self._run("read the documents", read))

    def document(self, lot_id: str, document_id: int) -> tuple[StoredDocument, bytes]:
        """One document with its bytes. Raises `UnknownDocument`."""
        row = self._run(
            "read a document",
            lambda connection: connection.execute(
                sa.select(LOT_DOCUMENTS).where(
                    LOT_DOCUMENTS.c.lot_id == lot_id, LOT_DOCUMENTS.c.document_id == document_id
                )
            ).first(),
        )
        if row is None:
            raise UnknownDocument("there is no such document")
        return _document(row), bytes(row.content)


__all__ = [
    "DOCUMENT_TYPES",
    "FACT_FIELDS",
    "KINDS",
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_PICTURES",
    "MAX_PICTURE_BYTES",
    "PICTURE_TYPES",
    "FactsError",
    "FactsUnavailable",
    "LotFactsStore",
    "StoredDocument",
    "TooLarge",
    "TooMany",
    "UnknownDocument",
    "Upload",
    "WrongType",
    "anchor_document",
    "check_facts",
    "check_upload",
    "clean_name",
    "create_tables",
    "document_body",
    "sniff",
]
