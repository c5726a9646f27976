"""Every browser a witness, in real headless Chromium against real servers: the lot room keeps
the last checkpoint it verified and checks each newer one with `/log/proof/consistency`.

One browser, one address (a fixed port): server 1 shows checkpoint A, grows, and the page
checks the growth (no warning). Then a second server takes the same address with a copy of
server 1's data taken before that growth (same origin, same house key) and writes other entries
from there: a fork. The page says so in words (sizes, both root hashes), keeps bidding as it
was, and offers the evidence file, which Python checks: both notes verify under the policy and
the proof served by the fork does not lead from the kept root to the fork's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pages_kit import js
from pages_kit import static_tab as a_static_tab
from server_kit import Server, unrecorded_video
from stream_kit import CHROMIUM_ARGS, require_chromium

from auction.evidence.package import consistency_text
from auction.rules import SECOND, english_timed
from auction.throttle import WriteLimits
from auction.web import Settings, create_app
from auction.web.limits import GuardedRunner
from chain import MemoryTree, ProofError, parse_policy, verify_consistency

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

LOT = "witness-lot"
TIMEOUT_MS = 20_000
#: Where to write screenshots to look at (unset: none).
_SHOTS_DIR = os.environ.get("GAVEL_SCREENSHOTS")
SHOTS = Path(_SHOTS_DIR) if _SHOTS_DIR else None


def free_port_in(first: int, last: int) -> int:
    for port in range(first, last + 1):
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port))
            return port
    raise AssertionError("no free port")


@contextlib.asynccontextmanager
async def server_at(data: Path, port: int) -> AsyncIterator[Server]:
    """A real server on 127.0.0.1:`port` over the data directory `data`."""
    settings = Settings(
        data_dir=data, port=port, demo=False, bots=0,
        write_limits=WriteLimits().scaled(100), video=unrecorded_video(data),
    )  # fmt: skip
    app = create_app(settings)
    runner = GuardedRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Server(app, f"http://127.0.0.1:{port}", data)
    finally:
        await runner.cleanup()


async def grow(server: Server, prefix: str, count: int) -> int:
    """Add `count` lots (one ledger entry each); return the size once a checkpoint covers
    them."""
    service = server.service
    now = service.now()
    rules = english_timed(
        start_price=100_000, start_at=now + 3600 * SECOND, end_at=now + 7200 * SECOND
    )
    for i in range(count):
        await service.add_lot(f"{prefix}-{i}", rules, f"Lot {prefix} {i}")
    size = int(await service.read(service.ledger.ledger_size))
    for _ in range(400):
        if service.checkpoint is not None and service.checkpoint.size == size:
            return size
        await asyncio.sleep(0.02)
    raise AssertionError("no checkpoint covers the new entries")


async def witness_state(page: Any, kind: str) -> str:
    await page.wait_for_function(
        "kind => document.getElementById('witness-status')?.dataset.witness === kind", arg=kind
    )
    return str(await page.text_content("#witness-status"))


async def kept(page: Any) -> dict[str, Any]:
    text = await page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('gavel.witness.v1:'))"
        ".map(k => localStorage.getItem(k))"
    )
    assert len(text) == 1
    return dict(json.loads(text[0]))


async def shot(page: Any, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / name))


async def test_a_forked_log_is_caught_and_consistent_growth_is_not(tmp_path: Path) -> None:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    port = free_port_in(19100, 19199)
    first, fork = tmp_path / "first", tmp_path / "fork"
    async with server_at(first, port) as server:
        now = server.service.now()
        rules = english_timed(
            start_price=100_000, start_at=now + 3600 * SECOND, end_at=now + 7200 * SECOND
        )
        await server.service.add_lot(LOT, rules, "A lot watched by its bidders")
        await grow(server, "a", 5)
    shutil.copytree(first, fork)  # same origin and house key, same first entries
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(TIMEOUT_MS)
            async with server_at(first, port) as server:
                await page.goto(f"{server.url}/lot/{LOT}")
                await witness_state(page, "first")
                checkpoint_a = server.service.checkpoint
                assert (await kept(page))["size"] == checkpoint_a.size
                # Consistent growth: checked with the real proof, kept, no warning.
                grown = await grow(server, "b", 4)
                await page.reload()
                words = await witness_state(page, "grown")
                assert f"{grown} entries extends the one of {checkpoint_a.size} entries" in words
                assert await page.is_hidden("#witness-banner")
                honest = await kept(page)
                assert honest["size"] == grown
                auditor = await context.new_page()
                await auditor.goto(f"{server.url}/auditor")
                await witness_state(auditor, "same")
                assert await auditor.is_hidden("#witness-banner")
                await auditor.close()
                await shot(page, "witness-normal-desktop.png")

            async with server_at(fork, port) as forked:
                forked_size = await grow(forked, "z", 12)  # other entries from the copy on
                assert forked_size > grown
                forked_root = base64.b64encode(forked.service.checkpoint.root).decode()
                await page.reload()
                await witness_state(page, "fork")
                banner = await page.text_content("#witness-banner")
                assert await page.is_visible("#witness-banner")
                assert "two histories that do not fit together" in banner
                assert f"with {grown} entries, root hash {honest['root']}" in banner
                assert f"{forked_size} entries, root hash {forked_root}" in banner
                assert "does not verify" in banner
                # Bidding controls stay as they were.
                assert await page.is_visible("#bid-form")
                # The kept checkpoint is still the honest one.
                assert (await kept(page))["root"] == honest["root"]
                await shot(page, "witness-fork-desktop.png")

                async with page.expect_download() as caught:
                    await page.click("#witness-evidence")
                download = await caught.value
                evidence = json.loads(Path(await download.path()).read_text("utf-8"))

                phone = await context.new_page()
                await phone.set_viewport_size({"width": 390, "height": 844})
                await phone.goto(f"{forked.url}/lot/{LOT}")
                await witness_state(phone, "fork")
                assert await phone.is_visible("#witness-banner")
                assert await phone.is_visible("#witness-evidence")
                width = await phone.evaluate("document.documentElement.scrollWidth")
                assert width <= 390
                await shot(phone, "witness-fork-phone.png")

                auditor = await context.new_page()
                await auditor.goto(f"{forked.url}/auditor")
                await witness_state(auditor, "fork")
                assert await auditor.is_visible("#witness-banner")
                await shot(auditor, "witness-fork-auditor.png")
                policy = parse_policy(
                    await forked.service.read(forked.service.ledger.ledger_policy)
                )
        finally:
            await browser.close()

    assert evidence["format"] == "gavel/split-view-evidence/v1"
    earlier = policy.verify_checkpoint(evidence["earlier"]["checkpoint"].encode()).checkpoint
    later = policy.verify_checkpoint(evidence["later"]["checkpoint"].encode()).checkpoint
    assert (earlier.size, later.size) == (grown, forked_size)
    assert evidence["consistency"]["request"] == (
        f"/log/proof/consistency?from={grown}&to={forked_size}"
    )
    lines = evidence["consistency"]["proof"].split("\n")
    assert lines[:3] == ["gavel/consistency/v1", f"old {grown}", f"new {forked_size}"]
    proof = [base64.b64decode(line) for line in lines[3:-1]]
    with pytest.raises(ProofError):
        verify_consistency(grown, forked_size, proof, earlier.root, later.root)
    assert errors == []


# ------------------------------------------------------------------------------------------
# witness.js's RFC 9162 consistency check against chain's proofs, in the browser.

CHECK_ALL = """
const b = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const outcomes = [];
for (const [size1, size2, proof, root1, root2] of arg) {
  try {
    await m.verifyConsistency(size1, size2, proof.map(b), b(root1), b(root2));
    outcomes.push("ok");
  } catch (error) {
    outcomes.push(error.message || "failed");
  }
}
return outcomes;
"""


LEAVES = 40


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def static_tab() -> AsyncIterator[Any]:
    """A page of a server with only the static files (no API, no ledger)."""
    async with a_static_tab() as tab:
        yield tab


async def test_the_browser_checks_consistency_proofs_like_chain(static_tab: Any) -> None:
    tree = MemoryTree()
    for i in range(LEAVES):
        tree.append(f"entry {i}".encode())
    good, bad = [], []
    other = hashlib.sha256(b"the root of another tree").digest()
    for size1 in range(1, LEAVES + 1):
        for size2 in range(size1, LEAVES + 1):
            proof = tree.consistency_proof(size1, size2) if size1 < size2 else []
            root1, root2 = tree.root_at(size1), tree.root_at(size2)
            verify_consistency(size1, size2, proof, root1, root2)
            good.append([size1, size2, [_b64(h) for h in proof], _b64(root1), _b64(root2)])
            if size1 == size2:
                bad.append([size1, size2, [], _b64(root1), _b64(other)])
                continue
            flipped = [bytearray(h) for h in proof]
            flipped[(size1 + size2) % len(proof)][size2 % 32] ^= 1 << (size1 % 8)
            for wrong in (
                [bytes(h) for h in flipped],  # one flipped bit
                proof[:-1],  # truncated
                [*proof, proof[0]],  # extended
            ):
                bad.append([size1, size2, [_b64(h) for h in wrong], _b64(root1), _b64(root2)])
            # The right proof against another old root, or another new root.
            bad.append([size1, size2, [_b64(h) for h in proof], _b64(other), _b64(root2)])
            bad.append([size1, size2, [_b64(h) for h in proof], _b64(root1), _b64(other)])
    assert await js(static_tab, "witness.js", CHECK_ALL, good) == ["ok"] * len(good)
    outcomes = await js(static_tab, "witness.js", CHECK_ALL, bad)
    assert len(outcomes) == len(bad) and "ok" not in outcomes
    for case, outcome in zip(bad, outcomes, strict=True):  # chain agrees: none verifies
        with pytest.raises(ProofError):
            verify_consistency(
                case[0],
                case[1],
                [base64.b64decode(h) for h in case[2]],
                base64.b64decode(case[3]),
                base64.b64decode(case[4]),
            )
        assert outcome  # a reason in words


async def test_the_browser_reads_the_served_proof_form(static_tab: Any) -> None:
    text = consistency_text(3, 9, [bytes(range(32)), b"\x07" * 32])
    parsed = await js(
        static_tab,
        "witness.js",
        "const p = m.parseConsistency(arg); return [p.old, p.new, p.proof.length];",
        text,
    )
    assert parsed == [3, 9, 2]
    for broken in (text.replace("old 3", "old 03"), text[:-1], "gavel/consistency/v2\n"):
        refused = await js(
            static_tab,
            "witness.js",
            "try { m.parseConsistency(arg); return null; } catch (e) { return e.message; }",
            broken,
        )
        assert refused, broken
