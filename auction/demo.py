"""The demo: a seeded catalogue, bidding bots and a scripted clerk (an adapter over the service).

* `Timeline.for_duration(seconds)` says when lots open and close, relative to the seeding time:
  compressed into the first half of a `--duration` run, or minutes apart when serving.
* `catalogue(t0, timeline)` is pure: the sales and lots to seed, one per preset plus a
  three-lot judicial sale with staggered closes (rules C12: lot k closes at `T0 + k·Δ`).
* `Drivers` owns the bot tasks and the clerk task. Bots register (KYC verified, codes derived
  by HMAC-SHA256 over (lot, bidder) from a per-run secret), freeze deposits where required and
  bid at random intervals with a seeded RNG; the clerk takes the live lot through the ring.
  Every command goes through `AuctionService.submit`, like a real client's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chain import (
    ChainError,
    CosignatureVerifier,
    Ed25519Verifier,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    format_policy,
    parse_note,
    parse_policy,
    parse_vkey,
)
from notary.datadir import KEY_FILE, DataDir, init_data_dir
from notary.errors import NotaryError

from .gateway import Gateway, GatewayError
from .gateway import bidder_code as bidder_code  # re-exported: rules C2.4 codes
from .identity import prc_check_character
from .printable import printable
from .protocol import BidRequest, signed_bytes
from .rules import (
    SECOND,
    AcceptOnline,
    FairWarning,
    FloorBid,
    Format,
    Hammer,
    LotRules,
    NextLot,
    OpenRing,
    PassLot,
    Rejected,
    RejectReason,
    Result,
    SetAutoAccept,
    SoftClose,
    english_timed,
    judicial,
    live_auctioneer,
)
from .service import ACTIVE_STATUSES, AuctionService, LotView, ServiceClosed, ServiceError
from .storage import Counts, StorageError, StoredLot

logger = logging.getLogger(__name__)

#: How long a held online bid waits for the console before the demo's clerk accepts it.
HELD_GRACE = 20 * SECOND

#: Currencies whose minor unit is not the hundredth (ISO 4217 exponent); others have two.
CURRENCY_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}


class DemoError(ServiceError):
    """The demo cannot run as asked (for instance the port is taken)."""


def format_money(amount: int | None, currency: str) -> str:
    """`210000000, "CNY"` → `"CNY 2,100,000.00"`; `None` → `"-"`."""
    if amount is None:
        return "-"
    digits = CURRENCY_DIGITS.get(currency, 2)
    whole, fraction = divmod(amount, 10**digits)
    text = f"{whole:,}"
    if digits:
        text += f".{fraction:0{digits}d}"
    return f"{currency} {text}"


@dataclass(frozen=True, slots=True)
class Timeline:
    """When things happen in the demo, as offsets from the seeding time (microseconds), and
    how fast bots and the clerk act (seconds)."""

    open_after: int
    window: int  # soft close W = E
    watch_close: int
    flat_close: int
    sale_first_close: int
    sale_spacing: int  # rules C12 Δ
    ring_open: int
    fair_warning_dwell: int
    ring_quiet: float  # the clerk warns after this long without a bid
    ring_deadline: float  # ... and in any case this long after the ring opened
    bot_pause: tuple[float, float]
    clerk_tick: float

    @classmethod
    def for_duration(cls, duration: float | None) -> Timeline:
        """A timeline whose timed lots all close in the first half of a `duration`-second run;
        `None` (serve until stopped) spreads the closes over a few minutes."""
        if duration is None:
            return cls(
                open_after=5 * SECOND,
                window=30 * SECOND,
                watch_close=240 * SECOND,
                flat_close=300 * SECOND,
                sale_first_close=180 * SECOND,
                sale_spacing=45 * SECOND,
                ring_open=20 * SECOND,
                fair_warning_dwell=3 * SECOND,
                ring_quiet=8.0,
                ring_deadline=180.0,
                bot_pause=(1.5, 8.0),
                clerk_tick=0.5,
            )
        span = int(duration * SECOND)
        return cls(
            open_after=span // 20,
            window=min(3 * SECOND, span // 6),  # rules C6 W = E
            watch_close=span * 40 // 100,
            flat_close=span * 45 // 100,
            sale_first_close=span * 22 // 100,
            sale_spacing=span * 8 // 100,
            ring_open=span // 20,
            fair_warning_dwell=2 * SECOND if duration < 30 else 3 * SECOND,  # C14: 2..5 s
            ring_quiet=max(0.5, duration / 20),
            ring_deadline=duration * 0.35,
            bot_pause=(duration / 200, duration / 35),
            clerk_tick=min(0.5, max(0.05, duration / 100)),
        )


@dataclass(frozen=True, slots=True)
class SeedLot:
    lot_id: str
    title: str
    rules: LotRules


@dataclass(frozen=True, slots=True)
class SeedSale:
    sale_id: str
    title: str
    lots: tuple[SeedLot, ...]


def catalogue(t0: int, timeline: Timeline) -> tuple[SeedSale, ...]:
    """The demo's sales and lots for a run starting at `t0` (UTC µs). Pure.

    The judicial lots override the preset's 24 h minimum duration (`min_duration=0`): that
    minimum is a legal default for real sales, not for a demo that lasts seconds.
    """
    start = t0 + timeline.open_after
    window = timeline.window
    flat = judicial(
        start_price=210_000_000,  # CNY 2,100,000.00 = 70 % of the appraisal
        appraisal=300_000_000,
        step=1_000_000,
        start_at=start,
        end_at=t0 + timeline.flat_close,
        min_duration=0,
        window=window,
        extend=window,
    )
    watch = english_timed(
        start_price=350_000,  # USD 3,500.00
        reserve=380_000,
        start_at=start,
        end_at=t0 + timeline.watch_close,
        soft_close=SoftClose(window=window, extend=window),
        legal_timezone="America/New_York",
    )
    painting = live_auctioneer(
        start_price=800_000,  # GBP 8,000.00
        currency="GBP",
        start_at=t0 + timeline.ring_open,
        fair_warning_dwell=timeline.fair_warning_dwell,
        legal_timezone="Europe/London",
    )
    court_sale = (
        ("Parking space B2-117, Lvcheng Xixi Garden, Xihu District", 18_000_000, 200_000),
        ("Office unit 1203, Huanglong Century Plaza, 168 m²", 360_000_000, 2_000_000),
        ("Textile machinery: 14 Tsudakoma air-jet looms, sold as one lot", 42_000_000, 500_000),
    )
    staggered = tuple(
        SeedLot(
            lot_id=f"hz-0917-{k + 1}",
            title=title,
            rules=judicial(
                start_price=price,
                step=step,
                start_at=start,
                end_at=t0 + timeline.sale_first_close + k * timeline.sale_spacing,
                min_duration=0,
                window=window,
                extend=window,
            ),
        )
        for k, (title, price, step) in enumerate(court_sale)
    )
    return (
        SeedSale(
            "hz-xihu-2024-0412",
            "Hangzhou Xihu District People's Court: judicial sale by court order",
            (
                SeedLot(
                    "hz-flat-1502", "Flat 1502, 89 m², Building 3, Wenyi West Road, Hangzhou", flat
                ),
            ),
        ),
        SeedSale(
            "hz-0917",
            "Hangzhou Intermediate People's Court: assets of Xihu Textile Co. (in bankruptcy)",
            staggered,
        ),
        SeedSale(
            "ny-watches",
            "Important Watches Online, New York",
            (
                SeedLot(
                    "watch-speedmaster", "Omega Speedmaster Professional, 2019, full set", watch
                ),
            ),
        ),
        SeedSale(
            "ldn-evening",
            "Modern British Art Evening Sale, London (live)",
            (SeedLot("painting-harbour", "Harbour at Dusk, oil on canvas, 1958", painting),),
        ),
    )


async def seed(service: AuctionService, sales: Sequence[SeedSale]) -> int:
    """Store and start serving every sale and lot; returns the number of lots added."""
    added = 0
    for sale in sales:
        await service.add_sale(sale.sale_id, sale.title)
        for lot in sale.lots:
            await service.add_lot(lot.lot_id, lot.rules, lot.title, sale.sale_id)
            added += 1
    return added


def _budget(rules: LotRules, rng: random.Random, low: int, high: int) -> int:
    """The most a bidder will pay: `low..high` increments above the start price."""
    amount = rules.start_price
    for _ in range(rng.randint(low, high)):
        amount = rules.increment.step_above(rules.start_price, amount)
    return amount


def _refused(events: tuple[Any, ...]) -> Rejected | None:
    if len(events) == 1 and isinstance(events[0], Rejected):
        return events[0]
    return None


@dataclass(slots=True)
class _BotLot:
    code: str
    budget: int
    rules: LotRules
    priority: bool = False
    max_set: bool = False


def _amount(mine: _BotLot, view: LotView) -> int:
    """What a bot bids next: the minimum, or (rules C7.2) a priority holder matches the price."""
    if mine.priority and view.price is not None:
        return view.price
    return view.min_next


@dataclass(slots=True)
class Bot:
    """One simulated bidder: a real account with its own key pair, verified identity and
    deposits, whose bids are signed like a browser's and go through the gateway."""

    name: str
    rng: random.Random
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    account: str = ""
    lots: dict[str, _BotLot] = field(default_factory=dict)
    bids: int = 0

    @property
    def bidder_id(self) -> str:
        return self.account


#: Synthetic demo bidders: names and PRC administrative division codes (GB/T 2260).
BOT_NAMES = ("Li Wei", "Wang Fang", "Zhang Min", "Liu Yang", "Chen Jing", "Zhao Lei", "Huang Li")
REGION_CODES = ("110105", "310104", "330106", "440305", "510107", "320102")


def synthetic_prc_id(rng: random.Random) -> str:
    """A synthetic but well-formed PRC resident identity number of an adult (GB 11643-1999:
    region, birth date, sequence and the ISO 7064 MOD 11-2 check character)."""
    region = rng.choice(REGION_CODES)
    birth = f"{rng.randint(1955, 1995)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{region}{birth}{rng.randint(0, 999):03d}"
    return first17 + prc_check_character(first17)


class Drivers:
    """The demo's simulated participants: `bots` bidders and the clerk of each live lot.

    Bots are real accounts: each makes a key pair, creates its account, passes the identity
    check with a synthetic document, registers, has its deposits frozen by the payment provider
    and sends signed bids, all through the same `Gateway` as a browser. `start()` launches one
    task per bot and per live lot; `stop()` cancels and awaits them all.
    """

    def __init__(
        self,
        service: AuctionService,
        gateway: Gateway,
        *,
        bots: int,
        timeline: Timeline,
        seed: int | None = None,
    ) -> None:
        self._service = service
        self._gateway = gateway
        self._timeline = timeline
        self._bot_count = bots
        seed_value = seed if seed is not None else secrets.randbits(64)
        self._rng = random.Random(seed_value)
        self._run_id = secrets.token_hex(3)
        self._tasks: set[asyncio.Task[None]] = set()
        self.bots: list[Bot] = []

    def start(self) -> None:
        """Start the bots and the clerks; the owner must `await stop()`."""
        for index in range(self._bot_count):
            bot = Bot(f"bot-{self._run_id}-{index + 1}", random.Random(self._rng.random()))
            self.bots.append(bot)
            self._spawn(self._run_bot(bot), bot.name)
        for view in self._service.views():
            if view.format == Format.LIVE_AUCTIONEER.value and view.active:
                clerk_rng = random.Random(self._rng.random())
                self._spawn(self._run_clerk(view.lot_id, clerk_rng), f"clerk:{view.lot_id}")

    async def stop(self) -> None:
        """Cancel every driver task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coroutine, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(coroutine: Any, name: str) -> None:
        """A driver ends quietly when the service stops, and logs any other failure."""
        try:
            await coroutine
        except ServiceClosed:
            pass
        except (ServiceError, StorageError, GatewayError) as exc:
            logger.warning("demo driver %s stopped: %s", name, exc)
        except Exception:  # a simulated participant's bug must not take the server down
            logger.exception("demo driver %s failed", name)

    # -- bots --

    async def _sign_up(self, bot: Bot) -> None:
        gateway = self._gateway
        public_key = bot.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        bot.account, _, _ = await gateway.create_account(public_key)
        name = bot.rng.choice(BOT_NAMES)
        # One person, one account: a bot of another run (same --seed, same data) is another
        # person, so its document comes from its name, which carries the run's random id.
        document = synthetic_prc_id(random.Random(bot.name))
        await gateway.verify_identity(bot.account, name, "PRC_RESIDENT_ID", document)

    async def _register(self, bot: Bot) -> None:
        for view in self._service.views():
            state = self._service.state(view.lot_id)
            if state is None or not view.active:
                continue
            rules = state.rules
            try:
                registration = await self._gateway.register(bot.account, view.lot_id)
                if registration.deposit_state == "REQUIRED":
                    key = f"dep-{bot.account}-{view.lot_id}"
                    await self._gateway.freeze_deposit(bot.account, view.lot_id, key)
            except GatewayError as exc:
                logger.info("bot %s skips %s: %s", bot.name, view.lot_id, exc.message)
                continue
            steps = (1, 6) if rules.format is Format.LIVE_AUCTIONEER else (1, 14)
            budget = _budget(rules, bot.rng, *steps)
            bot.lots[view.lot_id] = _BotLot(registration.code, budget, rules)

    async def _run_bot(self, bot: Bot) -> None:
        await self._sign_up(bot)
        await self._register(bot)
        while bot.lots:
            await asyncio.sleep(bot.rng.uniform(*self._timeline.bot_pause))
            views = [self._service.view(lot_id) for lot_id in bot.lots]
            live = [view for view in views if view is not None and view.active]
            if not live:
                return
            choices = [view for view in live if self._wants(bot, view)]
            if choices:
                await self._bid(bot, bot.rng.choice(choices))

    @staticmethod
    def _wants(bot: Bot, view: LotView) -> bool:
        mine = bot.lots[view.lot_id]
        if view.status != "OPEN" or view.leader_code == mine.code:
            return False
        return _amount(mine, view) <= mine.budget

    async def _bid(self, bot: Bot, view: LotView) -> None:
        mine = bot.lots[view.lot_id]
        rules = mine.rules
        timed = rules.format is not Format.LIVE_AUCTIONEER
        kind, amount = "bid", _amount(mine, view)
        if timed and rules.proxy_allowed and not mine.max_set and bot.rng.random() < 0.35:
            top = rules.increment.floor_to_grid(rules.start_price, mine.budget)
            if top is None or top < view.min_next:
                return
            mine.max_set = True
            kind, amount = "max", top
        key = f"{bot.name}:{view.lot_id}:{bot.bids}:{bot.rng.getrandbits(32):08x}"
        payload = {
            "account": bot.account,
            "amount": amount,
            "currency": rules.currency,
            "idempotency_key": key,
            "kind": kind,
            "lot": view.lot_id,
        }
        request = BidRequest(
            lot=view.lot_id,
            kind=kind,
            amount=amount,
            currency=rules.currency,
            idempotency_key=key,
            signature=bot.key.sign(signed_bytes(payload)),  # as a browser signs it
        )
        ack = await self._gateway.bid(bot.account, request)
        if ack["result"] == "accepted":
            bot.bids += 1

    # -- the clerk of a live lot (rules C14) --

    async def _run_clerk(self, lot_id: str, rng: random.Random) -> None:
        service = self._service
        timeline = self._timeline
        state = service.state(lot_id)
        assert state is not None
        rules = state.rules
        floor_budget = _budget(rules, rng, 2, 6)
        last_change = (-1, "")
        quiet_since = asyncio.get_running_loop().time()
        opened_at: float | None = None
        while True:
            await asyncio.sleep(timeline.clerk_tick)
            state = service.state(lot_id)
            view = service.view(lot_id)
            assert state is not None and view is not None
            clock = asyncio.get_running_loop().time()
            if view.status == "SCHEDULED":
                # The clerk brings the lot into the ring half a second before its catalogue
                # time: a live lot that is still SCHEDULED at `start_at` gets the lot's own
                # timer command (`OpenLot`), which live lots refuse (see the report on
                # `LotState.next_deadline`).
                if service.now() >= rules.start_at - SECOND // 2:
                    await service.submit(lot_id, OpenRing(ask=rules.start_price))
                    await service.submit(lot_id, SetAutoAccept(on=True))
                    opened_at = quiet_since = clock
                continue
            live = state.live
            if view.status in ("PAUSED", "SUSPENDED"):
                continue  # rules C11: wait for the court or the auctioneer to resume
            if live is None or view.status not in ("OPEN", "SOLD", "FAILED"):
                return
            if view.status in ("SOLD", "FAILED"):
                if not live.finalized:
                    await service.submit(lot_id, NextLot())
                return
            if opened_at is None:
                opened_at = clock
            if live.pending is not None:
                # Held online bids are the console's to decide (auto-accept turned off there);
                # the clerk steps in only when nobody has for HELD_GRACE.
                if service.now() - live.pending[3] >= HELD_GRACE:
                    await service.submit(lot_id, AcceptOnline(bid_seq=live.pending[0]))
                continue
            if (view.price or -1, view.leader_code or "") != last_change:
                last_change = (view.price or -1, view.leader_code or "")
                quiet_since = clock
            if view.phase == "FAIR_WARNING":
                if view.hammer_not_before is not None and service.now() >= view.hammer_not_before:
                    refusal = _refused(await service.submit(lot_id, Hammer()))
                    if refusal is not None and refusal.reason is RejectReason.NO_BIDS:
                        await service.submit(lot_id, PassLot())
                continue
            room_bids = (
                clock - opened_at < timeline.ring_deadline / 2
                and view.min_next <= floor_budget
                and not (view.leader_code or "").startswith("floor:")
            )
            if room_bids and rng.random() < 0.15:
                await service.submit(lot_id, FloorBid(paddle=str(rng.randint(101, 180))))
            elif (
                clock - quiet_since >= timeline.ring_quiet
                or clock - opened_at >= timeline.ring_deadline
            ):
                if view.price is None:
                    await service.submit(lot_id, PassLot())
                else:
                    await service.submit(lot_id, FairWarning())


def summary(
    lots: Sequence[StoredLot],
    counts: Counts,
    location: str,
    notaries: Sequence[DemoNotary] = (),
    final_sales: Sequence[str] | None = None,
) -> str:
    """A short human summary of a finished run: each lot's result and price, how much is
    stored where, the ledger's size and latest published checkpoint (with how many notary
    cosignatures it carries) and the notaries. `final_sales`: the lots whose `sale` entry is in
    the published (co-signed) tree; a sale is final only then."""
    lines = [
        f"gavel demo: {counts.lots} lots in {counts.sales} sales; {counts.commands} commands and "
        f"{counts.events} events stored in {location}"
    ]
    for notary in notaries:
        lines.append(f"gavel demo: notary {notary.name} on {notary.url} ({notary.directory})")
    checkpoint = counts.checkpoint
    if checkpoint is not None:
        root = base64.b64encode(checkpoint.root).decode("ascii")
        cosignatures = _cosignature_count(checkpoint.note)
        lines.append(
            f"gavel demo: ledger {counts.origin}: {counts.ledger_entries} entries; latest "
            f"checkpoint: size {checkpoint.size}, root {root} (published, "
            f"{cosignatures} notary cosignatures)"
        )
    else:
        lines.append(f"gavel demo: ledger: {counts.ledger_entries} entries, no checkpoint yet")
    for lot in lots:
        state = lot.state
        price = format_money(state.price, lot.rules.currency)
        if state.result is Result.SOLD:
            outcome = f"{price} to {state.leader_code}"
            if final_sales is not None:
                final = lot.lot_id in final_sales
                outcome += " (final: co-signed)" if final else " (not final: awaiting notaries)"
        elif state.status in ACTIVE_STATUSES:
            outcome = f"{price} (not closed yet)"
        else:
            outcome = "no sale"
        lines.append(
            f"  {state.status.value:<10} {lot.rules.format.value:<16} "
            f"{printable(lot.lot_id):<18} {outcome}  [{lot.bids} bids] {printable(lot.title)}"
        )
    return "\n".join(lines)


def _cosignature_count(note: bytes) -> int:
    """How many signature lines of a checkpoint are not the log's own (one log signature)."""
    try:
        return max(0, len(parse_note(note).signatures) - 1)
    except ChainError:
        return 0


# --- the demo's notaries (issue 4) -----------------------------------------------------------

#: The demo's notaries and quorum (ledger spec section 5: 2 of 3 in the demo).
DEMO_NOTARIES = 3
DEMO_QUORUM = 2

#: Seconds a notary process has to start, and to stop after SIGTERM before it is killed.
NOTARY_START_TIMEOUT = 30.0
NOTARY_STOP_TIMEOUT = 10.0


@dataclass(slots=True)
class DemoNotary:
    """One notary of the demo: its key name, data directory, loopback port and process."""

    name: str
    vkey: str
    directory: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it can be bound on 127.0.0.1 now, else a free port."""
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise DemoError("no free port on 127.0.0.1")


def _previous_ports(policy_file: Path) -> dict[str, int]:
    """The notary ports of an earlier run's policy (reused when still free)."""
    try:
        policy = parse_policy(policy_file.read_bytes())
    except (OSError, ChainError):
        return {}
    ports: dict[str, int] = {}
    for witness in policy.witnesses:
        if witness.url and witness.url.startswith("http://127.0.0.1:"):
            with contextlib.suppress(ValueError):
                ports[witness.name] = int(witness.url.rsplit(":", 1)[1].strip("/"))
    return ports


def prepare_notaries(
    data_dir: Path, log_vkey: str, count: int = DEMO_NOTARIES, quorum: int = DEMO_QUORUM
) -> tuple[list[DemoNotary], bytes]:
    """Create (or, on a restart, reuse) `count` notary data directories under
    `data_dir/notaries/n1..`, each with its own key, pick loopback ports, and return them with
    the tlog-policy naming the log key `log_vkey`, the notaries (vkey and URL) and the quorum
    `quorum` of them. Blocking (file I/O)."""
    log_verifier = parse_vkey(log_vkey)
    if not isinstance(log_verifier, Ed25519Verifier):
        raise DemoError("the log key is not an Ed25519 key")
    ports = _previous_ports(data_dir / "policy")
    notaries: list[DemoNotary] = []
    witnesses: list[WitnessRule] = []
    for index in range(1, count + 1):
        directory = data_dir / "notaries" / f"n{index}"
        try:
            if (directory / KEY_FILE).exists():
                name, vkey = DataDir(directory).identity()
            else:
                signer = init_data_dir(directory, f"notary{index}.gavel.demo")
                name, vkey = signer.name, signer.vkey
        except NotaryError as exc:
            raise DemoError(f"notary n{index}: {exc}") from exc
        verifier = parse_vkey(vkey)
        if not isinstance(verifier, CosignatureVerifier):
            raise DemoError(f"{directory}: not a cosignature key")
        notary = DemoNotary(name, vkey, directory, free_port(ports.get(name)))
        notaries.append(notary)
        witnesses.append(WitnessRule(name, verifier, notary.url))
    group = Threshold("notaries", quorum, tuple(witnesses))
    policy = Policy((PolicyLog(log_verifier),), tuple(witnesses), group, (group,))
    return notaries, format_policy(policy)


async def start_notaries(notaries: Sequence[DemoNotary], log_url: str, policy: Path) -> None:
    """Start `gavel notary serve` for each notary (separate processes) and wait until each
    listens. On failure the ones started are stopped and `DemoError` is raised."""
    try:
        await asyncio.gather(*(_start_notary(notary, log_url, policy) for notary in notaries))
    except BaseException:
        await stop_notaries(notaries)
        raise


async def _start_notary(notary: DemoNotary, log_url: str, policy: Path) -> None:
    command = [
        sys.executable, "-m", "auction.cli", "notary", "serve", "--dir", str(notary.directory),
        "--port", str(notary.port), "--log", log_url, "--policy", str(policy),
    ]  # fmt: skip
    log_file = open(notary.directory / "stderr.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        notary.process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            env=dict(os.environ),
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
        )
    finally:
        log_file.close()
    assert notary.process.stdout is not None
    try:
        line = await asyncio.wait_for(notary.process.stdout.readline(), NOTARY_START_TIMEOUT)
    except TimeoutError:
        line = b""
    if b" on http://" not in line:
        raise DemoError(
            f"notary {notary.name} did not start (see {notary.directory / 'stderr.log'})"
        )


async def stop_notaries(notaries: Sequence[DemoNotary]) -> None:
    """SIGTERM every running notary, wait, and kill those still running after a timeout."""
    await asyncio.gather(*(_stop_notary(notary) for notary in notaries))


async def _stop_notary(notary: DemoNotary) -> None:
    process, notary.process = notary.process, None
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), NOTARY_STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
