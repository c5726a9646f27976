"""Realistic ledgers and their export directories, built without the server.

The auditor's tests and ``scripts/bench_audit.py`` use this module to make what
``gavel ledger export`` writes, from first principles:

- :class:`LedgerBuilder` runs the rules engine over lots (judicial with a priority holder,
  English timed with proxies, a live ring), writes one entry per command with the bodies of
  :mod:`auction.ledger`, a ``sale`` entry after every sold close, signs every actor with the
  house key and checkpoints with the log key (the same key: the house runs the log);
- :func:`write_export` lays entries out as the export directory (checkpoint, checkpoints/,
  tiles, entry bundles, policy, receipts) with :mod:`chain` only;
- :func:`rechain` re-links entries after a test tampered with one, so that everything but the
  tampered property is consistent again (hashes, tiles, checkpoints re-signed).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.rules import (
    SECOND,
    AcceptOnline,
    BarBidder,
    BidAccepted,
    CloseLot,
    DepositFrozen,
    DepositPending,
    FairWarning,
    FloorBid,
    Hammer,
    LotClosed,
    LotRules,
    LotState,
    NextLot,
    OpenLot,
    OpenRing,
    Pause,
    PlaceBid,
    RegisterBidder,
    Result,
    Resume,
    SetAutoAccept,
    SetMax,
    SoftClose,
    apply,
    english_timed,
    judicial,
    live_auctioneer,
)
from auction.verify import (
    command_body,
    confirmation_document,
    entry_type_for,
    house_body,
    lot_body,
    sale_body,
)
from chain import (
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    Entry,
    EntryType,
    MemoryTree,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    add_cosignatures,
    build_entry,
    build_entry_bundle,
    entry_bundles_for_size,
    format_policy,
    make_receipt,
    parse_entry,
    parse_note,
    sign_actor,
    sign_checkpoint,
    tiles_for_size,
)
from chain.policy import NO_QUORUM

ORIGIN = "auction.example.org/gavel/audit-test"
HOUSE_NAME = "Gavel Test Auctions"
T0 = 1_795_000_000 * SECOND  # 2026-11-18


def seed(label: str) -> bytes:
    """A deterministic 32-byte seed for test keys."""
    return hashlib.sha256(b"gavel audit test key " + label.encode()).digest()


def house_key(label: str = "house") -> Ed25519PrivateKey:
    """The house's Ed25519 key (it signs checkpoints and, for now, every entry's actor)."""
    return Ed25519PrivateKey.from_private_bytes(seed(label))


def notary_signers(count: int = 3) -> list[CosignatureSigner]:
    """Deterministic notary (witness) keys."""
    return [
        CosignatureSigner.from_seed(f"notary{i}.example.org", seed(f"notary {i}"))
        for i in range(1, count + 1)
    ]


def make_policy(
    signer: Ed25519Signer, notaries: Sequence[CosignatureSigner] = (), quorum: int = 0
) -> bytes:
    """A tlog-policy naming the log key and the notaries (``quorum`` of them required)."""
    witnesses = tuple(WitnessRule(n.name.split(".")[0], n.verifier) for n in notaries)
    rule = Threshold("notaries", quorum, witnesses) if quorum else NO_QUORUM
    groups = (rule,) if isinstance(rule, Threshold) else ()
    return format_policy(Policy((PolicyLog(signer.verifier),), witnesses, rule, groups))


@dataclass
class _Lot:
    state: LotState
    title: str
    n: int = 0
    last_bid_seq: dict[str, int] = field(default_factory=dict)


class LedgerBuilder:
    """Builds a ledger the way the server does: entry 0 is ``house``, then lots and commands.

    ``kid`` is what entries carry as ``actor.kid`` (default: the house vkey, as the server does).
    """

    def __init__(
        self,
        origin: str = ORIGIN,
        *,
        key: Ed25519PrivateKey | None = None,
        kid: str | None = None,
        start_us: int = T0,
        keep_entries: bool = True,
    ) -> None:
        self.origin = origin
        self.keep_entries = keep_entries
        self.raw: list[bytes] = []
        self._last: Entry | None = None
        self.private_key = key or house_key()
        self.signer = Ed25519Signer(origin, self.private_key)
        self.kid = kid if kid is not None else self.signer.vkey
        self.entries: list[Entry] = []
        self.tree = MemoryTree()
        self.checkpoint_sizes: list[int] = []
        self.sales: list[int] = []
        self.lots: dict[str, _Lot] = {}
        self.last_t = start_us
        self.append(EntryType.HOUSE, house_body(origin, HOUSE_NAME, self.signer.vkey), start_us)

    # --- entries ---------------------------------------------------------------------------

    def append(self, entry_type: EntryType, body: dict[str, Any], time_us: int) -> Entry:
        """Append one entry signed by the house key; ``t`` never goes backwards."""
        self.last_t = max(self.last_t, time_us)
        seq = len(self.raw)
        entry = build_entry(
            seq=seq,
            prev=self._last.leaf_hash() if self._last is not None else b"",
            time_us=self.last_t,
            entry_type=entry_type,
            body=body,
            actor=sign_actor(entry_type, body, self.kid, self.private_key),
        )
        self._last = entry
        self.raw.append(entry.to_bytes())
        if self.keep_entries:
            self.entries.append(entry)
            self.tree.append(entry.to_bytes())
        return entry

    def create_lot(
        self, lot_id: str, title: str, rules: LotRules, now: int, sale_id: str | None = None
    ) -> None:
        """The ``lot`` entry: the lot exists with these rules from now on."""
        self.lots[lot_id] = _Lot(LotState.create(lot_id, rules), title)
        self.append(EntryType.LOT, lot_body(lot_id, rules, title, sale_id, now), now)

    def command(self, lot_id: str, now: int, command: Any) -> tuple[Any, ...]:
        """Apply ``command`` with the engine, log it (accepted or not), then a sale if sold."""
        lot = self.lots[lot_id]
        lot.state, events = apply(lot.state, command, now)
        body = command_body(lot_id, lot.n, now, command, events)
        lot.n += 1
        entry = self.append(entry_type_for(command), body, now)
        for event in events:
            if isinstance(event, BidAccepted):
                lot.last_bid_seq[event.bidder] = entry.seq
            if isinstance(event, LotClosed) and event.result is Result.SOLD:
                self._sale(lot_id, lot, event, entry)
        return events

    def _sale(self, lot_id: str, lot: _Lot, closed: LotClosed, close: Entry) -> None:
        currency = lot.state.rules.currency
        document = confirmation_document(lot_id, lot.title, closed, currency, close.seq)
        winning = lot.last_bid_seq.get(closed.winner or "")
        body = sale_body(lot_id, closed, currency, close.seq, winning, document)
        self.sales.append(self.append(EntryType.SALE, body, close.time_us).seq)

    def run(self, lot_id: str, title: str, rules: LotRules, history: LotHistory) -> None:
        """Create a lot and send it its ``(now, command)`` history."""
        first = history[0][0] if history else self.last_t
        self.create_lot(lot_id, title, rules, min(first, rules.start_at))
        for now, command in history:
            self.command(lot_id, now, command)

    # --- checkpoints and export ------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.raw)

    def checkpoint(self) -> int:
        """Record a checkpoint at the current size (signed when the export is written)."""
        if not self.checkpoint_sizes or self.checkpoint_sizes[-1] != self.size:
            self.checkpoint_sizes.append(self.size)
        return self.size

    def entry_bytes(self) -> list[bytes]:
        return self.raw

    def write(self, directory: Path, **options: Any) -> Export:
        """Write the export layout for the entries and checkpoints so far."""
        self.checkpoint()
        return write_export(
            directory,
            self.entry_bytes(),
            self.signer,
            self.checkpoint_sizes,
            receipts=self.sales,
            **options,
        )


LotHistory = Sequence[tuple[int, Any]]


@dataclass(frozen=True)
class Export:
    """What :func:`write_export` wrote, for assertions and further tampering."""

    directory: Path
    entries: tuple[bytes, ...]
    checkpoints: dict[int, bytes]
    policy: bytes

    @property
    def latest(self) -> bytes:
        return self.checkpoints[max(self.checkpoints)]


def signed_checkpoint(
    tree: MemoryTree,
    size: int,
    signer: Ed25519Signer,
    cosigners: Sequence[CosignatureSigner] = (),
    timestamp: int = T0 // SECOND,
) -> bytes:
    """A checkpoint of ``tree`` at ``size`` signed by the log key and cosigned by ``cosigners``."""
    signed = sign_checkpoint(Checkpoint(signer.name, size, tree.root_at(size)), signer)
    if not cosigners:
        return signed
    text = parse_note(signed).text_bytes
    return add_cosignatures(signed, [c.cosign(text, timestamp) for c in cosigners])


def write_export(
    directory: Path,
    entries: Sequence[bytes],
    signer: Ed25519Signer,
    checkpoint_sizes: Iterable[int],
    *,
    receipts: Iterable[int] = (),
    notaries: Sequence[CosignatureSigner] = (),
    cosigners: Sequence[CosignatureSigner] | None = None,
    quorum: int = 0,
    policy: bytes | None = None,
    history: bool = True,
) -> Export:
    """Lay out ``entries`` as a ``gavel ledger export`` directory, with chain's builders only.

    Every size in ``checkpoint_sizes`` gets a signed checkpoint under ``checkpoints/``; the
    largest is ``checkpoint``. Tiles and bundles are those of the largest size. ``notaries``
    go into the policy with ``quorum``; ``cosigners`` (default: all notaries) cosign every
    checkpoint. Receipts are written for the seqs in ``receipts``.
    """
    tree = MemoryTree()
    for data in entries:
        tree.append(data)
    sizes = sorted(set(checkpoint_sizes))
    size = sizes[-1]
    cosigners = notaries if cosigners is None else cosigners
    stamp = _timestamp(entries[size - 1]) if size else T0 // SECOND
    checkpoints = {s: signed_checkpoint(tree, s, signer, cosigners, stamp) for s in sizes}
    policy_bytes = policy if policy is not None else make_policy(signer, notaries, quorum)
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "checkpoint", checkpoints[size])
    _write(directory / "policy", policy_bytes)
    if history:
        for s, data in checkpoints.items():
            _write(directory / "checkpoints" / f"{s:020d}", data)
    for tile in tiles_for_size(size):
        _write(directory / tile.path, tree.tile(tile))
    for bundle in entry_bundles_for_size(size):
        _write(directory / bundle.path, tree.entry_bundle(bundle))
    for seq in receipts:
        if seq < size:
            proof = tree.inclusion_proof(seq, size)
            _write(
                directory / "receipts" / f"{seq}.tlog-proof",
                make_receipt(seq, proof, checkpoints[size]),
            )
            _write(directory / "receipts" / f"{seq}.entry", entries[seq])
    return Export(directory, tuple(entries[:size]), checkpoints, policy_bytes)


def replace_bundles(directory: Path, entries: Sequence[bytes]) -> None:
    """Rewrite only the entry bundles of ``directory`` for ``entries`` (tiles, checkpoints and
    policy stay): what deleting, inserting or reordering entries in an export looks like."""
    shutil.rmtree(directory / "tile" / "entries")
    for bundle in entry_bundles_for_size(len(entries)):
        data = build_entry_bundle(entries[bundle.leaf_begin : bundle.leaf_end])
        _write(directory / bundle.path, data)


def bundle_file(directory: Path, seq: int, size: int) -> tuple[Path, int]:
    """The bundle file holding entry ``seq`` in an export of ``size`` entries, and the offset
    of that entry's first byte in it."""
    bundle = next(b for b in entry_bundles_for_size(size) if b.leaf_begin <= seq < b.leaf_end)
    path = directory / bundle.path
    data = path.read_bytes()
    offset = 0
    for _ in range(seq - bundle.leaf_begin):
        offset += 2 + int.from_bytes(data[offset : offset + 2], "big")
    return path, offset + 2


def _timestamp(entry: bytes) -> int:
    """A cosignature time just after the entry's ``t`` (POSIX seconds)."""
    return parse_entry(entry).time_us // SECOND + 1


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def rechain(entries: Sequence[Entry]) -> list[Entry]:
    """Re-number and re-link ``entries`` (seq = index, prev = previous leaf hash), keeping
    every type, time, body and actor: what a forger with the log key but no actor key can do."""
    out: list[Entry] = []
    for seq, entry in enumerate(entries):
        prev = out[-1].leaf_hash() if out else b""
        out.append(
            build_entry(
                seq=seq,
                prev=prev,
                time_us=entry.time_us,
                entry_type=entry.type,
                body=entry.body,
                actor=entry.actor,
            )
        )
    return out


def resign(entry: Entry, body: dict[str, Any], key: Ed25519PrivateKey, kid: str) -> Entry:
    """``entry`` with a new body, signed again by ``key``."""
    return build_entry(
        seq=entry.seq,
        prev=entry.prev,
        time_us=entry.time_us,
        entry_type=entry.type,
        body=body,
        actor=sign_actor(entry.type, body, kid, key),
    )


# --- realistic lots ------------------------------------------------------------------------


def judicial_lot(t0: int) -> tuple[LotRules, LotHistory]:
    """JUDICIAL_CN: a priority holder (the tenant) matches, bids extend the end; SOLD."""
    s = SECOND
    rules = judicial(
        start_price=2_000_000,
        step=10_000,
        start_at=t0 + 10 * s,
        end_at=t0 + 100 * s,
        min_duration=0,
        window=10 * s,
        extend=10 * s,
        appraisal=2_500_000,
    )
    history: list[tuple[int, Any]] = [
        (t0, RegisterBidder("tenant", "P1-7Q2X", True, priority_rank=1)),
        (t0 + 1, DepositPending("tenant", "pay-1")),
        (t0 + 2, DepositFrozen("tenant", rules.deposit, "pay-1")),
        (t0 + 3, RegisterBidder("alice", "C01-alice", True)),
        (t0 + 4, DepositFrozen("alice", rules.deposit, "r-alice")),
        (t0 + 5, RegisterBidder("bob", "C02-bob", True)),
        (t0 + 6, DepositFrozen("bob", rules.deposit, "r-bob")),
        (t0 + 7, RegisterBidder("dave", "C03-dave", True)),
        (t0 + 8, BarBidder("dave", "staff relative", "SPC Art 34")),
        (t0 + 9, PlaceBid("alice", 2_000_000, "CNY")),  # not open yet: refused
        (t0 + 10 * s, OpenLot()),
        (t0 + 20 * s, PlaceBid("alice", 2_000_000, "CNY")),
        (t0 + 21 * s, PlaceBid("tenant", 2_000_000, "CNY")),  # priority match
        (t0 + 22 * s, PlaceBid("bob", 2_005_000, "CNY")),  # off the grid: refused
        (t0 + 23 * s, PlaceBid("bob", 2_010_000, "CNY")),
        (t0 + 95 * s, PlaceBid("alice", 2_020_000, "CNY")),  # extends the end
        (t0 + 100 * s, CloseLot()),  # not due
        (t0 + 104 * s, PlaceBid("tenant", 2_020_000, "CNY")),  # priority match, extends
        (t0 + 114 * s, CloseLot()),
        (t0 + 115 * s, PlaceBid("bob", 2_050_000, "CNY")),  # late: refused
    ]
    return rules, history


def english_lot(t0: int, bidders: int = 3, rounds: int = 4) -> tuple[LotRules, LotHistory]:
    """ENGLISH_TIMED with proxies: maxima raised in turn, a pause and resume; SOLD."""
    s = SECOND
    rules = english_timed(
        start_price=100_000,
        reserve=150_000,
        start_at=t0 + s,
        end_at=t0 + 600 * s,
        soft_close=SoftClose(window=120 * s, extend=120 * s),
    )
    names = [f"e{i}" for i in range(bidders)]
    history: list[tuple[int, Any]] = [
        (t0 + i, RegisterBidder(name, f"C{i:02d}-{name}", True)) for i, name in enumerate(names)
    ]
    history.append((t0 + s, OpenLot()))
    now = t0 + 2 * s
    amount = 100_000
    for r in range(rounds):
        for i, name in enumerate(names):
            amount += 5_000 + 1_000 * ((r + i) % 3)
            command = SetMax(name, amount, "USD") if (r + i) % 2 else PlaceBid(name, amount, "USD")
            history.append((now, command))
            now += s
        if r == 0:
            history.append((now, PlaceBid(names[0], 1, "EUR")))  # wrong currency: refused
            history.append((now + s, Pause("description under review")))
            history.append((now + 2 * s, PlaceBid(names[0], amount + 50_000, "USD")))  # halted
            history.append((now + 3 * s, Resume("description confirmed")))
            now += 4 * s
    history.append((t0 + 700 * s, CloseLot()))  # after the end the pause moved
    return rules, history


def live_lot(t0: int) -> tuple[LotRules, LotHistory]:
    """LIVE_AUCTIONEER: online, floor and absentee bids, fair warning, hammer; SOLD."""
    s = SECOND
    rules = live_auctioneer(start_price=800_000, currency="GBP", start_at=t0)
    history: list[tuple[int, Any]] = [
        (t0, RegisterBidder("ivan", "C00-ivan", True)),
        (t0, RegisterBidder("judy", "C01-judy", True)),
        (t0, RegisterBidder("ken", "C02-ken", True)),
        (t0 + 1, SetMax("ken", 1_000_000, "GBP")),  # absentee
        (t0 + s, OpenRing(800_000)),
        (t0 + 2 * s, PlaceBid("ivan", 900_000, "GBP")),
        (t0 + 3 * s, AcceptOnline(99)),  # unknown bid: refused
        (t0 + 4 * s, FloorBid("118")),
        (t0 + 5 * s, SetAutoAccept(True)),
        (t0 + 6 * s, FairWarning()),
        (t0 + 7 * s, Hammer()),  # dwell not elapsed: refused
        (t0 + 8 * s, PlaceBid("judy", 1_500_000, "GBP")),
        (t0 + 9 * s, FairWarning()),
        (t0 + 13 * s, Hammer()),
        (t0 + 14 * s, NextLot()),
    ]
    return rules, history


def unsold_lot(t0: int) -> tuple[LotRules, LotHistory]:
    """JUDICIAL_CN with no bid: FAILED (流拍), no sale entry."""
    s = SECOND
    rules = judicial(
        start_price=180_000, step=2_000, start_at=t0 + 5 * s, end_at=t0 + 50 * s, min_duration=0
    )
    history: list[tuple[int, Any]] = [
        (t0, RegisterBidder("carol", "C00-carol", True)),
        (t0 + 1, DepositFrozen("carol", rules.deposit, "r-carol")),
        (t0 + 5 * s, OpenLot()),
        (t0 + 50 * s, CloseLot()),
    ]
    return rules, history


@functools.cache
def standard_ledger(*, kid: str | None = None, busy_rounds: int = 60) -> LedgerBuilder:
    """The auditor tests' ledger: four lots of every preset (three sold, one failed) and a busy
    English lot with many proxy rounds, so that it spans two entry bundles (> 256 entries).

    Checkpoints are recorded after every lot, as the server does after a close. Built once per
    process (cached): callers copy what they change and never mutate the builder.
    """
    builder = LedgerBuilder(kid=kid)
    t0 = T0 + SECOND
    builder.run("judicial-flat", "Flat 1502, Hangzhou", *judicial_lot(t0))
    builder.checkpoint()
    t0 += 200 * SECOND
    builder.run("judicial-garage", "Parking space B2-117", *unsold_lot(t0))
    builder.checkpoint()
    t0 += 100 * SECOND
    builder.run("timed-watch", "Omega Speedmaster", *english_lot(t0))
    builder.checkpoint()
    t0 += 1_000 * SECOND
    builder.run("live-painting", "Harbour at Dusk", *live_lot(t0))
    builder.checkpoint()
    t0 += 100 * SECOND
    builder.run("timed-busy", "Leica M3", *english_lot(t0, bidders=5, rounds=busy_rounds))
    builder.checkpoint()
    return builder


def bulk_ledger(entries: int, *, concurrent: int = 8, keep_entries: bool = True) -> LedgerBuilder:
    """At least ``entries`` entries of interleaved English lots (proxies, bids, closes, sales).

    ``concurrent`` lots run at once, their commands interleaved in time as on a real site.
    Without ``keep_entries`` only the entry bytes are kept (the bench's million entries).
    """
    builder = LedgerBuilder(keep_entries=keep_entries)
    running: list[tuple[str, Iterator[tuple[int, Any]]]] = []
    next_lot = 0
    t0 = T0 + SECOND
    while builder.size < entries:
        while len(running) < concurrent:
            lot_id = f"lot-{next_lot:07d}"
            rules, commands = english_lot(t0 + next_lot * 37 * SECOND, bidders=4, rounds=10)
            builder.create_lot(lot_id, f"Lot {next_lot}", rules, t0 + next_lot * 37 * SECOND)
            running.append((lot_id, iter(commands)))
            next_lot += 1
        for lot_id, pending in list(running):
            step = next(pending, None)
            if step is None:
                running.remove((lot_id, pending))
                continue
            builder.command(lot_id, *step)
            if builder.size >= entries:
                break
    return builder
