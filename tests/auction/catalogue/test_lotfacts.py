"""`auction.catalogue.facts`: sniffing and bounding uploads (pure), the `document` ledger body,
and the facts store on SQLite and PostgreSQL (tables made by the storage's migration 4)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from auction.catalogue.facts import (
    MAX_DOCUMENT_BYTES,
    MAX_PICTURE_BYTES,
    MAX_PICTURES,
    FactsError,
    LotFactsStore,
    TooLarge,
    TooMany,
    UnknownDocument,
    WrongType,
    check_facts,
    check_upload,
    document_body,
    sniff,
)
from auction.demo.facts import facade, office_tower, parking_bay
from auction.rules import SECOND, judicial
from auction.storage import SCHEMA_VERSION, Storage

T0 = 1_700_000_000 * SECOND
RULES = judicial(
    start_price=1_000_000, step=10_000, start_at=T0, end_at=T0 + 60 * SECOND, min_duration=0
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT = "Bidding notice\n竞买须知: bids cannot be withdrawn.\n".encode()


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header claiming a huge picture (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\0\0\0\0IEND\xaeB`\x82"


def test_sniffing_names_only_the_accepted_types() -> None:
    assert sniff(facade()) == "image/png"
    assert sniff(parking_bay()) == "image/jpeg"
    assert sniff(office_tower()) == "image/webp"
    assert sniff(PDF) == "application/pdf"
    assert sniff(TEXT) == "text/plain"
    refused = [
        b"<!doctype html><script>alert(1)</script>",
        b"  <html><body>hi</body></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<?xml version="1.0"?><svg/>',
        b"\xef\xbb\xbf<html>",
        b"GIF89a\x01\x00\x01\x00",
        b"PK\x03\x04zip",
        b"\xff\xfe\x00binary\x00",
        b"text with a NUL\x00 byte",
        b"\xc3\x28 not UTF-8",
        b"",
    ]
    for data in refused:
        assert sniff(data) is None, data


def test_uploads_are_checked_by_their_bytes_and_bounded() -> None:
    upload = check_upload("picture", "../../etc/facade.png", facade(), "image/png")
    assert upload.name == "facade.png" and upload.content_type == "image/png"
    assert upload.sha256 == hashlib.sha256(upload.data).hexdigest()
    assert check_upload("notice", "notice.txt", TEXT).content_type == "text/plain"
    assert check_upload("announcement", "a.pdf", PDF, "application/pdf").size == len(PDF)
    with pytest.raises(WrongType):  # a document where a picture is wanted
        check_upload("picture", "a.pdf", PDF)
    with pytest.raises(WrongType):  # a picture where a document is wanted
        check_upload("notice", "a.png", facade())
    with pytest.raises(WrongType):  # HTML with a harmless name
        check_upload("notice", "notice.txt", b"<html><script>alert(1)</script></html>")
    with pytest.raises(WrongType):  # the declared type must agree with the bytes
        check_upload("picture", "facade.png", facade(), "image/svg+xml")
    with pytest.raises(WrongType):  # PNG signature, broken body
        check_upload("picture", "x.png", facade()[:40])
    with pytest.raises(WrongType):  # a decompression bomb's header
        check_upload("picture", "bomb.png", png_bomb(100_000, 100_000))
    with pytest.raises(TooLarge):
        check_upload("notice", "big.txt", b"a" * (MAX_DOCUMENT_BYTES + 1))
    big = io.BytesIO()
    Image.effect_noise((1400, 1400), 90).convert("RGB").save(big, "PNG")
    assert len(big.getvalue()) > MAX_PICTURE_BYTES // 2
    with pytest.raises(TooLarge):
        check_upload("picture", "big.png", big.getvalue() + b"\0" * MAX_PICTURE_BYTES)
    with pytest.raises(FactsError):
        check_upload("passport", "p.png", facade())
    with pytest.raises(FactsError):
        check_upload("notice", "", TEXT)
    with pytest.raises(FactsError):
        check_upload("notice", "empty.txt", b"")


def test_document_body_is_the_protocol_shape() -> None:
    digest = hashlib.sha256(PDF).hexdigest()
    body = document_body("flat-1", "announcement", "a.pdf", "application/pdf", len(PDF), digest)
    assert body == {
        "v": 1,
        "lot": "flat-1",
        "kind": "announcement",
        "name": "a.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": digest,
    }
    # the sale confirmation uses the same body with its own kind
    assert document_body("flat-1", "sale_confirmation", "c.pdf", "application/pdf", 1, digest)[
        "kind"
    ] == ("sale_confirmation")
    for bad in (
        ("", "notice", "a", "text/plain", 1, digest),
        ("l", "Notice!", "a", "text/plain", 1, digest),
        ("l", "notice", "a", "text/plain", -1, digest),
        ("l", "notice", "a", "text/plain", 1, digest.upper()),
    ):
        with pytest.raises(FactsError):
            document_body(*bad)


def test_facts_are_bounded_text() -> None:
    facts = check_facts({"address": " 1 Road ", "area": "89 m²"})
    assert facts["address"] == "1 Road" and facts["description"] == ""
    for bad in ({"owner": "x"}, {"address": 5}, {"area": "x" * 41}, {"description": "a\x00b"}):
        with pytest.raises(FactsError):
            check_facts(bad)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    target = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path
    with Storage.open(target) as opened:
        opened.add_lot("flat-1", RULES, "A flat")
        opened.add_lot("flat-2", RULES, "Another flat")
        yield opened


def test_the_store_keeps_facts_documents_and_counts(storage: Storage) -> None:
    assert storage.schema_version() == SCHEMA_VERSION >= 4
    store = LotFactsStore(storage.engine())
    assert store.rules("flat-1") == RULES and store.rules("nope") is None
    store.put_facts("flat-1", check_facts({"address": "1 Road", "area": "89 m²"}), T0)
    store.put_facts("flat-1", check_facts({"address": "2 Road"}), T0 + 1)
    assert store.facts(["flat-1", "flat-2"]) == {
        "flat-1": (
            {
                "address": "2 Road",
                "area": "",
                "description": "",
                "property_kind": "",
                "priority_notice": "",
            },
            0,
        )
    }
    assert store.count_view("flat-1", T0) == 1
    assert store.count_view("flat-1", T0) == 2
    assert store.count_view("flat-2", T0) == 1  # a lot without facts yet
    picture = check_upload("picture", "facade.png", facade())
    notice = check_upload("notice", "notice.txt", TEXT)
    first = store.add_document("flat-1", picture, entry=7, now_us=T0)
    second = store.add_document("flat-1", notice, entry=8, now_us=T0)
    held = store.documents(["flat-1", "flat-2"])
    assert [d.document_id for d in held["flat-1"]] == [first.document_id, second.document_id]
    assert "flat-2" not in held
    stored, data = store.document("flat-1", second.document_id)
    assert data == TEXT and stored.sha256 == hashlib.sha256(TEXT).hexdigest()
    assert stored.entry == 8 and stored.to_json()["url"].endswith(f"/{second.document_id}")
    with pytest.raises(UnknownDocument):
        store.document("flat-2", second.document_id)  # another lot's document
    for _ in range(MAX_PICTURES - 1):
        store.add_document("flat-1", picture, entry=9, now_us=T0)
    with pytest.raises(TooMany):
        store.add_document("flat-1", picture, entry=9, now_us=T0)
    assert store.registered(["flat-1"]) == {}


def test_presence_counts_open_pages_within_the_window() -> None:
    from auction.catalogue.presence import WINDOW_US, Presence

    presence = Presence(max_visitors=3)
    a, b, c, d = (f"visitor-{n}-abcdefghij" for n in "abcd")
    assert presence.seen("lot", a, T0) is True  # a new visit
    assert presence.seen("lot", a, T0 + 20 * SECOND) is False  # the same page's heartbeat
    assert presence.seen("lot", b, T0 + 30 * SECOND) is True
    assert presence.watching("lot", T0 + 30 * SECOND) == 2
    assert presence.watching("other", T0) == 0
    # a page closed: its id stops counting after the window
    assert presence.watching("lot", T0 + 20 * SECOND + WINDOW_US + 1) == 1
    assert presence.seen("lot", a, T0 + 200 * SECOND) is True  # back later: a new visit
    # bounded: a fourth visitor while three are fresh is not remembered
    assert presence.seen("lot", c, T0 + 200 * SECOND) is True
    assert presence.seen("lot", b, T0 + 200 * SECOND) is True
    assert presence.seen("lot", d, T0 + 200 * SECOND) is False
    assert presence.watching("lot", T0 + 200 * SECOND) == 3
    for malformed in ("short", "x" * 65, "has space in it here", "ünïcode-visitor-id"):
        assert presence.seen("lot", malformed, T0) is False
