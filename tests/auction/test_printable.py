"""Operator output escapes control characters (`auction.printable`): the helper, the log
filter `gavel` installs, and the demo's summary with a hostile title."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from auction.demo.showcase import summary
from auction.printable import EscapeControls, printable
from auction.rules import SECOND, english_timed
from auction.storage import Storage

HOSTILE = "Flat\x1b[2J\x1b]0;pwned\x07 1502\r\nFAKE LOG LINE\u202egnp.exe\x9b31m\u2066\x00"


def test_printable_escapes_c0_c1_and_bidi_and_keeps_other_text() -> None:
    shown = printable(HOSTILE)
    assert shown == (
        "Flat\\x1b[2J\\x1b]0;pwned\\x07 1502\\x0d\\x0aFAKE LOG LINE\\u202egnp.exe\\x9b31m"
        "\\u2066\\x00"
    )
    assert shown.isprintable()
    assert printable("杭州 1502 室 — £900") == "杭州 1502 室 — £900"
    assert printable(42) == "42"
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, 0x2028, 0x2029, 0x061C]:
        assert chr(code) not in printable(f"a{chr(code)}b")


def test_the_log_filter_escapes_messages_and_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.printable")
    caplog.handler.addFilter(EscapeControls())
    with caplog.at_level(logging.WARNING, logger="test.printable"):
        logger.warning("lot %s titled %r failed", "a\x1b[31m", HOSTILE)
    (record,) = caplog.records
    text = caplog.text
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "a\\x1b[31m" in record.getMessage()
    assert text.count("\n") == 1  # one record, one line


def test_gavel_logs_escape_what_clients_typed() -> None:
    """A real `gavel` process: its logging setup escapes a hostile message."""
    program = (
        "import logging, sys\n"
        "from auction import cli\n"
        "sys.argv = ['gavel', 'staff', '--data', '/nonexistent-gavel', '--role', 'auditor']\n"
        "try:\n"
        "    cli.main(sys.argv[1:])\n"
        "finally:\n"
        f"    logging.getLogger('auction.web.api').warning('title %s', {HOSTILE!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert "title Flat\\x1b[2J" in result.stderr, result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_the_demo_summary_escapes_a_hostile_title(tmp_path: Path) -> None:
    """A lot stored (real SQLite) with a title full of terminal controls: the summary the
    demo prints shows them escaped, on one line."""
    with Storage.open(tmp_path) as store:
        start = 1_795_000_000_000_000
        store.add_lot(
            "hostile",
            english_timed(start_price=100, start_at=start, end_at=start + 60 * SECOND),
            HOSTILE,
        )
        text = summary(store.load(), store.counts(), store.location)
    line = next(line for line in text.splitlines() if "hostile" in line)
    assert "Flat\\x1b[2J" in line and "\\u202egnp.exe" in line, line
    assert "\x1b" not in text and "\u202e" not in text and "FAKE LOG LINE" in line
