"""Actor keys: which keys an entry's ``actor.kid`` may name at a point of the log (step 7).

Entry 0 (``house``) gives the first key, the house key, which must be the log's key (step 4).
A ``key`` entry (provisional body: ``vkey`` added, optional ``revoke`` list of kids removed;
its ``role``, e.g. "idv" for an identity provider whose key signs ``idv`` entries, is the
replay's business) changes the set from the next entry on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain import ChainError, Ed25519Verifier, parse_vkey

from .errors import EntryRejected
from .steps import Step


def kid_names_key(verifier: Ed25519Verifier, kid: str) -> bool:
    """The one rule for an entry's `actor.kid`, shared by the auditor and the notaries: it names
    a key when it equals the key's vkey, `<name>+<hex key id>`, its name, or its hex key id
    (any case). When several valid keys match, one of them must verify."""
    hex_id = verifier.key_id.hex()
    return kid in (verifier.vkey, f"{verifier.name}+{hex_id}", verifier.name) or (
        kid.lower() == hex_id
    )


def ed25519_vkey(text: Any, what: str) -> Ed25519Verifier:
    """The Ed25519 key of a vkey text; raises ``ValueError`` naming ``what``."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a vkey string")
    try:
        verifier = parse_vkey(text)
    except ChainError as exc:
        raise ValueError(f"{what}: {exc.message}") from exc
    if not isinstance(verifier, Ed25519Verifier):
        raise ValueError(f"{what} is not an Ed25519 (type 0x01) key")
    return verifier


def _body_vkey(body: Mapping[str, Any], what: str, step: Step, seq: int) -> Ed25519Verifier:
    try:
        return ed25519_vkey(body.get("vkey"), what)
    except ValueError as exc:
        raise EntryRejected(step, seq, str(exc)) from exc


@dataclass(frozen=True, slots=True)
class ActorKeys:
    """The actor keys valid at a point of the log (immutable: each change makes a new one)."""

    keys: tuple[Ed25519Verifier, ...] = ()
    _resolved: dict[str, tuple[bytes, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of_house(
        cls, seq: int, body: Mapping[str, Any], origin: str, log_keys: Collection[Ed25519Verifier]
    ) -> ActorKeys:
        """Step 4 on entry 0: the ``house`` entry names the log's ``origin`` and its key is one
        of ``log_keys`` (the policy's keys for that origin). Returns the first actor keys."""
        house = _body_vkey(body, "house vkey", Step.LOG_SIGNATURES, seq)
        named = body.get("origin")
        if named != origin:
            raise EntryRejected(
                Step.LOG_SIGNATURES,
                seq,
                f"the house entry names origin {named!r}, the log is {origin!r}",
            )
        if house.name != origin or house.public_key not in {
            key.public_key for key in log_keys if key.name == origin
        }:
            raise EntryRejected(
                Step.LOG_SIGNATURES, seq, "the house entry's vkey is not the log key in the policy"
            )
        return cls((house,))

    def resolve(self, kid: str) -> tuple[bytes, ...]:
        """The public keys ``kid`` may name (empty: none)."""
        found = self._resolved.get(kid)
        if found is None:
            found = tuple(key.public_key for key in self.keys if kid_names_key(key, kid))
            self._resolved[kid] = found
        return found

    def candidates(self, seq: int, kid: str) -> tuple[bytes, ...]:
        """Step 7: the keys ``kid`` names; raises :class:`EntryRejected` when it names none."""
        found = self.resolve(kid)
        if not found:
            raise EntryRejected(
                Step.ACTOR_SIGNATURES,
                seq,
                f"actor kid {kid!r} names no key valid at this point of the log",
            )
        return found

    def changed(self, added: Ed25519Verifier, revoked: Sequence[str]) -> ActorKeys:
        """The keys after a ``key`` entry adding ``added`` and revoking the kids ``revoked``."""
        kept = [key for key in self.keys if not any(kid_names_key(key, k) for k in revoked)]
        return ActorKeys((*kept, added))

    def after(self, seq: int, kind: str, body: Mapping[str, Any]) -> ActorKeys:
        """The keys valid from the entry after ``seq`` (a ``kind`` entry): a ``key`` entry
        changes them; raises :class:`EntryRejected` (step 7) for a malformed one."""
        if kind != "key":
            return self
        added = _body_vkey(body, "key entry vkey", Step.ACTOR_SIGNATURES, seq)
        revoke = body.get("revoke", ())
        if not isinstance(revoke, list | tuple) or not all(isinstance(k, str) for k in revoke):
            raise EntryRejected(
                Step.ACTOR_SIGNATURES, seq, "key entry revoke must be a list of kids"
            )
        return self.changed(added, [str(kid) for kid in revoke])
