"""`gavel`: the command line (STYLE rule 12: `main(argv=None)`, catch only our base errors).

    gavel demo [--data DIR] [--db URL] [--host 127.0.0.1] [--port 8080] [--bots N]
               [--duration SECONDS] [--seed N] [--speed F] [--fresh] [--notaries N]
               [--instance NAME [--redis URL] [--advertise URL]]
    gavel serve (--data DIR | --db URL) [--host 127.0.0.1] [--port 8080] [--policy FILE]
                [--instance NAME [--redis URL] [--advertise URL]]
    gavel ledger export (--data DIR | --db URL | --url URL) --out OUT [--all-receipts] [--force]
    gavel evidence LOT (--data DIR | --db URL | --url URL) --out OUT [--with-recording]

Without `--duration` the demo keeps a living catalogue (`auction.demo.living`: the schedule's
start, seed and speed in DIR/demo-schedule.json, continued on a restart; `--fresh` deletes DIR
first) and serves until SIGINT or SIGTERM, then shuts down cleanly; with `--duration` alone it
runs the short showcase catalogue that long (`--speed` with it: the living catalogue). Either
way it prints a summary read back from storage and exits 0. The demo runs `--notaries` notary
processes (default 3; keys and state in DIR/notaries/n1..) and writes
DIR/policy with the log key, the notaries and a quorum of 2: a checkpoint is published only
once two of them co-signed it.
`gavel ledger export` writes the ledger as a static, verified tlog-tiles tree with its policy,
every published checkpoint and receipts for every sale (`auction.ledger_export`).

One module per command group: :mod:`.gavel` (the parser and `main`), :mod:`.serve`,
:mod:`.demo`, :mod:`.staff`, :mod:`.ledger`; `gavel notary`, `gavel audit` and `gavel evidence`
are registered from :mod:`notary.cli`, :mod:`auction.audit.cli` and :mod:`auction.evidence.cli`.
"""

from __future__ import annotations

from .gavel import build_parser, main

__all__ = ["build_parser", "main"]
