"""Trust policies: the C2SP tlog-policy file format and composable quorum rules.

A policy names the trusted logs (``log <vkey> [<url>]``), the witnesses, here our notaries
(``witness <name> <vkey> [<url>]``), groups (``group <name> <k>|all|any <member>...``) and one
``quorum <name>`` line (``quorum none`` for no cosignatures). Quorum rules are small objects:
:class:`WitnessRule`, :class:`Threshold`, :class:`AllOf`, :class:`AnyOf`, :data:`NO_QUORUM`.
Each has ``evaluate(names)`` which returns ``None`` or raises :class:`PolicyError`.

The usual path is :meth:`Policy.verify_checkpoint`: log signature, cosignatures, quorum, in that
order, fail-closed. The caller must not publish (or accept) a checkpoint that raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from .checkpoint import SignedCheckpoint, open_checkpoint, parse_checkpoint_text
from .errors import MalformedError, PolicyError, TooLargeError, UnknownOriginError
from .note import (
    ALG_ED25519,
    CosignatureVerifier,
    Ed25519Verifier,
    Note,
    parse_note,
    parse_vkey,
)

__all__ = [
    "MAX_POLICY_SIZE",
    "NO_QUORUM",
    "AllOf",
    "AnyOf",
    "NoQuorum",
    "Policy",
    "PolicyLog",
    "QuorumRule",
    "Threshold",
    "WitnessRule",
    "format_policy",
    "parse_policy",
]

MAX_POLICY_SIZE: Final = 64 * 1024
"""Policy files larger than this are rejected."""

MAX_POLICY_ITEMS: Final = 256
"""At most this many logs, witnesses and groups each (tlog-policy recommends at least 32)."""

_WHITESPACE = re.compile(r"[ \t]+")
_NUMBER = re.compile(r"[1-9][0-9]{0,3}")


@dataclass(frozen=True, slots=True)
class WitnessRule:
    """A single witness (a notary): met when its cosignature verified."""

    name: str
    verifier: CosignatureVerifier
    url: str | None = None

    def count(self, cosigners: frozenset[str]) -> bool:
        """Whether this witness is among the names of policy witnesses that cosigned."""
        return self.name in cosigners

    def evaluate(self, cosigners: Iterable[str]) -> None:
        """Raise :class:`PolicyError` unless this witness cosigned."""
        if not self.count(frozenset(cosigners)):
            raise PolicyError(f"witness {self.name} has not cosigned")


@dataclass(frozen=True, slots=True)
class Threshold:
    """At least ``k`` of ``members`` (witnesses or groups) must be met."""

    name: str
    k: int
    members: tuple[QuorumRule, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise MalformedError(f"group {self.name} has no members")
        if not 1 <= self.k <= len(self.members):
            raise MalformedError(f"group {self.name}: threshold must be between 1 and n")
        names = [member.name for member in self.members]
        if len(set(names)) != len(names):
            raise MalformedError(f"group {self.name} lists a member twice")

    def count(self, cosigners: frozenset[str]) -> bool:
        """Whether at least ``k`` members are met."""
        return sum(1 for member in self.members if member.count(cosigners)) >= self.k

    def evaluate(self, cosigners: Iterable[str]) -> None:
        """Raise :class:`PolicyError` naming the group and how many members are met."""
        names = frozenset(cosigners)
        met = sum(1 for member in self.members if member.count(names))
        if met < self.k:
            raise PolicyError(
                f"group {self.name}: {met} of {len(self.members)} met, {self.k} required"
            )


class AllOf(Threshold):
    """Every member must be met (``group <name> all ...``)."""

    __slots__ = ()

    def __init__(self, name: str, members: Sequence[QuorumRule]) -> None:
        super().__init__(name, len(members), tuple(members))


class AnyOf(Threshold):
    """At least one member must be met (``group <name> any ...``)."""

    __slots__ = ()

    def __init__(self, name: str, members: Sequence[QuorumRule]) -> None:
        super().__init__(name, 1, tuple(members))


@dataclass(frozen=True, slots=True)
class NoQuorum:
    """``quorum none``: no cosignature is required (never use it for publication)."""

    name: str = "none"

    def count(self, cosigners: frozenset[str]) -> bool:
        """Always met."""
        return True

    def evaluate(self, cosigners: Iterable[str]) -> None:
        """Never raises."""
        return None


NO_QUORUM: Final = NoQuorum()

QuorumRule: TypeAlias = WitnessRule | Threshold | NoQuorum


@dataclass(frozen=True, slots=True)
class PolicyLog:
    """A trusted log: its checkpoint key (name = origin) and an optional URL."""

    verifier: Ed25519Verifier
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """Trusted logs, witnesses and the quorum rule (tlog-policy).

    Build it with :func:`parse_policy` or directly; :func:`format_policy` writes it back.
    """

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[WitnessRule, ...]
    quorum: QuorumRule
    groups: tuple[Threshold, ...] = ()

    def __post_init__(self) -> None:
        keys = [log.verifier.public_key for log in self.logs]
        if len(set(keys)) != len(keys):
            raise MalformedError("duplicate log key")
        keys = [witness.verifier.public_key for witness in self.witnesses]
        if len(set(keys)) != len(keys):
            raise MalformedError("duplicate witness key")
        names = [witness.name for witness in self.witnesses]
        names += [group.name for group in self.groups]
        if len(set(names)) != len(names) or "none" in names:
            raise MalformedError("witness and group names must be unique and not 'none'")
        slots = [(w.verifier.name, w.verifier.key_id) for w in self.witnesses]
        if len(set(slots)) != len(slots):
            raise MalformedError("two witness keys share key name and key id")

    def log_verifiers(self, origin: str) -> list[Ed25519Verifier]:
        """Return the keys of the trusted log whose origin is ``origin`` (several while a key
        rotation overlaps; any one of them may sign).

        Raises :class:`UnknownOriginError` (tlog-witness 404) if there is none.
        """
        matches = [log.verifier for log in self.logs if log.verifier.name == origin]
        if not matches:
            raise UnknownOriginError(f"no trusted log with origin {origin!r}")
        return matches

    def cosigners(self) -> list[CosignatureVerifier]:
        """The cosignature verifiers of all witnesses, to pass to ``open_checkpoint``."""
        return [witness.verifier for witness in self.witnesses]

    def witness_names(self, signed: SignedCheckpoint) -> frozenset[str]:
        """Map the verified cosignatures of ``signed`` to policy witness names."""
        by_key = {(w.verifier.name, w.verifier.key_id): w.name for w in self.witnesses}
        return frozenset(
            by_key[(signature.name, signature.key_id)]
            for signature in signed.cosignatures
            if (signature.name, signature.key_id) in by_key
        )

    def evaluate(self, witness_names: Iterable[str]) -> None:
        """Raise :class:`PolicyError` unless the quorum is met by these policy witness names."""
        self.quorum.evaluate(witness_names)

    def verify_checkpoint(
        self, data: bytes | Note, log_verifier: Ed25519Verifier | None = None
    ) -> SignedCheckpoint:
        """Open a checkpoint under this policy, fail-closed.

        1. parse (:class:`MalformedError`); 2. pick the log by origin, or use ``log_verifier``
        (:class:`UnknownOriginError`); 3. log signature and every known cosignature verify
        (:class:`SignatureError`); 4. the quorum is met (:class:`PolicyError`).
        The caller may then use the checkpoint's size and root.
        """
        note = data if isinstance(data, Note) else parse_note(data)
        log_keys: list[Ed25519Verifier]
        if log_verifier is None:
            log_keys = self.log_verifiers(parse_checkpoint_text(note.text).origin)
        else:
            log_keys = [log_verifier]
        signed = open_checkpoint(note, log_keys, self.cosigners())
        self.evaluate(self.witness_names(signed))
        return signed


def _decode_policy(data: bytes) -> list[str]:
    if not isinstance(data, bytes | bytearray):
        raise MalformedError("policy must be bytes")
    if len(data) > MAX_POLICY_SIZE:
        raise TooLargeError("policy file too large")
    for octet in data:
        # tlog-policy "Character set": tab, newline, 0x20-0x7E and 0x80-0xFF only.
        if (octet < 0x20 and octet not in (0x09, 0x0A)) or octet == 0x7F:
            raise MalformedError("policy contains a forbidden control character")
    # Non-ASCII octets are opaque: surrogateescape keeps them distinct and round-trippable.
    return bytes(data).decode("utf-8", "surrogateescape").split("\n")


def _parse_url(fields: list[str], at: int, line_number: int) -> str | None:
    if len(fields) > at + 1:
        raise MalformedError(f"policy line {line_number}: too many fields")
    return fields[at] if len(fields) == at + 1 else None


def _vkey(text: str, line_number: int) -> Ed25519Verifier | CosignatureVerifier:
    try:
        return parse_vkey(text)
    except MalformedError as exc:
        raise MalformedError(f"policy line {line_number}: {exc.message}") from exc


def parse_policy(data: bytes) -> Policy:
    """Parse a tlog-policy file. Bounded; raises :class:`MalformedError` on any error.

    Log keys must be Ed25519 note keys (type 0x01, name = origin), witness keys cosignature/v1
    keys (type 0x04). Names must be defined before use, each name may be a group member at
    most once overall, exactly one quorum line is required.
    """
    logs: list[PolicyLog] = []
    witnesses: list[WitnessRule] = []
    groups: list[Threshold] = []
    defined: dict[str, QuorumRule] = {}
    used_as_member: set[str] = set()
    quorum: QuorumRule | None = None
    for line_number, line in enumerate(_decode_policy(data), start=1):
        stripped = line.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        fields = _WHITESPACE.split(stripped)
        keyword = fields[0]
        if keyword == "log":
            if len(fields) < 2:
                raise MalformedError(f"policy line {line_number}: log needs a vkey")
            verifier = _vkey(fields[1], line_number)
            if not isinstance(verifier, Ed25519Verifier) or verifier.algorithm != ALG_ED25519:
                raise MalformedError(f"policy line {line_number}: log key must be type 0x01")
            logs.append(PolicyLog(verifier, _parse_url(fields, 2, line_number)))
            if len(logs) > MAX_POLICY_ITEMS:
                raise MalformedError("too many logs")
        elif keyword == "witness":
            if len(fields) < 3:
                raise MalformedError(f"policy line {line_number}: witness needs name and vkey")
            name = fields[1]
            if name in defined or name == "none":
                raise MalformedError(f"policy line {line_number}: name {name!r} already defined")
            cosigner = _vkey(fields[2], line_number)
            if not isinstance(cosigner, CosignatureVerifier):
                raise MalformedError(f"policy line {line_number}: witness key must be type 0x04")
            witness = WitnessRule(name, cosigner, _parse_url(fields, 3, line_number))
            witnesses.append(witness)
            defined[name] = witness
            if len(witnesses) > MAX_POLICY_ITEMS:
                raise MalformedError("too many witnesses")
        elif keyword == "group":
            if len(fields) < 4:
                raise MalformedError(f"policy line {line_number}: group needs name, k, members")
            name, threshold_text, member_names = fields[1], fields[2], fields[3:]
            if name in defined or name == "none":
                raise MalformedError(f"policy line {line_number}: name {name!r} already defined")
            members: list[QuorumRule] = []
            for member_name in member_names:
                if member_name not in defined:
                    raise MalformedError(
                        f"policy line {line_number}: member {member_name!r} is not defined above"
                    )
                if member_name in used_as_member:
                    raise MalformedError(
                        f"policy line {line_number}: {member_name!r} is already a group member"
                    )
                used_as_member.add(member_name)
                members.append(defined[member_name])
            group: Threshold
            if threshold_text == "all":
                group = AllOf(name, members)
            elif threshold_text == "any":
                group = AnyOf(name, members)
            elif _NUMBER.fullmatch(threshold_text):
                group = Threshold(name, int(threshold_text), tuple(members))
            else:
                raise MalformedError(f"policy line {line_number}: bad threshold")
            groups.append(group)
            defined[name] = group
            if len(groups) > MAX_POLICY_ITEMS:
                raise MalformedError("too many groups")
        elif keyword == "quorum":
            if len(fields) != 2:
                raise MalformedError(f"policy line {line_number}: quorum takes one name")
            if quorum is not None:
                raise MalformedError(f"policy line {line_number}: second quorum line")
            if fields[1] == "none":
                quorum = NO_QUORUM
            elif fields[1] in defined:
                quorum = defined[fields[1]]
            else:
                raise MalformedError(f"policy line {line_number}: quorum name is not defined")
        else:
            raise MalformedError(f"policy line {line_number}: unknown keyword")
    if quorum is None:
        raise MalformedError("policy has no quorum line")
    return Policy(tuple(logs), tuple(witnesses), quorum, tuple(groups))


def _threshold_text(group: Threshold) -> str:
    if isinstance(group, AllOf):
        return "all"
    if isinstance(group, AnyOf):
        return "any"
    return str(group.k)


def format_policy(policy: Policy) -> bytes:
    """Write ``policy`` as a tlog-policy file that :func:`parse_policy` reads back equal.

    Groups are written in dependency order; every group member must be a witness of the policy
    or a group written before it.
    """
    lines: list[str] = []
    for log in policy.logs:
        lines.append(" ".join(filter(None, ["log", log.verifier.vkey, log.url])))
    for witness in policy.witnesses:
        lines.append(
            " ".join(filter(None, ["witness", witness.name, witness.verifier.vkey, witness.url]))
        )
    written = {witness.name for witness in policy.witnesses}
    pending: list[Threshold] = []
    stack: list[QuorumRule] = [policy.quorum, *reversed(policy.groups)]
    while stack:  # policy.groups in order, then groups only reachable from the quorum
        rule = stack.pop()
        if isinstance(rule, Threshold) and all(rule.name != g.name for g in pending):
            pending.append(rule)
            stack.extend(reversed(rule.members))
    while pending:
        ready = [g for g in pending if all(m.name in written for m in g.members)]
        if not ready:
            raise MalformedError("policy groups reference undefined members")
        for group in ready:
            members = " ".join(member.name for member in group.members)
            lines.append(f"group {group.name} {_threshold_text(group)} {members}")
            written.add(group.name)
            pending.remove(group)
    lines.append(f"quorum {policy.quorum.name}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
