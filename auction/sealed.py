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
* `max` and `max:<i>`: a proxy maximum, the `amount` of a `SetMax` command and of the `MaxSet`
  event at index `i` of the entry's events. Unlike the others these are opened to everyone
  when the lot closes, by the `reveal` entries written right after the close
  (`reveal_bodies`).
* `reserve`: a lot's hidden reserve, the `reserve` of the rules of its `lot` entry; revealed
  with the lot's maxima.

`open_body` verifies every opening against its commitment and rebuilds the body as it was
before sealing (account ids back in place of aliases), so that the rules replay and the
signed-bid checks run on it exactly as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

from .verify.sealed import ALIAS_MARK as ALIAS_MARK
from .verify.sealed import BIDDER_FIELDS as BIDDER_FIELDS
from .verify.sealed import COMMIT_PREFIX as COMMIT_PREFIX
from .verify.sealed import LINK as LINK
from .verify.sealed import MAX as MAX
from .verify.sealed import MAX_EVENT as MAX_EVENT
from .verify.sealed import NONCE_BYTES as NONCE_BYTES
from .verify.sealed import RESERVE as RESERVE
from .verify.sealed import LinkBook as LinkBook
from .verify.sealed import SealError as SealError
from .verify.sealed import bidders_of as bidders_of
from .verify.sealed import check_opening as check_opening
from .verify.sealed import commitment as commitment
from .verify.sealed import is_max_name as is_max_name
from .verify.sealed import is_revealed_name as is_revealed_name
from .verify.sealed import max_names as max_names
from .verify.sealed import open_body as open_body
from .verify.sealed import put_maxima as put_maxima
from .verify.sealed import put_reserve as put_reserve
from .verify.sealed import rename_bidders as rename_bidders
from .verify.sealed import reserve_names as reserve_names
from .verify.sealed import reveal_bodies as reveal_bodies

#: The prefix of the HMAC input that derives a bidder's alias in a lot.
ALIAS_PREFIX: Final = b"gavel/alias/v1\n"
STAFF_MARK: Final = "s-"


def seal(value: Any) -> tuple[str, dict[str, Any]]:
    """A fresh commitment to `value` and its opening."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    opening = {"nonce": base64.b64encode(nonce).decode("ascii"), "value": value}
    return commitment(nonce, value), opening


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


def seal_command_body(
    body: Mapping[str, Any], key: bytes, linked: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public form of a lot command's entry body and the openings of its sealed values.

    Account ids in bidder fields become the lot's aliases; an alias not in `linked` (the
    aliases of the lot that earlier entries linked) gets its `link:` commitment here and is
    added to `linked`; a signed request is sealed whole; a proxy maximum (a `SetMax` command's
    amount, a `MaxSet` event's amount) is sealed as `max` / `max:<i>`."""
    lot = str(body["lot"])
    accounts = bidders_of({"command": body["command"], "events": body["events"]})
    names = {account: alias(key, lot, account) for account in accounts}
    public = dict(rename_bidders(dict(body), names))
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
    command = public.get("command")
    if isinstance(command, dict) and command.get("type") == "SetMax" and "amount" in command:
        sealed[MAX], openings[MAX] = seal(command.pop("amount"))
    for index, event in enumerate(public.get("events") or ()):
        if isinstance(event, dict) and event.get("type") == "MaxSet" and "amount" in event:
            name = f"{MAX_EVENT}{index}"
            sealed[name], openings[name] = seal(event.pop("amount"))
    if sealed:
        public["sealed"] = sealed
    return public, openings


def seal_lot_body(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public form of a `lot` body: a hidden reserve (its rules' `reserve`, when set) is
    removed from the rules and sealed as `reserve`; a lot without one is unchanged."""
    public = dict(body)
    rules = public.get("rules")
    if not isinstance(rules, Mapping) or rules.get("reserve") is None:
        return public, {}
    rules = dict(rules)
    committed, opening = seal(rules.pop("reserve"))
    public["rules"] = rules
    public["sealed"] = {RESERVE: committed}
    return public, {RESERVE: opening}


def seal_idv_body(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public form of an `idv` body: its account sealed."""
    public = dict(body)
    account = public.pop("account")
    committed, opening = seal(account)
    public["sealed"] = {"account": committed}
    return public, {"account": opening}
