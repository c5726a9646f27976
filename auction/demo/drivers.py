"""The demo's simulated participants: bidding bots and the clerk of each live lot (adapters
over the service and the gateway, like a real client; `Drivers` owns their tasks).

Bots register (KYC verified, codes derived by HMAC-SHA256 over (lot, bidder) from a per-run
secret), freeze deposits where required and bid at random intervals with a seeded RNG; the
clerk takes a live lot through the ring (rules C14). Every command goes through
`AuctionService.submit` or the `Gateway`, like a real client's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import GavelError
from ..gateway import Gateway
from ..identity.provider import prc_check_character
from ..rules import (
    SECOND,
    AcceptOnline,
    Authority,
    Cancel,
    FairWarning,
    FloorBid,
    Format,
    Hammer,
    LotRules,
    NextLot,
    OpenRing,
    PassLot,
    RejectReason,
    SetAutoAccept,
    rejection,
)
from ..service import AuctionService, LotView, ServiceClosed
from ..verify import SignedBid
from .schedule import LotSpec, Pace, bid_chance, bidders_for, budget_steps, jump_steps

if TYPE_CHECKING:
    from .showcase import Timeline

logger = logging.getLogger(__name__)

#: How long a held online bid waits for the console before the demo's clerk accepts it.
HELD_GRACE = 20 * SECOND


def _budget(rules: LotRules, rng: random.Random, low: int, high: int) -> int:
    """The most a bidder will pay: `low..high` increments above the start price."""
    amount = rules.start_price
    for _ in range(rng.randint(low, high)):
        amount = rules.increment.step_above(rules.start_price, amount)
    return amount


def _steps_above(rules: LotRules, steps: int) -> int:
    """The price `steps` increments above the start price."""
    amount = rules.start_price
    for _ in range(steps):
        amount = rules.increment.step_above(rules.start_price, amount)
    return amount


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
    index: int = 0  # which of the demo's bots (the schedule says which want a lot)
    seen: set[str] = field(default_factory=set)  # active lots looked at for registering

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


@dataclass(frozen=True, slots=True)
class RingPacing:
    """How the clerk runs one live lot through the ring (times in µs of server time)."""

    tick: float  # seconds between the clerk's looks
    quiet: int  # fair warning after this long without a new bid ...
    least: int  # ... once the lot has been in the ring this long
    deadline: int  # and in any case this long after the ring opened,
    warn_by: int | None = None  # or, when given, by this server time
    latest_open: int | None = None  # withdraw the lot if it has not come up by then
    position: int | None = None  # its place in the ring: lots placed before it go first
    room_steps: int | None = None  # how far the room bids (steps above the start); None: 2..6
    room_chance: float = 0.15  # chance of a room bid at each look

    @classmethod
    def for_timeline(cls, timeline: Timeline) -> RingPacing:
        """The showcase's painting."""
        return cls(
            tick=timeline.clerk_tick,
            quiet=int(timeline.ring_quiet * SECOND),
            least=0,
            deadline=int(timeline.ring_deadline * SECOND),
        )

    @classmethod
    def for_spec(cls, spec: LotSpec, pace: Pace) -> RingPacing:
        """A lot of the living schedule's ring (`demo_schedule.ring_lot`)."""
        assert spec.warn_by is not None
        return cls(
            tick=pace.clerk_tick,
            quiet=pace.ring_quiet,
            least=pace.ring_least,
            deadline=spec.warn_by - spec.start_at,
            warn_by=spec.warn_by,
            latest_open=spec.warn_by - pace.ring_least,
            position=spec.index,
            room_steps=spec.room,
            room_chance=0.1,
        )


class Drivers:
    """The demo's simulated participants: `bots` bidders and the clerk of each live lot.

    Bots are real accounts: each makes a key pair, creates its account, passes the identity
    check with a synthetic document, registers, has its deposits frozen by the payment provider
    and sends signed bids, all through the same `Gateway` as a browser. `start()` launches one
    task per bot (and, for the showcase, per live lot); `stop()` cancels and awaits them all.

    With a `pace` (the living schedule, `auction.demo.living`) the bots run until stopped, find
    new lots as they are announced, want only the lots `expect` says they want (any other lot:
    all of them) and bid at a person's pace: seldom while a timed lot has long to go, more as
    its end nears. The schedule's ring lots get their clerk from `run_ring`.
    """

    def __init__(
        self,
        service: AuctionService,
        gateway: Gateway,
        *,
        bots: int,
        timeline: Timeline,
        seed: int | None = None,
        pace: Pace | None = None,
    ) -> None:
        self._service = service
        self._gateway = gateway
        self._timeline = timeline
        self._pace = pace
        self._pause = pace.bot_pause if pace is not None else timeline.bot_pause
        self._bot_count = bots
        seed_value = seed if seed is not None else secrets.randbits(64)
        self._rng = random.Random(seed_value)
        self._run_id = secrets.token_hex(3)
        self._tasks: set[asyncio.Task[None]] = set()
        self._specs: dict[str, LotSpec] = {}
        self._clerks: dict[str, int | None] = {}  # lots with a clerk: their ring position
        self.unwanted: set[str] = set()  # lots no bot registers for (the demo's failing lots)
        self.bots: list[Bot] = []

    def start(self) -> None:
        """Start the bots (and the showcase's clerks); the owner must `await stop()`."""
        for index in range(self._bot_count):
            rng = random.Random(self._rng.random())
            bot = Bot(f"bot-{self._run_id}-{index + 1}", rng, index=index)
            self.bots.append(bot)
            self.spawn(self._run_bot(bot), bot.name)
        if self._pace is None:
            for view in self._service.views():
                if view.format == Format.LIVE_AUCTIONEER.value and view.active:
                    self.run_ring(view.lot_id, RingPacing.for_timeline(self._timeline))

    async def stop(self) -> None:
        """Cancel every driver task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def spawn(self, coroutine: Any, name: str) -> None:
        """Run `coroutine` as one of the drivers' tasks (stopped by `stop`)."""
        task = asyncio.get_running_loop().create_task(self._guarded(coroutine, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def expect(self, spec: LotSpec) -> None:
        """Tell the bots which of them want the schedule's lot `spec` and how far they go;
        call it before the lot is created."""
        self._specs[spec.lot_id] = spec
        if len(self._specs) > 256:  # forget the closed ones
            for lot_id in list(self._specs):
                view = self._service.view(lot_id)
                if view is not None and not view.active:
                    del self._specs[lot_id]

    def run_ring(self, lot_id: str, pacing: RingPacing) -> None:
        """Have a clerk take the live lot `lot_id` through the ring (once: a second call for a
        lot whose clerk is at work does nothing)."""
        if lot_id in self._clerks:
            return
        self._clerks[lot_id] = pacing.position
        self.spawn(self._run_clerk(lot_id, random.Random(self._rng.random()), pacing), lot_id)

    @staticmethod
    async def _guarded(coroutine: Any, name: str) -> None:
        """A driver ends quietly when the service stops, and logs any other failure."""
        try:
            await coroutine
        except ServiceClosed:
            pass
        except GavelError as exc:
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
        """Register for every lot the bot has not looked at yet that it wants."""
        views = [view for view in self._service.views() if view.active]
        bot.seen &= {view.lot_id for view in views}
        for view in views:
            if view.lot_id in bot.seen or view.lot_id in self.unwanted:
                continue
            bot.seen.add(view.lot_id)
            state = self._service.state(view.lot_id)
            if state is None:
                continue
            rules = state.rules
            spec = self._specs.get(view.lot_id)
            if spec is not None and bot.index not in bidders_for(spec, self._bot_count):
                continue
            try:
                registration = await self._gateway.register(bot.account, view.lot_id)
                if registration.deposit_state == "REQUIRED":
                    key = f"dep-{bot.account}-{view.lot_id}"
                    await self._gateway.freeze_deposit(bot.account, view.lot_id, key)
            except GavelError as exc:
                logger.info("bot %s skips %s: %s", bot.name, view.lot_id, exc.message)
                continue
            if spec is not None:
                budget = _steps_above(rules, budget_steps(spec, bot.index))
            else:
                steps = (1, 6) if rules.format is Format.LIVE_AUCTIONEER else (1, 14)
                budget = _budget(rules, bot.rng, *steps)
            bot.lots[view.lot_id] = _BotLot(registration.code, budget, rules)

    async def _run_bot(self, bot: Bot) -> None:
        await self._sign_up(bot)
        await self._register(bot)
        while bot.lots or self._pace is not None:
            await asyncio.sleep(bot.rng.uniform(*self._pause))
            if self._pace is not None:
                await self._register(bot)
            views = [self._service.view(lot_id) for lot_id in bot.lots]
            live = [view for view in views if view is not None and view.active]
            for view in views:
                if view is not None and not view.active:
                    del bot.lots[view.lot_id]
            if not live and self._pace is None:
                return
            choices = [view for view in live if self._wants(bot, view)]
            if choices:
                await self._bid(bot, bot.rng.choice(choices))

    def _wants(self, bot: Bot, view: LotView) -> bool:
        mine = bot.lots[view.lot_id]
        if view.status != "OPEN" or view.leader_code == mine.code:
            return False
        if _amount(mine, view) > mine.budget:
            return False
        if self._pace is None:
            return True
        if mine.rules.format is Format.LIVE_AUCTIONEER:
            return bot.rng.random() < 0.5
        left = view.end - self._service.now()
        return bot.rng.random() < bid_chance(left, mine.rules.soft_close.window)

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
        elif timed and self._pace is not None and view.price is not None:
            for _ in range(jump_steps(bot.rng) - 1):  # sometimes a step or two more
                higher = rules.increment.step_above(rules.start_price, amount)
                if higher > mine.budget:
                    break
                amount = higher
        key = f"{bot.name}:{view.lot_id}:{bot.bids}:{bot.rng.getrandbits(32):08x}"
        unsigned = SignedBid(view.lot_id, kind, amount, rules.currency, key, b"", bot.account)
        signature = bot.key.sign(unsigned.signed_bytes())  # as a browser signs it
        request = dataclasses.replace(unsigned, signature=signature)
        ack = await self._gateway.bid(bot.account, request)
        if ack["result"] == "accepted":
            bot.bids += 1

    # -- the clerk of a live lot (rules C14) --

    async def _run_clerk(self, lot_id: str, rng: random.Random, pacing: RingPacing) -> None:
        try:
            await self._ring(lot_id, rng, pacing)
        finally:
            del self._clerks[lot_id]

    def _ring_busy(self, lot_id: str, position: int | None) -> bool:
        """Whether a lot placed before `lot_id` in the ring is in it or still to come."""
        if position is None:
            return False
        for other, place in self._clerks.items():
            if other != lot_id and place is not None and place < position:
                view = self._service.view(other)
                if view is not None and view.active:
                    return True
        return False

    async def _ring(self, lot_id: str, rng: random.Random, pacing: RingPacing) -> None:
        service = self._service
        state = service.state(lot_id)
        if state is None:
            return
        rules = state.rules
        if pacing.room_steps is None:
            room_budget = _budget(rules, rng, 2, 6)
        else:
            room_budget = _steps_above(rules, pacing.room_steps) if pacing.room_steps else -1
        last_change = (-1, "")
        quiet_since = opened_at = service.now()
        ring_opened = False
        while True:
            await asyncio.sleep(pacing.tick)
            state = service.state(lot_id)
            view = service.view(lot_id)
            if state is None or view is None:
                return
            now = service.now()
            if view.status == "SCHEDULED":
                if pacing.latest_open is not None and now >= pacing.latest_open:
                    reason = "withdrawn: the sale did not reach this lot in its time"
                    await service.submit(lot_id, Cancel(reason, by=Authority.CLERK))
                    return
                # The clerk brings the lot into the ring half a second before its catalogue
                # time (a live lot has no timer of its own), once the lot before is done.
                busy = self._ring_busy(lot_id, pacing.position)
                if now >= rules.start_at - SECOND // 2 and not busy:
                    await service.submit(lot_id, OpenRing(ask=rules.start_price))
                    await service.submit(lot_id, SetAutoAccept(on=True))
                    opened_at = quiet_since = now
                    ring_opened = True
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
            if not ring_opened:  # in the ring already (a restart): count from now
                opened_at = quiet_since = now
                ring_opened = True
            if live.pending is not None:
                # Held online bids are the console's to decide (auto-accept turned off there);
                # the clerk steps in only when nobody has for HELD_GRACE.
                if now - live.pending[3] >= HELD_GRACE:
                    await service.submit(lot_id, AcceptOnline(bid_seq=live.pending[0]))
                continue
            if (view.price or -1, view.leader_code or "") != last_change:
                last_change = (view.price or -1, view.leader_code or "")
                quiet_since = now
            if view.phase == "FAIR_WARNING":
                if view.hammer_not_before is not None and now >= view.hammer_not_before:
                    refusal = rejection(await service.submit(lot_id, Hammer()))
                    if refusal is not None and refusal.reason is RejectReason.NO_BIDS:
                        await service.submit(lot_id, PassLot())
                continue
            deadline = pacing.warn_by if pacing.warn_by is not None else opened_at + pacing.deadline
            room_bids = (
                now < opened_at + (deadline - opened_at) // 2
                and view.min_next <= room_budget
                and not (view.leader_code or "").startswith("floor:")
            )
            if room_bids and rng.random() < pacing.room_chance:
                await service.submit(lot_id, FloorBid(paddle=str(rng.randint(101, 180))))
            elif (now - quiet_since >= pacing.quiet and now - opened_at >= pacing.least) or (
                now >= deadline
            ):
                if view.price is None:
                    await service.submit(lot_id, PassLot())
                else:
                    await service.submit(lot_id, FairWarning())
