"""The notary's adapters in this process: the SQLite store (atomic compare-and-swap, mirror
checks, capped refusals) and the tlog-tiles reader (partial tiles gone, bounds, failures)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from notary_kit import LogServer, SimulatedLog

from auction.rules import SECOND
from chain import Tile, TileHashReader, tree_root
from notary import (
    LedgerCursor,
    LogTrust,
    LogUnavailableError,
    NotaryState,
    NotaryStateError,
    check_envelope,
    parse_add_checkpoint,
    verify_increment,
)
from notary.store import MAX_UNAUTHENTICATED_REFUSALS, NotaryStore, Refusal


def grown_state(store: NotaryStore, log: SimulatedLog, size: int) -> NotaryState:
    """Commit the log's first ``size`` entries as the server does."""
    trust = LogTrust(log.origin, (log.signer.verifier,))
    state = store.load_state(log.origin)
    assert state is not None
    accepted = check_envelope(parse_add_checkpoint(log.body(state.size, size)), trust, state)
    cursor = LedgerCursor.rebuild(store.iter_entries(0, state.size), trust)
    entries = [e.to_bytes() for e in log.entries[state.size : size]]
    increment = verify_increment(
        state, accepted, entries, cursor, trust, now_us=int(time.time() * SECOND)
    )
    new = NotaryState(log.origin, size, increment.root, increment.compact, b"note", 1)
    store.commit(state, new, increment.entries)
    return new


def test_commit_is_a_compare_and_swap(tmp_path: Path) -> None:
    log = SimulatedLog()
    log.grow(600)
    with NotaryStore.open(tmp_path / "notary.db") as store:
        first = grown_state(store, log, 300)
        assert store.load_state(log.origin) == first
        with pytest.raises(NotaryStateError, match="changed underneath"):
            store.commit(NotaryState(log.origin), first)  # stale expectation: nothing written
        with pytest.raises(NotaryStateError, match="notarizes"):
            store.load_state("someone.else/log")
        second = grown_state(store, log, log.size)
        store.verify_mirror(second)
        assert store.mirror_size() == log.size
        for size in (1, 255, 256, 257, 300):
            assert store.root_at(size) == log.tree.root_at(size)
            assert store.consistency_proof(size, log.size) == log.proof(size)
        assert [seq for seq, _ in store.iter_entries(298, 302)] == [298, 299, 300, 301]
    with NotaryStore.open(tmp_path / "notary.db", read_only=True) as reader:
        assert reader.load_state() == second
        with pytest.raises(NotaryStateError):
            reader.set_meta("x", "y")


def test_a_damaged_mirror_is_detected(tmp_path: Path) -> None:
    log = SimulatedLog()
    log.grow(50)
    path = tmp_path / "notary.db"
    with NotaryStore.open(path) as store:
        state = grown_state(store, log, log.size)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE entries SET data = CAST(data || x'20' AS BLOB) WHERE seq = 17")
    with NotaryStore.open(path) as store, pytest.raises(NotaryStateError, match="does not match"):
        store.verify_mirror(state)
    with pytest.raises(NotaryStateError, match="no notary database"):
        NotaryStore.open(tmp_path / "absent.db", read_only=True)


def test_unauthenticated_refusals_are_capped(tmp_path: Path) -> None:
    with NotaryStore.open(tmp_path / "notary.db") as store:
        store.record_refusal(Refusal(1, 422, "INCONSISTENT", "m", evidence=True, request=b"r"))
        for index in range(MAX_UNAUTHENTICATED_REFUSALS + 5):
            store.record_refusal(Refusal(index, 403, "BAD_LOG_SIGNATURE", "m", request=b"x"))
        refusals = store.refusals()
        assert len(refusals) == MAX_UNAUTHENTICATED_REFUSALS + 1
        assert refusals[-1].evidence and refusals[-1].request == b"r"
        assert all(r.request is None for r in refusals[:-1])  # never keep unsigned bytes
        store.note_log_size(10)
        store.note_log_size(7)
        assert store.get_meta("log_size_seen") == "10"


async def test_the_tile_reader(tmp_path: Path) -> None:
    from notary.logsource import HttpLog

    log = SimulatedLog()
    log.grow(700)
    server = LogServer(log)
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            reader = HttpLog(session, url, timeout=5)
            entries = await reader.entries(250, 600)
            assert entries == [e.to_bytes() for e in log.entries[250:600]]
            server.partial_gone = True  # the log completed tile 1 and dropped its partials
            assert await reader.entries(300, 500) == [e.to_bytes() for e in log.entries[300:500]]
            assert server.requests["tile/entries/001"] >= 1
            size = 500
            tiles = await reader.tiles([Tile(0, 0), Tile(0, 1, size - 256), Tile(1, 0, 1)])
            hashes = TileHashReader(size, tiles.__getitem__)
            assert tree_root(size, hashes) == log.tree.root_at(size)
            assert await reader.entries(5, 5) == []
            assert await reader.checkpoint() == log.checkpoint()
            with pytest.raises(LogUnavailableError, match="does not serve"):
                await reader.entries(0, log.size + 10)
            server.down = True
            with pytest.raises(LogUnavailableError, match="503"):
                await reader.entries(0, 10)
            gone = HttpLog(session, "http://127.0.0.1:9", timeout=2)
            with pytest.raises(LogUnavailableError, match="cannot fetch"):
                await gone.checkpoint()
    finally:
        await server.stop()
