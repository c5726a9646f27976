"""The server and its notaries together (issue 4, items 5 and 6), over 127.0.0.1.

A real `AuctionService` with its `/log/...` routes, three real `gavel notary serve` processes
and a 2-of-3 policy: checkpoints are published only once co-signed by the quorum (fail-closed),
bids keep being accepted while notaries are away, and publication catches up when they return.
The last test runs `gavel demo`, `gavel ledger export` and `gavel audit verify` as processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest
from notary_kit import (
    REPO,
    gavel_command,
    open_lot,
)
from wiring_kit import Setup

from auction.rules import BidAccepted, PlaceBid
from auction.service import AuctionService
from auction.storage import POLICY_FILE
from chain import parse_entry, parse_note, parse_policy
from notary.client import verify_quorum


async def bid(service: AuctionService, lot_id: str, bidder: str) -> bool:
    view = service.view(lot_id)
    assert view is not None
    events = await service.submit(lot_id, PlaceBid(bidder, view.min_next, "USD"))
    return any(isinstance(event, BidAccepted) for event in events)


async def published_checkpoint(setup: Setup) -> bytes:
    async with setup.http.get(setup.log_url + "/log/checkpoint") as response:
        assert response.status == 200
        return await response.read()


def size_of(note: bytes) -> int:
    return int(parse_note(note).text.split("\n")[1])


async def test_checkpoints_are_published_only_once_the_quorum_co_signed(setup: Setup) -> None:
    service = setup.service
    lot_id = await open_lot(service)
    acknowledged = 0
    for round_ in range(6):
        acknowledged += await bid(service, lot_id, ("alice", "bob")[round_ % 2])
    assert acknowledged == 6
    started = time.monotonic()
    assert await service.settle(15)
    settled = time.monotonic() - started
    size = await service.read(setup.store.ledger_size)
    note = await published_checkpoint(setup)
    assert size_of(note) == size
    signed = verify_quorum(setup.policy, note)  # log signature, cosignatures, 2 of 3
    assert len(setup.policy.witness_names(signed)) >= 2
    assert service.checkpoint is not None and service.checkpoint.note == note
    # every published checkpoint carries the quorum, the history is served with it
    async with setup.http.get(setup.log_url + "/log/checkpoints") as response:
        names = (await response.text()).split()
    assert names
    for name in names:
        async with setup.http.get(f"{setup.log_url}/log/checkpoints/{name}") as response:
            verify_quorum(setup.policy, await response.read())
    async with setup.http.get(setup.log_url + "/log/policy") as response:
        assert parse_policy(await response.read()) == setup.policy
    print(f"settled in {settled:.2f} s")


async def test_bids_go_on_while_notaries_are_away_and_publication_catches_up(
    setup: Setup,
) -> None:
    service = setup.service
    lot_id = await open_lot(service)
    assert await bid(service, lot_id, "alice")
    assert await service.settle(15)
    before = await published_checkpoint(setup)
    n1, n2, n3 = setup.notaries
    await asyncio.gather(n2.stop(), n3.stop())  # 1 of 3 left: no quorum

    acknowledged = 1
    for round_ in range(8):
        acknowledged += await bid(service, lot_id, ("bob", "alice")[round_ % 2])
    assert acknowledged == 9  # every bid accepted and durably logged
    await asyncio.sleep(1.5)  # several checkpoint rounds
    assert not await service.settle(0.5)
    assert await published_checkpoint(setup) == before  # fail-closed: nothing new published
    signed = service.signed_checkpoint
    assert signed is not None and signed.size > size_of(before)  # signed, not published
    async with setup.http.get(f"{setup.log_url}/log/receipt/{signed.size - 1}") as response:
        assert response.status == 404  # no receipt, no final sale, before the quorum
    checkpointer = service.checkpointer
    assert checkpointer is not None and checkpointer.unpublished_rounds >= 2

    await asyncio.gather(n2.restart(), n3.restart())
    started = time.monotonic()
    assert await service.settle(20)
    caught_up = time.monotonic() - started
    note = await published_checkpoint(setup)
    size = await service.read(setup.store.ledger_size)
    assert size_of(note) == size > size_of(before)
    verify_quorum(setup.policy, note)
    entries = await service.read(setup.store.ledger_entries, 0, size)
    bids = [parse_entry(e) for e in entries]
    accepted = [e for e in bids if e.type.value == "bid" and e.body.get("accepted")]
    assert len(accepted) == acknowledged  # every acknowledged bid is in the published tree
    async with setup.http.get(f"{setup.log_url}/log/receipt/{size - 1}") as response:
        assert response.status == 200
    print(f"caught up in {caught_up:.2f} s")


def run(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gavel_command(*arguments),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_demo_publishes_co_signed_checkpoints_that_the_audit_verifies(tmp_path: Path) -> None:
    data, out = tmp_path / "D", tmp_path / "E"
    demo = run("demo", "--bots", "5", "--duration", "30", "--data", str(data), "--port", "0")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr, demo.stderr
    assert demo.stdout.count("gavel demo: notary notary") >= 3
    assert "(final: co-signed)" in demo.stdout, demo.stdout
    policy = parse_policy((data / POLICY_FILE).read_bytes())
    assert len(policy.witnesses) == 3 and all(w.url for w in policy.witnesses)
    assert sorted(p.name for p in (data / "notaries").iterdir()) == ["n1", "n2", "n3"]
    keys = {(data / "notaries" / n / "notary.vkey").read_text() for n in ("n1", "n2", "n3")}
    assert len(keys) == 3  # separate keys

    export = run("ledger", "export", "--data", str(data), "--out", str(out))
    assert export.returncode == 0, export.stdout + export.stderr
    assert parse_policy((out / "policy").read_bytes()) == policy
    signed = verify_quorum(policy, (out / "checkpoint").read_bytes())
    assert len(policy.witness_names(signed)) >= 2

    audit = run("audit", "verify", str(out), "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["ok"] and report["notaries"]["quorum"] == "notaries"
    assert {"step": 5, "name": "quorum", "status": "passed"} in report["steps"]
    assert len(report["notaries"]["cosigned_latest"]) >= 2
