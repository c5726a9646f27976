"""The log's side of notarization: ask every notary to co-sign, in parallel (an adapter).

The log server calls :func:`request_cosignatures` for each checkpoint it signs, with what it
remembers of each notary's last co-signed size. Every notary gets a C2SP tlog-witness
``add-checkpoint`` request with a consistency proof from *its* size, all at once, each with a
short timeout. A 409 answer carries the notary's real size (``text/x.tlog.size``): the client
resynchronises by retrying with a proof from that size. The result says, per notary, either
:class:`Cosigned` (with the cosignature lines, already verified against the notary's key) or
:class:`Refused` (typed: timeout, unreachable, refused with a status, conflict, bad answer,
ahead of this checkpoint), and the sizes to remember for next time.

Publication is fail-closed: merge the lines with :meth:`CosignatureRound.merged`, then publish
only if :func:`quorum_met` (``chain.policy``) says the policy's quorum co-signed.

Nothing here knows the server's internals: it takes an ``aiohttp.ClientSession``, the notaries
from the policy, the signed checkpoint and a function that builds consistency proofs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import aiohttp

from chain import (
    ChainError,
    CosignatureVerifier,
    NoteSignature,
    Policy,
    SignedCheckpoint,
    add_cosignatures,
    parse_checkpoint_text,
    parse_note,
    parse_signature_lines,
)

from .core import format_add_checkpoint

__all__ = [
    "DEFAULT_TIMEOUT",
    "Cosigned",
    "CosignatureRound",
    "NotaryEndpoint",
    "ProofSource",
    "Refused",
    "RefusalKind",
    "notaries_from_policy",
    "quorum_met",
    "request_cosignatures",
    "verify_quorum",
]

DEFAULT_TIMEOUT: Final = 1.0
"""Seconds per add-checkpoint request (Tessera's DefaultWitnessTimeout)."""

MAX_ANSWER_BYTES: Final = 64 * 1024

ProofSource = Callable[[int], Sequence[bytes] | Awaitable[Sequence[bytes]]]
"""``proof_for(old_size)``: the consistency proof from ``old_size`` to the checkpoint's size."""

RefusalKind = Literal[
    "timeout", "unreachable", "refused", "conflict", "bad-answer", "ahead", "no-proof"
]


@dataclass(frozen=True, slots=True)
class NotaryEndpoint:
    """A notary as the log sees it: policy witness ``name``, base ``url``, cosigner key."""

    name: str
    url: str
    verifier: CosignatureVerifier


def notaries_from_policy(policy: Policy) -> list[NotaryEndpoint]:
    """The policy's witnesses that have a URL, as endpoints (the others cannot be asked)."""
    return [
        NotaryEndpoint(witness.name, witness.url.rstrip("/"), witness.verifier)
        for witness in policy.witnesses
        if witness.url
    ]


@dataclass(frozen=True, slots=True)
class Cosigned:
    """The notary co-signed: its verified cosignature lines; it is now at ``size``."""

    notary: str
    signatures: tuple[NoteSignature, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The notary did not co-sign. ``status`` is its HTTP status if it answered; ``size`` its
    last co-signed size if it told us (409)."""

    notary: str
    kind: RefusalKind
    message: str
    status: int | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class CosignatureRound:
    """What one round of requests produced, per notary name."""

    checkpoint: bytes
    results: Mapping[str, Cosigned | Refused]
    old_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def cosigned(self) -> list[Cosigned]:
        """The notaries that co-signed."""
        return [r for r in self.results.values() if isinstance(r, Cosigned)]

    @property
    def refused(self) -> list[Refused]:
        """The notaries that did not."""
        return [r for r in self.results.values() if isinstance(r, Refused)]

    def signatures(self) -> list[NoteSignature]:
        """Every verified cosignature line collected."""
        return [signature for result in self.cosigned for signature in result.signatures]

    def merged(self) -> bytes:
        """The checkpoint with every collected cosignature appended (check the quorum next)."""
        return add_cosignatures(self.checkpoint, self.signatures())


def verify_quorum(policy: Policy, checkpoint: bytes) -> SignedCheckpoint:
    """Open ``checkpoint`` under ``policy``: log signature, cosignatures, quorum (fail-closed).

    Raises ``chain.ChainError`` (``PolicyError`` when the quorum is not met). Publish the
    checkpoint (and call a sale final) only if this returns.
    """
    return policy.verify_checkpoint(checkpoint)


def quorum_met(policy: Policy, checkpoint: bytes) -> bool:
    """Whether ``checkpoint`` (with its cosignatures) meets the policy's quorum. Any doubt is
    ``False``: a bad signature, an unknown origin, a malformed note, too few notaries."""
    try:
        verify_quorum(policy, checkpoint)
    except ChainError:
        return False
    return True


def _verified_lines(
    answer: bytes, text: bytes, verifier: CosignatureVerifier
) -> tuple[NoteSignature, ...]:
    """The lines of ``answer`` made by ``verifier``'s key that verify (others are ignored)."""
    lines = parse_signature_lines(answer)
    mine: list[NoteSignature] = []
    for line in lines:
        if (line.name, line.key_id) != (verifier.name, verifier.key_id):
            continue  # tlog-witness: the client MUST ignore cosignatures from unknown keys
        verifier.verify(text, line.signature)
        mine.append(line)
    return tuple(mine)


async def _proof(proof_for: ProofSource, old_size: int) -> Sequence[bytes]:
    result = proof_for(old_size)
    if inspect.isawaitable(result):
        return await result
    return result


async def _ask(
    session: aiohttp.ClientSession,
    notary: NotaryEndpoint,
    old_size: int,
    checkpoint: bytes,
    text: bytes,
    size: int,
    proof_for: ProofSource,
    timeout: aiohttp.ClientTimeout,
    max_resyncs: int,
) -> Cosigned | Refused:
    resyncs = 0
    while True:
        if old_size > size:
            return Refused(notary.name, "ahead", f"the notary is at size {old_size}", size=old_size)
        try:
            proof = await _proof(proof_for, old_size)
        except ChainError as exc:
            return Refused(notary.name, "no-proof", f"no proof from size {old_size}: {exc}")
        body = format_add_checkpoint(old_size, proof, checkpoint)
        try:
            async with session.post(
                notary.url + "/add-checkpoint",
                data=body,
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=timeout,
            ) as response:
                status = response.status
                content_type = response.headers.get("Content-Type", "")
                try:
                    answer = await _read_answer(response)
                except aiohttp.ClientPayloadError as exc:  # cut short, or far too long
                    return Refused(notary.name, "bad-answer", f"answer unreadable: {exc}", status)
        except TimeoutError:
            return Refused(notary.name, "timeout", f"no answer within {timeout.total} s")
        except aiohttp.ClientError as exc:
            return Refused(notary.name, "unreachable", repr(exc))
        if status == 200:
            try:
                lines = _verified_lines(answer, text, notary.verifier)
            except ChainError as exc:
                return Refused(notary.name, "bad-answer", f"cosignature: {exc}", status)
            if not lines:
                return Refused(notary.name, "bad-answer", "no cosignature by its key", status)
            return Cosigned(notary.name, lines, size)
        message = answer.decode("utf-8", "replace").strip()[:500]
        if status == 409 and content_type.split(";")[0].strip() == "text/x.tlog.size":
            # tlog-witness: 409 carries the notary's last co-signed size; resynchronise.
            try:
                latest = int(answer.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                return Refused(notary.name, "bad-answer", "409 without a size", status)
            if latest == old_size or resyncs >= max_resyncs:
                return Refused(notary.name, "conflict", message, status, latest)
            old_size = latest
            resyncs += 1
            continue
        return Refused(notary.name, "refused", message, status)


async def _read_answer(response: aiohttp.ClientResponse) -> bytes:
    """The whole answer, up to `MAX_ANSWER_BYTES` (one `read` may return only what arrived
    so far); `aiohttp.ClientPayloadError` beyond that."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(MAX_ANSWER_BYTES + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise aiohttp.ClientPayloadError(f"an answer over {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks)


async def request_cosignatures(
    session: aiohttp.ClientSession,
    notaries: Sequence[NotaryEndpoint],
    old_sizes: Mapping[str, int],
    checkpoint: bytes,
    proof_for: ProofSource,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_resyncs: int = 2,
) -> CosignatureRound:
    """Ask every notary to co-sign ``checkpoint`` (the log-signed note), all in parallel.

    ``old_sizes`` maps notary names to the size each last co-signed as far as the log knows
    (missing: 0; a 409 corrects it). ``proof_for(old_size)`` returns the consistency proof
    from ``old_size`` to the checkpoint's size (may be a coroutine function). Each request
    has ``timeout`` seconds; a 409 is retried up to ``max_resyncs`` times with the proof from
    the size the notary reported. Never raises for a notary's failure: read
    :attr:`CosignatureRound.results`, remember :attr:`CosignatureRound.old_sizes`, and
    publish only if :func:`quorum_met` on :meth:`CosignatureRound.merged`.
    """
    note = parse_note(checkpoint)
    size = parse_checkpoint_text(note.text).size
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with asyncio.TaskGroup() as group:  # every request owned; all done on return
        tasks = [
            group.create_task(
                _ask(
                    session,
                    notary,
                    old_sizes.get(notary.name, 0),
                    checkpoint,
                    note.text_bytes,
                    size,
                    proof_for,
                    client_timeout,
                    max_resyncs,
                )
            )
            for notary in notaries
        ]
    outcomes = [task.result() for task in tasks]
    results = {notary.name: outcome for notary, outcome in zip(notaries, outcomes, strict=True)}
    sizes = dict(old_sizes)
    for name, outcome in results.items():
        if isinstance(outcome, Cosigned):
            sizes[name] = outcome.size
        elif outcome.size is not None:
            sizes[name] = outcome.size
    return CosignatureRound(checkpoint, results, sizes)
