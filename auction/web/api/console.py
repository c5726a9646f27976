"""The auctioneer's console routes: a new lot (from a preset or parameters)
and the commands the console gives a lot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ...accounts import Role
from ...errors import BadInput, Conflict, NotAllowed, NotFound, RefusedByRules
from ...rules import (
    AcceptOnline,
    Authority,
    Cancel,
    CloseLot,
    CodecError,
    ConfigError,
    DeclineOnline,
    FairWarning,
    FloorBid,
    Hammer,
    NextLot,
    OpenLot,
    OpenRing,
    PassLot,
    Pause,
    Reopen,
    Resume,
    RulesError,
    SetAsk,
    SetAutoAccept,
    SetIncrement,
    Suspend,
    UndoLastBid,
    decode,
    english_timed,
    fixed_price,
    judicial,
    live_auctioneer,
    rejection,
)
from ...service import LotExists, public_events
from ...storage import StorageConflict
from ...words import command_refusal_words, without_engine_names
from ..bodies import read_json_body
from ..lot_input import check_id, check_parameters
from .common import NO_STORE, ApiRoutes, text_field

#: Commands the console may send (rules C11 authority commands, C14 the live ring).
CONSOLE_COMMANDS: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (
        OpenLot,
        CloseLot,
        Pause,
        Suspend,
        Resume,
        Cancel,
        OpenRing,
        SetAsk,
        SetIncrement,
        SetAutoAccept,
        FloorBid,
        AcceptOnline,
        DeclineOnline,
        FairWarning,
        Hammer,
        PassLot,
        UndoLastBid,
        Reopen,
        NextLot,
    )
}


#: Lot presets the console can create from, and the parameters each accepts.
PRESETS: Mapping[str, tuple[Callable[..., Any], frozenset[str]]] = {
    "JUDICIAL_CN": (
        judicial,
        frozenset(
            {
                "start_price",
                "step",
                "start_at",
                "end_at",
                "appraisal",
                "currency",
                "deposit_pct_basis_points",
                "min_duration",
                "window",
                "extend",
                "legal_timezone",
            }
        ),  # fmt: skip
    ),
    "ENGLISH_TIMED": (
        english_timed,
        frozenset(
            {
                "start_price",
                "start_at",
                "end_at",
                "reserve",
                "currency",
                "deposit",
                "legal_timezone",
            }
        ),
    ),
    "LIVE_AUCTIONEER": (
        live_auctioneer,
        frozenset(
            {
                "start_price",
                "start_at",
                "currency",
                "fair_warning_dwell",
                "deposit",
                "legal_timezone",
            }
        ),
    ),
    "FIXED_PRICE_SALE": (
        fixed_price,
        frozenset(
            {
                "price",
                "start_at",
                "end_at",
                "currency",
                "deposit_pct_basis_points",
                "priority_window",
                "legal_timezone",
            }
        ),  # fmt: skip
    ),
}


def refuse_claimed_authority(by: object) -> None:
    """The console acts as the clerk (or an administrator): an order recorded as the court's
    comes only from a court session (`auction.web.court`), the platform's from the server."""
    if by == Authority.COURT.value:
        raise NotAllowed(
            "only a court session can give an order as the court "
            "(POST /api/court/lots/{lot}/orders); the console acts as the clerk",
            code="COURT_ONLY",
        )
    if by == Authority.PLATFORM.value:
        raise NotAllowed(
            "only the server itself pauses a lot as the platform", code="PLATFORM_ONLY"
        )


def check_time_zone(value: object) -> None:
    """A lot's legal time zone must be an IANA zone name the server knows (rules C15)."""
    try:
        if not isinstance(value, str) or not value or len(value) > 64:
            raise ValueError(value)
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise BadInput(
            "'legal_timezone' must be a time zone name such as Asia/Shanghai or Europe/London",
            code="BAD_PARAMETERS",
        ) from None


class ConsoleRoutes(ApiRoutes):
    """The auctioneer's console: new lots and commands to a lot."""

    async def create_lot(self, request: web.Request) -> web.Response:
        await self._session(request, Role.AUCTIONEER)
        body = await read_json_body(request)
        service = self._parts(request).service
        preset_name = text_field(body, "preset", 32)
        if preset_name not in PRESETS:
            raise BadInput(f"preset must be one of {sorted(PRESETS)}", code="UNKNOWN_PRESET")
        lot_id = check_id(text_field(body, "lot", 64), "lot")
        title = text_field(body, "title")
        preset, allowed = PRESETS[preset_name]
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict) or not set(parameters) <= allowed:
            extra = sorted(set(parameters) - allowed) if isinstance(parameters, dict) else []
            raise BadInput(
                f"unknown parameters {extra}; use {sorted(allowed)}", code="BAD_PARAMETERS"
            )
        if "legal_timezone" in parameters:
            check_time_zone(parameters["legal_timezone"])
        check_parameters({k: v for k, v in parameters.items() if k != "legal_timezone"})
        try:
            rules = preset(**parameters)
        except (ConfigError, RulesError, TypeError) as exc:
            words = without_engine_names(str(exc))
            raise BadInput(f"these rules are not valid: {words}", code="BAD_PARAMETERS") from exc
        sale = body.get("sale")
        if sale is not None:
            sale = check_id(text_field(body, "sale", 64), "sale")
            sale_title = text_field(body, "sale_title") if "sale_title" in body else sale
            with contextlib.suppress(StorageConflict):  # the sale exists: the lot joins it
                await service.add_sale(sale, sale_title)
        try:
            view = await service.add_lot(lot_id, rules, title, sale)
        except (LotExists, StorageConflict):
            raise Conflict(f"a lot {lot_id!r} already exists", code="LOT_EXISTS") from None
        return web.json_response({"lot": view.to_json()}, status=201, headers=NO_STORE)

    async def command(self, request: web.Request) -> web.Response:
        await self._session(request, Role.AUCTIONEER)
        body = await read_json_body(request)
        service = self._parts(request).service
        lot = request.match_info["lot"]
        if service.view(lot) is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        kind = body.get("type")
        if not isinstance(kind, str) or kind not in CONSOLE_COMMANDS:
            raise BadInput(
                f"type must be one of {sorted(CONSOLE_COMMANDS)}", code="UNKNOWN_COMMAND"
            )
        fields = {field.name for field in dataclasses.fields(CONSOLE_COMMANDS[str(kind)])}
        if "by" in fields and "by" not in body:
            body["by"] = Authority.CLERK.value
        if "by" in fields:
            refuse_claimed_authority(body["by"])
        try:
            command = decode(body)
        except (CodecError, RulesError) as exc:
            raise BadInput(f"the command is not valid: {exc}", code="BAD_COMMAND") from exc
        events = await service.submit(lot, command)
        refusal = rejection(events)
        if refusal is not None:
            words = command_refusal_words(refusal.command, refusal.reason, service.state(lot))
            raise RefusedByRules(words, code=refusal.reason.value)
        view = service.view(lot)
        answer = {
            "events": list(public_events(events)),
            "lot": view.to_json() if view is not None else None,
        }
        return web.json_response(answer, headers=NO_STORE)
