"""Package-level rules: the exception tree, the public surface, and the dependency direction."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chain
from chain import errors

CHAIN_DIR = Path(chain.__file__).resolve().parent
FORBIDDEN_IMPORTS = {
    "asyncio",
    "aiohttp",
    "aiortc",
    "av",
    "websockets",
    "sqlalchemy",
    "sqlmodel",
    "sqlite3",
    "psycopg",
    "socket",
    "threading",
    "auction",
    "notary",
    "streaming",
}
ALLOWED_THIRD_PARTY = {"cryptography", "rfc8785"}
# chain/store/ is the ledger's storage adapter: SQLAlchemy Core, nothing else of the above.
STORAGE_ADAPTER = CHAIN_DIR / "store"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path", sorted(CHAIN_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(CHAIN_DIR))
)
def test_chain_imports_no_adapters_and_no_other_package(path: Path) -> None:
    imported = _imports(path)
    adapter = {"sqlalchemy"} if STORAGE_ADAPTER in path.parents else set()
    assert not imported & (FORBIDDEN_IMPORTS - adapter), f"{path.name} imports {imported}"
    third_party = {
        name for name in imported if name not in sys.stdlib_module_names and name != "__future__"
    }
    assert third_party <= ALLOWED_THIRD_PARTY | adapter, f"{path.name} imports {third_party}"


def test_import_chain_pulls_in_no_adapter_at_runtime() -> None:
    code = (
        "import sys, chain; assert chain.__file__, 'not the real package'; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(FORBIDDEN_IMPORTS)!r}); print(bad); sys.exit(1 if bad else 0)"
    )
    root = CHAIN_DIR.parent
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_surface() -> None:
    assert sorted(chain.__all__) == sorted(set(chain.__all__))
    for name in chain.__all__:
        assert hasattr(chain, name), name
    for module in ("checkpoint", "entry", "note", "policy", "proof", "receipt", "tiles", "verify"):
        submodule = getattr(chain, module)
        for name in submodule.__all__:
            assert name in chain.__all__, f"chain.{module}.{name} is not re-exported"


def test_exception_tree() -> None:
    expected = {
        errors.MalformedError: 400,
        errors.TooLargeError: 413,
        errors.SignatureError: 403,
        errors.UnknownOriginError: 404,
        errors.ProofError: 422,
        errors.PolicyError: 403,
        errors.EntryError: 422,
        errors.ActorSignatureError: 422,
        errors.ConfigurationError: 500,
    }
    for cls, status in expected.items():
        assert issubclass(cls, errors.ChainError)
        assert cls.http_status == status
        assert cls.reason
    assert issubclass(errors.TooLargeError, errors.MalformedError)
    assert issubclass(errors.UnknownOriginError, errors.SignatureError)
    assert issubclass(errors.ActorSignatureError, errors.EntryError)
    error = errors.ProofError("bad").at_step("6 inclusion")
    assert isinstance(error, errors.ProofError)
    assert str(error) == "step 6 inclusion: bad" and error.message == "bad"


def test_public_functions_have_docstrings() -> None:
    missing = [
        name
        for name in chain.__all__
        if callable(getattr(chain, name)) and not (getattr(chain, name).__doc__ or "").strip()
    ]
    assert not missing, missing
