"""No engine name in any message the bidder's and the console's scripts can show: every string
and template literal with words in it (a sentence, a label) in the live ring's scripts, My
auctions and the bidding notice, read from the files as served."""

from __future__ import annotations

import re

import pytest
from repo_kit import REPO
from words_kit import engine_names

STATIC = REPO / "auction" / "web" / "static"
SCRIPTS = ("ring.js", "console-ring.js", "mine.js", "my.js", "mystate.js", "notice.js")
# Names of events and commands the scripts compare against (code, not words).
EVENTS = {
    "BidPending", "BidDeclined", "BidVoided", "BidUndone", "LotClosed", "LotHalted",
    "LotResumed", "LotCancelled", "LotReopened", "OpenLot", "OpenRing", "FloorBid",
    "FairWarning", "ONLINE", "FLOOR", "EXEMPT", "IN_RING",
}  # fmt: skip
SHOWN = re.compile(
    r"\b(" + "|".join(sorted(engine_names() | EVENTS, key=len, reverse=True)) + r")\b"
)
LITERAL = re.compile(r"`(?:\\.|[^`\\])*`|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'")


def interpolations_removed(literal: str) -> str:
    """A template literal's text without its `${…}` parts (code, checked on rendered pages)."""
    out, depth, k = [], 0, 0
    while k < len(literal):
        if literal.startswith("${", k):
            depth, k = depth + 1, k + 2
            continue
        if depth and literal[k] == "{":
            depth += 1
        elif depth and literal[k] == "}":
            depth -= 1
        elif not depth:
            out.append(literal[k])
        k += 1
    return "".join(out)


def messages(source: str) -> list[str]:
    """The literals that read as words: a space between two letters (not a selector, a URL,
    an event or a state compared against)."""
    source = re.sub(r"^\s*//.*$", "", source, flags=re.M)  # comments are not shown
    found = []
    for match in LITERAL.finditer(source):
        text = interpolations_removed(match.group(0)[1:-1])
        if re.search(r"[A-Za-z] [A-Za-z]", text) and not text.lstrip().startswith(("#", ".")):
            found.append(text)
    return found


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_engine_name_in_a_message_a_script_can_show(script: str) -> None:
    shown = messages((STATIC / script).read_text(encoding="utf-8"))
    assert len(shown) >= 3, shown  # the scan reads the messages (it cannot pass on nothing)
    for text in shown:
        found = SHOWN.search(text)
        assert found is None, f"{script}: {found.group(0)!r} in {text!r}"
        assert "engine" not in text.lower(), f"{script}: {text!r}"  # nor the word itself


def test_the_scan_finds_an_engine_name_in_a_message() -> None:
    source = """const a = view.status === "OPEN"; // the state is OPEN
      say(node, `Your bid of ${money(bid)} is PENDING with the auctioneer.`);
      el("p", {}, 'Lot state: FAIR_WARNING');"""
    shown = messages(source)
    assert shown == ["Your bid of  is PENDING with the auctioneer.", "Lot state: FAIR_WARNING"]
    assert [SHOWN.search(text).group(0) for text in shown] == ["PENDING", "FAIR_WARNING"]  # type: ignore[union-attr]
