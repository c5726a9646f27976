"""What the crash-recovery run (`scripts.chaos_crash`) records, its settings, and its report:
acknowledged bids, the ledger's bids as published, the figures."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from auction.audit import DirectorySource, SourceError
from auction.client import ClientError
from auction.verify import LinkBook, SealError, open_body
from chain.checkpoint import parse_checkpoint_text
from chain.errors import ChainError
from chain.note import parse_note
from chain.tiles import entry_bundles_for_size, parse_entry_bundle

from .harness.stats import mean

CURRENCY = "CNY"
START_PRICE = 1_000_000
STEP = 1_000
QUORUM = 2
NOTARIES = 3
MODES = ("random", "commit", "cosign-request", "cosign-answer")

#: Seconds: the server has to start; the notaries to co-sign after a restart; a bid's ack.
START_TIMEOUT = 60.0
COSIGN_TIMEOUT = 30.0
ACK_TIMEOUT = 30.0
#: Seconds a kill mode waits for its moment before it kills anyway (counted as a fallback).
MOMENT_TIMEOUT = 5.0
#: Violations printed as they happen (all are counted).
MAX_SHOWN = 40

SERVER_ERRORS = (ClientError, websockets.WebSocketException, OSError, TimeoutError)
#: The entry types whose bodies may hold sealed values or bidder aliases (auction.sealed).
SEALING_TYPES = frozenset({"idv", "bid", "registration", "deposit", "lot_state"})


class ChaosError(Exception):
    """The run could not go on (a process did not start, an API refused a setup call)."""


@dataclass(frozen=True, slots=True)
class AckedBid:
    """One acknowledged bid, as the bidder saw it."""

    account: str
    lot: str
    key: str
    amount: int
    result: str
    reason: str | None
    entry: int | None
    resent: bool
    round: int


@dataclass
class Figures:
    kills: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    kills_with_bids_in_flight: int = 0
    kills_during_cosigning: int = 0
    restarts: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    cosign_seconds: list[float] = field(default_factory=list)
    acknowledged: int = 0
    accepted: int = 0
    resent: int = 0
    lost_ack_resends: int = 0
    checked: int = 0
    without_entry: int = 0
    lost: int = 0
    duplicates: int = 0
    applied_twice: int = 0
    audits: int = 0
    audits_failed: int = 0
    entries: int = 0
    violations: list[str] = field(default_factory=list)

    def violate(self, message: str) -> None:
        self.violations.append(message)
        if len(self.violations) <= MAX_SHOWN:
            print(f"VIOLATION: {message}", flush=True)
        elif len(self.violations) == MAX_SHOWN + 1:
            print(f"VIOLATION: ... (only the first {MAX_SHOWN} are shown)", flush=True)


@dataclass(frozen=True, slots=True)
class LedgerBid:
    seq: int
    account: str
    lot: str
    key: str
    amount: int
    accepted: bool


def read_export(out: Path) -> tuple[int, dict[int, LedgerBid], int]:
    """The checkpoint size, every signed bid entry by seq, and the number of entries. The
    export's entries name bidders by per-lot aliases and seal the signed requests: each one
    is opened with the export's `openings.json`, every opening checked against its
    commitment (as the auditor does); one that does not open is an error."""
    note = (out / "checkpoint").read_bytes()
    size = parse_checkpoint_text(parse_note(note).text).size
    openings = DirectorySource(out)
    links = LinkBook()
    bids: dict[int, LedgerBid] = {}
    for bundle in entry_bundles_for_size(size):
        entries = parse_entry_bundle(bundle, (out / bundle.path).read_bytes())
        for seq, raw in enumerate(entries, start=bundle.leaf_begin):
            entry = json.loads(raw)
            body = entry.get("body", {})
            if entry.get("seq") != seq:
                raise ChaosError(f"entry {seq} says it is {entry.get('seq')}")
            if isinstance(body, dict) and entry.get("type") in SEALING_TYPES:
                try:
                    body = open_body(entry["type"], body, openings.openings(seq), links)
                except (SealError, SourceError) as exc:
                    raise ChaosError(f"entry {seq} does not open: {exc}") from exc
            request = body.get("request") if isinstance(body, dict) else None
            if not isinstance(request, dict):
                continue
            payload = request["payload"]
            bids[seq] = LedgerBid(
                seq,
                payload["account"],
                payload["lot"],
                payload["idempotency_key"],
                payload["amount"],
                bool(body["accepted"]),
            )
    return size, bids, size


def cosigners(note: bytes, notary_names: set[str]) -> int:
    try:
        parsed = parse_note(note)
    except ChainError:
        return 0
    return len({s.name for s in parsed.signatures} & notary_names)


def report(figures: Figures, elapsed: float) -> dict[str, Any]:
    return {
        "kill_points": figures.kills,
        "kill_modes": dict(figures.modes),
        "kill_fallbacks": figures.fallbacks,
        "kills_with_bids_in_flight": figures.kills_with_bids_in_flight,
        "kills_during_cosigning": figures.kills_during_cosigning,
        "restarts": figures.restarts,
        "mean_restart_s": round(mean(figures.restart_seconds), 3),
        "max_restart_s": round(max(figures.restart_seconds, default=float("nan")), 3),
        "mean_cosign_after_restart_s": round(mean(figures.cosign_seconds), 3),
        "acknowledged": figures.acknowledged,
        "accepted": figures.accepted,
        "resent_acknowledged": figures.resent,
        "lost_ack_resends": figures.lost_ack_resends,
        "acknowledged_without_entry": figures.without_entry,
        "checked": figures.checked,
        "lost": figures.lost,
        "duplicates": figures.duplicates,
        "applied_twice": figures.applied_twice,
        "ledger_entries": figures.entries,
        "audits": figures.audits,
        "audit": "pass" if figures.audits and not figures.audits_failed else "FAIL",
        "violations": len(figures.violations),
        "seconds": round(elapsed, 1),
    }
