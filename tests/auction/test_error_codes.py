"""Every error code a server can answer with is spelt one way and documented.

The codes are collected from the code itself: the `code` of every exception class of
`auction` and `streaming`, every `code="..."` a raise names, the enums whose values go out as
codes (the engine's rejection reasons, identity, binding and payment refusals, signed-bid
refusals) and the codes of aiohttp's own refusals. Each must be upper case with underscores
(`auction.errors.CODE_SPELLING`) and appear in docs/protocol.md in that spelling. The refusal
reasons of `chain` and `notary` must have the same spelling.
"""

from __future__ import annotations

import ast
import enum
import importlib
import json
import pkgutil
import re

import pytest
from repo_kit import REPO

import auction
import chain
import notary
import streaming
from auction.errors import CODE_SPELLING, GavelError
from auction.identity.binding import Refusal
from auction.payments import PaymentReason
from auction.rules import RejectReason
from auction.verify import IdentityReason, SignedBidError
from auction.web import errors as web_errors
from chain import ChainError
from notary import NotaryError
from streaming.errors import StreamError

ROOT = REPO
PROTOCOL = ROOT / "docs" / "protocol.md"
# Modules that need optional media libraries at import; their exceptions are found by source.
_SKIP_IMPORT = re.compile(r"\.(demo_video|video_chromium)$")


def _import_all(package: object) -> None:
    path = getattr(package, "__path__", None)
    name = getattr(package, "__name__", "")
    for module in pkgutil.walk_packages(path, prefix=f"{name}."):
        if not _SKIP_IMPORT.search(module.name):
            importlib.import_module(module.name)


def _subclasses(base: type) -> set[type]:
    found: set[type] = set()
    todo = [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found | {base}


#: Calls that take the code positionally: the callee's name → the code's position.
POSITIONAL_CODES = {
    "InputError": 0,
    "SourceChoiceError": 0,
    "MediaFileMissing": 0,
    "Throttled": 0,
    "_refused": 2,
}


def _code_values(node: ast.AST) -> list[ast.expr]:
    """The expressions `node` passes or assigns as an error code."""
    if isinstance(node, ast.keyword) and node.arg == "code":
        return [node.value]
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "code"
    ):
        return [node.value]
    if isinstance(node, ast.Dict):  # {"code": "X", ...}: an error body or message
        return [
            value
            for key, value in zip(node.keys, node.values, strict=True)
            if isinstance(key, ast.Constant) and key.value == "code"
        ]
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        position = POSITIONAL_CODES.get(name or "")
        if position is not None and len(node.args) > position:
            return [node.args[position]]
    return []


def _raised_codes(package: str) -> dict[str, str]:
    """The string constants the package's source passes or assigns as error codes."""
    codes: dict[str, str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            for value in _code_values(node):
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    codes.setdefault(value.value, f"{where}:{value.lineno}")
    return codes


def _enum_codes(*enums: type[enum.StrEnum]) -> dict[str, str]:
    return {member.value: kind.__name__ for kind in enums for member in kind}


def emitted_codes() -> dict[str, str]:
    """Every code the auction server (with its video routes) can answer with → where from."""
    _import_all(auction)
    _import_all(streaming)
    codes: dict[str, str] = {}
    for base in (GavelError, StreamError):
        for cls in _subclasses(base):
            code = cls.__dict__.get("code")
            if isinstance(code, str):
                codes.setdefault(code, cls.__qualname__)
    for package in ("auction", "streaming"):
        for code, where in _raised_codes(package).items():
            codes.setdefault(code, where)
    codes.update(_enum_codes(RejectReason, IdentityReason, Refusal, PaymentReason))
    for name, value in vars(SignedBidError).items():
        if name.isupper() and isinstance(value, str):
            codes.setdefault(value, f"SignedBidError.{name}")
    for code in web_errors._HTTP_EXCEPTION_CODES.values():
        codes.setdefault(code, "auction.web.errors")
    codes.setdefault("HTTP_ERROR", "auction.web.errors")
    return codes


def documented_words() -> set[str]:
    return set(re.findall(r"[A-Z][A-Z0-9_]+", PROTOCOL.read_text(encoding="utf-8")))


def test_codes_are_collected() -> None:
    codes = emitted_codes()
    # the collection finds the codes of each source: classes, raises, enums, the adapters
    assert {"UNKNOWN_LOT", "KEY_IN_USE", "BELOW_MIN", "TOO_MANY_VIEWERS", "NOT_FOUND"} <= set(codes)
    assert {"BAD_SDP", "DOCUMENT_IN_USE", "INSUFFICIENT_FUNDS", "BAD_SIGNATURE"} <= set(codes)
    assert {"BAD_ID", "IDEMPOTENCY_CONFLICT", "FORBIDDEN_ORIGIN", "NOT_LIVE"} <= set(codes)


def test_every_code_has_the_one_spelling() -> None:
    wrong = {
        code: where for code, where in emitted_codes().items() if not CODE_SPELLING.fullmatch(code)
    }
    assert not wrong, wrong


def test_every_code_is_documented_in_the_protocol() -> None:
    words = documented_words()
    missing = {code: where for code, where in emitted_codes().items() if code not in words}
    assert not missing, f"not in docs/protocol.md: {missing}"


@pytest.mark.parametrize("base", [ChainError, NotaryError])
def test_chain_and_notary_reasons_have_the_one_spelling(base: type) -> None:
    _import_all(chain)
    _import_all(notary)
    reasons = {cls.__qualname__: cls.__dict__.get("reason") for cls in _subclasses(base)}
    wrong = {
        name: reason
        for name, reason in reasons.items()
        if reason is not None and not CODE_SPELLING.fullmatch(reason)
    }
    assert not wrong, wrong


def test_the_protocol_spells_every_code_it_shows_one_way() -> None:
    """Error bodies and "status code" pairs (`409 LOT_CLOSED`) in the document."""
    text = PROTOCOL.read_text(encoding="utf-8")
    shown = re.findall(r'"error":\s*\{"code":\s*"([^"]+)"', text)
    shown += re.findall(r'"type":\s*"error",\s*"code":\s*"([^"…]+)"', text)
    shown += re.findall(r"`[1-5][0-9][0-9]\s+([A-Za-z][A-Za-z0-9_-]*)`", text)
    assert len(shown) > 50  # the document names its codes this way
    wrong = sorted({code for code in shown if not CODE_SPELLING.fullmatch(code)})
    assert not wrong, wrong


def test_every_code_matches_the_api_description() -> None:
    description = json.loads((ROOT / "auction/web/openapi.json").read_text(encoding="utf-8"))
    error = description["components"]["schemas"]["Error"]["properties"]["error"]
    pattern = re.compile(error["properties"]["code"]["pattern"])
    wrong = sorted(code for code in emitted_codes() if not pattern.search(code))
    assert not wrong, wrong
