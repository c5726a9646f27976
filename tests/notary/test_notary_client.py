"""The log's client of the notaries: parallel requests, 409 resynchronisation, typed failures,
and fail-closed publication at the policy's quorum (2 of 3) with notary processes killed and
restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from notary_kit import LogServer, NotaryProcess, SimulatedLog

from chain import (
    CosignatureSigner,
    Policy,
    PolicyError,
    parse_checkpoint_text,
    parse_note,
    parse_policy,
)
from notary.client import (
    CosignatureRound,
    Cosigned,
    NotaryEndpoint,
    Refused,
    notaries_from_policy,
    quorum_met,
    request_cosignatures,
    verify_quorum,
)


@dataclass
class Publisher:
    """What the log server will do: sign, ask every notary, publish only at quorum."""

    log: SimulatedLog
    policy: Policy
    session: aiohttp.ClientSession
    sizes: dict[str, int] = field(default_factory=dict)
    timeout: float = 10.0

    async def round(self) -> CosignatureRound:
        size = self.log.size
        result = await request_cosignatures(
            self.session,
            notaries_from_policy(self.policy),
            self.sizes,
            self.log.checkpoint(),
            lambda old: self.log.proof(old, size),
            timeout=self.timeout,
        )
        self.sizes = dict(result.old_sizes)
        merged = result.merged()
        if quorum_met(self.policy, merged):
            self.log.published = merged
        return result

    @property
    def published_size(self) -> int:
        if self.log.published is None:
            return 0
        return parse_checkpoint_text(parse_note(self.log.published).text).size


def names(result: CosignatureRound) -> tuple[set[str], dict[str, str]]:
    return {c.notary for c in result.cosigned}, {r.notary: r.kind for r in result.refused}


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[tuple[Publisher, list[NotaryProcess]]]:
    log = SimulatedLog()
    log.grow(300)
    server = LogServer(log)
    log_url = await server.start()
    notaries = [NotaryProcess(tmp_path / f"n{i}", f"notary{i}.example.org") for i in (1, 2, 3)]
    policy_file = tmp_path / "policy"
    policy_file.write_bytes(
        log.make_policy([(f"notary{i + 1}", n.vkey, n.url) for i, n in enumerate(notaries)], 2)
    )
    try:
        await asyncio.gather(*(n.start(log_url, policy_file) for n in notaries))
        async with aiohttp.ClientSession() as session:
            yield Publisher(log, parse_policy(log.policy_bytes), session), notaries
    finally:
        await asyncio.gather(*(n.kill() for n in notaries))
        await server.stop()


@pytest.mark.slow
async def test_quorum_publication_with_notaries_killed_and_back(
    three: tuple[Publisher, list[NotaryProcess]],
) -> None:
    publisher, (n1, n2, n3) = three
    log = publisher.log
    all_three = {"notary1", "notary2", "notary3"}

    result = await publisher.round()
    assert names(result) == (all_three, {})
    assert publisher.published_size == log.size
    assert verify_quorum(publisher.policy, result.merged()).cosigner_names == {
        "notary1.example.org",
        "notary2.example.org",
        "notary3.example.org",
    }

    await n3.kill()
    log.grow(60)
    result = await publisher.round()
    assert names(result) == ({"notary1", "notary2"}, {"notary3": "unreachable"})
    assert publisher.published_size == log.size  # 2 of 3 is the quorum

    await n2.kill()
    stalled = publisher.published_size
    for _ in range(2):  # bids keep being accepted and logged while notaries are away
        log.grow(60)
        result = await publisher.round()
        assert names(result) == ({"notary1"}, {"notary2": "unreachable", "notary3": "unreachable"})
        assert publisher.published_size == stalled  # fail-closed: no quorum, no publication
        assert not quorum_met(publisher.policy, result.merged())
        with pytest.raises(PolicyError):
            verify_quorum(publisher.policy, result.merged())
    acknowledged = log.bid_seqs()
    assert acknowledged[-1] >= stalled

    await asyncio.gather(n2.restart(), n3.restart())
    publisher.sizes.pop("notary3")  # the log forgot where notary3 was: 409 tells it
    result = await publisher.round()
    assert names(result) == (all_three, {})
    assert publisher.published_size == log.size
    assert all(seq < publisher.published_size for seq in acknowledged)  # no bid lost
    assert publisher.sizes == dict.fromkeys(all_three, log.size)
    for notary in (n1, n2, n3):
        async with publisher.session.get(notary.url + "/status") as response:
            report = await response.json()
        assert (report["size"], report["mirrored_entries"]) == (log.size, log.size)

    # Resynchronisation via 409 when the log's idea of the sizes is wrong or missing.
    log.grow(30)
    publisher.sizes = {"notary1": 0, "notary2": 7}
    result = await publisher.round()
    assert len(result.cosigned) == 3
    assert publisher.sizes == dict.fromkeys(all_three, log.size)
    # A notary ahead of the checkpoint offered cannot co-sign it: typed, not an exception.
    stale = await request_cosignatures(
        publisher.session,
        notaries_from_policy(publisher.policy),
        publisher.sizes,
        log.checkpoint(200),
        lambda size: log.proof(size, 200),
    )
    assert {r.kind for r in stale.refused} == {"ahead"}


# --- typed failures against fake notaries ---------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def fake_notaries() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/add-checkpoint", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_typed_failures(fake_notaries: Callable[[Handler], Awaitable[str]]) -> None:
    log = SimulatedLog()
    log.grow(20)
    signer = CosignatureSigner.from_seed("fake.example.org", b"\x02" * 32)
    stranger = CosignatureSigner.from_seed("fake.example.org", b"\x03" * 32)
    text = parse_note(log.checkpoint()).text_bytes
    stop = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(stop.wait(), 5)
        return web.Response(text="late")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="not a signature line\n")

    async def wrong_key(request: web.Request) -> web.Response:
        return web.Response(text=stranger.cosign(text, 1).to_line())

    async def conflict_without_size(request: web.Request) -> web.Response:
        return web.Response(status=409, text="?\n", content_type="text/x.tlog.size")

    async def good(request: web.Request) -> web.Response:
        body = await request.read()
        assert body.startswith(b"old 0\n\n")
        return web.Response(text=signer.cosign(text, 1).to_line())

    endpoints = [
        NotaryEndpoint(name, await fake_notaries(handler), signer.verifier)
        for name, handler in [
            ("slow", slow),
            ("broken", broken),
            ("garbage", garbage),
            ("wrong-key", wrong_key),
            ("conflict", conflict_without_size),
            ("good", good),
        ]
    ]
    endpoints.append(NotaryEndpoint("gone", "http://127.0.0.1:9", signer.verifier))
    async with aiohttp.ClientSession() as session:
        result = await request_cosignatures(
            session, endpoints, {}, log.checkpoint(), lambda old: [], timeout=0.5
        )
    stop.set()
    assert isinstance(result.results["good"], Cosigned)
    kinds = {r.notary: (r.kind, r.status) for r in result.refused}
    assert kinds == {
        "slow": ("timeout", None),
        "broken": ("refused", 500),
        "garbage": ("bad-answer", 200),
        "wrong-key": ("bad-answer", 200),
        "conflict": ("bad-answer", 409),
        "gone": ("unreachable", None),
    }
    assert isinstance(result.results["broken"], Refused)
    assert result.results["broken"].message == "internal error"
    assert result.old_sizes == {"good": log.size}
