"""Pure cores import no I/O (STYLE rule 1) and packages respect the dependency direction."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from repo_kit import REPO

ROOT = REPO
FORBIDDEN_IN_PURE = {
    "asyncio",
    "aiohttp",
    "aiortc",
    "av",
    "sqlalchemy",
    "sqlmodel",
    "websockets",
    "psycopg",
    "redis",
    "socket",
    "time",
    "random",
    "threading",
}
PURE_PACKAGES = ["auction/rules", "auction/verify", "chain"]
# The one adapter inside a pure package: the ledger's storage (the package chain/store/), through
# SQLAlchemy Core only. It may use a database library, and still nothing else from
# FORBIDDEN_IN_PURE.
STORAGE_ADAPTERS = {"chain/store": {"sqlalchemy"}}
# (package, packages it must not import)
DIRECTION = [
    ("chain", {"auction", "notary", "streaming"}),
    ("streaming", {"auction", "chain", "notary"}),
    ("notary", {"streaming"}),
    ("auction/verify", {"notary", "streaming"}),
]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_core_imports_no_io(package: str) -> None:
    files = python_files(package)
    if package == "auction/rules":
        assert files, "the rules engine must exist"
    offenders = {}
    for path in files:
        name = str(path.relative_to(ROOT))
        adapter = {folder for folder in STORAGE_ADAPTERS if ROOT / folder in path.parents}
        forbidden = FORBIDDEN_IN_PURE - set().union(*(STORAGE_ADAPTERS[f] for f in adapter))
        if imported_modules(path) & forbidden:
            offenders[name] = sorted(imported_modules(path) & forbidden)
    assert not offenders, offenders


def test_the_storage_adapter_exception_is_exactly_one_package() -> None:
    assert all((ROOT / name / "__init__.py").is_file() for name in STORAGE_ADAPTERS)
    imported = set().union(*(imported_modules(path) for path in python_files("chain/store")))
    assert imported & FORBIDDEN_IN_PURE == {"sqlalchemy"}
    # and `import chain` does not load it: chain/__init__.py never imports the adapter
    tree = ast.parse((ROOT / "chain/__init__.py").read_text(encoding="utf-8"))
    relative = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }
    assert relative and "store" not in relative


@pytest.mark.parametrize(("package", "forbidden"), DIRECTION)
def test_dependency_direction(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & forbidden)
        for path in python_files(package)
        if imported_modules(path) & forbidden
    }
    assert not offenders, offenders


# What notary may import from auction: the rules engine and the shared verification pipeline,
# never the server (issue 18). auction.verify itself imports only chain, auction.rules and the
# package's exception tree (auction.errors, which the rules engine's errors derive from too).
NOTARY_MAY_IMPORT = {"auction.rules", "auction.verify"}
VERIFY_MAY_IMPORT = {"auction.rules", "auction.verify", "auction.errors", "chain"}
NOTARY_MAY_LOAD = NOTARY_MAY_IMPORT | {"auction.errors"}


def imported_auction_modules(path: Path, package: str) -> set[str]:
    """Absolute names of the first-party modules ``path`` imports (relative ones resolved
    against ``package``, e.g. ``auction.verify``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {
        name for name in names if name.split(".")[0] in {"auction", "chain", "notary", "streaming"}
    }


def outside(names: set[str], allowed: set[str]) -> set[str]:
    """The ``auction`` modules (or names imported from them) in ``names`` that are neither an
    allowed module nor inside one."""
    return {
        name
        for name in names
        if name.split(".")[0] == "auction"
        and not any(name == ok or name.startswith(ok + ".") for ok in allowed)
    }


def test_notary_imports_from_auction_only_the_rules_and_the_pipeline() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            outside(imported_auction_modules(path, "notary"), NOTARY_MAY_IMPORT)
        )
        for path in python_files("notary")
    }
    assert not {name: bad for name, bad in offenders.items() if bad}, offenders


def test_the_pipeline_imports_only_chain_and_the_rules() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            outside(imported_auction_modules(path, "auction.verify"), VERIFY_MAY_IMPORT)
        )
        for path in python_files("auction/verify")
    }
    assert not {name: bad for name, bad in offenders.items() if bad}, offenders
    assert (ROOT / "auction/verify/pipeline.py").is_file()


def test_importing_the_notary_core_loads_no_server_module() -> None:
    code = (
        "import sys, notary.core\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('auction.'))\n"
        "print(' '.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "auction.verify" in loaded and "auction.rules" in loaded
    assert outside(loaded, NOTARY_MAY_LOAD) == set(), loaded


def test_the_auction_import_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from auction.ledger import SignatureMemo\nfrom ..rules import apply\n")
    names = imported_auction_modules(bad, "auction.verify")
    assert outside(names, VERIFY_MAY_IMPORT) == {
        "auction.ledger",
        "auction.ledger.SignatureMemo",
    }
    assert outside(imported_auction_modules(bad, "notary"), NOTARY_MAY_IMPORT) == {
        "auction.ledger",
        "auction.ledger.SignatureMemo",
    }


# Pure modules inside a package that also holds adapters (auction/bidding/ has the gateway): the
# websocket connection's state, the replay ring it reads and the message parser. The adapter
# that drives them is auction/web/ws.py.
PURE_MODULES = [
    "auction/bidding/session.py",
    "auction/bidding/replay.py",
    "auction/bidding/protocol.py",
]
CONNECTION_STATE_MAY_IMPORT = {"auction.bidding.protocol", "auction.errors", "auction.verify"}
CONNECTION_STATE_MAY_LOAD = {
    "auction.bidding",
    "auction.errors",
    "auction.rules",
    "auction.verify",
    "auction.words",
}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_io(module: str) -> None:
    path = ROOT / module
    assert path.is_file(), module
    assert imported_modules(path) & FORBIDDEN_IN_PURE == set()


def test_the_connection_state_imports_only_the_protocol_and_pure_packages() -> None:
    names = imported_auction_modules(ROOT / "auction/bidding/session.py", "auction.bidding")
    assert "auction.bidding.protocol" in names
    assert outside(names, CONNECTION_STATE_MAY_IMPORT) == set(), names


def test_importing_the_connection_state_loads_no_io_and_no_server_module() -> None:
    code = (
        "import sys, auction.bidding.session\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('auction.')"
        " or m.split('.')[0] in ('aiohttp', 'asyncio', 'sqlalchemy', 'socket'))\n"
        "print(' '.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "auction.bidding.session" in loaded
    assert not {name for name in loaded if not name.startswith("auction.")}, loaded
    assert outside(loaded, CONNECTION_STATE_MAY_LOAD) == set(), loaded


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom sqlmodel import Session\n")
    assert imported_modules(bad) & FORBIDDEN_IN_PURE == {"asyncio", "sqlmodel"}
