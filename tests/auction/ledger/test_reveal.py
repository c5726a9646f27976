"""Commit, then reveal (docs/ledger.md §2, §4 `reveal`), over a real server on 127.0.0.1.

While lots with proxy bidding are open every public route, receipt and entry bundle answers
200 and no maximum is in any of their bytes; when a lot closes, its `reveal` entry follows the
close (and its sale) and opens that lot's maxima to everyone, while another lot's stay sealed;
the audit checks every reveal against its commitments, with the openings and without them
(a public auditor replays the lot from the reveal); a missing or wrong reveal fails step 8 at
the entry concerned."""

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
from server_kit import MovableClock, Server, add_lots, running_server, wait_open

from auction import sealed
from auction.accounts import Role
from auction.audit import AuditError, AuditStep, DirectorySource, verify_ledger
from auction.ledger_export import OPENINGS_FILE, StoreSource, export_ledger
from auction.rules import SECOND, Authority, Cancel, CloseLot, SetMax, english_timed
from auction.service import AuctionService
from auction.storage import Storage
from auction.verify import LedgerReplay
from chain import parse_entry

#: Bob's maxima: under alice's on `watch` (so reached by the proxy bidding: a public bid of
#: that amount, as the rules make it), his own on `watch2` (still open at the first close).
BOB_WATCH_MAX = 654_000
BOB_WATCH2_MAX = 876_000
LOTS = ("watch", "watch2")


async def add_second_lot(server: Server) -> None:
    now = server.service.now()
    rules = english_timed(start_price=10_000, start_at=now, end_at=now + 1200 * SECOND)
    await server.service.add_lot("watch2", rules, "A second watch")


async def test_bundles_are_public_while_maxima_are_sealed_and_revealed_at_the_close(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock) as server:
        await add_lots(server, open_in=0.2)
        await add_second_lot(server)
        alice = await verified_bidder(http, server, DOCUMENTS[0], LOTS)
        bob = await verified_bidder(http, server, DOCUMENTS[1], LOTS)
        auditor = await server.staff(Role.AUDITOR)
        await wait_open(server, *LOTS)
        async with (
            await client_for(server, alice) as alice_ws,
            await client_for(server, bob) as bob_ws,
        ):
            answer = await alice_ws.bid("watch", SECRET_MAX, "USD", kind="max", key="a-1")
            assert answer.accepted, answer.raw
            answer = await bob_ws.bid("watch", BOB_WATCH_MAX, "USD", kind="max", key="b-1")
            assert answer.accepted, answer.raw
            answer = await bob_ws.bid("watch2", BOB_WATCH2_MAX, "USD", kind="max", key="b-2")
            assert answer.accepted, answer.raw
            answer = await alice_ws.bid("watch2", 20_000, "USD", key="a-2")
            assert answer.raw["result"] in ("accepted", "rejected")
        assert await server.service.settle(10)
        maxima = (SECRET_MAX, BOB_WATCH_MAX, BOB_WATCH2_MAX)
        leading = (SECRET_MAX, BOB_WATCH2_MAX)  # the maxima no bid has reached

        # -- while both lots are open: everything public, no open maximum in any byte --
        public, statuses = await scan(server, http, LOTS)
        assert set(statuses) == {200}, statuses
        for where, text in public.items():
            for amount in leading:
                assert str(amount) not in text, (where, amount)
        entries = public_entries(public)
        assert not any(e.type == "reveal" for e in entries)
        sealed_max = [e for e in entries if "max" in plain(e.body).get("sealed", {})]
        assert len(sealed_max) == 3  # the three SetMax entries, each with its MaxSet event
        assert all("max:0" in plain(e.body)["sealed"] for e in sealed_max)
        scanned_bundles = sum(1 for where in public if where.startswith("tile/"))

        # the auditor (openings) sees them; alice sees hers in her receipt, not bob's
        size = server.service.signed_checkpoint.size
        status, text, _ = await fetch(http, f"{server.url}/log/openings/0-{size}", auditor)
        assert status == 200 and all(str(amount) in text for amount in maxima)
        mine = [e.seq for e in sealed_max if e.body["lot"] == "watch"]
        _, own, _ = await fetch(http, f"{server.url}/log/receipt/{mine[0]}", alice.session)
        _, other, _ = await fetch(http, f"{server.url}/log/receipt/{mine[1]}", alice.session)
        own_openings = json.JSONDecoder().raw_decode(own)[0]["openings"]
        assert own_openings["max"]["value"] == SECRET_MAX
        other_openings = json.JSONDecoder().raw_decode(other)[0].get("openings", {})
        assert str(SECRET_MAX) not in other and "max" not in other_openings  # bob's entry

        # -- `watch` closes (sold): its reveal follows the sale; `watch2` stays sealed --
        clock.offset_us += 700 * SECOND
        await server.service.submit("watch", CloseLot())
        assert server.service.view("watch").status == "SOLD"
        assert await server.service.settle(10)
        public, statuses = await scan(server, http, LOTS)
        assert set(statuses) == {200}, statuses
        seen = "".join(public.values())
        assert str(SECRET_MAX) in seen
        assert str(BOB_WATCH2_MAX) not in seen
        entries = public_entries(public)
        reveals = [e for e in entries if e.type == "reveal"]
        assert len(reveals) == 1
        reveal = plain(reveals[0].body)
        sale = next(e for e in entries if e.type == "sale")
        assert sale.body["lot"] == "watch" and reveals[0].seq == sale.seq + 1
        assert reveal["close_entry"] == sale.body["close_entry"] == sale.seq - 1
        assert (reveal["lot"], reveal["part"], reveal["parts"]) == ("watch", 0, 1)
        assert sorted(map(int, reveal["openings"])) == mine
        for seq, items in reveal["openings"].items():  # each opens its entry's commitments
            committed = plain(entries[int(seq)].body)["sealed"]
            assert set(items) == {"max", "max:0"}
            for name, opening in items.items():
                assert sealed.check_opening(name, committed[name], opening) in maxima[:2]

        # -- `watch2` is withdrawn: its reveal follows at once --
        await server.service.submit(
            "watch2", Cancel(reason="withdrawn by the seller", by=Authority.CLERK)
        )
        assert await server.service.settle(10)
        public, statuses = await scan(server, http, LOTS)
        assert set(statuses) == {200} and str(BOB_WATCH2_MAX) in "".join(public.values())
        entries = public_entries(public)
        assert [e.body["lot"] for e in entries if e.type == "reveal"] == ["watch", "watch2"]
        assert entries[-1].type == "reveal"
        written = len(entries)
        entries = [parse_entry(raw) for raw in server.entries()]
        scanned_bundles += sum(1 for where in public if where.startswith("tile/"))
    print(f"entries {written}, bundles fetched publicly {scanned_bundles}, 403s 0")

    # -- the audit opens and checks every value, each reveal against its commitments --
    out = tmp_path / "export"
    with contextlib.closing(StoreSource(server.data)) as source:
        export_ledger(source, out)
    assert verify_ledger(DirectorySource(out), workers=0).ok

    # -- the public replays every lot from the public entries, the reveals opening the
    # maxima, to the same outcome as with every opening --
    opened = LedgerReplay(openings=server.openings().get)
    public_replay = LedgerReplay()
    for entry in entries:
        for replay in (opened, public_replay):
            replay.add(
                entry.seq, entry.type.value, entry.time_us, plain(entry.body), entry.actor.kid
            )
    assert public_replay.deferred == {} and public_replay.revealed_maxima == 6
    assert opened.revealed_maxima == 6 and opened.opened_values > public_replay.opened_values
    assert public_replay.outcomes() == opened.outcomes()
    assert public_replay.outcomes()["watch"]["status"] == "SOLD"


async def _closed_lot_log(tmp_path: Path, http: aiohttp.ClientSession) -> tuple[Path, int]:
    """A server run where alice sets a maximum on `watch`, which is then withdrawn, and one
    more lot is created after it; its export and the seq of the withdrawal."""
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        alice = await verified_bidder(http, server, DOCUMENTS[0], ("watch",))
        await wait_open(server, "watch")
        async with await client_for(server, alice) as alice_ws:
            answer = await alice_ws.bid("watch", SECRET_MAX, "USD", kind="max", key="a-1")
            assert answer.accepted, answer.raw
        await server.service.submit("watch", Cancel(reason="withdrawn", by=Authority.CLERK))
        await add_second_lot(server)
        assert await server.service.settle(10)
        entries = [parse_entry(raw) for raw in server.entries()]
    close = next(e.seq for e in entries if plain(e.body).get("command", {}).get("type") == "Cancel")
    out = tmp_path / "export"
    with contextlib.closing(StoreSource(server.data)) as source:
        export_ledger(source, out)
    return out, close


@pytest.mark.parametrize("fault", ["missing", "wrong"])
async def test_a_missing_or_wrong_reveal_fails_the_audit_at_its_entry(
    tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    real = sealed.reveal_bodies

    def faulty(lot: str, close_entry: int, maxima: Any) -> list[dict[str, Any]]:
        if fault == "missing":
            return []
        bodies = real(lot, close_entry, maxima)
        opening = next(iter(next(iter(bodies[0]["openings"].values())).values()))
        opening["value"] += 1_000  # a maximum other than the one committed to
        return bodies

    monkeypatch.setattr(sealed, "reveal_bodies", faulty)
    out, close = await _closed_lot_log(tmp_path, http)
    with pytest.raises(AuditError) as caught:
        verify_ledger(DirectorySource(out), workers=0)
    assert caught.value.step is AuditStep.REPLAY
    # the entry right after the close is where the reveal is (or should be)
    assert caught.value.seq == close + 1, caught.value
    if fault == "missing":
        assert "not their reveal" in caught.value.message
    else:
        assert "does not match the commitment" in caught.value.message
    stored = json.loads((out / OPENINGS_FILE).read_bytes())["openings"]
    assert str(close + 1) not in stored  # the reveal itself seals nothing


async def test_a_restart_keeps_the_maxima_to_reveal(tmp_path: Path) -> None:
    """The writer reads the openings of an open lot's maxima back when it resumes, so the
    reveal written after a restart opens them all."""
    data = tmp_path / "data"
    async with AuctionService(Storage.open(data)) as service:
        lot = await open_lot(service)
        await service.submit(lot, SetMax("alice", SECRET_MAX, "USD"))
        await service.submit(lot, SetMax("bob", SECRET_MAX - 100_000, "USD"))
    async with AuctionService(Storage.open(data)) as service:
        await service.submit(lot, Cancel(reason="withdrawn", by=Authority.CLERK))
    with Storage.open(data, read_only=True) as store:
        size = store.ledger_size()
        entries = [parse_entry(raw) for raw in store.ledger_entries(0, size)]
        openings = store.ledger_openings(0, size)
    assert entries[-1].type == "reveal" and entries[-2].body["command"]["type"] == "Cancel"
    revealed = plain(entries[-1].body)["openings"]
    assert len(revealed) == 2 and SECRET_MAX in {
        o["value"] for i in revealed.values() for o in i.values()
    }
    opened, public = LedgerReplay(openings=openings.get), LedgerReplay()
    for entry in entries:
        for replay in (opened, public):
            replay.add(
                entry.seq, entry.type.value, entry.time_us, plain(entry.body), entry.actor.kid
            )
    assert opened.revealed_maxima == public.revealed_maxima == 4
    assert public.outcomes() == opened.outcomes() and public.deferred == {}
