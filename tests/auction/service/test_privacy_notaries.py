"""Sealed ledger entries and real notaries (issue 8 part 5), over 127.0.0.1.

Three `gavel notary serve` processes and a 2-of-3 policy (the fixture of
`test_notary_wiring`). An open lot's proxy maximum is in the log: anonymous readers get 403 for
its entry bundle and receipt, the notaries, who sign their reads with their own cosigner keys,
still fetch it and co-sign (the checkpoint is published with the quorum), a forged, stale or
replayed-elsewhere notary signature is refused, and after the close the bundle is public.
"""

from __future__ import annotations

import asyncio
import time

from wiring_kit import Setup, open_lot, setup  # noqa: F401 (a fixture)

from auction.rules import Authority, Cancel, PlaceBid, SetMax
from chain import TILE_WIDTH, EntryBundle, parse_entry_bundle
from notary.readauth import read_authorization

MAXIMUM = 4_321_000


async def get(
    setup: Setup,  # noqa: F811
    path: str,
    authorization: str | None = None,
) -> tuple[int, bytes]:
    headers = {"Authorization": authorization} if authorization else {}
    async with setup.http.get(f"{setup.log_url}/log/{path}", headers=headers) as response:
        return response.status, await response.read()


async def test_notaries_read_sealed_bundles_the_public_does_not(setup: Setup) -> None:  # noqa: F811
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

    bundle = EntryBundle(0, min(TILE_WIDTH, size))
    status, body = await get(setup, bundle.path)
    assert status == 403 and b"proxy maximum" in body and str(MAXIMUM).encode() not in body
    seqs = [
        seq
        for seq in range(size)
        if (await get(setup, f"receipt/{seq}"))[0] == 403  # the SetMax entry, only it
    ]
    assert len(seqs) == 1

    origin = head.note.split(b"\n", 1)[0].decode()
    notary = setup.notaries[0]
    now = int(time.time())
    good = read_authorization(notary.signer, origin, bundle.path, now)
    status, body = await get(setup, bundle.path, good)
    assert status == 200 and str(MAXIMUM).encode() in b"".join(parse_entry_bundle(bundle, body))
    refusals = {
        "stale": read_authorization(notary.signer, origin, bundle.path, now - 3600),
        "another path": read_authorization(notary.signer, origin, "tile/entries/001", now),
        "another log": read_authorization(notary.signer, "other.example/log", bundle.path, now),
        "tampered": good[:-6] + ("AAAAA=" if not good.endswith("AAAAA=") else "BBBBB="),
        "garbage": "Gavel-Notary notary1.test !!!",
    }
    for what, header in refusals.items():
        status, body = await get(setup, bundle.path, header)
        assert status == 403 and b"not accepted" in body, what

    # the lot closes (cancelled): the same bundle is public, the notaries go on co-signing
    await service.submit(lot_id, Cancel(reason="withdrawn", by=Authority.CLERK))
    assert await service.settle(20)
    status, body = await get(setup, bundle.path)
    assert status == 200 and str(MAXIMUM).encode() in body
    for seq in seqs:
        assert (await get(setup, f"receipt/{seq}"))[0] == 200
    await asyncio.sleep(0)
