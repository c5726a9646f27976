"""What the console may create (docs/protocol.md §1 "Console"): lot and sale ids, prices and
times, checked before the rules presets see them, each refusal a typed 422 in plain words.

* A lot or sale id is `ID_PATTERN`: 1 to 64 characters, ASCII letters, digits, `-` and `_`,
  starting with a letter or a digit (no `/`, `.`, spaces or anything a URL would change).
* Prices (`start_price`, `price`, `step`, `appraisal`) are whole minor units from 1 to `MAX_PRICE`;
  `reserve` and `deposit` from 0 to `MAX_PRICE`.
* Times (`start_at`, `end_at`) are microseconds between `EARLIEST_US` (2000-01-01) and
  `LATEST_US` (2100-01-01, UTC); durations (`min_duration`, `window`, `extend`,
  `fair_warning_dwell`, `priority_window`) from 0 to `MAX_DURATION_US` (366 days);
  `deposit_pct_basis_points` from 0 to 10,000 (100 %).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadInput
from ..rules import DAY, MAX_AMOUNT

#: Lot and sale ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: The largest price in minor units (10^15: ten trillion yuan in fen).
MAX_PRICE = MAX_AMOUNT
#: 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z in microseconds.
EARLIEST_US = 946_684_800_000_000
LATEST_US = 4_102_444_800_000_000
MAX_DURATION_US = 366 * DAY

_PRICES = frozenset({"start_price", "price", "step", "appraisal"})
_AMOUNTS = frozenset({"reserve", "deposit"})
_TIMES = frozenset({"start_at", "end_at"})
_DURATIONS = frozenset(
    {"min_duration", "window", "extend", "fair_warning_dwell", "priority_window"}
)
_CURRENCY = re.compile(r"[A-Z]{3}")


class InputError(BadInput):
    """A refused console input (a `BadInput`: 422), with `code` and a plain `message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def check_id(value: str, what: str) -> str:
    """`value` if it is a safe lot or sale id (`ID_PATTERN`); `InputError` otherwise."""
    if not ID_PATTERN.fullmatch(value):
        raise InputError(
            "BAD_ID",
            f"a {what} id is 1 to 64 letters (A-Z, a-z), digits, '-' or '_', starting with a "
            f"letter or a digit",
        )
    return value


def check_parameters(parameters: Mapping[str, Any]) -> None:
    """Check the types and ranges of a preset's parameters (the preset checks how they fit
    together); raise `InputError` (`BAD_PARAMETERS`)."""
    for name, value in parameters.items():
        if name == "currency":
            if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
                raise InputError("BAD_PARAMETERS", "currency is a three-letter code such as CNY")
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError("BAD_PARAMETERS", f"{name} must be a whole number")
        low, high, unit = _range(name)
        if not low <= value <= high:
            raise InputError(
                "BAD_PARAMETERS", f"{name} must be between {low:,} and {high:,} {unit}"
            )


def _range(name: str) -> tuple[int, int, str]:
    if name in _PRICES:
        return 1, MAX_PRICE, "minor units (fen, cents)"
    if name in _AMOUNTS:
        return 0, MAX_PRICE, "minor units (fen, cents)"
    if name in _TIMES:
        return EARLIEST_US, LATEST_US, "microseconds since 1970 (years 2000 to 2100)"
    if name in _DURATIONS:
        return 0, MAX_DURATION_US, "microseconds (at most 366 days)"
    if name == "deposit_pct_basis_points":
        return 0, 10_000, "basis points (0 to 100 %)"
    return 0, MAX_PRICE, "units"


__all__ = [
    "EARLIEST_US",
    "ID_PATTERN",
    "LATEST_US",
    "MAX_DURATION_US",
    "MAX_PRICE",
    "InputError",
    "check_id",
    "check_parameters",
]
