"""`python -m streaming.audit RECORDING_DIR --expected segments.jsonl`: verify a recording
against the JSON lines of `JsonlSegmentSink` (the dev server's stand-in for the ledger)."""

from __future__ import annotations

from streaming.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
