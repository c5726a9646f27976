"""The actor keys valid at the current point of the log (step 7)."""

from __future__ import annotations

from dataclasses import dataclass

from chain import (
    Ed25519Verifier,
)

from ..verify.keys import kid_names_key


@dataclass(frozen=True, slots=True)
class _ActorKey:
    verifier: Ed25519Verifier

    def matches(self, kid: str) -> bool:
        return kid_names_key(self.verifier, kid)


class KeyRing:
    """The actor keys valid at the current point of the log, and the kid rule."""

    def __init__(self) -> None:
        self._keys: list[_ActorKey] = []
        self._resolved: dict[str, tuple[bytes, ...]] = {}

    def add(self, verifier: Ed25519Verifier) -> None:
        self._keys.append(_ActorKey(verifier))
        self._resolved.clear()

    def revoke(self, kid: str) -> None:
        self._keys = [key for key in self._keys if not key.matches(kid)]
        self._resolved.clear()

    def resolve(self, kid: str) -> tuple[bytes, ...]:
        """The public keys ``kid`` may name now (empty: none)."""
        found = self._resolved.get(kid)
        if found is None:
            found = tuple(key.verifier.public_key for key in self._keys if key.matches(kid))
            self._resolved[kid] = found
        return found
