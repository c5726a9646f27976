"""Notaries compare views: each fetches the others' latest co-signed checkpoints (and the log's
published one) and checks consistency with its own; a fork leaves an evidence file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from notary_kit import LogServer, NotaryProcess, SimulatedLog

from chain import open_checkpoint, parse_vkey

pytestmark = pytest.mark.slow


async def wait_for_peers(
    notary: NotaryProcess, session: aiohttp.ClientSession, expected: dict[str, str]
) -> dict[str, Any]:
    """Poll ``GET /status`` until the peers have the expected statuses (by URL)."""
    deadline = time.monotonic() + 20
    while True:
        async with session.get(notary.url + "/status") as response:
            report: dict[str, Any] = await response.json()
        seen = {peer["url"]: peer["status"] for peer in report["peers"]}
        if all(seen.get(url) == status for url, status in expected.items()):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"{notary.name} peers: {seen}, expected {expected}")
        await asyncio.sleep(0.2)


async def test_notaries_detect_a_fork_and_keep_evidence(tmp_path: Path) -> None:
    main = SimulatedLog()
    main.grow(300)
    branch = main.fork(200, lot_prefix="branch")  # same key, same first 200 entries
    branch.grow(main.size)  # longer than the main line, another history after 200
    servers = [LogServer(main), LogServer(branch)]
    main_url, branch_url = [await server.start() for server in servers]
    a, b, c = (NotaryProcess(tmp_path / name, f"{name}.example.org") for name in "abc")
    policy = tmp_path / "policy"
    policy.write_bytes(
        main.make_policy([(n.name.split(".")[0], n.vkey, n.url) for n in (a, b, c)], 2)
    )
    try:
        await asyncio.gather(
            a.start(main_url, policy, peer_interval=0.3),
            b.start(branch_url, policy, peer_interval=0.3),
            c.start(main_url, policy, peer_interval=0.3),
        )
        async with aiohttp.ClientSession() as session:
            for notary, log, size in ((a, main, main.size), (b, branch, 250), (c, main, 150)):
                body = log.body(0, size)
                async with session.post(notary.url + "/add-checkpoint", data=body) as response:
                    assert response.status == 200, await response.text()

            # a (main, 300) sees b (branch, 250) through its own mirror: a fork.
            report = await wait_for_peers(
                a, session, {b.url: "conflict", c.url: "consistent", "log": "consistent"}
            )
            assert report["conflicts"][0]["source"] == b.url
            # c (main, 150) proves a (300) consistent from the log's hash tiles.
            await wait_for_peers(c, session, {a.url: "consistent", "log": "consistent"})
            # b (branch, 250) sees a (300) through its log's tiles, which disagree with a.
            await wait_for_peers(b, session, {a.url: "conflict"})

        files = sorted((a.directory / "evidence").glob("*.json"))
        assert len(files) == 1  # written once, not at every comparison
        evidence = json.loads(files[0].read_text())
        assert evidence["kind"] == "fork" and evidence["source"] == b.url
        assert (evidence["ours"]["size"], evidence["theirs"]["size"]) == (main.size, 250)
        assert evidence["check"]["type"] == "consistency"
        assert evidence["check"]["old_size"] == 250 and len(evidence["check"]["proof"]) > 0
        verifier = main.signer.verifier
        theirs = open_checkpoint(evidence["theirs"]["note"].encode(), verifier)
        ours = open_checkpoint(evidence["ours"]["note"].encode(), verifier)
        assert theirs.checkpoint.root == branch.tree.root_at(250)
        assert ours.checkpoint.root == main.tree.root()
        cosigner = parse_vkey(b.vkey)
        assert open_checkpoint(evidence["theirs"]["note"].encode(), verifier, [cosigner])  # type: ignore[list-item]
        b_files = list((b.directory / "evidence").glob("*.json"))
        assert json.loads(b_files[0].read_text())["kind"] == "tiles-mismatch"
        assert [conflict["source"] for conflict in report["conflicts"]] == [b.url]
    finally:
        await asyncio.gather(*(n.kill() for n in (a, b, c)))
        for server in servers:
            await server.stop()
