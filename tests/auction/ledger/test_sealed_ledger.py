"""Sealed values on the ledger (docs/ledger.md), over a real server on 127.0.0.1: no account id
in any public byte during a run with proxy bidding on several lots, a bidder's alias differs
from lot to lot, openings go to auditors (and a bidder's own to them), exports carry them and
`gavel audit verify` checks each against its commitment at step 8; the replay with openings
refuses a second alias for one account in a lot."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from privacy_kit import (
    DOCUMENTS,
    NAME,
    SECRET_MAX,
    client_for,
    fetch,
    verified_bidder,
)
from server_kit import add_lots, running_server, wait_open

from auction import sealed
from auction.accounts import Role
from auction.audit import AuditError, AuditStep, DirectorySource, verify_ledger
from auction.ledger_export import OPENINGS_FILE, StoreSource, export_ledger
from auction.rules import SECOND, LotState, RegisterBidder, apply, english_timed
from auction.verify import LedgerReplay, ReplayError, command_body, lot_body
from auction.web.pages import PAGES
from chain import TILE_WIDTH, EntryBundle

LOTS = ("watch", "watch2")


def entries_of(text: str) -> str:
    """A receipt's JSON with its base64 entry decoded."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict) and isinstance(body.get("entry"), str):
        return text + base64.b64decode(body["entry"]).decode("utf-8", "replace")
    return text


async def test_no_account_id_in_any_public_byte_and_the_openings_audit(
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    async with running_server(tmp_path) as server:
        url = server.url
        await add_lots(server, open_in=0.2)
        now = server.service.now()
        await server.service.add_lot(
            "watch2",
            english_timed(start_price=10_000, start_at=now, end_at=now + 600 * SECOND),
            "A second watch",
        )
        alice = await verified_bidder(http, server, DOCUMENTS[0], LOTS)
        bob = await verified_bidder(http, server, DOCUMENTS[1], LOTS)
        auditor = await server.staff(Role.AUDITOR)
        await wait_open(server, *LOTS)
        async with (
            await client_for(server, alice) as alice_ws,
            await client_for(server, bob) as bob_ws,
        ):
            for lot in LOTS:
                maximum = await alice_ws.bid(lot, SECRET_MAX, "USD", kind="max", key=f"m-{lot}")
                assert maximum.accepted, maximum.raw
                answer = await bob_ws.bid(lot, 20_000, "USD", key=f"b-{lot}")
                assert answer.raw["result"] in ("accepted", "rejected")
        assert await server.service.settle(10)
        head = server.service.signed_checkpoint
        assert head is not None
        size = head.size

        # -- every public byte: routes, pages, receipts, entry bundles --
        public: dict[str, str] = {}
        paths = ["/api/lots", "/api/auditor", "/log/checkpoint", "/log/checkpoints"]
        paths += ["/log/policy", "/healthz"]
        for lot in LOTS:
            paths += [f"/api/lots/{lot}", f"/api/lots/{lot}/bids"]
            paths += [p.replace("{lot_id}", lot).replace("{sale_id}", "some-sale") for p in PAGES]
        for path in paths:
            status, text, _ = await fetch(http, url + path)
            assert status == 200, path
            public[path] = text
        statuses: dict[int, int] = {}
        for seq in range(size):
            statuses[seq], text, _ = await fetch(http, f"{url}/log/receipt/{seq}")
            public[f"receipt {seq}"] = entries_of(text)
        for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            path = EntryBundle(index, min(TILE_WIDTH, size - index * TILE_WIDTH)).path
            status, public[path], _ = await fetch(http, f"{url}/log/{path}")
        status, text, _ = await fetch(http, f"{url}/log/openings/0-{size}")
        assert status == 403 and "auditors" in text
        public["openings, public"] = text
        assert sum(1 for s in statuses.values() if s == 200) > size // 2  # the scan saw entries
        for where, text in public.items():
            for account in (alice.account, bob.account):
                assert account not in text, (where, account)
            assert str(SECRET_MAX) not in text, where
            assert NAME not in text and not any(doc in text for doc in DOCUMENTS), where

        # -- aliases: one per bidder and lot, different across lots --
        house = server.service.ledger.house  # type: ignore[union-attr]
        aliases = {lot: sealed.alias(house.alias_key, lot, alice.account) for lot in LOTS}
        assert len(set(aliases.values())) == len(LOTS)
        receipts = "".join(v for k, v in public.items() if k.startswith("receipt"))
        assert all(alias in receipts for alias in aliases.values())

        # -- openings: to auditors; a bidder's own in their receipts, nobody else's --
        status, text, _ = await fetch(http, f"{url}/log/openings/0-{size}", auditor)
        assert status == 200
        opened = json.loads(text)["openings"]
        assert alice.account in text and bob.account in text
        link_seq = next(
            int(seq) for seq, item in opened.items() if f"{sealed.LINK}{aliases['watch']}" in item
        )
        _, own, _ = await fetch(http, f"{url}/log/receipt/{link_seq}", alice.session)
        assert alice.account in own
        _, other, _ = await fetch(http, f"{url}/log/receipt/{link_seq}", bob.session)
        assert alice.account not in other

    # -- the export carries the openings; the audit opens and checks every one --
    out = tmp_path / "export"
    with contextlib.closing(StoreSource(server.data)) as source:
        export_ledger(source, out)
    report = verify_ledger(DirectorySource(out), workers=0)
    assert report.ok and report.bid_signatures >= 2 * len(LOTS)
    stored = json.loads((out / OPENINGS_FILE).read_bytes())
    seq, item = next(
        (s, i) for s, i in stored["openings"].items() if any(n.startswith("link:") for n in i)
    )
    name = next(n for n in item if n.startswith("link:"))
    original = dict(item[name])

    item[name] = dict(original, value=dict(original["value"], account="acct-someone-else"))
    (out / OPENINGS_FILE).write_text(json.dumps(stored))
    with pytest.raises(AuditError) as caught:
        verify_ledger(DirectorySource(out), workers=0)
    assert (caught.value.step, caught.value.seq) == (AuditStep.REPLAY, int(seq))
    assert "does not match the commitment" in caught.value.message

    del item[name]
    (out / OPENINGS_FILE).write_text(json.dumps(stored))
    with pytest.raises(AuditError) as caught:
        verify_ledger(DirectorySource(out), workers=0)
    assert (caught.value.step, caught.value.seq) == (AuditStep.REPLAY, int(seq))
    assert "opening is missing" in caught.value.message


def _log_with_registrations(
    registrations: list[tuple[str, bytes]],
) -> tuple[list[tuple[int, str, int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """A lot and one registration per `(account, alias key)`, sealed as the server does."""
    t0 = 1_795_000_000 * SECOND
    rules = english_timed(start_price=10_000, start_at=t0, end_at=t0 + 3600 * SECOND)
    entries: list[tuple[int, str, int, dict[str, Any]]] = [
        (1, "lot", t0, lot_body("L", rules, "A lot", None, t0))
    ]
    openings: dict[int, dict[str, Any]] = {}
    state = LotState.create("L", rules)
    linked: set[str] = set()
    for n, (account, key) in enumerate(registrations):
        command = RegisterBidder(account, f"C0{n}-x", False)
        state, events = apply(state, command, t0 + n)
        plain = command_body("L", n, t0 + n, command, events)
        body, opened = sealed.seal_command_body(plain, key, linked)
        seq = len(entries) + 1
        entries.append((seq, "registration", t0 + n, body))
        openings[seq] = opened
    return entries, openings


def test_one_account_holds_one_alias_per_lot_in_the_replay() -> None:
    house, forger = b"h" * 32, b"f" * 32
    entries, openings = _log_with_registrations([("acct-a", house), ("acct-b", house)])
    replay = LedgerReplay(openings=openings.get)
    for seq, kind, t, body in entries:
        replay.add(seq, kind, t, body)
    assert replay.links.accounts["L"] == {
        sealed.alias(house, "L", "acct-a"): "acct-a",
        sealed.alias(house, "L", "acct-b"): "acct-b",
    }
    public = LedgerReplay()  # without openings: the rules replay on the aliases alone
    for seq, kind, t, body in entries:
        public.add(seq, kind, t, body)
    assert public.outcomes() == replay.outcomes()

    # a second registration for acct-a under another alias: its own code, a valid commitment
    forged, forged_openings = _log_with_registrations([("acct-a", house), ("acct-a", forger)])
    replay = LedgerReplay(openings=forged_openings.get)
    with pytest.raises(ReplayError) as caught:
        for seq, kind, t, body in forged:
            replay.add(seq, kind, t, body)
    assert caught.value.seq == 3
    assert "one account holds one bidder code per lot" in str(caught.value)
    public = LedgerReplay()
    for seq, kind, t, body in forged:  # the public form cannot tell: that is what links are for
        public.add(seq, kind, t, body)
