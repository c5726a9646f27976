"""Text that reaches an operator's terminal or log, made safe to print.

Titles, lot ids, reasons and error messages can carry what a client typed. Printed raw, a
control character can move the cursor, clear the screen, change the window title (C0 `ESC`
sequences, C1 `CSI`), forge a log line (a newline), or make text read backwards (bidi
overrides, "Trojan Source"). `printable(value)` escapes them all as `\\xNN` / `\\uNNNN`, and
`EscapeControls` does the same for every log record's message; nothing else is changed, so
Chinese titles and the em dash print as they are.
"""

from __future__ import annotations

import logging
import re

#: C0 controls (newline and tab too: one record, one line), DEL, C1 controls, the bidi
#: embeddings, overrides, isolates and marks, and the line and paragraph separators.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`str(value)` with every character of `UNSAFE` escaped (`\\x1b`, `\\u202e`)."""
    return UNSAFE.sub(_escape, str(value))


class EscapeControls(logging.Filter):
    """A handler filter: each record's message (with its arguments) is escaped by
    `printable`; its traceback, written by the formatter, is left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(record.getMessage())
        record.args = None
        return True


def escape_log_output(logger: logging.Logger | None = None) -> None:
    """Add `EscapeControls` to every handler of `logger` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, EscapeControls) for f in handler.filters):
            handler.addFilter(EscapeControls())


__all__ = ["UNSAFE", "EscapeControls", "escape_log_output", "printable"]
