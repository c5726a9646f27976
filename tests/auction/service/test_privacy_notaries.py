"""Sealed proxy maxima and real notaries (issue 8 part 5, issue 20 §1), over 127.0.0.1.

Three `gavel notary serve` processes and a 2-of-3 policy (the fixture of
`test_notary_wiring`). An open lot's proxy maximum is on the log as a commitment only: every
entry bundle and receipt is public (200 to anyone) and none holds the amount; the notaries,
who sign their reads of the openings with their own cosigner keys, open it, replay and co-sign
every checkpoint without a refusal; a forged, stale or replayed-elsewhere notary signature is
refused; at the close the lot's `reveal` entry makes the maximum public.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from wiring_kit import Setup, count_cosignatures, get, open_lot, public_log, setup  # noqa: F401 (a fixture)

from auction.rules import Authority, Cancel, PlaceBid, SetMax
from chain import TILE_WIDTH, EntryBundle, parse_entry, parse_entry_bundle
from notary.readauth import read_authorization

MAXIMUM = 4_321_000


async def test_notaries_cosign_sealed_maxima_and_the_reveal_makes_them_public(
    setup: Setup,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cosigned = count_cosignatures(monkeypatch)
    service = setup.service
    lot_id = await open_lot(service)
    await service.submit(lot_id, SetMax("alice", MAXIMUM, "USD"))
    view = service.view(lot_id)
    assert view is not None
    await service.submit(lot_id, PlaceBid("bob", view.min_next, "USD"))
    size = await service.read(setup.store.ledger_size)
    assert await service.settle(20), "the notaries did not co-sign the sealed entries"
    head = service.checkpoint
    assert head is not None and head.size == size
    assert len(head.note.split(b"\n\xe2\x80\x94 ")) >= 3  # the log's signature and 2 notaries

    # while the lot is open: everything public, the maximum nowhere
    statuses, seen = await public_log(setup, size)
    assert set(statuses) == {200}
    assert str(MAXIMUM).encode() not in seen and b'"sealed"' in seen

    # the openings still need a notary's (or an auditor's) signed read
    origin = head.note.split(b"\n", 1)[0].decode()
    notary = setup.notaries[0]
    now = int(time.time())
    path = f"openings/0-{size}"
    status, body = await get(setup, path)
    assert status == 403 and str(MAXIMUM).encode() not in body
    good = read_authorization(notary.signer, origin, path, now)
    status, body = await get(setup, path, good)
    assert status == 200 and str(MAXIMUM).encode() in body
    refusals = {
        "stale": read_authorization(notary.signer, origin, path, now - 3600),
        "another path": read_authorization(notary.signer, origin, "openings/0-1", now),
        "another log": read_authorization(notary.signer, "other.example/log", path, now),
        "tampered": good[:-6] + ("AAAAA=" if not good.endswith("AAAAA=") else "BBBBB="),
        "garbage": "Gavel-Notary notary1.test !!!",
    }
    for what, header in refusals.items():
        status, body = await get(setup, path, header)
        assert status == 403 and b"not accepted" in body, what

    # the lot closes (cancelled): its reveal follows, the notaries check it and co-sign
    await service.submit(lot_id, Cancel(reason="withdrawn", by=Authority.CLERK))
    assert await service.settle(20)
    final = await service.read(setup.store.ledger_size)
    head = service.checkpoint
    assert head is not None and head.size == final
    statuses, seen = await public_log(setup, final)
    assert set(statuses) == {200} and str(MAXIMUM).encode() in seen
    bundle = EntryBundle(0, min(TILE_WIDTH, final))
    entries = [
        parse_entry(raw) for raw in parse_entry_bundle(bundle, (await get(setup, bundle.path))[1])
    ]
    reveals = [e for e in entries if e.type == "reveal"]
    assert len(reveals) == 1 and reveals[0].seq == final - 1
    opened: dict[str, Any] = json.loads(json.dumps(reveals[0].body["openings"], default=dict))
    assert {o["value"] for items in opened.values() for o in items.values()} == {MAXIMUM}
    sealed = [e for e in entries if '"max"' in json.dumps(e.body.get("sealed"), default=dict)]
    assert set(opened) == {str(e.seq) for e in sealed} and len(sealed) == 1
    assert cosigned.rounds >= 2 and [r for r in cosigned.refused if r.kind == "refused"] == []
    await asyncio.sleep(0)
