"""Sales run from the console: a catalogue of lots created together (judicial: staggered closes,
rules C12), its notice published, paused and resumed with a reason, cancelled, closed; and the
relisting of a failed lot (rules C10: a new lot at ≥ 80 % after the notice, or after a judicial
lot's second failure the fixed-price sale 变卖, clarification 9).

Three layers:

* pure: `SalePlan.parse(body)` checks what the console sent (typed `SaleError`), `plan_rules`
  turns it into each lot's rules with the ends staggered (`auction.rules.stagger`);
  `action_body` is the ledger body of a sale action (no personal data: ids, amounts, times,
  the staff alias of who acted (`auction.sealed.staff_alias`, not the account id), and the
  reason the staff member typed);
* `SaleStore`: the tables `gavel_sale` and `gavel_relist` on the auction's database (SQLite or
  PostgreSQL; created if missing, like the staff sessions table); blocking;
* `auction.sales.desk.SaleDesk`: the actions, each through the service (lots' commands are
  the engine's own `Pause`, `Resume`, `Cancel`, logged like every command) and one `document`
  ledger entry per sale action, house-signed:

      {"v": 1, "kind": "sale_action", "sale": "s-1", "action": "created" | "notice" | "paused"
       | "resumed" | "cancelled" | "closed" | "relisted", "by": "<staff alias s-...>", ...}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from ..errors import BadInput, Conflict, GavelError, NotFound, Unavailable
from ..rules import (
    SECOND,
    ConfigError,
    LotRules,
    LotStatus,
    RulesError,
    english_timed,
    judicial,
    stagger,
)

if TYPE_CHECKING:
    pass

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Rules C12: lot k of a judicial sale closes Δ after lot k - 1 (typically 30 to 60 seconds,
#: the console's default is 30): staggered, so Δ > 0, and at most 10 minutes.
INTERVAL_RANGE = (SECOND, 600 * SECOND)
MAX_LOTS = 50
MAX_NOTICE = 20_000  # characters
PRESETS = ("JUDICIAL_CN", "ENGLISH_TIMED")
OPEN_LIKE = frozenset({LotStatus.OPEN})
NOT_STARTED = frozenset({LotStatus.SCHEDULED})


# --- errors ----------------------------------------------------------------------------------


class SaleError(GavelError):
    """Base of this module's errors: a stable `code` and a sentence."""

    code = "BAD_SALE"


class BadSale(SaleError, BadInput):
    """The sale's plan or action is not acceptable as given."""


class UnknownSale(SaleError, NotFound):
    code = "UNKNOWN_SALE"


class SaleExists(SaleError, Conflict):
    code = "SALE_EXISTS"


class SaleState(SaleError, Conflict):
    """The action does not fit where the sale is (notice already out, nothing open, ...)."""

    code = "SALE_STATE"


class CannotRelist(SaleError, BadInput):
    code = "CANNOT_RELIST"


class RelistTooEarly(SaleError, BadInput):
    """The relisting notice would not have run (clarification 7); `earliest_start_us` says
    when the lot may open at the earliest."""

    code = "NOTICE_TOO_SHORT"

    def __init__(self, message: str, earliest_start_us: int) -> None:
        super().__init__(message)
        self.earliest_start_us = earliest_start_us

    def details(self) -> dict[str, Any]:
        return {"earliest_start_us": self.earliest_start_us}


class SalesUnavailable(SaleError, Unavailable):
    code = "UNAVAILABLE"


# --- pure: the console's plan ----------------------------------------------------------------


def _id(value: object, what: str) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise BadSale(f"{what} must be 1 to 64 letters, digits, dots, dashes or underscores")
    return value


def _text(value: object, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadSale(f"{what} must be a text of 1 to {limit} characters")
    return value.strip()


def _whole(value: object, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadSale(f"{what} must be a whole number of at least {low}")
    return value


@dataclass(frozen=True, slots=True)
class LotPlan:
    lot_id: str
    title: str
    start_price: int  # minor units
    step: int
    appraisal: int | None = None


@dataclass(frozen=True, slots=True)
class SalePlan:
    """What the console sends to create a sale (times in microseconds since the epoch)."""

    sale_id: str
    title: str
    preset: str
    start_at: int
    first_end: int
    interval: int
    lots: tuple[LotPlan, ...]
    currency: str = "CNY"
    min_duration: int | None = None  # judicial: the shortest a lot may run (default 24 h)
    window: int | None = None  # judicial soft close: a bid this close to the end extends it
    extend: int | None = None  # ... by this much (defaults 5 and 5 minutes)
    #: Judicial: 1 for a first auction (一拍), 2 for a second auction (二拍) of property whose
    #: first auction failed before; a second auction's failure leads to the fixed-price sale.
    round: int = 1
    legal_timezone: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> SalePlan:
        preset = body.get("preset", "JUDICIAL_CN")
        if preset not in PRESETS:
            raise BadSale(f"preset must be one of {', '.join(PRESETS)}")
        raw_lots = body.get("lots")
        if not isinstance(raw_lots, list) or not 1 <= len(raw_lots) <= MAX_LOTS:
            raise BadSale(f"a sale has 1 to {MAX_LOTS} lots")
        lots = []
        for n, raw in enumerate(raw_lots, 1):
            if not isinstance(raw, dict):
                raise BadSale(f"lot {n} must be an object")
            appraisal = raw.get("appraisal")
            lots.append(
                LotPlan(
                    lot_id=_id(raw.get("lot"), f"lot {n}'s id"),
                    title=_text(raw.get("title"), f"lot {n}'s title"),
                    start_price=_whole(raw.get("start_price"), f"lot {n}'s start price", 1),
                    step=_whole(raw.get("step"), f"lot {n}'s bid step", 1),
                    appraisal=None
                    if appraisal is None
                    else _whole(appraisal, f"lot {n}'s appraisal", 1),
                )
            )
        if len({lot.lot_id for lot in lots}) != len(lots):
            raise BadSale("two lots of the sale have the same id")
        interval = _whole(body.get("interval_us"), "the interval between closes")
        low, high = INTERVAL_RANGE
        if preset == "JUDICIAL_CN" and len(lots) > 1 and not low <= interval <= high:
            raise BadSale(
                f"the lots of a judicial sale close one after the other, {low // SECOND} to "
                f"{high // SECOND} seconds apart (rules C12)"
            )
        start_at = _whole(body.get("start_at"), "the start time", 1)
        first_end = _whole(body.get("first_end"), "the first lot's end", 1)
        if first_end <= start_at:
            raise BadSale("the first lot must end after the sale starts")
        currency = body.get("currency", "CNY")
        if not isinstance(currency, str) or re.fullmatch(r"[A-Z]{3}", currency) is None:
            raise BadSale("currency must be a three-letter code such as CNY")
        min_duration = body.get("min_duration_us")
        window, extend = body.get("window_us"), body.get("extend_us")
        auction_round = body.get("round", 1)
        if auction_round not in (1, 2) or isinstance(auction_round, bool):
            raise BadSale("round must be 1 (a first auction) or 2 (a second auction)")
        if auction_round == 2 and preset != "JUDICIAL_CN":
            raise BadSale("only a judicial sale has a second auction")
        zone = body.get("legal_timezone")
        return cls(
            sale_id=_id(body.get("sale"), "the sale id"),
            title=_text(body.get("title"), "the sale's title"),
            preset=str(preset),
            start_at=start_at,
            first_end=first_end,
            interval=interval,
            lots=tuple(lots),
            currency=currency,
            min_duration=None
            if min_duration is None
            else _whole(min_duration, "the shortest duration", 1),
            legal_timezone=None if zone is None else _text(zone, "the time zone", 64),
            window=None if window is None else _whole(window, "the soft-close window", 1),
            extend=None if extend is None else _whole(extend, "the extension", 1),
            round=int(auction_round),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "start_at": self.start_at,
            "first_end": self.first_end,
            "interval_us": self.interval,
            "currency": self.currency,
            "round": self.round,
            "lots": [lot.lot_id for lot in self.lots],
        }


def plan_rules(plan: SalePlan, now: int) -> list[LotRules]:
    """Each lot's rules, in catalogue order, ends staggered `T0 + k·Δ` (rules C12)."""
    if plan.start_at <= now:
        raise BadSale("the sale must start in the future (its notice comes first)")
    rules = []
    for lot in plan.lots:
        options: dict[str, Any] = {}
        if plan.legal_timezone is not None:
            options["legal_timezone"] = plan.legal_timezone
        try:
            if plan.preset == "JUDICIAL_CN":
                for name in ("min_duration", "window", "extend"):
                    if getattr(plan, name) is not None:
                        options[name] = getattr(plan, name)
                one = judicial(
                    start_price=lot.start_price,
                    step=lot.step,
                    start_at=plan.start_at,
                    end_at=plan.first_end,
                    appraisal=lot.appraisal,
                    currency=plan.currency,
                    **options,
                ).replace(relist_count=plan.round - 1)
            else:
                one = english_timed(
                    start_price=lot.start_price,
                    start_at=plan.start_at,
                    end_at=plan.first_end,
                    currency=plan.currency,
                    **options,
                )
            rules.append(one)
        except (ConfigError, RulesError, TypeError) as exc:
            raise BadSale(f"the rules of lot {lot.lot_id} are not valid: {exc}") from exc
    try:
        return stagger(rules, plan.first_end, plan.interval)
    except (ConfigError, RulesError) as exc:
        raise BadSale(f"the staggered closes are not valid: {exc}") from exc


def action_body(sale: str, action: str, by: str, **details: Any) -> dict[str, Any]:
    """The ledger body of a sale action (module docstring): ids, times, amounts, reasons."""
    return {"v": 1, "kind": "sale_action", "sale": sale, "action": action, "by": by} | details


# --- storage ---------------------------------------------------------------------------------

_METADATA = sa.MetaData()

SALES = sa.Table(
    "gavel_sale",
    _METADATA,
    sa.Column("sale_id", sa.String(128), primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),  # JSON of SalePlan.to_json()
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),  # of the last pause, resume or cancellation
    sa.Column("notice", sa.Text, nullable=True),
    sa.Column("notice_sha256", sa.String(64), nullable=True),
    sa.Column("notice_entry", sa.BigInteger, nullable=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

RELISTS = sa.Table(
    "gavel_relist",
    _METADATA,
    sa.Column("lot_id", sa.String(128), primary_key=True),  # the new lot
    sa.Column("from_lot", sa.String(128), nullable=False, index=True),
    sa.Column("basis", sa.Text, nullable=False),
    sa.Column("entry", sa.BigInteger, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class SaleRecord:
    sale_id: str
    plan: dict[str, Any]
    status: str  # scheduled | published | paused | cancelled | closed
    reason: str | None
    notice: str | None
    notice_sha256: str | None
    notice_entry: int | None
    created_us: int
    updated_us: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sale": self.sale_id,
            "status": self.status,
            "reason": self.reason,
            "notice": self.notice,
            "notice_sha256": self.notice_sha256,
            "notice_entry": self.notice_entry,
            "interval_us": self.plan.get("interval_us"),
            "created_us": self.created_us,
        }


class SaleStore:
    """The sales' console state and the relisting links (module docstring). Blocking."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise SalesUnavailable(f"cannot create the sales tables: {exc}") from exc

    def _run(self, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.IntegrityError as exc:
            raise SaleExists("that sale or lot is already stored") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise SalesUnavailable("the sales tables failed") from exc

    def add(self, plan: SalePlan, now_us: int) -> None:
        row = {
            "sale_id": plan.sale_id,
            "plan": json.dumps(plan.to_json(), sort_keys=True),
            "status": "scheduled",
            "created_us": now_us,
            "updated_us": now_us,
        }
        self._run(lambda connection: connection.execute(SALES.insert().values(**row)))

    def get(self, sale_id: str) -> SaleRecord | None:
        def read(connection: Connection) -> SaleRecord | None:
            row = connection.execute(sa.select(SALES).where(SALES.c.sale_id == sale_id)).first()
            return None if row is None else _record(row)

        result: SaleRecord | None = self._run(read)
        return result

    def all(self) -> list[SaleRecord]:
        def read(connection: Connection) -> list[SaleRecord]:
            query = sa.select(SALES).order_by(SALES.c.created_us, SALES.c.sale_id)
            return [_record(row) for row in connection.execute(query)]

        result: list[SaleRecord] = self._run(read)
        return result

    def update(self, sale_id: str, now_us: int, **values: Any) -> None:
        self._run(
            lambda connection: connection.execute(
                SALES.update().where(SALES.c.sale_id == sale_id).values(updated_us=now_us, **values)
            )
        )

    def add_relist(self, lot_id: str, from_lot: str, basis: str, entry: int, now_us: int) -> None:
        row = {
            "lot_id": lot_id,
            "from_lot": from_lot,
            "basis": basis,
            "entry": entry,
            "created_us": now_us,
        }
        self._run(lambda connection: connection.execute(RELISTS.insert().values(**row)))

    def relists(self) -> dict[str, tuple[str, str]]:
        """`{new lot: (the lot it relists, basis)}`."""

        def read(connection: Connection) -> dict[str, tuple[str, str]]:
            return {
                row.lot_id: (row.from_lot, row.basis)
                for row in connection.execute(sa.select(RELISTS))
            }

        result: dict[str, tuple[str, str]] = self._run(read)
        return result


def _record(row: Any) -> SaleRecord:
    return SaleRecord(
        sale_id=row.sale_id,
        plan=json.loads(row.plan),
        status=row.status,
        reason=row.reason,
        notice=row.notice,
        notice_sha256=row.notice_sha256,
        notice_entry=None if row.notice_entry is None else int(row.notice_entry),
        created_us=int(row.created_us),
        updated_us=int(row.updated_us),
    )


__all__ = [
    "CannotRelist",
    "LotPlan",
    "RelistTooEarly",
    "SaleError",
    "SaleExists",
    "SalePlan",
    "SaleRecord",
    "SaleState",
    "SaleStore",
    "SalesUnavailable",
    "UnknownSale",
    "action_body",
    "plan_rules",
]
