"""``gavel audit``: the auditor's commands (STYLE rule 12), a thin adapter over :mod:`.audit`.

    gavel audit verify SOURCE [--json] [--progress] [--workers N]
    gavel audit receipt FILE.tlog-proof --entry FILE.entry [--policy FILE] [--json]
    gavel audit compare A B [--evidence OUT] [--policy FILE] [--json]
    gavel audit stream RECORDING_DIR --ledger SOURCE [--lot ID] [--rendition NAME] [--json]
    gavel audit evidence DIR [--json]          (a lot's evidence package: auction.evidence.cli)

``SOURCE``, ``A`` and ``B`` are export directories (``gavel ledger export``) or ``http(s)://``
URLs of a gavel server. ``RECORDING_DIR`` is one lot rendition's evidence recording
(``<recordings>/<lot>/<rendition>/seg-*.gvs``). Exit status: 0 verified (or consistent); 1
verification failed (or the views equivocate: evidence written; or the recording is not what
the ledger anchored); 2 no verdict (a source or file could not be read, or bad arguments).
Errors are :class:`~auction.audit.AuditFailure`: one line on stderr naming the first failing
step and entry, e.g. ``audit failed at step 2 chain, entry 1234: ...``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chain import (
    ChainError,
    CompactRange,
    EntryType,
    entry_bundles_for_size,
    leaf_hash,
    parse_entry,
    parse_entry_bundle,
)
from streaming.errors import RecordingError

from ..evidence.cli import add_audit_action as add_evidence_action
from ..evidence.cli import run_audit as run_evidence_audit
from ..printable import printable
from ..verify.steps import Step as AuditStep
from .compare import compare, write_evidence
from .errors import AuditError, AuditFailure, SourceError
from .pipeline import verify_ledger
from .receipts import verify_receipt_files
from .sources import open_source

if TYPE_CHECKING:
    from .report import AuditReport
    from .sources import LedgerSource


__all__ = ["ProgressLine", "main", "register", "run"]


DEFAULT_EVIDENCE = Path("equivocation-evidence.json")


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0 (0: check in this process)")
    return value


def _add_actions(audit: argparse.ArgumentParser) -> None:
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="verify a whole ledger: an export directory or a server URL",
        description="Check every entry and checkpoint in ten numbered, fail-closed steps: "
        "parse, chain, roots, log signatures, quorum, consistency, actor signatures, rule "
        "replay, time bounds, receipts. Exit 1 names the first failing step and entry (or "
        "file).",
    )
    verify.add_argument("source", metavar="SOURCE", help="export directory or http(s):// URL")
    verify.add_argument("--json", action="store_true", help="print the deterministic report")
    _token_option(verify)
    verify.add_argument(
        "--progress", action="store_true", help="show progress on stderr even if not a terminal"
    )
    verify.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="processes checking entries and signatures (default: one per core; 0: none)",
    )
    receipt = actions.add_parser(
        "receipt",
        help="verify a c2sp.org/tlog-proof receipt and its entry offline",
        description="Check a receipt against the entry bytes and the log's trust policy "
        "(default: the file 'policy' next to the receipt or one directory up).",
    )
    receipt.add_argument("proof", type=Path, metavar="FILE.tlog-proof")
    receipt.add_argument("--entry", type=Path, required=True, metavar="FILE.entry")
    receipt.add_argument("--policy", type=Path, metavar="FILE", help="the log's tlog-policy")
    receipt.add_argument("--json", action="store_true", help="print the result as JSON")
    comparison = actions.add_parser(
        "compare",
        help="compare two views of one log; write evidence if they conflict",
        description="Check that every checkpoint of one view is consistent with the other; "
        "if not, write a self-contained equivocation evidence file and exit 1.",
    )
    comparison.add_argument("a", metavar="A", help="export directory or http(s):// URL")
    comparison.add_argument("b", metavar="B", help="export directory or http(s):// URL")
    comparison.add_argument(
        "--evidence",
        type=Path,
        default=DEFAULT_EVIDENCE,
        metavar="OUT",
        help=f"where to write equivocation evidence (default: {DEFAULT_EVIDENCE})",
    )
    comparison.add_argument(
        "--policy", type=Path, metavar="FILE", help="the log's tlog-policy (default: A's)"
    )
    comparison.add_argument("--json", action="store_true", help="print the result as JSON")
    _token_option(comparison)
    stream = actions.add_parser(
        "stream",
        help="prove a stream recording is exactly what the ledger anchored",
        description="Verify the ledger (as `verify` does), then check every segment file of "
        "the recording against the lot's stream_segment entries: same order, same bytes. "
        "Exit 1 names the first bad segment (cut, swap, edit).",
    )
    stream.add_argument(
        "recording", type=Path, metavar="RECORDING_DIR", help="seg-*.gvs files of one rendition"
    )
    stream.add_argument(
        "--ledger", required=True, metavar="SOURCE", help="export directory or http(s):// URL"
    )
    stream.add_argument("--lot", metavar="ID", help="default: from the first segment's header")
    stream.add_argument("--rendition", metavar="NAME", help="default: from the first segment")
    stream.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N",
        help="processes checking the ledger's entries (default 0: in this process)",
    )
    stream.add_argument("--json", action="store_true", help="print the result as JSON")
    _token_option(stream)
    add_evidence_action(actions)


def _token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get("GAVEL_TOKEN"),
        metavar="TOKEN",
        help="an auditor session (`gavel staff --role auditor`) for reading a live server's "
        "sealed entries of open lots (default: $GAVEL_TOKEN)",
    )


def register(subparsers: Any) -> None:
    """Add ``audit verify|receipt|compare|stream`` to ``gavel``'s subcommands.

    ``subparsers`` is what ``ArgumentParser.add_subparsers`` returned. The caller dispatches
    ``args.command == "audit"`` to :func:`run`.
    """
    audit = subparsers.add_parser(
        "audit",
        help="verify a ledger, a receipt, or compare two views of a log (offline)",
        description="The auditor: verify a ledger export or server, a receipt, or compare "
        "two views of one log.",
    )
    _add_actions(audit)


def run(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the parsed ``gavel audit ...`` command; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if args.audit_command == "verify":
            return _verify(args, out, err)
        if args.audit_command == "receipt":
            return _receipt(args, out)
        if args.audit_command == "stream":
            return _stream(args, out, err)
        if args.audit_command == "evidence":
            return run_evidence_audit(args, out)
        return _compare(args, out, err)
    except AuditError as exc:
        if getattr(args, "json", False) and exc.report is not None:
            out.write(exc.report.to_json())
        print(f"gavel audit: {printable(exc)}", file=err, flush=True)
        return exc.exit_code
    except AuditFailure as exc:
        if getattr(args, "json", False):
            failure = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            out.write(json.dumps(failure, sort_keys=True, indent=2) + "\n")
        print(f"gavel audit: {printable(exc)}", file=err, flush=True)
        return exc.exit_code


class ProgressLine:
    """A one-line progress display on a terminal stream, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, label: str = "verifying") -> None:
        self._stream = stream
        self._label = label
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        percent = 100 * done // total if total else 100
        bar = "#" * (percent // 4)
        self._stream.write(f"\r{self._label} [{bar:<25}] {percent:3d}% {done:,}/{total:,} entries")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line (call once the run is over)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    source = open_source(args.source, token=args.token)
    progress = ProgressLine(err) if args.progress or err.isatty() else None
    started = time.perf_counter()
    try:
        report = verify_ledger(
            source, progress=progress, workers=args.workers, now_us=time.time_ns() // 1000
        )
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    if args.json:
        out.write(report.to_json())
    else:
        out.write(summary(report, elapsed))
    out.flush()
    return 0


def summary(report: AuditReport, elapsed: float | None = None) -> str:
    """The human summary of a successful :func:`~auction.audit.verify_ledger` run."""
    sold = sum(1 for lot in report.lots.values() if lot.get("status") == "SOLD")
    statuses: dict[str, int] = {}
    for lot in report.lots.values():
        statuses[str(lot.get("status"))] = statuses.get(str(lot.get("status")), 0) + 1
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in report.entry_types.items())
    lots = ", ".join(f"{count} {status.lower()}" for status, count in sorted(statuses.items()))
    root = base64.b64encode(report.checkpoint_root).decode() if report.checkpoint_root else "-"
    history = report.history
    lines = [
        f"audit OK: {report.source}",
        "  steps passed: " + ", ".join(step.label for step in report.steps_passed),
        f"  log: {report.origin} (key {report.log_key})",
        f"  checkpoint: size {report.checkpoint_size:,}, root {root}",
        "  checkpoint history: "
        + (
            "unavailable (verified against the latest only)"
            if history is None
            else f"{len(history)} checkpoints, consecutive pairs consistent"
        ),
        f"  entries: {report.entries:,} ({kinds})",
        f"  lots: {len(report.lots)} ({lots or 'none'}); sold {sold}, sale entries "
        f"{report.sales}; commands {report.commands:,} ({report.rejected:,} rejected)",
        f"  notaries: policy {list(report.witnesses) or 'none'}, cosigned the latest "
        f"{list(report.cosigners) or 'none'}, quorum {report.quorum}",
    ]
    lines += [f"  note: {note}" for note in report.notes]
    if elapsed is not None:
        rate = f", {report.entries / elapsed:,.0f} entries/s" if elapsed > 0 else ""
        lines.append(f"  time: {elapsed:.2f} s{rate}")
    return "\n".join(lines) + "\n"


def _receipt(args: argparse.Namespace, out: TextIO) -> int:
    report = verify_receipt_files(args.proof, args.entry, args.policy)
    if args.json:
        out.write(report.to_json())
        return 0
    what = report.entry_type + (f", lot {report.lot}" if report.lot else "")
    witnesses = ", ".join(report.witnesses) or "none required"
    out.write(
        f"receipt OK: entry {report.seq} ({what}) is in the log {report.origin} at size "
        f"{report.checkpoint_size:,}, root {base64.b64encode(report.checkpoint_root).decode()}\n"
        f"  notaries: {witnesses}\n"
        f"  actor signature: {'verified' if report.actor_checked else 'not checked'}\n"
    )
    for note in report.notes:
        out.write(f"  note: {note}\n")
    return 0


def _compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policy = None
    if args.policy is not None:
        try:
            policy = args.policy.read_bytes()
        except OSError as exc:
            raise AuditError(
                AuditStep.PARSE, None, f"cannot read policy {args.policy}: {exc.strerror or exc}"
            ) from exc
    a, b = open_source(args.a, token=args.token), open_source(args.b, token=args.token)
    report = compare(a, b, policy=policy)
    if report.consistent:
        if args.json:
            out.write(report.to_json())
        else:
            small, large = sorted(report.sizes)
            out.write(
                f"consistent: {report.origin}, sizes {report.sizes[0]:,} (A) and "
                f"{report.sizes[1]:,} (B); the tree of {small:,} is a prefix of the tree of "
                f"{large:,} ({report.checked} checkpoints checked)\n"
            )
            for note in report.notes:
                out.write(f"  note: {note}\n")
        return 0
    path = write_evidence(report, args.evidence)
    if args.json:
        out.write(report.to_json())
    print(
        f"gavel audit: EQUIVOCATION in {report.origin}: the log signed checkpoints that are not "
        f"consistent (sizes {report.sizes[0]:,} and {report.sizes[1]:,}); evidence written to "
        f"{path}",
        file=err,
        flush=True,
    )
    return 1


def _rendition_dir(recording: Path, rendition: str | None) -> Path:
    """A lot's recording directory (`recordings/<lot>`) names its rendition's directory when
    it holds no segments itself: the one asked for, or the only one there is."""
    from streaming.evidence import segment_files

    if segment_files(recording):
        return recording
    if rendition is not None and (recording / rendition).is_dir():
        return recording / rendition
    renditions = [
        path for path in sorted(recording.iterdir()) if path.is_dir() and segment_files(path)
    ]
    if len(renditions) == 1:
        return renditions[0]
    if renditions:
        names = ", ".join(path.name for path in renditions)
        raise SourceError(f"{recording} holds several renditions ({names}): name one")
    return recording


def _stream(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..video import verify_stream  # here: the video module pulls in aiortc and av

    recording: Path = args.recording
    if not recording.is_dir():
        raise SourceError(f"{recording} is not a directory")
    recording = _rendition_dir(recording, args.rendition)
    source = open_source(args.ledger, token=args.token)
    report = verify_ledger(source, workers=args.workers, now_us=time.time_ns() // 1000)
    bodies = stream_segment_bodies(source, report.checkpoint_size or 0, report.checkpoint_root)
    try:
        result = verify_stream(recording, bodies, lot_id=args.lot, rendition=args.rendition)
    except RecordingError as exc:
        where = f" at segment {exc.index}" if exc.index is not None else ""
        if args.json:
            failure = {"ok": False, "segment": exc.index, "error": str(exc), "exit_code": 1}
            out.write(json.dumps(failure, sort_keys=True, indent=2) + "\n")
        print(
            f"gavel audit: stream recording failed{where}: {printable(exc)}", file=err, flush=True
        )
        return 1
    if args.json:
        document = {
            "ok": True,
            "lot": result.report.lot_id,
            "rendition": result.report.rendition,
            "segments": result.report.segments,
            "first_index": result.report.first_index,
            "last_index": result.report.last_index,
            "head_sha256": result.report.head_sha256_hex,
            "unanchored": list(result.unanchored),
            "ledger_size": report.checkpoint_size,
        }
        out.write(json.dumps(document, sort_keys=True, indent=2) + "\n")
    else:
        out.write(f"stream {result.summary()}\n  ledger: {report.source} verified at size ")
        out.write(f"{report.checkpoint_size:,}\n")
    out.flush()
    return 0


def stream_segment_bodies(
    source: LedgerSource, size: int, root: bytes | None
) -> list[Mapping[str, Any]]:
    """The bodies of every `stream_segment` entry of the first `size` entries, in log order.
    Call it after `verify_ledger` passed on `source` with that checkpoint `size` and `root`:
    this re-reads the entry bundles (parsing each entry with `chain.parse_entry`) and checks
    that they still make the verified root, so a source changed in between gives no verdict."""
    bodies: list[Mapping[str, Any]] = []
    tree = CompactRange()
    for bundle in entry_bundles_for_size(size):
        try:
            for raw in parse_entry_bundle(bundle, source.read(bundle.path)):
                tree.append(leaf_hash(raw))
                entry = parse_entry(raw)
                if entry.type == EntryType.STREAM_SEGMENT:
                    bodies.append(entry.body)
        except ChainError as exc:
            raise SourceError(f"{bundle.path} changed while reading: {exc}") from exc
    if size and tree.root() != root:
        raise SourceError("the ledger changed while reading: its entries no longer make the root")
    return bodies


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m auction.audit.cli ACTION ...``: the audit commands on their own."""
    parser = argparse.ArgumentParser(
        prog="gavel audit", description="Verify a ledger, a receipt, or compare two views."
    )
    _add_actions(parser)
    return run(parser.parse_args(argv))
