"""One person, one account, over the real HTTP server on 127.0.0.1 (real SQLite; PostgreSQL for
the marked tests): a document verified on one account is refused on another whatever its case
or digit width, and under concurrency exactly one account gets it; other digits are a typed
422; a verified identity is bound to its account (a change needs a compliance permit, and is
never possible while the account is registered on a lot that has not closed); compliance sees
every version of an identity, and erasure keeps the binding."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_kit import (
    NAME,
    Bidder,
    Server,
    add_lots,
    new_bidder,
    prc_id,
    running_server,
    verify,
    wait_open,
)
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sa_inspect

from auction.accounts import AccountStore, Role
from auction.identity.binding import fingerprint
from auction.identity.provider import DocumentType
from auction.identity.records import FINGERPRINT_KEY_FILE, DocumentInUse, IdentityRecords
from auction.storage import SCHEMA_VERSION, Storage, database_url

#: GB 11643-1999's own example (check character X), an adult.
WITH_X = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
IN_USE = (
    "This identity document is already verified on another account. "
    "One person may hold one account."
)


def full_width(number: str) -> str:
    return number.translate(FULL_WIDTH)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running, open_in=0.2)
        yield running


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


async def check(
    http: aiohttp.ClientSession,
    server: Server,
    bidder: Bidder,
    document: str,
    name: str = NAME,
    document_type: str = "PRC_RESIDENT_ID",
) -> tuple[int, Any]:
    body = {"name": name, "document_type": document_type, "document": document}
    return await call(http, "POST", f"{server.url}/api/identity", body, bidder.session)


def refused(answer: Any, code: str) -> str:
    assert set(answer) == {"error"}, answer
    assert answer["error"]["code"] == code, answer
    message = answer["error"]["message"]
    assert isinstance(message, str) and message and code not in message
    return str(message)


async def idv_accounts(server: Server) -> list[str]:
    """The accounts of the ledger's `idv` entries, in order (read through the service: the
    same on SQLite and PostgreSQL; the accounts are sealed on the ledger: opened here)."""
    ledger = server.service.ledger
    size = await server.ledger_size()
    entries = await server.service.read(ledger.ledger_entries_opened, 0, size)
    return [
        entry["body"]["account"] for entry in map(json.loads, entries) if entry["type"] == "idv"
    ]


async def is_verified(http: aiohttp.ClientSession, server: Server, bidder: Bidder) -> bool:
    status, me = await call(http, "GET", f"{server.url}/api/me", token=bidder.session)
    assert status == 200
    return bool(me["verified"])


async def test_one_document_on_two_accounts_in_any_case_or_width(
    server: Server, http: aiohttp.ClientSession
) -> None:
    compliance = await server.staff(Role.COMPLIANCE)
    first = await new_bidder(http, server.url)
    status, answer = await check(http, server, first, WITH_X.lower())
    assert status == 201, answer
    await wait_open(server, "watch", "flat")
    typed = [
        WITH_X,  # upper-case X
        WITH_X.lower(),  # the same again
        full_width(WITH_X),  # full-width digits
        full_width(WITH_X[:9]) + WITH_X[9:17] + "ｘ",  # mixed widths, full-width lower x
    ]
    others = []
    for document in typed:
        size = await server.ledger_size()
        other = await new_bidder(http, server.url)
        status, answer = await check(http, server, other, document, name="李四")
        assert status == 409, answer
        assert refused(answer, "DOCUMENT_IN_USE") == IN_USE
        assert await server.ledger_size() == size  # nothing signed, nothing logged
        assert not await is_verified(http, server, other)
        assert await server.gateway.identity(other.account) is None
        status, answer = await call(
            http, "POST", f"{server.url}/api/lots/watch/registrations", {}, other.session
        )
        assert (status, answer["error"]["code"]) == (403, "NOT_VERIFIED")
        others.append(other.account)
    assert await idv_accounts(server) == [first.account]

    status, answer = await call(
        http, "GET", f"{server.url}/api/compliance/alerts", token=compliance
    )
    assert status == 200
    alerts = answer["alerts"]
    assert [alert["account"] for alert in reversed(alerts)] == others
    assert {alert["kind"] for alert in alerts} == {"DUPLICATE_DOCUMENT"}
    assert {alert["holder"] for alert in alerts} == {first.account}
    assert len({alert["fingerprint"] for alert in alerts}) == 1
    text_of_alerts = json.dumps(answer, ensure_ascii=False)
    assert WITH_X not in text_of_alerts and "李四" not in text_of_alerts  # no personal data

    # Another document on the second account is fine: one person, one account.
    last = await new_bidder(http, server.url)
    await verify(http, server.url, last, prc_id(sequence="345"))
    assert await is_verified(http, server, last)


@pytest.mark.parametrize(
    ("document_type", "document", "code"),
    [
        ("PRC_RESIDENT_ID", WITH_X[:5] + "\u00b9" + WITH_X[6:], "NON_ASCII_DIGIT"),  # ¹
        ("PRC_RESIDENT_ID", "\u00b2" + WITH_X[1:], "NON_ASCII_DIGIT"),  # ²
        ("PRC_RESIDENT_ID", WITH_X[:10] + "\u0663" + WITH_X[11:], "NON_ASCII_DIGIT"),  # ٣
        ("PRC_RESIDENT_ID", "\u2460" + WITH_X[1:], "NON_ASCII_DIGIT"),  # ①
        (
            "PASSPORT_TD3",
            "P<UTOERIKSSON<<ANNA<MARIA".ljust(44, "<")
            + "\nL898902C3\u00b3UTO7408122F3204159ZE184226B<<<<<10",
            "NON_ASCII_DIGIT",
        ),
    ],
)
async def test_other_digits_are_a_typed_422_and_change_nothing(
    server: Server, http: aiohttp.ClientSession, document_type: str, document: str, code: str
) -> None:
    bidder = await new_bidder(http, server.url)
    await wait_open(server, "watch", "flat")
    size = await server.ledger_size()
    status, answer = await check(
        http, server, bidder, document, name="Anna Maria Eriksson", document_type=document_type
    )
    assert status == 422, answer
    assert "0 to 9" in refused(answer, code)
    assert await server.ledger_size() == size
    assert await server.gateway.identity(bidder.account) is None
    status, _ = await check(http, server, bidder, WITH_X)  # the plain number still works
    assert status == 201


async def test_a_verified_identity_is_bound_to_its_account(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    compliance = await server.staff(Role.COMPLIANCE)
    auctioneer = await server.staff(Role.AUCTIONEER)
    bidder = await new_bidder(http, url)
    await verify(http, url, bidder, WITH_X)
    another_person = prc_id(birth="19850505", sequence="777")
    await wait_open(server, "watch", "flat")  # their opening entries come first

    # Without compliance: refused, and the attempt is an alert.
    size = await server.ledger_size()
    status, answer = await check(http, server, bidder, another_person, name="王五")
    assert status == 409
    assert "compliance" in refused(answer, "IDENTITY_BOUND")
    status, answer = await check(http, server, bidder, WITH_X)  # the same, while still valid
    assert status == 409
    refused(answer, "IDENTITY_BOUND")
    assert await server.ledger_size() == size
    _, answer = await call(http, "GET", f"{url}/api/compliance/alerts", token=compliance)
    (alert,) = answer["alerts"]  # the same document again is no change of identity
    assert alert["kind"] == "IDENTITY_CHANGE_REFUSED" and alert["account"] == bidder.account

    # A permit granted before a registration does not open a way around the rule.
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/compliance/accounts/{bidder.account}/reverification",
        {"reason": "the bidder reports a wrong number"},
        compliance,
    )
    assert status == 201, answer
    status, _ = await call(http, "POST", f"{url}/api/lots/watch/registrations", {}, bidder.session)
    assert status == 201
    status, answer = await check(http, server, bidder, another_person, name="王五")
    assert status == 409
    assert "lot" in refused(answer, "REGISTERED_ON_OPEN_LOT")
    # ... nor does compliance while the lot is open.
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/compliance/accounts/{bidder.account}/reverification",
        {"reason": "again"},
        compliance,
    )
    assert status == 409
    refused(answer, "REGISTERED_ON_OPEN_LOT")
    status, answer = await call(
        http, "GET", f"{url}/api/compliance/accounts/{bidder.account}/identity", token=compliance
    )
    assert status == 409
    refused(answer, "NOT_CLOSED")  # sealed like the lot's identities (rules C2.4)
    assert await server.ledger_size() == size + 1  # the registration only
    assert (await server.gateway.identity(bidder.account)).personal_data["number"] == WITH_X

    # A closed lot no longer holds the identity; the unused permit still allows one change.
    status, _ = await call(
        http,
        "POST",
        f"{url}/api/console/lots/watch/commands",
        {"type": "Cancel", "reason": "withdrawn"},
        auctioneer,
    )
    assert status == 200
    status, answer = await check(http, server, bidder, another_person, name="王五")
    assert status == 201, answer
    status, answer = await check(http, server, bidder, prc_id(sequence="778"), name="赵六")
    assert status == 409  # the permit was used once
    refused(answer, "IDENTITY_BOUND")
    # Both documents stay bound to this account.
    for document in (WITH_X, another_person):
        other = await new_bidder(http, url)
        status, answer = await check(http, server, other, document)
        assert status == 409
        refused(answer, "DOCUMENT_IN_USE")


async def test_compliance_keeps_every_version_and_erasure_keeps_the_binding(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    compliance = await server.staff(Role.COMPLIANCE)
    auctioneer = await server.staff(Role.AUCTIONEER)
    bidder = await new_bidder(http, url)
    await verify(http, url, bidder, WITH_X)
    await wait_open(server, "watch")
    status, _ = await call(http, "POST", f"{url}/api/lots/watch/registrations", {}, bidder.session)
    assert status == 201
    status, _ = await call(
        http,
        "POST",
        f"{url}/api/console/lots/watch/commands",
        {"type": "Cancel", "reason": "withdrawn"},
        auctioneer,
    )
    assert status == 200
    history_url = f"{url}/api/compliance/accounts/{bidder.account}/identity"
    status, first = await call(http, "GET", history_url, token=compliance)
    assert status == 200, first
    (version_1,) = first["versions"]
    assert version_1["personal_data"]["number"] == WITH_X
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/compliance/accounts/{bidder.account}/reverification",
        {},
        compliance,
    )
    assert status == 422  # a reason is required
    refused(answer, "MALFORMED")
    reason = "court order 2026-17: the card was reissued with a corrected name"
    status, permit = await call(
        http,
        "POST",
        f"{url}/api/compliance/accounts/{bidder.account}/reverification",
        {"reason": reason},
        compliance,
    )
    assert status == 201 and permit["reason"] == reason
    new_document = prc_id(birth="19491231", sequence="117")
    status, answer = await check(http, server, bidder, new_document, name="张三")
    assert status == 201, answer

    status, history = await call(http, "GET", history_url, token=compliance)
    assert status == 200
    old, new = history["versions"]
    assert old == version_1  # the old version is kept, unchanged
    assert (old["version"], new["version"]) == (1, 2)
    assert new["personal_data"]["number"] == new_document
    assert new["personal_data"]["name"] == "张三" and old["personal_data"]["name"] == NAME
    assert new["reason"] == reason and new["authorised_by"] and old["reason"] is None
    assert old["idv_entry"] < new["idv_entry"] and old["commit"] != new["commit"]
    assert old["fingerprint"] != new["fingerprint"]
    (used,) = history["permits"]
    assert used["used_us"] is not None and used["reason"] == reason
    # The closed lot's view shows the history too.
    status, lot = await call(
        http, "GET", f"{url}/api/compliance/lots/watch/identities", token=compliance
    )
    assert status == 200
    (row,) = lot["identities"]
    assert row["personal_data"]["number"] == new_document and len(row["versions"]) == 2

    # Erasure: every version's personal data goes; attestations and the binding stay.
    status, answer = await call(
        http, "DELETE", f"{url}/api/compliance/accounts/{bidder.account}/personal-data",
        token=compliance,
    )  # fmt: skip
    assert status == 200 and answer["erased"]
    status, history = await call(http, "GET", history_url, token=compliance)
    assert [v["personal_data"] for v in history["versions"]] == [None, None]
    assert all(v["erased"] and v["commit"] and v["fingerprint"] for v in history["versions"])
    engine = create_engine(database_url(server.data))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT personal_data, salt FROM gavel_identity_version WHERE account = :a"),
                {"a": bidder.account},
            ).all()
    finally:
        engine.dispose()
    assert rows and all(row.personal_data is None and row.salt is None for row in rows)
    for document in (WITH_X, new_document):  # the person cannot come back as someone else
        other = await new_bidder(http, url)
        status, answer = await check(http, server, other, document)
        assert status == 409
        refused(answer, "DOCUMENT_IN_USE")


async def simultaneous(server: Server, http: aiohttp.ClientSession, rounds: int = 3) -> None:
    """Several accounts verify one document at the same moment: exactly one gets it."""
    for round_number in range(rounds):
        document = prc_id(birth="19700707", sequence=f"{round_number + 500:03d}")
        bidders = [await new_bidder(http, server.url) for _ in range(6)]
        variants = [document, document.lower(), full_width(document)]
        answers = await asyncio.gather(
            *(
                check(http, server, bidder, variants[index % 3])
                for index, bidder in enumerate(bidders)
            )
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201, 409, 409, 409, 409, 409], answers
        for status, answer in answers:
            if status == 409:
                assert refused(answer, "DOCUMENT_IN_USE") == IN_USE
        winners = [
            b.account for b, (status, _) in zip(bidders, answers, strict=True) if status == 201
        ]
        verified = [bidder.account for bidder in bidders if await is_verified(http, server, bidder)]
        assert verified == winners
        accounts = {bidder.account for bidder in bidders}
        logged = [account for account in await idv_accounts(server) if account in accounts]
        assert logged == winners  # one idv entry: losers signed and logged nothing


async def test_simultaneous_verifications_of_one_document_one_wins(
    server: Server, http: aiohttp.ClientSession
) -> None:
    await simultaneous(server, http)


@pytest.mark.postgres
async def test_one_person_one_account_on_postgresql(
    postgres_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, database_url=postgres_url) as server:
        await add_lots(server, open_in=0.2)
        assert not (server.data / FINGERPRINT_KEY_FILE).exists()  # kept in the database
        first = await new_bidder(http, server.url)
        await verify(http, server.url, first, WITH_X)
        second = await new_bidder(http, server.url)
        status, answer = await check(http, server, second, full_width(WITH_X.lower()))
        assert status == 409
        refused(answer, "DOCUMENT_IN_USE")
        await simultaneous(server, http, rounds=2)
    async with running_server(tmp_path, database_url=postgres_url) as again:  # same secret
        third = await new_bidder(http, again.url)
        status, answer = await check(http, again, third, WITH_X)
        assert status == 409
        refused(answer, "DOCUMENT_IN_USE")


async def test_the_database_decides_when_two_claims_race(
    server: Server, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early look-up of the document's holder is only a courtesy: with it blind (as when
    two requests pass it at once), the unique key still refuses the second account."""
    compliance = await server.staff(Role.COMPLIANCE)
    first = await new_bidder(http, server.url)
    await verify(http, server.url, first, WITH_X)
    await wait_open(server, "watch", "flat")
    records = server.gateway.identities._records  # the race is what this test is about
    monkeypatch.setattr(records, "holder", lambda fingerprint: None)
    size = await server.ledger_size()
    second = await new_bidder(http, server.url)
    status, answer = await check(http, server, second, full_width(WITH_X))
    assert status == 409
    assert refused(answer, "DOCUMENT_IN_USE") == IN_USE
    assert await server.ledger_size() == size
    assert not await is_verified(http, server, second)
    _, answer = await call(http, "GET", f"{server.url}/api/compliance/alerts", token=compliance)
    (alert,) = answer["alerts"]
    assert (alert["account"], alert["holder"]) == (second.account, first.account)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_an_older_database_upgrades_and_its_duplicates_are_found(
    backend: str, tmp_path: Path, http: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> None:
    """A database of schema version 3 (one replaceable identity row per account, no
    fingerprints) in which one document was verified on two accounts — as the issue found —
    upgrades: every identity becomes version 1, the first account keeps the document, the
    second counts as unverified and compliance gets an alert."""
    overrides: dict[str, Any] = {}
    if backend == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    target = overrides.get("database_url") or str(tmp_path / "data")
    async with running_server(tmp_path, **overrides) as server:
        holder, duplicate, erased = [await new_bidder(http, server.url) for _ in range(3)]
        await verify(http, server.url, holder, WITH_X)
        await verify(http, server.url, duplicate, prc_id(sequence="601"))
        await verify(http, server.url, erased, prc_id(sequence="602"))
        compliance = await server.staff(Role.COMPLIANCE)
    engine = create_engine(database_url(target))
    try:  # make it what version 3 stored
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE gavel_identity (account VARCHAR(32) PRIMARY KEY, personal_data TEXT,"
                " salt BYTEA, attestation TEXT NOT NULL, idv_entry BIGINT,"
                " verified_us BIGINT NOT NULL, erased_us BIGINT)".replace(
                    "BYTEA", "BYTEA" if backend == "postgres" else "BLOB"
                )
            )
            rows = connection.execute(text("SELECT * FROM gavel_identity_version")).all()
            for row in rows:
                data = json.loads(row.personal_data)
                data.pop("issuing_state")  # not kept before version 4
                if row.account == duplicate.account:  # the same card, typed full-width
                    data["number"] = full_width(WITH_X)
                erase = row.account == erased.account
                connection.execute(
                    text(
                        "INSERT INTO gavel_identity VALUES (:account, :personal_data, :salt,"
                        " :attestation, :idv_entry, :verified_us, :erased_us)"
                    ),
                    {
                        "account": row.account,
                        "personal_data": None if erase else json.dumps(data, ensure_ascii=False),
                        "salt": None if erase else row.salt,
                        "attestation": row.attestation,
                        "idv_entry": row.idv_entry,
                        "verified_us": row.verified_us,
                        "erased_us": row.verified_us if erase else None,
                    },
                )
            for table in ("version", "fingerprint", "alert", "permit"):
                connection.exec_driver_sql(f"DROP TABLE gavel_identity_{table}")
            connection.exec_driver_sql("DELETE FROM schema_version WHERE version >= 4")
            connection.exec_driver_sql(
                "DELETE FROM gavel_secret WHERE name = 'identity-fingerprint'"
            )
    finally:
        engine.dispose()
    (tmp_path / "data" / FINGERPRINT_KEY_FILE).unlink(missing_ok=True)

    async with running_server(tmp_path, **overrides) as server:
        assert await is_verified(http, server, holder)
        assert not await is_verified(http, server, duplicate)  # the later account of the card
        assert await is_verified(http, server, erased)
        _, answer = await call(http, "GET", f"{server.url}/api/compliance/alerts", token=compliance)
        (alert,) = answer["alerts"]
        assert alert["kind"] == "DUPLICATE_FOUND_ON_UPGRADE"
        assert (alert["account"], alert["holder"]) == (duplicate.account, holder.account)
        for bidder, bound_elsewhere in ((holder, False), (duplicate, True), (erased, False)):
            status, history = await call(
                http,
                "GET",
                f"{server.url}/api/compliance/accounts/{bidder.account}/identity",
                token=compliance,
            )
            assert status == 200, history
            (version,) = history["versions"]
            assert version["version"] == 1 and history["bound_elsewhere"] is bound_elsewhere
            assert (version["fingerprint"] is None) is (bidder is erased)  # nothing to hash
        newcomer = await new_bidder(http, server.url)
        status, answer = await check(http, server, newcomer, WITH_X.lower())
        assert status == 409
        refused(answer, "DOCUMENT_IN_USE")
        await add_lots(server, open_in=0.1)
        await wait_open(server, "watch")
        for bidder, expected in ((duplicate, 403), (holder, 201)):
            status, answer = await call(
                http, "POST", f"{server.url}/api/lots/watch/registrations", {}, bidder.session
            )
            assert status == expected, answer
    engine = create_engine(database_url(target))
    try:
        with engine.connect() as connection:
            assert (
                connection.execute(text("SELECT max(version) FROM schema_version")).scalar()
                == SCHEMA_VERSION
            )
            assert not sa_inspect(connection).has_table("gavel_identity")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_claims_from_many_threads_at_once_bind_one_account(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The unique key under real concurrency: eight connections claim one document at the
    same instant; one binds it, seven are told who holds it (none fails otherwise)."""
    target = request.getfixturevalue("postgres_url") if backend == "postgres" else str(tmp_path)
    Storage.open(target).close()  # creates the schema (migrations)
    accounts = AccountStore.open(target)
    records = IdentityRecords(accounts.engine)
    barrier = threading.Barrier(8)
    outcomes: dict[str, object] = {}

    def claim(account: str) -> None:
        barrier.wait()
        try:
            outcomes[account] = records.claim(account, "f" * 64, "PRC_RESIDENT_ID", 1)
        except DocumentInUse as exc:
            outcomes[account] = exc
        except Exception as exc:  # reported below: a 503 would fail the test
            outcomes[account] = repr(exc)

    threads = [threading.Thread(target=claim, args=(f"acct-{n}",)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [account for account, outcome in outcomes.items() if outcome is True]
        assert len(winners) == 1, outcomes
        losers = [outcome for outcome in outcomes.values() if outcome is not True]
        assert len(losers) == 7 and all(isinstance(o, DocumentInUse) for o in losers), losers
        assert {loser.holder for loser in losers if isinstance(loser, DocumentInUse)} == {
            winners[0]
        }
        assert records.holder("f" * 64) == winners[0]
        assert records.claim(winners[0], "f" * 64, "PRC_RESIDENT_ID", 2) is False  # its own
    finally:
        accounts.close()


async def test_the_fingerprint_secret_stays_out_of_the_database(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await new_bidder(http, server.url)
    await verify(http, server.url, bidder, WITH_X)
    key_file = server.data / FINGERPRINT_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = base64.b64decode(key_file.read_text().strip())
    assert len(key) == 32
    engine = create_engine(database_url(server.data))
    try:
        with engine.connect() as connection:
            names = connection.execute(text("SELECT name FROM gavel_secret")).scalars().all()
            stored = connection.execute(
                text("SELECT fingerprint FROM gavel_identity_fingerprint")
            ).scalar_one()
    finally:
        engine.dispose()
    assert "identity-fingerprint" not in names
    assert stored == fingerprint(key, DocumentType.PRC_RESIDENT_ID, WITH_X, "CHN")
    assert stored != hashlib.sha256(WITH_X.encode()).hexdigest()  # keyed, not a plain hash
    size = await server.ledger_size()
    entries = await server.service.read(server.service.ledger.ledger_entries, 0, size)
    assert all(stored.encode() not in entry for entry in entries)  # never on the ledger
