"""Pure cores import no I/O (STYLE rule 1) and packages respect the dependency direction."""

from __future__ import annotations

import ast
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
PURE_PACKAGES = ["auction/rules", "chain"]
# The one adapter inside a pure package: the ledger's storage (the package chain/store/), through
# SQLAlchemy Core only. It may use a database library, and still nothing else from
# FORBIDDEN_IN_PURE.
STORAGE_ADAPTERS = {"chain/store": {"sqlalchemy"}}
# (package, packages it must not import)
DIRECTION = [
    ("chain", {"auction", "notary", "streaming"}),
    ("streaming", {"auction", "chain", "notary"}),
    ("notary", {"streaming"}),
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


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom sqlmodel import Session\n")
    assert imported_modules(bad) & FORBIDDEN_IN_PURE == {"asyncio", "sqlmodel"}
