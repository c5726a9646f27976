"""The numbered steps of entry verification, shared by the auditor and the notaries.

One definition: the audit report's step numbers and a notary's refusal step names
(``Step.label``, e.g. ``"7 actor signatures"``) both come from :class:`Step`.
"""

from __future__ import annotations

from enum import IntEnum


class Step(IntEnum):
    """The steps of entry verification, in the order failures are ranked.

    The auditor (:func:`auction.audit.verify_ledger`) runs all ten over a whole log; a notary
    runs the per-entry ones (:mod:`auction.verify.pipeline`) over each increment it co-signs,
    and checks its own checkpoints' signatures and consistency (steps 4-6) by the
    tlog-witness rules.
    """

    PARSE = 1
    CHAIN = 2
    ROOTS = 3
    LOG_SIGNATURES = 4
    QUORUM = 5
    CONSISTENCY = 6
    ACTOR_SIGNATURES = 7
    REPLAY = 8
    TIME_BOUNDS = 9
    RECEIPTS = 10

    @property
    def title(self) -> str:
        """The step's name, e.g. ``"log signatures"``."""
        return self.name.lower().replace("_", " ")

    @property
    def label(self) -> str:
        """``"<number> <name>"``, e.g. ``"2 chain"``."""
        return f"{self.value} {self.title}"
