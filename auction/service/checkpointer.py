"""Signs and publishes the ledger's checkpoints (with notaries: once co-signed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from chain import Policy
from notary.client import (
    CosignatureRound,
    NotaryEndpoint,
    quorum_met,
    request_cosignatures,
)

from ..storage import (
    LedgerHead,
    StorageError,
)
from .errors import ServiceError
from .ports import LedgerStore
from .tasks import finish

logger = logging.getLogger(__name__)

#: Longest time (seconds) between the first entry no checkpoint covers and the checkpoint.
CHECKPOINT_DELAY = 0.5

#: Seconds each notary has to answer an add-checkpoint request (ledger spec section 4).
NOTARY_TIMEOUT = 1.0

#: Seconds between rounds while a signed checkpoint waits for the notaries' quorum.
NOTARY_RETRY = 1.0


class Checkpointer:
    """Signs and publishes the ledger's checkpoints; one task, owned by the service.

    `notify()` after entries were committed; `notify(urgent=True)` after a lot closed (or
    sold). It signs at once when urgent, else `delay` seconds after the first notification
    since the last checkpoint. `stop()` lets a running checkpoint finish and signs a final one
    covering everything written, then ends the task.

    Each checkpoint: sign (the store's compare-and-swap, signature and stored checkpoint, in
    one transaction), then publish. With notaries (a policy with witnesses): the signed
    checkpoint goes to every notary in parallel (`notary.client.request_cosignatures`, a short
    timeout each, 409 answers resynchronise), and it is published, with the cosignatures, only
    if the policy's quorum co-signed (fail-closed). Otherwise it stays signed but unpublished:
    entries keep being written and signed, and every `retry` seconds the newest signed
    checkpoint is sent again, so publication catches up as soon as the quorum is back.
    """

    def __init__(
        self,
        ledger: LedgerStore,
        run_blocking: Callable[..., Any],
        *,
        delay: float = CHECKPOINT_DELAY,
        published: LedgerHead | None = None,
        stop_timeout: float = 10.0,
        notaries: Sequence[NotaryEndpoint] = (),
        policy: Policy | None = None,
        session: aiohttp.ClientSession | None = None,
        read: Callable[..., Awaitable[Any]] | None = None,
        notary_timeout: float = NOTARY_TIMEOUT,
        retry: float = NOTARY_RETRY,
        signs: Callable[[], bool] | None = None,
    ) -> None:
        if policy is not None and session is None:
            raise ServiceError("asking notaries needs an HTTP session")
        self._ledger = ledger
        self._run_blocking = run_blocking
        self._read = read or run_blocking
        self._delay = delay
        self._stop_timeout = stop_timeout
        self._grown = asyncio.Event()
        self._urgent = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._published = published
        self._signed = published
        self._notaries = tuple(notaries)
        self._policy = policy
        self._session = session
        self._notary_timeout = notary_timeout
        self._retry = retry
        self._signs = signs
        self._retry_timer: asyncio.TimerHandle | None = None
        self._missing: frozenset[str] = frozenset()  # notaries that did not co-sign last time
        self._sizes: dict[str, int] = {}  # each notary's last co-signed size, as far as known
        #: Checkpoints signed and published by this task, for measurements and tests.
        self.signed = 0
        #: Rounds of cosignature requests that did not reach the quorum.
        self.unpublished_rounds = 0
        #: Checkpoint attempts that failed in a row (storage, proofs); 0 once one succeeds.
        self.failures = 0
        #: The last round of cosignature requests (None before the first, or without notaries).
        self.last_round: CosignatureRound | None = None
        #: Called with each checkpoint once published: `auction.web.metrics`.
        self.on_publish: Callable[[LedgerHead], None] | None = None

    @property
    def published(self) -> LedgerHead | None:
        """The latest published checkpoint (what `/log/checkpoint` serves)."""
        return self._published

    @property
    def signed_head(self) -> LedgerHead | None:
        """The latest signed checkpoint, published or not: tiles are served up to its size so
        that notaries can check the entries before they co-sign."""
        return self._signed

    @property
    def notaries(self) -> tuple[NotaryEndpoint, ...]:
        return self._notaries

    def start(self) -> None:
        """Start the task (it signs at once whatever is not covered yet); `await stop()`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="checkpoints")
        self.notify(urgent=True)

    def notify(self, urgent: bool = False) -> None:
        """Entries were committed; `urgent`: a lot closed, sign without waiting."""
        self._grown.set()
        if urgent:
            self._urgent.set()

    async def stop(self) -> None:
        """Sign a final checkpoint covering everything written, then end the task (cancelled
        after `stop_timeout` seconds if the store hangs)."""
        task, self._task = self._task, None
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if task is None:
            return
        self._stopping = True
        self.notify(urgent=True)
        await finish(task, self._stop_timeout)

    async def _run(self) -> None:
        while True:
            await self._grown.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._delay)
            self._grown.clear()
            self._urgent.clear()
            stopping = self._stopping
            try:
                await self._checkpoint()
            except Exception as exc:  # the entries stay uncovered: log, wait, try again
                # Once per outage (a full disk fails every attempt): the first failure as an
                # error, the retries at debug level, and a line when checkpoints work again.
                log = logger.debug if self.failures else logger.error
                log("ledger checkpoint failed: %s", exc, exc_info=not isinstance(exc, StorageError))
                self.failures += 1
                if stopping:
                    return
                await asyncio.sleep(self._delay)
                self._grown.set()  # try again: the entries are still not covered
                continue
            if self.failures:
                logger.warning("ledger checkpoints work again after %d failures", self.failures)
                self.failures = 0
            if stopping:
                return
            if self._behind():
                self._schedule_retry()

    def pending(self) -> bool:
        """Whether entries were committed that no checkpoint attempt has covered yet."""
        return self._grown.is_set()

    def _behind(self) -> bool:
        signed, published = self._signed, self._published
        return signed is not None and (published is None or published.size < signed.size)

    def _schedule_retry(self) -> None:
        if self._retry_timer is not None or self._stopping:
            return

        def fire() -> None:
            self._retry_timer = None
            self.notify(urgent=True)

        self._retry_timer = asyncio.get_running_loop().call_later(self._retry, fire)

    async def _checkpoint(self) -> None:
        if self._signs is not None and not self._signs():
            await self._follow_signer()
            return
        head: LedgerHead | None = await self._run_blocking(self._ledger.sign_checkpoint)
        if head is None:
            return
        if self._signed is None or head.size > self._signed.size:
            self._signed = head
        if self._policy is None:  # no notaries in the policy: publish at once
            await self._publish(head)
            return
        if self._published is not None and head.size <= self._published.size:
            return
        note = await self._cosign(head)
        if note is not None:
            await self._publish(LedgerHead(head.size, head.root, note))

    async def _follow_signer(self) -> None:
        """Another instance signs (`auction.cluster`): serve what it signed and published."""
        published = await self._read(self._ledger.published_checkpoint)
        signed = await self._read(self._ledger.signed_checkpoint)
        if published is not None and (
            self._published is None or published.size > self._published.size
        ):
            self._published = published
        if signed is not None and (self._signed is None or signed.size > self._signed.size):
            self._signed = signed

    async def _cosign(self, head: LedgerHead) -> bytes | None:
        """Ask every notary to co-sign `head`; its note with the cosignatures if the policy's
        quorum co-signed, else None (fail-closed: it stays unpublished)."""
        assert self._policy is not None and self._session is not None
        start = self._published.size if self._published is not None else 0
        old_sizes = {n.name: self._sizes.get(n.name, start) for n in self._notaries}

        async def proof_for(old_size: int) -> Sequence[bytes]:
            proof: Sequence[bytes] = await self._read(
                self._ledger.ledger_consistency_proof, old_size, head.size
            )
            return proof

        result = await request_cosignatures(
            self._session,
            self._notaries,
            old_sizes,
            head.note,
            proof_for,
            timeout=self._notary_timeout,
        )
        self.last_round = result
        self._sizes.update(result.old_sizes)
        for refusal in result.refused:
            if refusal.kind == "ahead":
                # A size beyond this log's own tree cannot be proven from: remembering it would
                # never ask that notary again. Ask from the published size next time; a notary
                # that really is ahead says so again (409), one that was wrong co-signs.
                self._sizes.pop(refusal.notary, None)
        merged = result.merged()
        if quorum_met(self._policy, merged):
            if self._missing:
                logger.warning("checkpoint %d co-signed by the quorum: publishing", head.size)
            self._missing = frozenset()
            return merged
        self.unpublished_rounds += 1
        refusals = ", ".join(f"{r.notary}: {r.kind} {r.message[:80]}" for r in result.refused)
        missing = frozenset(r.notary for r in result.refused)
        log = logger.warning if missing != self._missing else logger.debug  # once per change
        self._missing = missing
        log(
            "checkpoint %d not published: %d of %d notaries co-signed, no quorum (%s)",
            head.size,
            len(result.cosigned),
            len(self._notaries),
            refusals,
        )
        return None

    async def _publish(self, head: LedgerHead) -> None:
        await self._run_blocking(self._ledger.publish_checkpoint, head)
        self._published = head
        self.signed += 1
        if self.on_publish is not None:
            self.on_publish(head)
