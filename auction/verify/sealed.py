"""Sealed values read back: a commitment checked against its opening, and an entry's body
rebuilt from its openings (:func:`open_body`) with the per-lot links of aliases to accounts
(:class:`LinkBook`). Writing them (sealing, aliases) is the server's: :mod:`auction.sealed`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from chain import canonical_json

from ..errors import GavelError

#: The domain-separation prefix of every commitment.
COMMIT_PREFIX: Final = b"gavel/sealed/v1\n"


#: Body member names (of commands and events) that hold a bidder's account id.
BIDDER_FIELDS: Final = frozenset({"bidder", "winner", "leader", "agent_for", "on_behalf_of"})


#: Aliases start with this; a floor bidder (`floor:<paddle>`) is no account and stays as is.
ALIAS_MARK: Final = "b-"


LINK: Final = "link:"


NONCE_BYTES: Final = 32


#: The sealed proxy maximum of a `SetMax` command (its `amount`).
MAX: Final = "max"
#: `max:<i>`: the sealed `amount` of the `MaxSet` event at index `i` of an entry's events.
MAX_EVENT: Final = "max:"
#: The sealed hidden reserve of a `lot` entry (its rules' `reserve`).
RESERVE: Final = "reserve"
#: The most bytes of openings one `reveal` entry carries (an entry is at most 16 KiB).
REVEAL_BYTES: Final = 12 * 1024


class SealError(GavelError):
    """An opening is missing, malformed, or does not match its commitment. `name` is the
    sealed value concerned."""

    code = "BAD_OPENING"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"sealed value {name!r}: {message}")
        self.name = name
        self.message = message


def commitment(nonce: bytes, value: Any) -> str:
    """The commitment to `value` under `nonce` (base64 of 32 bytes)."""
    digest = hashlib.sha256(COMMIT_PREFIX + nonce + canonical_json(value)).digest()
    return base64.b64encode(digest).decode("ascii")


def check_opening(name: str, committed: Any, opening: Any) -> Any:
    """The value of `opening` if it opens `committed`; raises `SealError`."""
    if opening is None:
        raise SealError(name, "its opening is missing")
    if not isinstance(opening, Mapping) or set(opening) != {"nonce", "value"}:
        raise SealError(name, "an opening is {nonce, value}")
    try:
        nonce = base64.b64decode(str(opening["nonce"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealError(name, "the opening's nonce is not base64") from exc
    if len(nonce) != NONCE_BYTES:
        raise SealError(name, f"the opening's nonce is not {NONCE_BYTES} bytes")
    if not isinstance(committed, str) or not hmac.compare_digest(
        commitment(nonce, opening["value"]), committed
    ):
        raise SealError(name, "the opening does not match the commitment on the ledger")
    return opening["value"]


def is_max_name(name: str) -> bool:
    """Whether `name` seals a proxy maximum (revealed to everyone when its lot closes)."""
    return name == MAX or name.startswith(MAX_EVENT)


def is_revealed_name(name: str) -> bool:
    """Whether `name` seals a value opened to everyone when its lot closes: a proxy maximum
    or a lot's hidden reserve."""
    return name == RESERVE or is_max_name(name)


def reserve_names(body: Mapping[str, Any]) -> dict[str, str]:
    """The sealed reserve of a `lot` entry body: `{"reserve": commitment}`, or `{}`."""
    sealed = body.get("sealed")
    if not isinstance(sealed, Mapping) or RESERVE not in sealed:
        return {}
    return {RESERVE: sealed[RESERVE]}


def put_reserve(body: Mapping[str, Any], value: Any) -> dict[str, Any]:
    """A `lot` entry body with its opened reserve `value` back in its rules. Raises
    `SealError` when it does not fit (no rules object, a reserve in the clear as well)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SealError(RESERVE, "a reserve opens to an integer amount")
    rules = body.get("rules")
    if not isinstance(rules, Mapping):
        raise SealError(RESERVE, "a sealed reserve outside a lot's rules")
    if "reserve" in rules:
        raise SealError(RESERVE, "the rules' reserve is in the clear as well")
    return {**body, "rules": {**rules, "reserve": value}}


def max_names(body: Mapping[str, Any]) -> dict[str, str]:
    """The sealed proxy maxima of an entry body: `{name: commitment}`."""
    sealed = body.get("sealed")
    if not isinstance(sealed, Mapping):
        return {}
    return {name: c for name, c in sealed.items() if isinstance(name, str) and is_max_name(name)}


def put_maxima(body: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`body` with the opened maxima `values` (`{name: amount}`) back in place: `max` as the
    command's `amount`, `max:<i>` as the `amount` of the `MaxSet` event at index `i`.
    Raises `SealError` for a name that does not fit the body."""
    plain = dict(body)
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise SealError(name, "a maximum opens to an integer amount")
        if name == MAX:
            command = plain.get("command")
            if not isinstance(command, Mapping) or command.get("type") != "SetMax":
                raise SealError(name, "a sealed maximum outside a SetMax command")
            if "amount" in command:
                raise SealError(name, "the command's amount is in the clear as well")
            plain["command"] = {**command, "amount": value}
            continue
        index = name[len(MAX_EVENT) :]
        events = plain.get("events")
        if (
            not name.startswith(MAX_EVENT)
            or not index.isdigit()
            or str(int(index)) != index
            or not isinstance(events, list | tuple)
            or int(index) >= len(events)
        ):
            raise SealError(name, "names no event of this entry")
        event = events[int(index)]
        if not isinstance(event, Mapping) or event.get("type") != "MaxSet" or "amount" in event:
            raise SealError(name, "names no MaxSet event with a sealed amount")
        events = list(events)
        events[int(index)] = {**event, "amount": value}
        plain["events"] = events
    return plain


def reveal_bodies(
    lot: str, close_entry: int, maxima: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The `reveal` entry bodies of a lot that closed at entry `close_entry`: the openings
    `maxima` (`{seq: {name: opening}}`, every sealed maximum of the lot not revealed yet, and
    its sealed reserve under the seq of its `lot` entry) in
    parts of at most `REVEAL_BYTES` bytes of openings, whole entries per part, in seq order."""
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    size = 0
    for seq in sorted(maxima):
        item = {name: dict(opening) for name, opening in sorted(maxima[seq].items())}
        cost = len(canonical_json({str(seq): item}))
        if current and size + cost > REVEAL_BYTES:
            parts.append(current)
            current, size = {}, 0
        current[str(seq)] = item
        size += cost
    if current or not parts:
        parts.append(current)
    return [
        {
            "v": 1,
            "lot": lot,
            "close_entry": close_entry,
            "part": i,
            "parts": len(parts),
            "openings": openings,
        }
        for i, openings in enumerate(parts)
    ]


def rename_bidders(value: Any, names: Mapping[str, str]) -> Any:
    """`value` with every bidder field's account id replaced by `names[id]` (when known)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key in BIDDER_FIELDS and isinstance(item, str) and item in names:
                out[key] = names[item]
            else:
                out[key] = rename_bidders(item, names)
        return out
    if isinstance(value, list | tuple):
        return [rename_bidders(item, names) for item in value]
    return value


def bidders_of(value: Any) -> list[str]:
    """The account ids (or aliases) in the bidder fields of `value`, first seen first."""
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if key in BIDDER_FIELDS and isinstance(inner, str):
                    if not inner.startswith("floor:") and inner not in found:
                        found.append(inner)
                else:
                    walk(inner)
        elif isinstance(item, list | tuple):
            for inner in item:
                walk(inner)

    walk(value)
    return found


class LinkBook:
    """Per lot, the accounts behind the aliases (from verified `link:` openings): one account
    holds one alias (so one bidder code) per lot."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, str]] = {}  # lot -> alias -> account
        self.aliases: dict[str, dict[str, str]] = {}  # lot -> account -> alias

    def link(self, lot: str, name: str, value: Any) -> None:
        if (
            not isinstance(value, Mapping)
            or set(value) != {"account", "alias", "lot"}
            or not all(isinstance(v, str) and v for v in value.values())
        ):
            raise SealError(LINK + name, "a link opens to {account, alias, lot}")
        if value["alias"] != name or value["lot"] != lot:
            raise SealError(LINK + name, "the link names another alias or lot")
        by_alias = self.accounts.setdefault(lot, {})
        by_account = self.aliases.setdefault(lot, {})
        account = str(value["account"])
        if name in by_alias:
            raise SealError(LINK + name, "this alias was linked before in this lot")
        if account in by_account:
            raise SealError(
                LINK + name,
                f"the account behind it already bids in lot {lot} as {by_account[account]}:"
                " one account holds one bidder code per lot",
            )
        by_alias[name] = account
        by_account[account] = name


def open_body(
    entry_type: str, body: Mapping[str, Any], openings: Mapping[str, Any] | None, links: LinkBook
) -> dict[str, Any]:
    """The body before sealing, every opening checked (raises `SealError`). Bodies without a
    `sealed` member and without aliases come back unchanged (logs written before sealing)."""
    plain = dict(body)
    sealed = plain.pop("sealed", None)
    if sealed is None:
        sealed = {}
    if not isinstance(sealed, Mapping):
        raise SealError("sealed", "the sealed member is an object")
    given = dict(openings or {})
    extra = set(given) - set(sealed)
    if extra:
        raise SealError(sorted(extra)[0], "an opening for a value this entry does not seal")
    values = {name: check_opening(name, sealed[name], given.get(name)) for name in sealed}
    lot = plain.get("lot")
    for name, value in values.items():
        if name.startswith(LINK):
            if not isinstance(lot, str):
                raise SealError(name, "a link outside a lot")
            links.link(lot, name[len(LINK) :], value)
        elif name == "request":
            plain["request"] = value
        elif name == "account" and entry_type == "idv":
            plain["account"] = value
        elif name == RESERVE and entry_type == "lot":
            plain = put_reserve(plain, value)
        elif not is_max_name(name) or entry_type != "bid":
            raise SealError(name, "not a sealed value this entry type has")
    maxima = {name: value for name, value in values.items() if is_max_name(name)}
    if maxima:
        plain = put_maxima(plain, maxima)
    if isinstance(lot, str) and "command" in plain:
        plain = _opened_bidders(plain, links.accounts.get(lot, {}))
    return plain


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _opened_bidders(value: Any, known: Mapping[str, str]) -> Any:
    """`rename_bidders(value, known)` that also refuses an alias `known` does not hold (the
    first one met, in the order `bidders_of` lists them), in one walk: it runs on every
    command of a replay, so plain dicts, lists and scalars are told apart by their exact type
    before the slower abstract checks."""
    kind = type(value)
    if kind is dict or (kind not in _SCALARS and kind is not list and isinstance(value, Mapping)):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str):
                if key in BIDDER_FIELDS:
                    name = known.get(item)
                    if name is not None:
                        item = name
                    elif item.startswith(ALIAS_MARK):
                        raise SealError(LINK + item, "a bidder alias that no earlier entry linked")
                out[key] = item
            elif type(item) in _SCALARS:
                out[key] = item
            else:
                out[key] = _opened_bidders(item, known)
        return out
    if kind is list or isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _opened_bidders(item, known) for item in value]
    return value
