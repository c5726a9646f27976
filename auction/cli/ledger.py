"""`gavel ledger export`: the ledger as a static, verified tlog-tiles tree.

gavel ledger export (--data DIR | --db URL | --url URL) --out OUT [--all-receipts] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from chain import ChainError

from ..ledger_export import ExportError, export_ledger, open_source
from ..printable import printable
from ..storage import StorageError

#: The same for `gavel ledger ...` (a chain error is a ledger that does not verify).
LEDGER_ERRORS = (ExportError, StorageError, ChainError)


def register(commands: Any) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="work with the transparency log",
        description="Work with the auction's transparency log (RFC 9162, C2SP tlog-tiles).",
    )
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")
    export = ledger_commands.add_parser(
        "export",
        help="write the ledger as a static, verified tlog-tiles tree",
        description="Write OUT/checkpoint, OUT/tile/..., OUT/policy, OUT/checkpoints/<size> "
        "and OUT/receipts/<seq>.tlog-proof + .entry for every sale, after verifying all of it.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="DIR", help="a gavel data directory")
    source.add_argument("--db", metavar="URL", help="a gavel database, e.g. postgresql://...")
    source.add_argument("--url", metavar="URL", help="a running gavel server, e.g. http://...")
    export.add_argument(
        "--token",
        default=os.environ.get("GAVEL_TOKEN"),
        metavar="TOKEN",
        help="with --url: an auditor session (`gavel staff --role auditor`) to read the sealed "
        "entries of open lots (default: $GAVEL_TOKEN)",
    )
    export.add_argument("--out", type=Path, required=True, metavar="OUT", help="where to write")
    export.add_argument(
        "--all-receipts", action="store_true", help="write a receipt for every entry"
    )
    export.add_argument("--force", action="store_true", help="replace a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    """`gavel ledger export`: the only ledger command so far."""
    try:
        source = open_source(data=args.data, db=args.db, url=args.url, token=args.token)
        try:
            result = export_ledger(
                source, args.out, all_receipts=args.all_receipts, force=args.force
            )
        finally:
            source.close()
    except LEDGER_ERRORS as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    print(
        f"gavel ledger export: {result.origin}, {result.size} entries, {result.checkpoints} "
        f"checkpoints, {result.receipts} receipts ({result.sales} sales) written to {result.out}",
        flush=True,
    )
    return 0
