#!/usr/bin/env python3
"""Generate the proof test vectors in tests/chain/vectors/ (valid and deliberately broken).

Usage: ``python -m scripts.gen_vectors [--out DIR] [--check]``. ``--check`` compares the files
on disk with freshly generated ones and exits 1 if they differ (they are committed, and
tests/chain/test_chain_vectors.py runs every vector: each broken one must raise ProofError).

Every vector is data only (hex strings and integers), so other implementations can use them:

- ``inclusion.json``: ``{"valid": [...], "invalid": [...]}`` with ``name``, ``index``, ``size``,
  ``leaf_hash``, ``proof`` (list), ``root``;
- ``consistency.json``: the same with ``size1``, ``size2``, ``proof``, ``root1``, ``root2``.

A broken vector is only kept if our verifier rejects it, which the generator checks; mutations
that can legitimately still verify (e.g. some changes of tree size alone) are dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chain import (
    MemoryTree,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "chain" / "vectors"
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100, 257]
ZERO = b"\x00" * 32

Vector = dict[str, Any]


def _entries(count: int) -> list[bytes]:
    return [b"gavel proof vector %d" % i for i in range(count)]


def _flip(digest: bytes, bit: int) -> bytes:
    mutable = bytearray(digest)
    mutable[(bit // 8) % len(mutable)] ^= 1 << (bit % 8)
    return bytes(mutable)


def _proof_mutations(proof: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    for position, digest in enumerate(proof):
        yield (
            f"flip-bit-in-proof-hash-{position}",
            [
                *proof[:position],
                _flip(digest, position * 37 + 5),
                *proof[position + 1 :],
            ],
        )
    if proof:
        yield "truncate-last-hash", proof[:-1]
        yield "drop-first-hash", proof[1:]
        yield "duplicate-last-hash", [*proof, proof[-1]]
        yield "short-hash", [proof[0][:31], *proof[1:]]
        yield "long-hash", [proof[0] + b"\x00", *proof[1:]]
    yield "append-zero-hash", [*proof, ZERO]
    yield "prepend-zero-hash", [ZERO, *proof]
    for position in range(len(proof) - 1):
        if proof[position] != proof[position + 1]:
            swapped = list(proof)
            swapped[position], swapped[position + 1] = swapped[position + 1], swapped[position]
            yield f"swap-hashes-{position}-{position + 1}", swapped
    if len(proof) > 2:
        yield "reverse-proof", proof[::-1]


def _inclusion(
    name: str, index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> Vector:
    return {
        "name": name,
        "index": index,
        "size": size,
        "leaf_hash": leaf.hex(),
        "proof": [digest.hex() for digest in proof],
        "root": root.hex(),
    }


def _consistency(
    name: str, size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> Vector:
    return {
        "name": name,
        "size1": size1,
        "size2": size2,
        "proof": [digest.hex() for digest in proof],
        "root1": root1.hex(),
        "root2": root2.hex(),
    }


def _rejected(check: Callable[[], None]) -> bool:
    try:
        check()
    except ProofError:
        return True
    return False


def inclusion_vectors(tree: MemoryTree, entries: list[bytes]) -> tuple[list[Vector], list[Vector]]:
    """Valid and broken inclusion vectors over prefixes of ``tree``."""
    valid: list[Vector] = []
    invalid: list[Vector] = []
    for size in SIZES:
        root = tree.root_at(size)
        for index in sorted({0, size // 2, size - 1}):
            leaf = leaf_hash(entries[index])
            proof = tree.inclusion_proof(index, size)
            tag = f"size-{size}-index-{index}"
            verify_inclusion(index, size, leaf, proof, root)
            valid.append(_inclusion(tag, index, size, leaf, proof, root))
            candidates: list[tuple[str, int, int, bytes, list[bytes], bytes]] = [
                (name, index, size, leaf, bad, root) for name, bad in _proof_mutations(proof)
            ]
            candidates += [
                ("flip-bit-in-root", index, size, leaf, proof, _flip(root, 77)),
                ("flip-bit-in-leaf-hash", index, size, _flip(leaf, 3), proof, root),
                (
                    "leaf-data-instead-of-leaf-hash",
                    index,
                    size,
                    entries[index][:32].ljust(32, b"\0"),
                    proof,
                    root,
                ),
                ("index-equals-size", size, size, leaf, proof, root),
                ("size-zero", index, 0, leaf, proof, root),
                ("negative-index", -1, size, leaf, proof, root),
                ("size-above-2^63-1", index, 1 << 63, leaf, proof, root),
                ("empty-tree-root", index, size, leaf, proof, tree.root_at(0)),
            ]
            if size > 1:
                other = (index + 1) % size
                candidates.append(("wrong-index", other, size, leaf, proof, root))
                candidates.append(
                    ("other-leaf", index, size, leaf_hash(entries[other]), proof, root)
                )
                # Second preimage: present the interior node's children as one "entry".
                if proof:
                    forged = leaf + proof[0] if index % 2 == 0 else proof[0] + leaf
                    candidates.append(
                        (
                            "interior-node-as-leaf",
                            index // 2,
                            (size + 1) // 2,
                            leaf_hash(forged),
                            proof[1:],
                            root,
                        )
                    )
            for change in (-1, 1):
                new_size = size + change
                if index < new_size <= len(entries):
                    candidates.append((f"size-{change:+d}", index, new_size, leaf, proof, root))
                    candidates.append(
                        (
                            f"size-{change:+d}-with-its-root",
                            index,
                            new_size,
                            leaf,
                            proof,
                            tree.root_at(new_size),
                        )
                    )
            for name, i, s, leaf_value, p, r in candidates:

                def check(
                    i: int = i,
                    s: int = s,
                    leaf_value: bytes = leaf_value,
                    p: list[bytes] = p,
                    r: bytes = r,
                ) -> None:
                    verify_inclusion(i, s, leaf_value, p, r)

                if _rejected(check):
                    invalid.append(_inclusion(f"{tag}-{name}", i, s, leaf_value, p, r))
    return valid, invalid


def consistency_vectors(tree: MemoryTree) -> tuple[list[Vector], list[Vector]]:
    """Valid and broken consistency vectors over prefixes of ``tree``."""
    valid: list[Vector] = []
    invalid: list[Vector] = []
    for size2 in SIZES:
        root2 = tree.root_at(size2)
        for size1 in sorted({0, 1, size2 // 2, size2 - 1, size2}):
            root1 = tree.root_at(size1)
            proof = tree.consistency_proof(size1, size2)
            tag = f"size1-{size1}-size2-{size2}"
            verify_consistency(size1, size2, proof, root1, root2)
            valid.append(_consistency(tag, size1, size2, proof, root1, root2))
            candidates: list[tuple[str, int, int, list[bytes], bytes, bytes]] = [
                (name, size1, size2, bad, root1, root2) for name, bad in _proof_mutations(proof)
            ]
            candidates += [
                ("flip-bit-in-root1", size1, size2, proof, _flip(root1, 11), root2),
                ("flip-bit-in-root2", size1, size2, proof, root1, _flip(root2, 200)),
                ("swap-roots", size1, size2, proof, root2, root1),
                ("size1-above-size2", size2 + 1, size2, proof, root1, root2),
                ("sizes-swapped", size2, size1, proof, root2, root1),
                ("negative-size1", -1, size2, proof, root1, root2),
                ("short-root1", size1, size2, proof, root1[:31], root2),
                ("short-root2", size1, size2, proof, root1, root2[:31]),
                ("empty-proof", size1, size2, [], root1, root2),
            ]
            for change in (-1, 1):
                new_size1 = size1 + change
                if 0 <= new_size1 <= size2:
                    candidates.append((f"size1-{change:+d}", new_size1, size2, proof, root1, root2))
                    candidates.append(
                        (
                            f"size1-{change:+d}-with-its-root",
                            new_size1,
                            size2,
                            proof,
                            tree.root_at(new_size1),
                            root2,
                        )
                    )
            for name, s1, s2, p, r1, r2 in candidates:

                def check(
                    s1: int = s1,
                    s2: int = s2,
                    p: list[bytes] = p,
                    r1: bytes = r1,
                    r2: bytes = r2,
                ) -> None:
                    verify_consistency(s1, s2, p, r1, r2)

                if _rejected(check):
                    invalid.append(_consistency(f"{tag}-{name}", s1, s2, p, r1, r2))
    return valid, invalid


def generate() -> dict[str, str]:
    """Return ``{file name: JSON text}`` for every vector file (deterministic)."""
    entries = _entries(max(SIZES))
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    files: dict[str, str] = {}
    for name, (valid, invalid) in {
        "inclusion.json": inclusion_vectors(tree, entries),
        "consistency.json": consistency_vectors(tree),
    }.items():
        document = {
            "description": "RFC 9162 proof vectors for Gavel's chain package; every invalid "
            "vector must be rejected. Generated by scripts/gen_vectors.py.",
            "entries": "entry i is the ASCII text 'gavel proof vector <i>'",
            "valid": valid,
            "invalid": invalid,
        }
        files[name] = json.dumps(document, indent=1, sort_keys=True) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (args.out / name).is_file() or (args.out / name).read_text() != text
        ]
        if stale:
            names = ", ".join(stale)
            print(f"stale vectors: {names}; run python -m scripts.gen_vectors", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
        document = json.loads(text)
        print(f"{name}: {len(document['valid'])} valid, {len(document['invalid'])} invalid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
