"""A lot's hidden reserve and real notaries, over 127.0.0.1 (docs/ledger.md §2, §4).

Three `gavel notary serve` processes and a 2-of-3 policy (the fixture of
`test_notary_wiring`). The `lot` entry of a lot with a hidden reserve holds a commitment to it;
the notaries open it with their signed read of the openings, replay the lot with it and co-sign
every checkpoint without a refusal; no public entry bundle or receipt holds the amount until the
lot is withdrawn, when its `reveal` opens the reserve with the lot's maxima and is co-signed too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from wiring_kit import Setup, count_cosignatures, open_lot, public_log, setup  # noqa: F401 (a fixture)

from auction.rules import Authority, Cancel, SetMax
from chain import TILE_WIDTH, EntryBundle, parse_entry, parse_entry_bundle

RESERVE = 8_264_913  # above the maximum: never met, never a price
MAXIMUM = 3_210_000


async def test_notaries_cosign_a_sealed_reserve_and_its_reveal(
    setup: Setup,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cosigned = count_cosignatures(monkeypatch)
    service = setup.service
    lot_id = await open_lot(service, reserve=RESERVE)
    await service.submit(lot_id, SetMax("alice", MAXIMUM, "USD"))
    size = await service.read(setup.store.ledger_size)
    assert await service.settle(20), "the notaries did not co-sign the sealed reserve"
    head = service.checkpoint
    assert head is not None and head.size == size
    assert len(head.note.split(b"\n\xe2\x80\x94 ")) >= 3  # the log's signature and 2 notaries

    statuses, seen = await public_log(setup, size)
    assert set(statuses) == {200}
    assert str(RESERVE).encode() not in seen and b'"reserve"' in seen  # its commitment's name

    await service.submit(lot_id, Cancel(reason="withdrawn", by=Authority.CLERK))
    assert await service.settle(20)
    final = await service.read(setup.store.ledger_size)
    head = service.checkpoint
    assert head is not None and head.size == final
    statuses, seen = await public_log(setup, final)
    assert set(statuses) == {200} and str(RESERVE).encode() in seen
    bundle = EntryBundle(0, min(TILE_WIDTH, final))
    entries = [
        parse_entry(raw) for raw in parse_entry_bundle(bundle, (await setup_get(setup, bundle)))
    ]
    lot_entry = next(e for e in entries if e.type == "lot")
    reveals = [e for e in entries if e.type == "reveal"]
    assert len(reveals) == 1 and reveals[0].seq == final - 1
    opened: dict[str, Any] = json.loads(json.dumps(reveals[0].body["openings"], default=dict))
    assert opened[str(lot_entry.seq)]["reserve"]["value"] == RESERVE
    values = {o["value"] for items in opened.values() for o in items.values()}
    assert values == {RESERVE, MAXIMUM}
    assert cosigned.rounds >= 2 and [r for r in cosigned.refused if r.kind == "refused"] == []


async def setup_get(setup: Setup, bundle: EntryBundle) -> bytes:  # noqa: F811
    async with setup.http.get(f"{setup.log_url}/log/{bundle.path}") as response:
        assert response.status == 200
        return await response.read()
