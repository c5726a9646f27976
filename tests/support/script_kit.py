"""A script of `scripts/` imported as a module (`scripts.<name>`), for the tests that call its
functions; the command line that runs one (`python -m scripts.<name>`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """The module `scripts.<name>` (the repository root is on the path: pyproject's
    `pythonpath`)."""
    return importlib.import_module(f"scripts.{name}")


def script_command(name: str, *arguments: str) -> list[str]:
    """`python -m scripts.<name> ARGUMENTS`, to run with the repository root as the working
    directory."""
    return [sys.executable, "-m", f"scripts.{name}", *arguments]
