"""`auction` has one exception tree, and its HTTP statuses come from one table."""

from __future__ import annotations

import ast
import builtins

import pytest
from repo_kit import REPO

from auction.accounts import AccountUnavailable, KeyInUse, UnknownAccount
from auction.catalogue.facts import BadFacts, FactsUnavailable, TooMany, UnknownDocument, WrongType
from auction.catalogue.facts import TooLarge as FactsTooLarge
from auction.errors import GavelError
from auction.identity.records import DocumentInUse
from auction.rules import CommandError, RejectReason
from auction.service import LotExists, RequestRefused, ServiceClosed
from auction.throttle import Throttled
from auction.video.sources import MediaFileMissing, SourceChoiceError
from auction.web.errors import error_body, error_from_status, http_status
from auction.web.lot_input import InputError

ROOT = REPO
# Signals that never leave the module that raises them (control flow, a parser's inner step).
PRIVATE_SIGNALS = {"_LocalNow", "_Unreadable", "_Number"}


def test_every_exception_class_of_auction_derives_from_the_base() -> None:
    """Any class of `auction` whose bases name a built-in exception must be the base itself."""
    builtin = {name for name in dir(builtins) if name.endswith(("Error", "Exception"))}
    assert {"Exception", "ValueError", "LookupError"} <= builtin
    offenders = []
    for path in sorted((ROOT / "auction").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name in PRIVATE_SIGNALS:
                continue
            bases = {base.id for base in node.bases if isinstance(base, ast.Name)}
            if bases & builtin and node.name != "GavelError":
                ours = bases - builtin
                if not ours:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (AccountUnavailable("x"), 503, "UNAVAILABLE"),
        (KeyInUse("x"), 409, "KEY_IN_USE"),
        (UnknownAccount("x"), 404, "UNKNOWN_ACCOUNT"),
        (DocumentInUse("acct-1"), 409, "DOCUMENT_IN_USE"),
        (BadFacts("x"), 422, "BAD_FACTS"),
        (WrongType("x"), 415, "WRONG_TYPE"),
        (FactsTooLarge("x"), 413, "TOO_LARGE"),
        (TooMany("x"), 409, "TOO_MANY"),
        (UnknownDocument("x"), 404, "UNKNOWN_DOCUMENT"),
        (FactsUnavailable("x"), 503, "UNAVAILABLE"),
        (SourceChoiceError("BAD_SOURCE", "x"), 422, "BAD_SOURCE"),
        (MediaFileMissing("FILE_NOT_FOUND", "x"), 404, "FILE_NOT_FOUND"),
        (InputError("BAD_ID", "x"), 422, "BAD_ID"),
        (Throttled("RATE_LIMITED", "x", 2.5), 429, "RATE_LIMITED"),
        (CommandError(RejectReason.INVALID_AMOUNT, "x"), 422, "INVALID_AMOUNT"),
        (RequestRefused("BAD_SIGNATURE", "x"), 422, "BAD_SIGNATURE"),
        (LotExists("x"), 409, "CONFLICT"),
        (ServiceClosed("x"), 503, "UNAVAILABLE"),
        (GavelError("x"), 500, "INTERNAL"),
    ],
)
def test_each_error_has_its_status_and_code(error: GavelError, status: int, code: str) -> None:
    assert (http_status(error), error.code) == (status, code)
    assert error_body(error)["error"]["code"] == code


def test_a_throttled_answer_says_when_to_retry() -> None:
    body = error_body(Throttled("RATE_LIMITED", "slow down", 2.5))
    assert body == {"error": {"code": "RATE_LIMITED", "message": "slow down", "retry_after": 3}}


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 408, 409, 413, 415, 422, 429, 503])
def test_a_relayed_refusal_keeps_its_status_and_code(status: int) -> None:
    relayed = error_from_status(status, "SOME_CODE", "words")
    assert (http_status(relayed), relayed.code, relayed.message) == (status, "SOME_CODE", "words")
