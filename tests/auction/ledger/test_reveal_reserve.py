"""A lot's hidden reserve is sealed on the public ledger and revealed at the close
(docs/ledger.md §2, §4 `lot` and `reveal`), over a real server on 127.0.0.1 and on logs built
here.

While an English timed lot with a reserve is open, no public route, page, entry bundle or
receipt holds the reserve amount (a bidder sees only whether it is met); the `lot` entry holds
a commitment to it; the close's `reveal` opens it with the lot's maxima; the audit passes with
the openings and a public replay (the reveal's reserve in place) reaches the same outcome; a
wrong reveal of the reserve fails step 8 at the reveal; a log whose `lot` entry has the reserve
in the clear (written before reserves were sealed) still replays, with and without openings."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from notary_kit import open_lot
from privacy_kit import DOCUMENTS, SECRET_MAX, client_for, fetch, verified_bidder
from reveal_kit import plain, public_entries, scan
from server_kit import MovableClock, Server, running_server, wait_open

from auction import sealed
from auction.accounts import Role
from auction.audit import AuditError, AuditStep, DirectorySource, verify_ledger
from auction.ledger_export import StoreSource, export_ledger
from auction.rules import (
    SECOND,
    Authority,
    Cancel,
    CloseLot,
    LotState,
    OpenLot,
    RegisterBidder,
    SetMax,
    apply,
    english_timed,
)
from auction.service import AuctionService
from auction.storage import Storage
from auction.verify import LedgerReplay, ReplayError, command_body, lot_body
from chain import parse_entry

#: The hidden reserve: above every maximum of the test (so never met, never the price), and
#: a figure found nowhere else.
RESERVE = 7_345_671
LOTS = ("watch", "plain")


async def add_reserve_lots(server: Server, *, open_in: float = 0.2) -> None:
    """`watch`: English timed with the hidden reserve; `plain`: the same without one."""
    now = server.service.now()
    start, end = now + int(open_in * SECOND), now + 1200 * SECOND
    rules = english_timed(start_price=10_000, start_at=start, end_at=end, reserve=RESERVE)
    await server.service.add_lot("watch", rules, "A watch with a reserve")
    rules = english_timed(start_price=10_000, start_at=start, end_at=end)
    await server.service.add_lot("plain", rules, "A watch without one")


async def test_the_reserve_is_sealed_while_open_and_revealed_at_the_close(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock) as server:
        await add_reserve_lots(server)
        alice = await verified_bidder(http, server, DOCUMENTS[0], LOTS)
        auditor = await server.staff(Role.AUDITOR)
        await wait_open(server, *LOTS)
        async with await client_for(server, alice) as alice_ws:
            answer = await alice_ws.bid("watch", SECRET_MAX, "USD", kind="max", key="a-1")
            assert answer.accepted, answer.raw
            assert str(RESERVE) not in json.dumps(answer.raw)
            answer = await alice_ws.bid("plain", 20_000, "USD", key="a-2")
            assert answer.accepted, answer.raw
        assert await server.service.settle(10)

        # -- while the lot is open: every public byte, and alice's own, without the reserve --
        public, statuses = await scan(server, http, LOTS, facts=True)
        assert set(statuses) == {200}, statuses
        for path in ("/api/me", "/api/me/lots", "/api/me/lots/watch"):
            status, public[f"alice {path}"], _ = await fetch(http, server.url + path, alice.session)
            assert status == 200, path
        for where, text in public.items():
            assert str(RESERVE) not in text, where
        lot_view = json.JSONDecoder().raw_decode(public["/api/lots/watch"])[0]["lot"]
        assert lot_view["reserve_met"] is False  # whether it is met is public, not the amount
        entries = public_entries(public)
        lot_entry = next(e for e in entries if e.type == "lot" and e.body["lot"] == "watch")
        body = plain(lot_entry.body)
        assert set(body["sealed"]) == {"reserve"} and "reserve" not in body["rules"]
        other = next(e for e in entries if e.type == "lot" and e.body["lot"] == "plain")
        assert "sealed" not in plain(other.body)  # a lot without a reserve: as before
        assert not any(e.type == "reveal" for e in entries)

        # the auditor's openings hold it; the staff console may see it
        size = server.service.signed_checkpoint.size
        status, text, _ = await fetch(http, f"{server.url}/log/openings/0-{size}", auditor)
        assert status == 200 and str(RESERVE) in text

        # -- the lot closes unsold (reserve not met): the reveal opens the reserve too --
        clock.offset_us += 1300 * SECOND
        await server.service.submit("watch", CloseLot())
        assert server.service.view("watch").status == "FAILED"
        assert await server.service.settle(10)
        public, statuses = await scan(server, http, LOTS, facts=True)
        assert set(statuses) == {200}, statuses
        entries = public_entries(public)
        reveals = [e for e in entries if e.type == "reveal"]
        assert len(reveals) == 1 and reveals[0].body["lot"] == "watch"
        opened = plain(reveals[0].body)["openings"]
        assert opened[str(lot_entry.seq)]["reserve"]["value"] == RESERVE
        committed = plain(lot_entry.body)["sealed"]["reserve"]
        reserve_opening = opened[str(lot_entry.seq)]["reserve"]
        assert sealed.check_opening("reserve", committed, reserve_opening) == RESERVE
        assert len(opened) == 2  # the lot entry and alice's SetMax
        entries = [parse_entry(raw) for raw in server.entries()]
        openings = server.openings()

    out = tmp_path / "export"
    with contextlib.closing(StoreSource(server.data)) as source:
        export_ledger(source, out)
    assert verify_ledger(DirectorySource(out), workers=0).ok

    # the public replay holds the lot until its reveal, then replays it with the reserve:
    # unsold, as with every opening (without the reserve alice would have won)
    with_openings, public_replay = LedgerReplay(openings=openings.get), LedgerReplay()
    for entry in entries:
        for replay in (with_openings, public_replay):
            replay.add(
                entry.seq, entry.type.value, entry.time_us, plain(entry.body), entry.actor.kid
            )
    assert public_replay.deferred == {} and public_replay.revealed_reserves == 1
    assert with_openings.revealed_reserves == 1
    assert public_replay.outcomes() == with_openings.outcomes()
    assert public_replay.outcomes()["watch"]["status"] == "FAILED"


async def test_a_wrong_reveal_of_the_reserve_fails_the_audit_at_the_reveal(
    tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sealed.reveal_bodies

    def faulty(lot: str, close_entry: int, maxima: Any) -> list[dict[str, Any]]:
        bodies = real(lot, close_entry, maxima)
        for items in bodies[0]["openings"].values():
            if "reserve" in items:
                items["reserve"]["value"] -= 1  # a reserve other than the one committed to
        return bodies

    monkeypatch.setattr(sealed, "reveal_bodies", faulty)
    async with running_server(tmp_path) as server:
        await add_reserve_lots(server)
        await wait_open(server, "watch")
        await server.service.submit("watch", Cancel(reason="withdrawn", by=Authority.CLERK))
        assert await server.service.settle(10)
        entries = [parse_entry(raw) for raw in server.entries()]
    close = next(e.seq for e in entries if plain(e.body).get("command", {}).get("type") == "Cancel")
    assert entries[close + 1].type == "reveal"
    out = tmp_path / "export"
    with contextlib.closing(StoreSource(server.data)) as source:
        export_ledger(source, out)
    with pytest.raises(AuditError) as caught:
        verify_ledger(DirectorySource(out), workers=0)
    assert (caught.value.step, caught.value.seq) == (AuditStep.REPLAY, close + 1)
    assert "does not match the commitment" in caught.value.message


# -- logs built here: the reserve sealed, or in the clear as written before ---------------------

T0 = 1_795_000_000 * SECOND


def _reserve_log(
    seal: bool,
) -> tuple[list[tuple[int, str, int, dict[str, Any]]], dict[int, dict[str, Any]]]:
    """A lot with a reserve, alice registered with a maximum under it, closed unsold; with
    `seal` its reserve and maximum sealed and revealed as the server writes them, else the
    reserve in the clear (a log from before reserves were sealed)."""
    rules = english_timed(
        start_price=10_000, start_at=T0, end_at=T0 + 3600 * SECOND, reserve=RESERVE
    )
    key, linked = b"h" * 32, set[str]()
    body = lot_body("L", rules, "A lot", None, T0)
    openings: dict[int, dict[str, Any]] = {}
    to_reveal: dict[int, dict[str, Any]] = {}
    if seal:
        body, openings[1] = sealed.seal_lot_body(body)
        to_reveal[1] = dict(openings[1])
    entries: list[tuple[int, str, int, dict[str, Any]]] = [(1, "lot", T0, body)]
    state = LotState.create("L", rules)
    commands = [
        (RegisterBidder("alice", "C01-x", False), T0 + 1),
        (OpenLot(), T0 + 2),
        (SetMax("alice", SECRET_MAX, "USD"), T0 + 3),
        (CloseLot(), T0 + 3600 * SECOND),
    ]
    for n, (command, t) in enumerate(commands):
        state, events = apply(state, command, t)
        plain_body = command_body("L", n, t, command, events)
        kind = ("registration", "lot_state", "bid", "lot_state")[n]
        seq = len(entries) + 1
        if seal:
            plain_body, openings[seq] = sealed.seal_command_body(plain_body, key, linked)
            maxima = {k: v for k, v in openings[seq].items() if sealed.is_max_name(k)}
            if maxima:
                to_reveal[seq] = maxima
        entries.append((seq, kind, t, plain_body))
    assert state.status.value == "FAILED"
    if seal:
        for body in sealed.reveal_bodies("L", len(entries), to_reveal):
            entries.append((len(entries) + 1, "reveal", T0 + 3600 * SECOND, body))
    return entries, openings


def _replay(entries: list[tuple[int, str, int, dict[str, Any]]], replay: LedgerReplay) -> None:
    for seq, kind, t, body in entries:
        replay.add(seq, kind, t, body)


@pytest.mark.parametrize("seal", [True, False], ids=["sealed", "in the clear"])
def test_a_lot_with_a_reserve_replays_sealed_or_in_the_clear(seal: bool) -> None:
    entries, openings = _reserve_log(seal)
    with_openings, public = LedgerReplay(openings=openings.get), LedgerReplay()
    _replay(entries, with_openings)
    _replay(entries, public)
    assert public.outcomes() == with_openings.outcomes()
    assert public.outcomes()["L"]["status"] == "FAILED"  # the reserve was applied
    assert public.deferred == {} and public.revealed_reserves == int(seal)
    if seal:
        assert str(RESERVE) not in json.dumps(entries[:-1])  # only the reveal holds it


def test_a_wrong_or_missing_reserve_opening_fails_the_replay() -> None:
    entries, openings = _reserve_log(True)
    reveal = json.loads(json.dumps(entries[-1][3]))
    reveal["openings"]["1"]["reserve"]["value"] = RESERVE - 1
    wrong = [*entries[:-1], (*entries[-1][:3], reveal)]
    for replay in (LedgerReplay(openings=openings.get), LedgerReplay()):
        with pytest.raises(ReplayError) as caught:
            _replay(wrong, replay)
        assert caught.value.seq == len(entries) and "does not match" in str(caught.value)
    # the reserve left out of the reveal: the reveal must open every sealed value
    del reveal["openings"]["1"]
    with pytest.raises(ReplayError) as caught:
        _replay([*entries[:-1], (*entries[-1][:3], reveal)], LedgerReplay())
    assert caught.value.seq == len(entries)
    # a notary or auditor without the lot entry's opening stops at the lot entry
    missing = {seq: items for seq, items in openings.items() if seq != 1}
    with pytest.raises(ReplayError) as caught:
        _replay(entries, LedgerReplay(openings=missing.get))
    assert caught.value.seq == 1 and "reserve" in str(caught.value)


async def test_a_restart_keeps_the_reserve_to_reveal(tmp_path: Path) -> None:
    """The writer reads the opening of an open lot's reserve back when it resumes, so the
    reveal written after a restart opens it with the maxima."""
    data = tmp_path / "data"
    async with AuctionService(Storage.open(data)) as service:
        lot = await open_lot(service, reserve=RESERVE)
        await service.submit(lot, SetMax("alice", SECRET_MAX, "USD"))
    async with AuctionService(Storage.open(data)) as service:
        await service.submit(lot, Cancel(reason="withdrawn", by=Authority.CLERK))
    with Storage.open(data, read_only=True) as store:
        size = store.ledger_size()
        entries = [parse_entry(raw) for raw in store.ledger_entries(0, size)]
        openings = store.ledger_openings(0, size)
    assert entries[-1].type == "reveal"
    lot_entry = next(e for e in entries if e.type == "lot")
    revealed = plain(entries[-1].body)["openings"]
    assert revealed[str(lot_entry.seq)]["reserve"]["value"] == RESERVE
    opened, public = LedgerReplay(openings=openings.get), LedgerReplay()
    for entry in entries:
        for replay in (opened, public):
            replay.add(
                entry.seq, entry.type.value, entry.time_us, plain(entry.body), entry.actor.kid
            )
    assert opened.revealed_reserves == public.revealed_reserves == 1
    assert public.outcomes() == opened.outcomes() and public.deferred == {}
