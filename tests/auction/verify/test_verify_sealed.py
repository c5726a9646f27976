"""Opening a command's bidder aliases (auction/verify/sealed.py, `open_body`): the one walk
that renames the aliases and refuses an unlinked one gives what renaming (`rename_bidders`)
after listing the bidders (`bidders_of`) gives, on every shape a body can take."""

from __future__ import annotations

import base64
from types import MappingProxyType
from typing import Any

import pytest

from auction.verify import LinkBook, SealError, bidders_of, open_body, rename_bidders
from auction.verify.sealed import ALIAS_MARK, LINK, commitment

LOT = "lot-7"
NONCE = bytes(range(32))


def linked(*pairs: tuple[str, str]) -> LinkBook:
    links = LinkBook()
    for alias, account in pairs:
        links.link(LOT, alias, {"account": account, "alias": alias, "lot": LOT})
    return links


def reference(body: dict[str, Any], links: LinkBook) -> dict[str, Any]:
    """The opening as two walks: every alias must be linked, then all are renamed."""
    known = links.accounts.get(LOT, {})
    for name in bidders_of(body):
        if name.startswith(ALIAS_MARK) and name not in known:
            raise SealError(LINK + name, "a bidder alias that no earlier entry linked")
    return dict(rename_bidders(body, known))


def bid_body(bidder: str, leader: str, winner: Any = None) -> dict[str, Any]:
    events: list[Any] = [
        {"type": "BidAccepted", "bidder": bidder, "amount": 12_500, "seq": 4},
        {"type": "LeaderChanged", "leader": leader, "previous": None, "seq": 5},
        ("tuple", {"winner": winner, "on_behalf_of": [bidder, "floor:12"]}),
    ]
    return {
        "v": 1,
        "lot": LOT,
        "n": 3,
        "ingress": "2027-01-05T10:00:00.000000Z",
        "command": {"type": "PlaceBid", "bidder": bidder, "amount": 12_500, "nested": [[1.5]]},
        "events": events,
        "accepted": True,
        "note": "b-not-a-bidder-field",
    }


@pytest.mark.parametrize(
    "body",
    [
        bid_body("b-aaaa", "b-bbbb"),
        bid_body("b-aaaa", "acct-plain", winner="b-bbbb"),
        bid_body("acct-plain", "floor:3"),
        bid_body("x-linked", "b-aaaa"),  # a link name without the alias mark is renamed too
        {"v": 1, "lot": LOT, "command": None, "events": []},
    ],
)
def test_opened_aliases_match_renaming_after_listing(body: dict[str, Any]) -> None:
    links = linked(("b-aaaa", "acct-1"), ("b-bbbb", "acct-2"), ("x-linked", "acct-3"))
    kept = repr(body)
    opened = open_body("bid", body, None, links)
    assert opened == reference(body, links)
    assert repr(body) == kept  # the input is not changed
    assert not [name for name in bidders_of(opened) if name in links.accounts[LOT]]
    # fresh plain dicts and lists: tuples and read-only mappings come back thawed
    frozen = MappingProxyType({**body, "command": MappingProxyType({"bidder": "b-aaaa"})})
    thawed = open_body("bid", frozen, None, links)
    assert thawed == reference(dict(frozen), links)
    assert type(thawed["command"]) is dict and thawed["command"]["bidder"] == "acct-1"
    assert all(type(event) is not tuple for event in thawed["events"])


def test_the_first_unlinked_alias_is_refused_as_before() -> None:
    links = linked(("b-aaaa", "acct-1"))
    body = bid_body("b-aaaa", "b-cccc", winner="b-dddd")
    with pytest.raises(SealError) as expected:
        reference(body, links)
    with pytest.raises(SealError) as raised:
        open_body("bid", body, None, links)
    assert raised.value.name == expected.value.name == "link:b-cccc"
    assert str(raised.value) == str(expected.value)


def test_a_body_opened_and_renamed_in_one_entry() -> None:
    nonce = base64.b64encode(NONCE).decode()
    link = {"account": "acct-9", "alias": "b-9999", "lot": LOT}
    body = {**bid_body("b-9999", "b-9999"), "sealed": {"link:b-9999": commitment(NONCE, link)}}
    links = LinkBook()
    opened = open_body("bid", body, {"link:b-9999": {"nonce": nonce, "value": link}}, links)
    assert opened["command"]["bidder"] == opened["events"][1]["leader"] == "acct-9"
    assert "sealed" not in opened
    assert links.accounts == {LOT: {"b-9999": "acct-9"}}
