"""Beyond the tlog-witness spec: the content pipeline a notary runs on the entries a checkpoint
adds (:func:`verify_increment`), and the actor signatures it checks in batches
(:func:`verify_actor_checks`). Pure: no I/O; :mod:`notary.node` calls it on worker threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from auction.verify import (
    ActorKeys,
    EntryRejected,
    Step,
    check_actor,
    check_house,
    check_link,
    check_time,
    replay_entry,
    signed_message,
)
from chain import (
    ChainError,
    Checkpoint,
    CompactRange,
    Entry,
    leaf_hash,
    parse_entry,
)

from .core import (
    DEFAULT_MAX_SKEW_US,
    ActorCheck,
    ConsistentCheckpoint,
    Increment,
    LedgerCursor,
    LogTrust,
    MirroredEntry,
    NotaryState,
    SignatureChecker,
)
from .errors import (
    NotaryStateError,
    RefusedContentError,
)

__all__ = ["check_signatures_serially", "verify_actor_checks", "verify_increment"]

# --------------------------------------------------------------------------------------------
# Beyond the spec: the content pipeline


def _refuse(step: Step, message: str, seq: int | None = None) -> RefusedContentError:
    return RefusedContentError(message, step=step.label, seq=seq)


def _refused(error: EntryRejected) -> RefusedContentError:
    """The refusal of an entry the pipeline rejected: its step, and the entry (and lot) named in
    the message, as the auditor's report names them."""
    where = f"entry {error.seq}" + (f" (lot {error.lot})" if error.lot else "")
    return _refuse(error.step, f"{where}: {error.message}", error.seq)


def _done() -> None:
    return None


def check_signatures_serially(checks: Sequence[ActorCheck]) -> Callable[[], None]:
    """The default :data:`SignatureChecker`: verify now, in this thread."""
    verify_actor_checks(checks)
    return _done


def verify_actor_checks(checks: Sequence[ActorCheck]) -> None:
    """Verify actor signatures in order; raise :class:`RefusedContentError` at the first bad one.

    Step 7 of the shared pipeline (:func:`auction.verify.check_actor`).
    """
    for check in checks:
        try:
            check_actor(
                check.seq,
                check.entry.actor.kid,
                (check.public_key,),
                check.signature,
                check.message,
            )
        except EntryRejected as exc:
            raise _refused(exc) from exc


def verify_increment(
    state: NotaryState,
    accepted: ConsistentCheckpoint,
    entries: Sequence[bytes],
    cursor: LedgerCursor,
    trust: LogTrust,
    *,
    now_us: int,
    max_skew_us: int = DEFAULT_MAX_SKEW_US,
    check_signatures: SignatureChecker = check_signatures_serially,
) -> Increment:
    """Check entries ``[state.size, checkpoint.size)`` fetched from the log (see module doc).

    ``cursor`` must be at ``state.size``; it is advanced in place and marked ``stale`` on any
    failure. Raises :class:`RefusedContentError` (422, evidence) naming the step and ``seq``.
    The caller co-signs and commits the returned :class:`Increment` with the new checkpoint.
    """
    if cursor.stale or cursor.size != state.size:
        raise NotaryStateError("the ledger cursor is not at the co-signed size")
    checkpoint = accepted.checkpoint
    try:
        increment = _verify_increment(
            state, checkpoint, entries, cursor, trust, now_us, max_skew_us, check_signatures
        )
    except RefusedContentError as exc:
        cursor.stale = True
        exc.authenticated(checkpoint.size)
        raise
    except BaseException:
        cursor.stale = True
        raise
    return increment


def _verify_increment(
    state: NotaryState,
    checkpoint: Checkpoint,
    entries: Sequence[bytes],
    cursor: LedgerCursor,
    trust: LogTrust,
    now_us: int,
    max_skew_us: int,
    check_signatures: SignatureChecker,
) -> Increment:
    first = state.size
    # 3 roots, first: until the entries hash to the signed root nothing in them is the log's
    #   word (recompute the leaf hashes from the bytes, never trust a served hash)
    if len(entries) != checkpoint.size - first:
        raise _refuse(
            Step.ROOTS,
            f"the log served {len(entries)} entries for [{first}, {checkpoint.size})",
        )
    tree = CompactRange.from_hashes(0, first, state.compact)
    leaves = [leaf_hash(data) for data in entries]
    for digest in leaves:
        tree.append(digest)
    if tree.root() != checkpoint.root:
        raise _refuse(Step.ROOTS, "the log's entries do not hash to the checkpoint's root")
    # 1 parse
    parsed: list[Entry] = []
    for offset, data in enumerate(entries):
        try:
            parsed.append(parse_entry(data))
        except ChainError as exc:
            raise _refuse(Step.PARSE, f"not a ledger entry: {exc.message}", first + offset) from exc
    commands_before = cursor.replay.commands
    try:
        keys = _verify_parsed(parsed, entries, leaves, cursor, trust, check_signatures)
        # 9 time bounds
        last_time = cursor.last_time_us
        for entry in parsed:
            check_time(
                entry.seq,
                entry.type.value,
                entry.time_us,
                entry.body,
                previous_t_us=last_time,
                now_us=now_us,
                skew_us=max_skew_us,
            )
            last_time = entry.time_us
    except EntryRejected as exc:
        raise _refused(exc) from exc
    cursor.size = checkpoint.size
    cursor.keys = keys
    cursor.last_leaf = leaves[-1] if leaves else cursor.last_leaf
    cursor.last_time_us = last_time
    mirrored = tuple(
        MirroredEntry(first + offset, leaves[offset], bytes(data))
        for offset, data in enumerate(entries)
    )
    return Increment(
        checkpoint.size,
        checkpoint.root,
        tree.hashes,
        mirrored,
        cursor.replay.commands - commands_before,
    )


def _verify_parsed(
    parsed: Sequence[Entry],
    entries: Sequence[bytes],
    leaves: Sequence[bytes],
    cursor: LedgerCursor,
    trust: LogTrust,
    check_signatures: SignatureChecker,
) -> ActorKeys:
    """Steps 2, 4, 7 and 8 of the shared pipeline over parsed entries; returns the actor keys
    after them. Raises :class:`EntryRejected` (or :class:`RefusedContentError` from
    ``check_signatures``)."""
    # 2 chain
    previous = cursor.last_leaf or None
    for offset, entry in enumerate(parsed):
        check_link(cursor.size + offset, previous, entry)
        previous = leaves[offset]
    # 4 log signatures: entry 0 is the house entry of this log's key, and only entry 0
    houses = [
        check_house(entry.seq, entry.type.value, entry.body, trust.origin, trust.verifiers)
        for entry in parsed
    ]
    # 7 actor signatures: every actor signs with a key valid at that point of the log
    keys = cursor.keys
    checks: list[ActorCheck] = []
    for offset, entry in enumerate(parsed):
        house = houses[offset]
        if house is not None:
            keys = house
        try:
            candidates = keys.candidates(entry.seq, entry.actor.kid)
            message = signed_message(entry.type.value, entries[offset])
            if len(candidates) == 1:
                checks.append(ActorCheck(entry.seq, candidates[0], entry.actor.sig, message, entry))
            else:
                check_actor(entry.seq, entry.actor.kid, candidates, entry.actor.sig, message)
            keys = keys.after(entry.seq, entry.type.value, entry.body)
        except EntryRejected:
            verify_actor_checks(checks)  # a bad signature earlier in the log comes first
            raise
    wait_for_signatures = check_signatures(checks)
    # 8 replay: the same engine the server runs, continued from the cursor (while step 7's
    #   signatures are checked; a bad signature is reported before a rule breach)
    try:
        for entry in parsed:
            replay_entry(
                cursor.replay,
                entry.seq,
                entry.type.value,
                entry.time_us,
                entry.body,
                entry.actor.kid,
            )
    except BaseException:
        wait_for_signatures()
        raise
    wait_for_signatures()
    return keys
