"""`auction.words`: every refusal, lot state, deposit state and format in plain words with the
numbers that matter, never an engine name; and the server's words reaching a bidder's ack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from server_kit import Server, add_lots, new_bidder, ready_bidder, running_server, verify, wait_open
from words_kit import ENGINE_NAME

from auction.client import BidderClient
from auction.rules import (
    DepositState,
    Format,
    LotStatus,
    RejectReason,
    english_timed,
    fixed_price,
    judicial,
    live_auctioneer,
)
from auction.rules.events import LivePhase
from auction.web.api import CONSOLE_COMMANDS
from auction.web.facts import lot_terms
from auction.words import (
    COMMAND_WORDS,
    RefusalContext,
    bidder_words,
    command_refusal_words,
    deposit_state_words,
    extension_rule_words,
    how_to_buy_words,
    known_codes,
    lot_state_words,
    money,
    refusal_words,
    without_engine_names,
    words_tables,
)

MINUTE = 60_000_000
DAY = 24 * 60 * MINUTE


def assert_plain(text: str) -> None:
    assert text and text[0].isupper() and text.rstrip()[-1] in ".!:", text
    found = ENGINE_NAME.search(text)
    assert found is None, f"engine name {found.group(0)!r} in {text!r}"


CONTEXT = RefusalContext(
    "CNY",
    price=213_000_000,
    min_next=214_000_000,
    step=1_000_000,
    start_price=210_000_000,
    deposit=21_000_000,
    end=1_800_000_000_000_000,
    timezone="Asia/Shanghai",
)


def test_the_sentences_of_the_brief() -> None:
    assert refusal_words("BELOW_MIN", CONTEXT) == (
        "The next bid is at least CN¥2,140,000 (step CN¥10,000)."
    )
    assert refusal_words("NO_DEPOSIT", CONTEXT) == "Pay the deposit of CN¥210,000 to bid."
    assert refusal_words("SELF_OUTBID", CONTEXT).startswith(
        "You are already the highest bidder at CN¥2,130,000"
    )
    assert "CN¥10,000" in refusal_words("OFF_GRID", CONTEXT)
    assert "Asia/Shanghai" in refusal_words("LATE", CONTEXT)


@pytest.mark.parametrize("reason", sorted(known_codes()))
def test_every_refusal_has_plain_words(reason: str) -> None:
    generic = "The request was refused."
    for context in (CONTEXT, None, RefusalContext("USD", min_next=10_000)):
        words = refusal_words(reason, context)
        assert words != generic, reason  # each code has its own sentence
        assert_plain(words)
    assert refusal_words("SOMETHING_NEW") == generic  # an unknown code: never the code itself


def test_every_state_and_format_has_words() -> None:
    tables = words_tables()
    assert set(tables["lot_states"]) == {status.value for status in LotStatus}
    assert set(tables["deposit_states"]) == {state.value for state in DepositState}
    assert set(tables["formats"]) == {kind.value for kind in Format}
    assert set(tables["phases"]) == {phase.value for phase in LivePhase}
    for table in tables.values():
        for words in table.values():
            assert ENGINE_NAME.search(words) is None, words
    for status in LotStatus:
        assert_plain(lot_state_words(status.value) + ".")
        for phase in LivePhase:
            assert_plain(lot_state_words(status.value, phase.value) + ".")
    assert lot_state_words("OPEN", "FAIR_WARNING") == "Fair warning"
    assert lot_state_words("OPEN", None, "SOLD") == "Sold"
    for state in DepositState:
        assert_plain(deposit_state_words(state.value) + ".")
    assert lot_state_words("NEW_STATE") == "State not known"


def test_console_refusals_name_the_kind_of_lot() -> None:
    from auction.rules import LotState

    live = LotState.create("painting", live_auctioneer(start_price=500_000, start_at=0))
    words = command_refusal_words("OpenLot", "NOT_PERMITTED", live)
    assert words == (
        "Opening the lot does not apply to a live auction. "
        "A live lot opens when you open the ring at an ask."
    )
    assert set(COMMAND_WORDS) == set(CONSOLE_COMMANDS)
    for command in CONSOLE_COMMANDS:
        for reason in RejectReason:
            assert_plain(command_refusal_words(command, reason.value, live))


def test_extension_rule_and_money_in_words() -> None:
    flat = judicial(start_price=210_000_000, step=1_000_000, start_at=0, end_at=86_400_000_000)
    assert extension_rule_words(flat) == (
        "A bid in the last 5 minutes extends the end by 5 minutes, as often as needed."
    )
    watch = english_timed(start_price=10_000, start_at=0, end_at=MINUTE * 10)
    assert extension_rule_words(watch) == (
        "A bid that changes the price in the last 2 minutes extends the end by 2 minutes,"
        " as often as needed."
    )
    live = live_auctioneer(start_price=10_000, start_at=0)
    assert "hammer" in extension_rule_words(live)
    assert money(214_000_000, "CNY") == "CN¥2,140,000"
    assert money(351_250, "USD") == "$3,512.50"
    assert money(5, "XAU") == "XAU 0.05"
    assert money(None, "CNY") == "—"


def test_a_fixed_price_sale_says_how_to_buy_not_a_step_or_a_bidding_rule() -> None:
    """auction/rules/formats/fixed_price.py: the first confirmation at exactly the price buys
    the lot; registered priority holders may match it within the window; no bidding."""
    sale = fixed_price(price=14_400_000, start_at=0, end_at=DAY * 60)
    how = how_to_buy_words(sale)
    assert how == (
        "Buy at the fixed price of CN¥144,000: pay the deposit of CN¥14,400, then confirm the"
        " purchase at exactly CN¥144,000. The first confirmation buys the lot; there is no"
        " bidding and the price does not change. If someone with a priority purchase right has"
        " registered, they have 1 day after that confirmation to buy at the same price instead."
        " If nobody confirms before the sale period ends, the lot is not sold."
    )
    assert "priority_window" not in how and ENGINE_NAME.search(how) is None
    no_window = fixed_price(price=14_400_000, start_at=0, end_at=DAY * 60, priority_window=0)
    assert "priority" not in str(how_to_buy_words(no_window))
    terms = lot_terms(sale)
    assert (terms["fixed_price"], terms["fixed_price_text"]) == (14_400_000, "CN¥144,000")
    assert terms["how_to_buy"] == how
    assert terms["step"] is None and terms["step_text"] is None
    assert terms["extension_rule"] is None
    assert "in place of the first buyer" in str(terms["priority_rights"])
    # An auction keeps its step and its rule, and has nothing to "buy" at one price.
    flat = judicial(start_price=210_000_000, step=1_000_000, start_at=0, end_at=DAY)
    assert how_to_buy_words(flat) is None
    auction = lot_terms(flat)
    assert auction["step_text"] == "CN¥10,000" and auction["extension_rule"]
    assert "fixed_price" not in auction and "highest bid" in str(auction["priority_rights"])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running, open_in=0.2)
        yield running


async def test_a_bidders_ack_carries_the_servers_words(server: Server) -> None:
    """The refusal a bidder's page shows is the server's sentence, with the lot's numbers."""
    async with aiohttp.ClientSession() as http:
        await wait_open(server, "flat")
        no_deposit = await new_bidder(http, server.url)
        await verify(http, server.url, no_deposit)
        async with http.post(
            f"{server.url}/api/lots/flat/registrations", json={}, headers=no_deposit.auth
        ) as response:
            assert response.status == 201
        async with await BidderClient.connect(
            server.url,
            account=no_deposit.account,
            key=no_deposit.key,
            session=no_deposit.session,
        ) as client:
            ack = await client.bid("flat", 1_000_000, "CNY")
            assert ack.reason == "NO_DEPOSIT"
            assert ack.raw["message"] == "Pay the deposit of CN¥1,000 to bid."
        bidder = await ready_bidder(http, server.url, ("flat",))
        async with await BidderClient.connect(
            server.url, account=bidder.account, key=bidder.key, session=bidder.session
        ) as client:
            first = await client.bid("flat", 1_000_000, "CNY")
            assert first.accepted, first.raw
            again = await client.bid("flat", 1_010_000, "CNY")
            assert again.reason == "SELF_OUTBID"
            assert again.raw["message"].startswith(
                "You are already the highest bidder at CN¥10,000"
            )
        other = await ready_bidder(http, server.url, ("flat",))
        async with await BidderClient.connect(
            server.url, account=other.account, key=other.key, session=other.session
        ) as client:
            low = await client.bid("flat", 1_000_000, "CNY")
            assert low.raw["message"] == "The next bid is at least CN¥10,100 (step CN¥100)."
            for message in (low.raw["message"], again.raw["message"]):
                assert_plain(message)


def test_rule_errors_name_formats_in_words() -> None:
    from auction.rules import ConfigError

    with pytest.raises(ConfigError) as caught:
        judicial(start_price=100_000, step=1_000, start_at=0, end_at=60_000_000)
    words = without_engine_names(str(caught.value))
    assert words.startswith("Judicial sale (China) lots must last at least"), words
    assert ENGINE_NAME.search(words) is None, words


def test_a_sale_room_bidder_is_named_by_paddle() -> None:
    assert bidder_words("floor:125") == "paddle 125 in the room"
    assert bidder_words("A3A6-F361") == "A3A6-F361"


def test_a_wrong_amount_on_a_fixed_price_sale_names_the_price_not_steps() -> None:
    context = RefusalContext("CNY", start_price=144_000_00, step=144_000_00, fixed_price=144_000_00)
    for reason in ("BELOW_MIN", "OFF_GRID"):
        words = refusal_words(reason, context)
        assert words == (
            "This lot is sold at a fixed price of CN¥144,000: confirm the purchase at "
            "exactly CN¥144,000."
        ), words
    assert "steps" in refusal_words("OFF_GRID", RefusalContext("CNY", step=1_000_00, min_next=5))
