"""The entry-verification pipeline that the auditor and every notary run, numbered once.

Each step is a function that raises :class:`EntryRejected` naming its :class:`Step` and the
entry at fault; callers run them in step order over the entries they hold (a notary: each
increment it is asked to co-sign; the auditor: a whole log, steps 1, 2 and 7 spread over
worker processes), so the failure reported is the lowest step, then the lowest ``seq``:

1. *parse* - ``chain.parse_entry`` accepts the bytes (a canonical ledger entry);
2. *chain* - :func:`check_link`: ``seq`` is the leaf index, ``prev`` the previous leaf hash;
3. *roots* - the leaf hashes recomputed from the bytes give the signed root (the caller's
   tree: a notary's compact range, the auditor's recomputed tree);
4. *log signatures* - :func:`check_house`: entry 0 is the ``house`` entry naming the log's
   origin and key, and no other entry is one (the checkpoints' signatures are the caller's);
7. *actor signatures* - the entry's ``actor.kid`` names a key valid at that point
   (:class:`ActorKeys`, changed by ``key`` entries from the next entry on) and the signature
   over :func:`signed_message` verifies under one of them (:func:`check_actor`);
8. *replay* - :func:`replay_entry`: the lot replay (:class:`LedgerReplay`) re-runs the
   commands through the rules engine and checks the signed-bid rules;
9. *time bounds* - :func:`check_time`: ``t`` never decreases, is not ahead of the verifier's
   clock by more than its skew, and times stated in bodies are not after ``t``.

Steps 5, 6 and 10 (quorum, consistency, receipts) concern checkpoints and receipts, not
entries. Pure: no I/O, no clock (``now_us`` is a parameter).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from chain import ChainError, Ed25519Verifier, Entry, EntryError, parse_time, verify_chain

from .entries import signature_verifies, signed_message
from .errors import EntryRejected, ReplayError
from .keys import ActorKeys
from .replay import LedgerReplay
from .steps import Step

__all__ = [
    "COMMAND_TYPES",
    "check_actor",
    "check_house",
    "check_link",
    "check_time",
    "replay_entry",
    "signed_message",
]

COMMAND_TYPES: Final = frozenset({"bid", "registration", "deposit", "lot_state"})
"""Entry types that record a lot command (their ``ingress`` is replayed in step 8)."""

_SECOND_US: Final = 1_000_000


def check_link(seq: int, previous_leaf: bytes | None, entry: Entry) -> None:
    """Step 2: ``entry`` (parsed) is at index ``seq`` and chains to ``previous_leaf`` (the
    leaf hash of entry ``seq - 1``; ``None`` for entry 0)."""
    if entry.seq != seq:
        raise EntryRejected(Step.CHAIN, seq, f"the entry at index {seq} has seq {entry.seq}")
    try:
        verify_chain(previous_leaf, entry)
    except EntryError as exc:
        raise EntryRejected(
            Step.CHAIN, seq, f"prev does not match the leaf hash of entry {seq - 1}"
        ) from exc


def check_house(
    seq: int,
    kind: str,
    body: Mapping[str, Any],
    origin: str,
    log_keys: Collection[Ed25519Verifier],
) -> ActorKeys | None:
    """Step 4: entry 0 is the ``house`` entry of ``origin`` whose key is one of ``log_keys``
    (returns the first actor keys: the house key); any later ``house`` entry is refused
    (returns ``None`` for other entries)."""
    if seq == 0:
        if kind != "house":
            raise EntryRejected(Step.LOG_SIGNATURES, 0, f"entry 0 is a {kind} entry, not house")
        return ActorKeys.of_house(seq, body, origin, log_keys)
    if kind == "house":
        raise EntryRejected(
            Step.LOG_SIGNATURES, seq, "a second house entry: only entry 0 is the house entry"
        )
    return None


def check_actor(
    seq: int, kid: str, candidates: tuple[bytes, ...], signature: bytes, message: bytes
) -> None:
    """Step 7: the actor signature verifies under one of the keys ``kid`` names
    (:meth:`ActorKeys.candidates`) over ``message`` (:func:`signed_message`)."""
    if not any(signature_verifies(key, signature, message) for key in candidates):
        raise EntryRejected(
            Step.ACTOR_SIGNATURES, seq, f"actor signature does not verify for kid {kid!r}"
        )


def replay_entry(
    replay: LedgerReplay, seq: int, kind: str, t_us: int, body: Mapping[str, Any], kid: str
) -> None:
    """Step 8: feed one entry to the lot replay. Entry 0 only tells the replay whether bids
    must be signed (its ``t`` is step 9's business)."""
    if seq == 0 and kind == "house":
        replay.identities.house(body)
        return
    try:
        replay.add(seq, kind, t_us, body, kid)
    except ReplayError as exc:
        where = f"entry {exc.seq}" + (f" (lot {exc.lot})" if exc.lot else "")
        message = str(exc).removeprefix(f"{where}: ")
        raise EntryRejected(Step.REPLAY, exc.seq, message, lot=exc.lot) from exc
    except (ChainError, ValueError, TypeError, KeyError) as exc:
        raise EntryRejected(Step.REPLAY, seq, f"entry cannot be replayed: {exc}") from exc


def check_time(
    seq: int,
    kind: str,
    t_us: int,
    body: Mapping[str, Any],
    *,
    previous_t_us: int,
    now_us: int | None,
    skew_us: int,
) -> None:
    """Step 9 for one entry: ``t`` is not before ``previous_t_us`` (the entry before it; -1
    for entry 0) nor after ``now_us + skew_us`` (``now_us`` ``None``: not checked); a ``lot``'s
    ``created`` and a non-command body's ``ingress`` are not after ``t`` (a command's
    ``ingress`` is replayed in step 8)."""
    if t_us < previous_t_us:
        raise EntryRejected(Step.TIME_BOUNDS, seq, "t is earlier than the previous entry's t")
    if now_us is not None and t_us > now_us + skew_us:
        ahead = (t_us - now_us) / _SECOND_US
        raise EntryRejected(
            Step.TIME_BOUNDS, seq, f"t is {ahead:.3f} s ahead of the verifier's clock"
        )
    if kind == "lot":
        stamp = body.get("created")
    elif kind in COMMAND_TYPES:
        return
    else:
        stamp = body.get("ingress")
    if stamp is None:
        return
    if not isinstance(stamp, str):
        raise EntryRejected(Step.TIME_BOUNDS, seq, f"the {kind}'s stated time is not a string")
    try:
        stated = parse_time(stamp)
    except ChainError as exc:
        raise EntryRejected(
            Step.TIME_BOUNDS, seq, f"unreadable time in body: {exc.message}"
        ) from exc
    if stated > t_us:
        raise EntryRejected(Step.TIME_BOUNDS, seq, f"{kind} time is after the entry's t")
