"""``gavel evidence LOT`` and ``gavel audit evidence DIR``: thin adapters over
:mod:`auction.evidence.package` (build) and :mod:`auction.audit.evidence_package` (verify
offline)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from chain import ChainError

from ..audit.evidence_package import verify_evidence_package
from ..ledger_export import ExportError, open_source
from ..printable import printable
from .package import DEFAULT_MAX_RECORDING_BYTES, build_evidence

__all__ = ["add_audit_action", "register", "run", "run_audit"]


def register(commands: Any) -> None:
    """Add ``gavel evidence`` to ``gavel``'s subcommands."""
    evidence = commands.add_parser(
        "evidence",
        help="write one lot's evidence package (entries, proofs, report) for a court",
        description="Write OUT: the lot's entries each with an inclusion proof against one "
        "co-signed checkpoint, a consistency proof to the latest, the policy and keys, the "
        "recording's segment hashes (and files with --with-recording), report.html and "
        "report.txt. Check it with `gavel audit evidence OUT`.",
    )
    evidence.add_argument("lot", metavar="LOT", help="the lot id")
    source = evidence.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="DIR", help="a gavel data directory")
    source.add_argument("--db", metavar="URL", help="a gavel database, e.g. postgresql://...")
    source.add_argument("--url", metavar="URL", help="a running gavel server, e.g. http://...")
    evidence.add_argument(
        "--token",
        default=os.environ.get("GAVEL_TOKEN"),
        metavar="TOKEN",
        help="with --url: an auditor session (default: $GAVEL_TOKEN)",
    )
    evidence.add_argument("--out", type=Path, required=True, metavar="OUT", help="where to write")
    evidence.add_argument(
        "--with-recording",
        action="store_true",
        help="with --data: copy DATA/recordings/<lot>/ segment files into the package",
    )
    evidence.add_argument(
        "--max-recording-mb",
        type=int,
        default=DEFAULT_MAX_RECORDING_BYTES // (1024 * 1024),
        metavar="MB",
        help="leave a larger recording out (its segment hashes stay in the package)",
    )
    evidence.add_argument("--force", action="store_true", help="replace a non-empty OUT")


def run(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """``gavel evidence``: exit 0 written, 1 the ledger does not verify or the lot is unknown."""
    out = stdout or sys.stdout
    recordings = None
    if args.with_recording:
        if args.data is None:
            print("gavel: error: --with-recording needs --data", file=sys.stderr, flush=True)
            return 2
        recordings = args.data / "recordings"
    try:
        source = open_source(data=args.data, db=args.db, url=args.url, token=args.token)
        try:
            result = build_evidence(
                source,
                args.lot,
                args.out,
                recordings=recordings,
                max_recording_bytes=args.max_recording_mb * 1024 * 1024,
                force=args.force,
            )
        finally:
            source.close()
    except (ExportError, ChainError, OSError) as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    out.write(
        f"gavel evidence: lot {result.lot}, {result.entries} entries proven against the "
        f"checkpoint of size {result.anchor_size:,} (latest {result.latest_size:,}), "
        f"{result.segments} recording segments ({result.recording_files} files), "
        f"{result.history_lines} history lines, written to {result.out}\n"
    )
    if recordings is not None and result.segments and not result.recording_files:
        out.write(
            f"  note: no recording file was copied: none under {recordings / args.lot}, or "
            f"together larger than {args.max_recording_mb} MB (the segment hashes are in "
            "the package)\n"
        )
    out.flush()
    return 0


def add_audit_action(actions: Any) -> None:
    """Add ``evidence`` to ``gavel audit``'s actions."""
    evidence = actions.add_parser(
        "evidence",
        help="verify a lot's evidence package offline",
        description="Check a package written by `gavel evidence` in seven numbered, "
        "fail-closed steps: parse, signatures, inclusion, consistency, replay, segments, "
        "report. Exit 1 names the first failing step and file.",
    )
    evidence.add_argument("package", type=Path, metavar="DIR")
    evidence.add_argument("--json", action="store_true", help="print the result as JSON")


def run_audit(args: argparse.Namespace, out: TextIO) -> int:
    """``gavel audit evidence DIR`` (failures: :class:`~auction.audit.AuditFailure`)."""
    report = verify_evidence_package(args.package)
    if args.json:
        out.write(report.to_json())
        return 0
    price = f", price {report.price:,} (minor units)" if report.price is not None else ""
    out.write(
        f"evidence OK: lot {report.lot} ({report.status}{price}), {report.entries} entries "
        f"proven in {report.origin} at size {report.anchor_size:,}, consistent with size "
        f"{report.latest_size:,}; {report.segments_checked} recording files checked\n"
        f"  steps passed: {', '.join(report.steps)}\n"
    )
    return 0
