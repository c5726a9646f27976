"""Rules C6: soft close (anti-sniping). Pure: given the end and a triggering time, the new end."""

from __future__ import annotations

from .config import SoftClose, SoftCloseMode


def extended_end(
    soft_close: SoftClose, end: int, scheduled_end: int, extensions: int, t: int
) -> int | None:
    """The new end after an accepted triggering event at server time `t`, or None if unchanged.

    `FROM_BID` / `RESET_TO_REMAINING`: if `end − W ≤ t < end`, `end := max(end, t + E)`;
    `ADD_TO_END`: `end := end + E` in the window; `LIVE_RESET`: every bid,
    `end := max(end, t + E)` (clarification 4: a bid never brings the end earlier). Capped by
    `scheduled_end + cap_total` (the caller moves `scheduled_end` by the time the lot spent
    paused, clarification 5) and by `cap_count`.
    """
    mode = soft_close.mode
    if mode is SoftCloseMode.OFF:
        return None
    if soft_close.cap_count is not None and extensions >= soft_close.cap_count:
        return None
    if mode is SoftCloseMode.LIVE_RESET:
        new_end = max(end, t + soft_close.extend)
    elif not end - soft_close.window <= t < end:
        return None
    elif mode is SoftCloseMode.ADD_TO_END:
        new_end = end + soft_close.extend
    else:  # FROM_BID, RESET_TO_REMAINING
        new_end = max(end, t + soft_close.extend)
    if soft_close.cap_total is not None:
        new_end = min(new_end, scheduled_end + soft_close.cap_total)
    return new_end if new_end > end else None
