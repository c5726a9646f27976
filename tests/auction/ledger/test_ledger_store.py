"""`chain.store` on real SQLite files and PostgreSQL: tiles, proofs, resume, the signed-head lock,
and the fast canonical-JSON path of `LedgerBatch.add` against the reference `build_entry`."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, update
from sqlalchemy.engine import Engine

from chain import (
    EMPTY_ROOT,
    EntryBundle,
    EntryType,
    MalformedError,
    MemoryTree,
    Tile,
    build_entry,
    leaf_hash,
    parse_entry,
    parse_entry_bundle,
    sign_actor,
    tiles_for_size,
    verify_consistency,
    verify_inclusion,
)
from chain import store as ledger_store
from chain.store import (
    ENTRIES,
    EntrySigner,
    LedgerState,
    SignedHeadConflict,
    StoredDataError,
    StoredEntry,
)

SEED = hashlib.sha256(b"gavel test house").digest()
SIGNER = EntrySigner.from_seed("gavel.local/00112233445566778899+abcdef01+AQ==", SEED)
T0 = 1_795_000_000_000_000


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH over leaf hashes, straight from the definition (an oracle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh SQLite file or PostgreSQL schema, with the ledger tables."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url").replace(
            "postgresql://", "postgresql+psycopg://"
        )
        made = create_engine(url)
    else:
        made = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with made.begin() as connection:
        ledger_store.create_tables(connection)
    try:
        yield made
    finally:
        made.dispose()


def raw_batch(
    state: LedgerState, leaves: list[bytes], time_us: int = T0
) -> ledger_store.LedgerBatch:
    """A batch of arbitrary leaf bytes (the store never parses entries; big trees stay fast)."""
    batch = state.batch()
    compact = batch._range  # the test feeds leaves directly, bypassing entry building
    for data in leaves:
        entry = StoredEntry(compact.end, data, time_us)
        for node, digest in compact.append(entry.leaf_hash):
            if node.level and node.level % 8 == 0:
                batch.nodes.append((node, digest))
        batch.entries.append(entry)
    batch._prev = batch.entries[-1].leaf_hash
    return batch


def append(engine: Engine, state: LedgerState, batch: ledger_store.LedgerBatch) -> None:
    with engine.begin() as connection:
        ledger_store.append_entries(connection, batch.entries, batch.nodes)
    state.advance(batch)


@pytest.mark.slow
def test_tiles_and_proofs_equal_a_tree_computed_directly(engine: Engine) -> None:
    leaves = [b"leaf %d" % i for i in range(66_000)]  # three tile levels (256**2 = 65,536)
    memory = MemoryTree()
    for data in leaves:
        memory.append(data)
    state = LedgerState()
    position = 0
    for chunk in (1, 255, 1, 300, 65_000, 443):  # batches that cross tile boundaries
        append(engine, state, raw_batch(state, leaves[position : position + chunk]))
        position += chunk
    assert position == len(leaves) and state.size == len(leaves)
    assert state.root() == memory.root()

    hashes = [leaf_hash(data) for data in leaves]
    with engine.connect() as connection:
        assert ledger_store.stored_size(connection) == len(leaves)
        for size in (1, 2, 255, 256, 257, 4_097, 65_536, 65_537, len(leaves)):
            assert ledger_store.tree_root(connection, size) == naive_root(hashes[:size])
            for tile in tiles_for_size(size):
                assert ledger_store.read_tile(connection, tile) == memory.tile(tile), tile.path
        assert {t.level for t in tiles_for_size(len(leaves))} == {0, 1, 2}

        size = len(leaves)
        root = memory.root()
        for index in (0, 1, 255, 256, 65_535, 65_536, size - 1):
            proof = ledger_store.inclusion_proof(connection, index, size)
            assert proof == memory.inclusion_proof(index, size)
            verify_inclusion(index, size, hashes[index], proof, root)
        for old in (1, 3, 256, 1_000, 65_536):
            proof = ledger_store.consistency_proof(connection, old, size)
            verify_consistency(old, size, proof, memory.root_at(old), root)

        bundle = EntryBundle(1, 44)
        entries = parse_entry_bundle(bundle, ledger_store.read_entry_bundle(connection, bundle))
        assert entries == leaves[256:300]
        with pytest.raises(StoredDataError):
            ledger_store.read_tile(connection, Tile(0, 300))  # beyond what is stored

    with engine.connect() as connection:
        resumed = LedgerState.load(connection)
    assert (resumed.size, resumed.root(), resumed.prev) == (size, root, hashes[-1])


def test_entries_are_sequenced_signed_and_resumed(engine: Engine) -> None:
    state = LedgerState()
    batch = state.batch()
    first = batch.add(EntryType.HOUSE, {"v": 1, "origin": "x"}, T0, SIGNER)
    second = batch.add(EntryType.BID, {"v": 1, "lot": "a", "n": 0}, T0 - 5, SIGNER)  # earlier t
    assert (first.seq, second.seq) == (0, 1)
    append(engine, state, batch)
    parsed = [parse_entry(first.data), parse_entry(second.data)]
    assert parsed[0].prev == b"" and parsed[1].prev == first.leaf_hash
    assert parsed[1].time_us == T0  # times never go backwards
    assert parsed[1].actor.kid == SIGNER.kid

    for round_number in range(3):  # several restarts, each extending the same tree
        with engine.connect() as connection:
            state = LedgerState.load(connection)
        batch = state.batch()
        for i in range(200):
            batch.add(EntryType.BID, {"v": 1, "round": round_number, "i": i}, T0 + i, SIGNER)
        append(engine, state, batch)
    with engine.connect() as connection:
        stored = ledger_store.read_entries(connection, 0, state.size)
        assert ledger_store.tree_root(connection, state.size) == state.root()
    previous = None
    for entry in stored:
        parsed_entry = parse_entry(entry.data)
        assert parsed_entry.seq == entry.seq
        assert parsed_entry.prev == (previous.leaf_hash if previous else b"")
        previous = entry
    assert state.size == 602 and state.prev == stored[-1].leaf_hash


def full_load(engine: Engine) -> LedgerState:
    seen: list[int] = []
    with engine.connect() as connection:
        state = LedgerState.load(connection, each_entry=lambda entry: seen.append(entry.seq))
    assert seen == list(range(state.size))
    return state


def test_resume_recomputes_leaf_hashes_and_checks_the_signed_root(engine: Engine) -> None:
    state = LedgerState()
    append(engine, state, raw_batch(state, [b"entry %d" % i for i in range(300)]))
    with engine.begin() as connection:
        ledger_store.cas_signed(connection, 0, 300, state.root(), T0)
    assert full_load(engine).root() == state.root()

    with engine.begin() as connection:  # a disk flips a byte of an entry in the tail tile
        connection.execute(update(ENTRIES).where(ENTRIES.c.seq == 299).values(data=b"forged"))
    with engine.connect() as connection, pytest.raises(StoredDataError, match="leaf hash"):
        LedgerState.load(connection)  # the quick resume re-hashes the tail
    with pytest.raises(StoredDataError, match="leaf hash"):
        full_load(engine)

    with engine.begin() as connection:
        connection.execute(update(ENTRIES).where(ENTRIES.c.seq == 299).values(data=b"entry 299"))
        # an entry of a full tile altered together with its stored leaf hash
        statement = update(ENTRIES).where(ENTRIES.c.seq == 3)
        connection.execute(statement.values(data=b"forged", leaf_hash=leaf_hash(b"forged")))
    with engine.connect() as connection:
        LedgerState.load(connection)  # the quick resume trusts the stored level-8 hash ...
    with pytest.raises(StoredDataError, match="node|signed root"):
        full_load(engine)  # ... the full one re-hashes everything

    with engine.begin() as connection:
        connection.execute(
            update(ENTRIES)
            .where(ENTRIES.c.seq == 3)
            .values(data=b"entry 3", leaf_hash=leaf_hash(b"entry 3"))
        )
        connection.execute(ENTRIES.delete().where(ENTRIES.c.seq >= 100))
    with engine.connect() as connection, pytest.raises(StoredDataError, match="signed"):
        LedgerState.load(connection)  # entries lost after they were signed
    with pytest.raises(StoredDataError, match="signed"):
        full_load(engine)


def test_the_signed_head_is_a_compare_and_swap(engine: Engine) -> None:
    root_a, root_b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    with engine.begin() as connection:
        assert ledger_store.read_signed(connection) == ledger_store.SignedHead(0, EMPTY_ROOT)
        ledger_store.cas_signed(connection, 0, 5, root_a, T0)
        ledger_store.store_checkpoint(connection, 5, root_a, b"note a", T0)
    with engine.begin() as connection, pytest.raises(SignedHeadConflict, match="size 5, not 0"):
        ledger_store.cas_signed(connection, 0, 6, root_b, T0)  # a stale second signer
    with engine.begin() as connection, pytest.raises(SignedHeadConflict):
        ledger_store.cas_signed(connection, 5, 5, root_b, T0)  # a second root for size 5
    with pytest.raises(Exception, match="(?i)unique|duplicate"), engine.begin() as connection:
        ledger_store.store_checkpoint(connection, 5, root_b, b"note b", T0)
    with engine.connect() as connection:
        assert ledger_store.read_signed(connection) == ledger_store.SignedHead(5, root_a)
        assert ledger_store.latest_checkpoint(connection) is None  # signed, not published
        stored = ledger_store.latest_checkpoint(connection, published=False)
        assert stored is not None and (stored.root, stored.note) == (root_a, b"note a")
    with engine.begin() as connection:
        ledger_store.publish_checkpoint(connection, 5, b"note a+", T0 + 1)
        with pytest.raises(StoredDataError):
            ledger_store.publish_checkpoint(connection, 6, b"nothing", T0)
    with engine.connect() as connection:
        assert ledger_store.checkpoint_sizes(connection) == [5]
        latest = ledger_store.latest_checkpoint(connection)
        assert latest is not None and latest.note == b"note a+" and latest.published_us == T0 + 1


def test_two_concurrent_signers_one_wins(engine: Engine) -> None:
    """Both read size 0 and try to move it; the database lets exactly one through."""
    results: list[str] = []
    barrier = threading.Barrier(2)

    def sign(new_size: int) -> None:
        try:
            with engine.begin() as connection:
                barrier.wait(5)
                ledger_store.cas_signed(
                    connection, 0, new_size, hashlib.sha256(b"%d" % new_size).digest(), T0
                )
            results.append("signed")
        except SignedHeadConflict:
            results.append("refused")
        except Exception as exc:  # SQLite may refuse the second writer outright instead
            results.append(f"refused: {type(exc).__name__}")

    threads = [threading.Thread(target=sign, args=(size,)) for size in (7, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.split(":")[0] for r in results) == ["refused", "signed"], results
    with engine.connect() as connection:
        assert ledger_store.read_signed(connection).size in (7, 8)


# --- the fast canonical-JSON path equals the reference ---------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2)
    | st.text(max_size=12)
    | st.sampled_from(["\u2028", "\x7f", "\x00\x1f", '"\\', "\U0001f600", "\ud800", "é"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["\U0001f600", "\uff61"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)


def reference_bytes(seq: int, prev: bytes, time_us: int, kind: EntryType, body: Any) -> bytes:
    actor = sign_actor(kind, body, SIGNER.kid, SIGNER.private_key)
    return build_entry(
        seq=seq, prev=prev, time_us=time_us, entry_type=kind, body=body, actor=actor
    ).to_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5))
def test_fast_entries_equal_the_reference_encoding(body: dict[str, Any]) -> None:
    state = LedgerState()
    batch = state.batch()
    batch.add(EntryType.HOUSE, {"v": 1}, T0, SIGNER)
    try:
        expected = reference_bytes(1, batch.prev, T0 + 1, EntryType.BID, body)
    except MalformedError:
        with pytest.raises(MalformedError):
            batch.add(EntryType.BID, body, T0 + 1, SIGNER)
        return
    entry = batch.add(EntryType.BID, body, T0 + 1, SIGNER)
    assert entry.data == expected
    assert parse_entry(entry.data).to_bytes() == entry.data


def test_oversized_entries_are_refused() -> None:
    batch = LedgerState().batch()
    with pytest.raises(MalformedError, match="larger"):
        batch.add(EntryType.BID, {"blob": "x" * 17_000}, T0, SIGNER)
    assert batch.entries == [] and batch.size == 0
