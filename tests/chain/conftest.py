"""Make ``import chain`` find the package, not this directory.

``tests/`` has no ``__init__.py``, so when pytest puts ``tests/`` on ``sys.path`` (and the
repository root is not, as with the ``pytest`` entry point instead of ``python -m pytest``),
this directory would shadow the real package as an empty namespace package ``chain``. Putting
the repository root first avoids that. (``pythonpath = ["."]`` in pyproject.toml would too.)
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
_loaded = sys.modules.get("chain")
if _loaded is not None and getattr(_loaded, "__file__", None) is None:
    del sys.modules["chain"]  # a namespace package picked up by mistake: import the real one
