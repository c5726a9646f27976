"""The living demo: the schedule of `auction.demo.schedule` made real (an adapter).

* `SchedulePlan` — the schedule's start, seed and speed — is written to
  `DATA/demo-schedule.json` on the first start and read on every restart: a restart on the same
  data continues the same schedule (same lot ids, same times).
* `LivingCatalogue.run` creates every lot of the schedule that is announced by now and not
  stored yet (found by its id; a lot whose slot passed while the demo was stopped is skipped,
  one whose opening passed opens at once), ahead of its opening, through the service like the
  console's create-lot route (`add_sale`, `add_lot`); it tells the bots which of them want each
  lot (`Drivers.expect`) and gives every ring lot its clerk (`Drivers.run_ring`). It then
  sleeps until the schedule's next announcement.
* `wipe_demo_data` is `gavel demo --fresh`: it deletes a demo data directory (and nothing that
  does not look like one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..gateway import IDP_KEY_FILE
from ..identity.records import FINGERPRINT_KEY_FILE
from ..service import AuctionService, LotExists, ServiceError
from ..storage import HOUSE_KEY_FILE, POLICY_FILE, SQLITE_FILE, StorageConflict, StorageError
from .drivers import Drivers, RingPacing
from .lots import property_lot
from .notaries import DemoError
from .schedule import SECOND, LotSpec, Pace, Stream, next_announcement, on_time, schedule

logger = logging.getLogger(__name__)

#: Where the schedule's start, seed and speed are kept, in the demo's data directory.
PLAN_FILE = "demo-schedule.json"

#: What a demo data directory holds (`--fresh` deletes a directory holding nothing else).
DEMO_ENTRIES = frozenset(
    {
        SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm", f"{SQLITE_FILE}-journal",
        HOUSE_KEY_FILE, IDP_KEY_FILE, FINGERPRINT_KEY_FILE, POLICY_FILE, "notaries",
        "recordings", PLAN_FILE, f"{PLAN_FILE[:-5]}.tmp",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """The living catalogue's parameters, fixed when its data directory is made."""

    start: int  # UTC µs
    seed: int
    speed: float

    @property
    def pace(self) -> Pace:
        return Pace.at(self.speed)

    def to_json(self) -> str:
        body = {"version": 1, "start_us": self.start, "seed": self.seed, "speed": self.speed}
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def parse(cls, text: str) -> SchedulePlan:
        """Raises `DemoError` when `text` is not a plan."""
        try:
            body = json.loads(text)
            plan = cls(int(body["start_us"]), int(body["seed"]), float(body["speed"]))
            Pace.at(plan.speed)
        except (ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"{PLAN_FILE} is not a demo schedule: {exc}") from exc
        return plan


def load_plan(
    directory: Path, now: int, seed: int | None, speed: float
) -> tuple[SchedulePlan, bool]:
    """The plan stored in `directory`, or a new one starting at `now` (written there). Returns
    it and whether it is new. A stored plan wins over `seed` and `speed`. Blocking."""
    path = directory / PLAN_FILE
    try:
        return SchedulePlan.parse(path.read_text(encoding="utf-8")), False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    if not 1 <= speed <= 1000 or math.isnan(speed):
        raise DemoError("the schedule's speed must be within 1..1000")
    plan = SchedulePlan(now, seed if seed is not None else secrets.randbits(32), speed)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(plan.to_json(), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise DemoError(f"cannot write {path}: {exc}") from exc
    return plan, True


def wipe_demo_data(directory: Path) -> bool:
    """Delete the demo data directory `directory` (`gavel demo --fresh`); returns whether there
    was one. Raises `DemoError`, deleting nothing, when it holds anything a demo does not make.
    Blocking."""
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise DemoError(f"{directory} is not a directory")
    foreign = sorted(item.name for item in directory.iterdir() if item.name not in DEMO_ENTRIES)
    if foreign:
        raise DemoError(
            f"{directory} does not look like a demo data directory (it holds {foreign[0]!r}); "
            "delete it yourself or pick another --data"
        )
    shutil.rmtree(directory)
    return True


class LivingCatalogue:
    """Keeps the schedule's lots in the service: see the module docstring."""

    def __init__(
        self,
        service: AuctionService,
        drivers: Drivers,
        plan: SchedulePlan,
        annotate: Callable[[LotSpec], Awaitable[object]] | None = None,
    ) -> None:
        """`annotate(spec)`, if given, adds what a buyer reads to a lot once it exists (its
        facts, pictures and documents: `auction.demo.property.seed_property`); it is called
        after each creation and, on the first pass, for every lot found stored."""
        self._service = service
        self._drivers = drivers
        self._annotate = annotate
        self.plan = plan
        self.pace = plan.pace
        self._sales: set[str] = set()
        self._behind = False  # a lot could not be created: try again soon
        self._started = False
        #: Lots this process created, and those it found stored.
        self.created = 0

    def describe(self) -> str:
        """One line for the console: what the schedule does, at what speed."""
        pace = self.pace
        speed = "" if pace.speed == 1 else f" (the schedule runs {pace.speed:g} times faster)"
        return (
            f"a court-ordered property lot opens every {_duration(pace.court_period)}, a live "
            f"lot comes up in the ring every {_duration(pace.ring_period)}{speed}"
        )

    async def run(self) -> None:
        """Create the due lots, sleep until the next announcement, again, until cancelled."""
        while True:
            await self.catch_up()
            now = self._service.now()
            wake = next_announcement(now, self.plan.start, self.pace)
            pause = 0.25 if self._behind else min(5.0, max(0.05, (wake - now) / SECOND))
            await asyncio.sleep(pause)

    async def catch_up(self) -> int:
        """Create every lot of the schedule due now that is not stored yet; returns how many."""
        service, plan = self._service, self.plan
        now = service.now()
        since = None
        if not self._started:  # a restart: the ring lots left in the ring or never run too
            self._sales = {view.sale_id for view in service.views() if view.sale_id}
            since = plan.start
            self._started = True
        made = 0
        self._behind = False
        for spec in schedule(now, plan.start, plan.seed, self.pace, since):
            self._drivers.expect(spec)
            view = service.view(spec.lot_id)
            if view is None and spec.end_at > now:
                timely = on_time(spec, now, self.pace)
                if timely is None:
                    continue
                try:
                    made += await self._create(timely)
                except StorageError as exc:  # e.g. SQLite busy: nothing was stored
                    logger.info("lot %s not created yet (%s); trying again", spec.lot_id, exc)
                    self._behind = True
                    continue
                view = service.view(spec.lot_id)
                if view is not None:
                    await self._annotated(spec)
            elif view is not None and since is not None:
                await self._annotated(spec)  # a restart: a lot stored without its facts
            if spec.stream is Stream.RING and view is not None and view.active:
                self._drivers.run_ring(spec.lot_id, RingPacing.for_spec(spec, self.pace))
        return made

    async def _annotated(self, spec: LotSpec) -> None:
        if self._annotate is None:
            return
        try:
            await self._annotate(spec)
        except (StorageError, ServiceError, ValueError) as exc:  # the lot stands without them
            logger.warning("lot %s: its facts and pictures were not added (%s)", spec.lot_id, exc)

    async def _create(self, spec: LotSpec) -> bool:
        service = self._service
        if spec.sale_id not in self._sales:
            try:
                await service.add_sale(spec.sale_id, spec.sale_title)
            except StorageConflict:
                pass  # stored before a restart, without a lot yet
            self._sales.add(spec.sale_id)
        lot = property_lot(spec)
        try:
            await service.add_lot(spec.lot_id, lot.rules, lot.title, spec.sale_id)
        except LotExists:
            return False
        self.created += 1
        return True


def _duration(microseconds: int) -> str:
    seconds = microseconds / SECOND
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
