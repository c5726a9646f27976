"""Money and time as integers (rules conventions): minor units and UTC microseconds."""

from __future__ import annotations

from .errors import CommandError, RejectReason

#: Largest amount the engine accepts, in minor units (10^15 fen is 10 trillion yuan).
MAX_AMOUNT = 10**15

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def check_amount(value: object, *, allow_zero: bool = False, what: str = "amount") -> int:
    """Return `value` if it is a valid amount in minor units; raise `CommandError` otherwise.

    Rejects bools, floats, strings, negatives and anything above `MAX_AMOUNT`.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(
            RejectReason.INVALID_AMOUNT,
            f"{what} must be an integer number of minor units, got {type(value).__name__}",
        )
    if value < 0 or (value == 0 and not allow_zero):
        raise CommandError(RejectReason.INVALID_AMOUNT, f"{what} must be positive, got {value}")
    if value > MAX_AMOUNT:
        raise CommandError(RejectReason.INVALID_AMOUNT, f"{what} {value} exceeds {MAX_AMOUNT}")
    return value


def check_time(value: object, what: str = "time") -> int:
    """Return `value` if it is an integer UTC microsecond timestamp; raise `CommandError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CommandError(RejectReason.INVALID_AMOUNT, f"{what} must be integer microseconds")
    return value


def check_id(value: object, what: str) -> str:
    """Return `value` if it is a non-empty, bounded, printable identifier."""
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise CommandError(RejectReason.NOT_PERMITTED, f"{what} must be a non-empty id")
    return value


def round_up(value: int, unit: int) -> int:
    """Round a non-negative integer up to a multiple of `unit`."""
    return -(-value // unit) * unit


def deposit_amount(start_price: int, pct_basis_points: int, unit: int) -> int:
    """Rules C3: `round_up(start_price × pct, unit)`, with pct in basis points (1 % = 100)."""
    return round_up(-(-start_price * pct_basis_points // 10_000), unit)
