"""Sealed values on the ledger: hiding commitments, their openings, per-lot bidder aliases (pure).

A *sealed value* is written to a public entry as a commitment only:

    commitment = base64(SHA-256(b"gavel/sealed/v1\\n" || nonce || RFC8785(value)))

with `nonce` 32 random bytes. The *opening* `{"nonce": base64(nonce), "value": value}` is kept
by the server in the same transaction as the entry and given to the log's notaries, to auditors
and exports, and to the bidder concerned in their receipt (docs/ledger.md).

An entry with sealed values has a body member `sealed`: `{name: commitment}`. The names:

* `link:<alias>`: on the first entry of a lot that names bidder `<alias>`; opens to
  `{"account": <account id>, "alias": <alias>, "lot": <lot id>}`. Public entries name a bidder
  by its alias (unlinkable across lots: an HMAC of the lot and the account under a house secret)
  and its per-lot code, never by its account id.
* `request`: a bid's signed request (docs/protocol.md §2.4; it names the account and is
  signed with the account's key, so it would link the bidder across lots).
* `account`: the account of an `idv` entry.

`open_body` verifies every opening against its commitment and rebuilds the body as it was
before sealing (account ids back in place of aliases), so that the rules replay and the
signed-bid checks run on it exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

from chain import canonical_json

from .errors import GavelError

#: The domain-separation prefix of every commitment.
COMMIT_PREFIX: Final = b"gavel/sealed/v1\n"
#: The prefix of the HMAC input that derives a bidder's alias in a lot.
ALIAS_PREFIX: Final = b"gavel/alias/v1\n"
#: Body member names (of commands and events) that hold a bidder's account id.
BIDDER_FIELDS: Final = frozenset({"bidder", "winner", "leader", "agent_for", "on_behalf_of"})
#: Aliases start with this; a floor bidder (`floor:<paddle>`) is no account and stays as is.
ALIAS_MARK: Final = "b-"
LINK: Final = "link:"
STAFF_MARK: Final = "s-"
NONCE_BYTES: Final = 32


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


def seal(value: Any) -> tuple[str, dict[str, Any]]:
    """A fresh commitment to `value` and its opening."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    opening = {"nonce": base64.b64encode(nonce).decode("ascii"), "value": value}
    return commitment(nonce, value), opening


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


def alias_key(house_seed: bytes) -> bytes:
    """The secret that derives aliases, from the house key's seed (never published)."""
    return hashlib.sha256(b"gavel/alias-key/v1\n" + house_seed).digest()


def alias(key: bytes, lot: str, account: str) -> str:
    """Bidder `account`'s alias in lot `lot`: stable within the lot, unlinkable across lots."""
    mac = hmac.new(key, ALIAS_PREFIX + f"{lot}\n{account}".encode(), hashlib.sha256).digest()
    return ALIAS_MARK + base64.b32encode(mac[:15]).decode("ascii").lower()


def staff_alias(key: bytes, account: str) -> str:
    """A staff member's name on public entries (who acted for the house): stable, so one
    person's actions are seen together, but not their account id; the server (and an
    auditor it shows its staff list) recomputes it from the account."""
    mac = hmac.new(key, ALIAS_PREFIX + f"staff\n{account}".encode(), hashlib.sha256).digest()
    return STAFF_MARK + base64.b32encode(mac[:15]).decode("ascii").lower()


def _rename(value: Any, names: Mapping[str, str]) -> Any:
    """`value` with every bidder field's account id replaced by `names[id]` (when known)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key in BIDDER_FIELDS and isinstance(item, str) and item in names:
                out[key] = names[item]
            else:
                out[key] = _rename(item, names)
        return out
    if isinstance(value, list | tuple):
        return [_rename(item, names) for item in value]
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


def seal_command_body(
    body: Mapping[str, Any], key: bytes, linked: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public form of a lot command's entry body and the openings of its sealed values.

    Account ids in bidder fields become the lot's aliases; an alias not in `linked` (the
    aliases of the lot that earlier entries linked) gets its `link:` commitment here and is
    added to `linked`; a signed request is sealed whole."""
    lot = str(body["lot"])
    accounts = bidders_of({"command": body["command"], "events": body["events"]})
    names = {account: alias(key, lot, account) for account in accounts}
    public = dict(_rename(dict(body), names))
    sealed: dict[str, str] = {}
    openings: dict[str, Any] = {}
    for account, name in names.items():
        if name in linked:
            continue
        linked.add(name)
        sealed[LINK + name], openings[LINK + name] = seal(
            {"account": account, "alias": name, "lot": lot}
        )
    request = public.pop("request", None)
    if request is not None:
        sealed["request"], openings["request"] = seal(request)
    if sealed:
        public["sealed"] = sealed
    return public, openings


def seal_idv_body(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public form of an `idv` body: its account sealed."""
    public = dict(body)
    account = public.pop("account")
    committed, opening = seal(account)
    public["sealed"] = {"account": committed}
    return public, {"account": opening}


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
        else:
            raise SealError(name, "not a sealed value this entry type has")
    if isinstance(lot, str) and "command" in plain:
        known = links.accounts.get(lot, {})
        aliases = [a for a in bidders_of(plain) if a.startswith(ALIAS_MARK)]
        for name in aliases:
            if name not in known:
                raise SealError(LINK + name, "a bidder alias that no earlier entry linked")
        plain = dict(_rename(plain, known))
    return plain
