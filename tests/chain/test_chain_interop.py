"""Interoperability: Go's golang.org/x/mod/sumdb/note and sumdb/tlog check what we write.

The Go program (tests/chain/interop/main.go) is built offline in GOPATH mode from Debian's
golang-go and golang-golang-x-mod-dev. Without ``go`` the tests skip, unless ``CI=true``, where
they fail.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_kit import ORIGIN, log_signer, make_entries, notary_signers

from chain import (
    Checkpoint,
    MemoryTree,
    add_cosignatures,
    make_receipt,
    new_entry_bundles,
    new_tiles,
    sign_checkpoint,
)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "interop" / "main.go"
GOPATH = "/usr/share/gocode"
X_MOD = Path(GOPATH) / "src" / "golang.org" / "x" / "mod" / "sumdb" / "tlog"
CHECKPOINT_SIZES = [1, 255, 256, 257, 1000, 65536, 70_000]
SIGNED_ENTRIES = 12


def _go_environment(cache: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        GO111MODULE="off",
        GOPATH=GOPATH,
        CGO_ENABLED="0",
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
    )
    if "GOCACHE" not in environment and "HOME" not in environment:
        environment["GOCACHE"] = str(cache)
    return environment


@pytest.fixture(scope="module")
def interop_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    missing = []
    if go is None:
        missing.append("the go command (Debian package golang-go)")
    if not X_MOD.is_dir():
        missing.append(f"{X_MOD} (Debian package golang-golang-x-mod-dev)")
    if missing:
        reason = "Go interoperability check needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: not skipping)")
        pytest.skip(reason)
    assert go is not None
    build = tmp_path_factory.mktemp("go-build")
    binary = build / "interop"
    result = subprocess.run(
        [go, "build", "-o", str(binary), str(SOURCE)],
        cwd=build,
        env=_go_environment(build / "cache"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"go build failed:\n{result.stdout}\n{result.stderr}"
    return binary


def _write(directory: Path, relative: str, data: bytes) -> None:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(value).decode() for value in values]


def _export(directory: Path) -> dict[str, object]:
    """Play a log: append entries, write tiles at each checkpoint, sign, cosign, export."""
    signed_entries = [entry.to_bytes() for entry in make_entries(SIGNED_ENTRIES)]
    tree = MemoryTree()
    log, notaries = log_signer(), notary_signers(3)
    previous = 0
    roots: dict[int, bytes] = {}
    for size in CHECKPOINT_SIZES:
        while tree.size < size:
            index = tree.size
            if index < SIGNED_ENTRIES:
                tree.append(signed_entries[index])
            else:
                tree.append(b"interop entry %d" % index)
        for tile in new_tiles(previous, size):
            _write(directory, tile.path, tree.tile(tile))
        for bundle in new_entry_bundles(previous, size):
            _write(directory, bundle.path, tree.entry_bundle(bundle))
        roots[size] = tree.root()
        previous = size
    size = tree.size
    checkpoint = Checkpoint(ORIGIN, size, tree.root())
    signed = sign_checkpoint(checkpoint, log)
    cosignatures = [
        n.cosign(checkpoint.text_bytes(), 1_795_000_000 + i) for i, n in enumerate(notaries)
    ]
    signed = add_cosignatures(signed, cosignatures[:2])
    _write(directory, "checkpoint", signed)
    _write(directory, "log.vkey", (log.vkey + "\n").encode())
    _write(directory, "cosigners.vkeys", "".join(n.vkey + "\n" for n in notaries).encode())
    receipt_index = 7
    _write(
        directory,
        "receipt.tlog-proof",
        make_receipt(receipt_index, tree.inclusion_proof(receipt_index), signed),
    )
    _write(directory, "receipt.entry", signed_entries[receipt_index])
    inclusion = [
        {"index": index, "size": proof_size, "proof": _b64(tree.inclusion_proof(index, proof_size))}
        for proof_size in (size, 65536, 257, 1000)
        for index in (0, 1, 7, 255, 256, 999, 65535, 65536, size - 1)
        if index < proof_size
    ]
    consistency = [
        {"size1": size1, "size2": size2, "proof": _b64(tree.consistency_proof(size1, size2))}
        for size2 in CHECKPOINT_SIZES
        for size1 in [*CHECKPOINT_SIZES, 3, 100, 511, 65535]
        if size1 <= size2
    ]
    proofs = {
        "min_cosignatures": 2,
        "trees": [
            {"size": s, "root": base64.b64encode(roots[s]).decode()} for s in CHECKPOINT_SIZES
        ],
        "inclusion": inclusion,
        "consistency": consistency,
    }
    _write(directory, "proofs.json", json.dumps(proofs).encode())
    return proofs


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("interop-export")
    _export(directory)
    yield directory


def _run(binary: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), str(directory)], capture_output=True, text=True, timeout=120, check=False
    )


def test_go_verifies_our_checkpoint_tiles_proofs_and_receipt(
    interop_binary: Path, exported: Path
) -> None:
    result = _run(interop_binary, exported)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK size=70000 ")


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    ("relative", "position", "expected"),
    [
        ("checkpoint", 40, "checkpoint"),  # the body: the log signature fails
        ("checkpoint", -30, "cosignature"),  # inside the last (cosignature) line
        ("tile/0/273.p/112", 5, "tree hash"),  # the partial level-0 tile of size 70000
        ("tile/1/000", 100, "tree"),
        ("tile/entries/000", 30, "entry 0"),
        ("receipt.entry", 20, "receipt inclusion"),
    ],
)
def test_go_rejects_tampered_files(
    interop_binary: Path,
    exported: Path,
    tmp_path: Path,
    relative: str,
    position: int,
    expected: str,
) -> None:
    directory = _copy(exported, tmp_path / "copy")
    path = directory / relative
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    result = _run(interop_binary, directory)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("FAIL"), result.stdout
    assert expected in result.stdout, result.stdout


# --- a lot's evidence package (gavel evidence), checked by sumdb/note and sumdb/tlog --------


@pytest.fixture(scope="module")
def evidence_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sold lot's evidence package from a real SQLite ledger co-signed by three notary
    processes (2 of 3), written by `gavel evidence`."""
    from evidence_kit import build_notarized_data

    from auction.cli import main

    root = tmp_path_factory.mktemp("interop-evidence")
    lot = build_notarized_data(root / "data")
    out = root / "package"
    assert main(["evidence", lot, "--data", str(root / "data"), "--out", str(out)]) == 0
    return out


def _run_evidence(binary: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "evidence", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_go_verifies_an_evidence_package(interop_binary: Path, evidence_package: Path) -> None:
    result = _run_evidence(interop_binary, evidence_package)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = len(list((evidence_package / "entries").glob("*.entry")))
    assert result.stdout.startswith(f"OK evidence entries={entries} "), result.stdout
    assert result.stdout.rstrip().endswith("quorum=2"), result.stdout


def _flip_hash(path: Path, line_number: int) -> None:
    lines = path.read_bytes().split(b"\n")
    line = bytearray(lines[line_number])
    line[3] = ord("A") if line[3] != ord("A") else ord("B")
    lines[line_number] = bytes(line)
    path.write_bytes(b"\n".join(lines))


def _drop_cosignatures(path: Path) -> None:
    """Keep only the log's signature line (the first of the note's signature block)."""
    text = path.read_bytes()
    body, signatures = text.split(b"\n\n", 1)
    path.write_bytes(body + b"\n\n" + signatures.split(b"\n")[0] + b"\n")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("proof", "receipt inclusion"),
        ("entry", "receipt inclusion"),
        ("checkpoint", "checkpoint"),
        ("cosignatures", "good cosignatures"),
        ("consistency", "consistency"),
    ],
)
def test_go_rejects_a_tampered_evidence_package(
    interop_binary: Path, evidence_package: Path, tmp_path: Path, case: str, expected: str
) -> None:
    directory = _copy(evidence_package, tmp_path / "copy")
    seq = max(int(path.stem) for path in (directory / "entries").glob("*.entry"))
    if case == "proof":
        _flip_hash(directory / "entries" / f"{seq}.tlog-proof", 2)
    elif case == "entry":
        path = directory / "entries" / f"{seq}.entry"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif case == "checkpoint":
        path = directory / "checkpoint"
        data = bytearray(path.read_bytes())
        data[data.index(b"\n") + 1] ^= 0x01  # a digit of the size
        path.write_bytes(bytes(data))
    elif case == "cosignatures":
        _drop_cosignatures(directory / "latest-checkpoint")
    else:
        _flip_hash(directory / "consistency", 3)
    result = _run_evidence(interop_binary, directory)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("FAIL"), result.stdout
    assert expected in result.stdout, result.stdout
