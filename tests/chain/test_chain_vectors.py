"""Run the generated proof vectors (tests/chain/vectors, made by
`python -m scripts.gen_vectors`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from oracle_kit import mth, path, proof
from script_kit import load_script

from chain import ProofError, leaf_hash, verify_consistency, verify_inclusion

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


INCLUSION = _load("inclusion.json")
CONSISTENCY = _load("consistency.json")


def _hashes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def test_the_corpus_is_substantial() -> None:
    assert len(INCLUSION["invalid"]) > 500
    assert len(CONSISTENCY["invalid"]) > 500
    names = [vector["name"] for vector in INCLUSION["invalid"]]
    for kind in ["interior-node-as-leaf", "flip-bit-in-root", "truncate-last-hash", "swap-hashes"]:
        assert any(kind in name for name in names), kind


@pytest.mark.parametrize("vector", INCLUSION["invalid"], ids=lambda v: v["name"])
def test_broken_inclusion_vector_is_rejected(vector: dict[str, Any]) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(
            vector["index"],
            vector["size"],
            bytes.fromhex(vector["leaf_hash"]),
            _hashes(vector["proof"]),
            bytes.fromhex(vector["root"]),
        )


@pytest.mark.parametrize("vector", CONSISTENCY["invalid"], ids=lambda v: v["name"])
def test_broken_consistency_vector_is_rejected(vector: dict[str, Any]) -> None:
    with pytest.raises(ProofError):
        verify_consistency(
            vector["size1"],
            vector["size2"],
            _hashes(vector["proof"]),
            bytes.fromhex(vector["root1"]),
            bytes.fromhex(vector["root2"]),
        )


def _entries(count: int) -> list[bytes]:
    return [b"gavel proof vector %d" % i for i in range(count)]


def test_valid_vectors_verify_and_agree_with_the_oracle() -> None:
    entries = _entries(300)
    for vector in INCLUSION["valid"]:
        index, size = vector["index"], vector["size"]
        assert bytes.fromhex(vector["leaf_hash"]) == leaf_hash(entries[index])
        assert _hashes(vector["proof"]) == path(index, entries[:size])
        assert bytes.fromhex(vector["root"]) == mth(entries[:size])
        verify_inclusion(
            index, size, leaf_hash(entries[index]), _hashes(vector["proof"]), mth(entries[:size])
        )
    for vector in CONSISTENCY["valid"]:
        size1, size2 = vector["size1"], vector["size2"]
        expected = proof(size1, entries[:size2]) if size1 else []
        assert _hashes(vector["proof"]) == expected
        verify_consistency(
            size1, size2, expected, mth(entries[:size1]), bytes.fromhex(vector["root2"])
        )


def test_committed_vectors_are_up_to_date() -> None:
    generated = load_script("gen_vectors").generate()
    assert sorted(generated) == ["consistency.json", "inclusion.json"]
    for name, text in generated.items():
        stale = f"{name} is stale: run python -m scripts.gen_vectors"
        assert (VECTORS / name).read_text() == text, stale
