"""`gavel audit stream RECORDING_DIR --ledger EXPORT`, as a piece the auction CLI mounts.

The auction side owns reading its ledger export; it passes `load_expected(path, lot_id,
rendition)` returning the lot's `stream_segment` entries as `ExpectedSegment`s. Standalone
(`python -m streaming.audit RECORDING_DIR --expected segments.jsonl`) reads the JSON lines the
dev server's `JsonlSegmentSink` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streaming.errors import RecordingError
from streaming.evidence import expected_from_json, verify_recording
from streaming.model import ExpectedSegment

ExpectedLoader = Callable[[Path, str | None, str | None], list[ExpectedSegment]]


def load_jsonl(path: Path, lot_id: str | None, rendition: str | None) -> list[ExpectedSegment]:
    """Expected segments from a JSON-lines file (`JsonlSegmentSink`), optionally filtered."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path}:{number} is not JSON") from exc
        if not isinstance(row, dict):
            raise RecordingError(f"{path}:{number} is not an object")
        if lot_id is not None and row.get("lot_id") != lot_id:
            continue
        if rendition is not None and row.get("rendition") != rendition:
            continue
        rows.append(row)
    return expected_from_json(rows)


def run_audit(
    recording_dir: Path,
    expected_file: Path,
    load_expected: ExpectedLoader,
    *,
    lot_id: str | None = None,
    rendition: str | None = None,
) -> int:
    """Verify and print one line; exit status 0 when the recording is exactly what was
    streamed, 1 with the failing segment named otherwise."""
    try:
        expected = load_expected(expected_file, lot_id, rendition)
        report = verify_recording(recording_dir, expected)
    except RecordingError as error:
        where = f" (segment {error.index})" if error.index is not None else ""
        print(f"FAILED{where}: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _add_arguments(
    parser: argparse.ArgumentParser, load_expected: ExpectedLoader, expected_option: str
) -> None:
    parser.add_argument("recording_dir", type=Path, help="one lot rendition: seg-*.gvs files")
    parser.add_argument(expected_option, dest="expected", type=Path, required=True)
    parser.add_argument("--lot", dest="lot_id", default=None)
    parser.add_argument("--rendition", default=None)
    parser.set_defaults(
        func=lambda args: run_audit(
            args.recording_dir,
            args.expected,
            load_expected,
            lot_id=args.lot_id,
            rendition=args.rendition,
        )
    )


def cli_register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    load_expected: ExpectedLoader = load_jsonl,
    *,
    name: str = "stream",
    expected_option: str = "--ledger",
) -> argparse.ArgumentParser:
    """Add `stream RECORDING_DIR --ledger EXPORT [--lot ID] [--rendition NAME]` to an
    `audit` sub-parser set. The parsed namespace's `func(args) -> int` runs the audit."""
    parser = subparsers.add_parser(
        name, help="prove a stream recording is exactly what was streamed (ledger segments)"
    )
    _add_arguments(parser, load_expected, expected_option)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m streaming.audit RECORDING_DIR --expected segments.jsonl`."""
    parser = argparse.ArgumentParser(prog="python -m streaming.audit")
    _add_arguments(parser, load_jsonl, "--expected")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
