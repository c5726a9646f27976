"""The websocket connection's protocol state (`auction.bidding.session`), without an event loop:
each transition and refusal, and by property, that no sequence of messages makes it raise."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.bidding import protocol as p
from auction.bidding.session import (
    MAX_ERRORS,
    Action,
    Close,
    ConnectionState,
    ConnectionStateError,
    LookUpSession,
    LotSnapshot,
    Phase,
    Send,
    SubmitBid,
    Unsubscribed,
    session_key,
)
from auction.verify import SignedBid

NOW = 1_700_000_000_000_000
SECOND = 1_000_000
TOKEN = "token-of-alice"


class FakeLots:
    """Lots as the hub shows them: `lot → (seq, view)`, and the updates it still has."""

    def __init__(self, **lots: int) -> None:
        self.seqs = dict(lots)
        self.kept: dict[str, list[dict[str, Any]]] = {}

    def snapshot(self, lot: str) -> LotSnapshot | None:
        seq = self.seqs.get(lot)
        return None if seq is None else LotSnapshot(seq, {"lot": lot, "seq": seq})

    def missed(self, lot: str, since_seq: int, current_seq: int) -> list[dict[str, Any]] | None:
        if since_seq <= 0 or lot not in self.kept:
            return None
        return [u | {"replayed": True} for u in self.kept[lot] if u["seq"] > since_seq]


def new_state(lots: FakeLots | None = None, **options: Any) -> ConnectionState:
    return ConnectionState(lots or FakeLots(watch=7), heartbeat_s=15, bids_per_second=5, **options)


def bid(lot: str = "watch") -> SignedBid:
    frame = {
        "type": "bid",
        "lot": lot,
        "kind": "bid",
        "amount": 1_000_000,
        "currency": "CNY",
        "idempotency_key": "k-1",
        "sig": base64.b64encode(b"\x01" * 64).decode(),
    }
    message = p.parse_client_message(json.dumps(frame))
    assert isinstance(message, SignedBid)
    return message


def signed_in(role: str = "bidder", expires_us: int = NOW + 3600 * SECOND) -> ConnectionState:
    state = new_state()
    assert state.receive(p.Hello(p.VERSION, TOKEN), NOW) == [LookUpSession(TOKEN)]
    state.authenticated("acct-alice", role, expires_us, NOW)
    return state


def anonymous(lots: FakeLots | None = None) -> ConnectionState:
    state = new_state(lots)
    state.receive(p.Hello(p.VERSION, None), NOW)
    return state


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [action.message for action in actions if isinstance(action, Send)]


# -- hello --


def test_hello_without_a_session_is_welcomed_as_a_watcher() -> None:
    state = new_state()
    (welcome,) = sent(state.receive(p.Hello(p.VERSION, None), NOW))
    assert welcome == {
        "type": "welcome",
        "v": p.VERSION,
        "server_time_us": NOW,
        "account": None,
        "role": None,
        "heartbeat_s": 15,
        "limits": {"frame_bytes": p.MAX_FRAME_BYTES, "bids_per_second": 5},
    }
    assert state.phase is Phase.OPEN and state.account is None


def test_hello_with_a_session_asks_for_it_then_welcomes_its_account() -> None:
    state = new_state()
    assert state.receive(p.Hello(p.VERSION, TOKEN), NOW) == [LookUpSession(TOKEN)]
    assert state.phase is Phase.AUTHENTICATING
    assert state.session_key == session_key(TOKEN) != TOKEN
    (welcome,) = sent(state.authenticated("acct-alice", "bidder", NOW + SECOND, NOW + 5))
    assert welcome["account"] == "acct-alice" and welcome["role"] == "bidder"
    assert welcome["server_time_us"] == NOW + 5
    assert (state.phase, state.expires_us) == (Phase.OPEN, NOW + SECOND)


def test_an_unknown_session_closes_4003() -> None:
    state = new_state()
    state.receive(p.Hello(p.VERSION, TOKEN), NOW)
    assert state.not_authenticated() == [
        Close(p.CLOSE_UNAUTHORIZED, "the session is invalid or has expired")
    ]
    assert state.phase is Phase.CLOSED


def test_another_version_closes_4001() -> None:
    state = new_state()
    assert state.receive(p.Hello(p.VERSION + 1, None), NOW) == [
        Close(p.CLOSE_VERSION, f"this server speaks version {p.VERSION}")
    ]


@pytest.mark.parametrize(
    "first", [p.Ping(), p.TimeRequest(1.5), p.Subscribe("watch", 0), p.Unsubscribe("watch"), bid()]
)
def test_a_first_message_other_than_hello_closes_4000(first: p.ClientMessage) -> None:
    state = new_state()
    assert state.receive(first, NOW) == [Close(p.CLOSE_PROTOCOL, "the first message must be hello")]
    assert state.phase is Phase.CLOSED


def test_no_hello_in_time_closes_4000() -> None:
    assert new_state().hello_timed_out() == [
        Close(p.CLOSE_PROTOCOL, "say hello first, within 10 seconds")
    ]


def test_a_malformed_first_frame_closes_with_the_parsers_code() -> None:
    state = new_state()
    error = p.ProtocolViolation(p.CLOSE_TOO_BIG, "frames are at most 4096 bytes")
    assert state.receive_invalid(error, NOW) == [Close(p.CLOSE_TOO_BIG, error.message)]


def test_hello_twice_closes_4000() -> None:
    state = anonymous()
    assert state.receive(p.Hello(p.VERSION, None), NOW) == [
        Close(p.CLOSE_PROTOCOL, "hello is sent once")
    ]
    assert state.phase is Phase.CLOSED


# -- after hello --


def test_time_and_ping_are_answered_with_the_server_time() -> None:
    state = anonymous()
    assert sent(state.receive(p.TimeRequest(12.5), NOW + 9)) == [
        {"type": "time", "t0": 12.5, "server_time_us": NOW + 9}
    ]
    assert sent(state.receive(p.Ping(), NOW)) == [{"type": "pong"}]


def test_a_malformed_frame_after_hello_closes_with_the_parsers_code() -> None:
    state = anonymous()
    error = p.ProtocolViolation(p.CLOSE_PROTOCOL, "not valid JSON")
    assert state.receive_invalid(error, NOW) == [Close(p.CLOSE_PROTOCOL, "not valid JSON")]


def test_an_expired_session_closes_4003_on_the_next_message_even_a_malformed_one() -> None:
    expired = [Close(p.CLOSE_UNAUTHORIZED, "the session has expired; sign in again")]
    state = signed_in(expires_us=NOW + SECOND)
    assert sent(state.receive(p.Ping(), NOW + SECOND - 1)) == [{"type": "pong"}]
    assert state.receive(p.Ping(), NOW + SECOND) == expired
    state = signed_in(expires_us=NOW + SECOND)
    error = p.ProtocolViolation(p.CLOSE_PROTOCOL, "not valid JSON")
    assert state.receive_invalid(error, NOW + 2 * SECOND) == expired


def test_a_watcher_never_expires() -> None:
    state = anonymous()
    assert sent(state.receive(p.Ping(), NOW + 10**12)) == [{"type": "pong"}]


# -- bids --


def test_a_bidder_s_bid_is_submitted_with_its_account_and_session() -> None:
    state = signed_in()
    message = bid()
    assert state.receive(message, NOW) == [SubmitBid("acct-alice", session_key(TOKEN), message)]
    assert state.phase is Phase.OPEN


@pytest.mark.parametrize("role", ["auctioneer", "compliance", "auditor", "court"])
def test_a_bid_of_another_role_closes_4003(role: str) -> None:
    assert signed_in(role).receive(bid(), NOW) == [
        Close(p.CLOSE_UNAUTHORIZED, "bidding needs a bidder's session")
    ]


def test_a_watcher_s_bid_closes_4003() -> None:
    assert anonymous().receive(bid(), NOW) == [
        Close(p.CLOSE_UNAUTHORIZED, "bidding needs a bidder's session")
    ]


# -- subscriptions --


def test_subscribe_sends_the_snapshot_and_watches_the_lot() -> None:
    state = anonymous(FakeLots(watch=7))
    assert sent(state.receive(p.Subscribe("watch", 0), NOW)) == [
        {
            "type": "snapshot",
            "lot": "watch",
            "seq": 7,
            "view": {"lot": "watch", "seq": 7},
            "replayed": False,
        }
    ]
    assert state.lots == {"watch"}


def test_subscribe_with_since_seq_replays_the_missed_updates_before_the_snapshot() -> None:
    lots = FakeLots(watch=7)
    lots.kept["watch"] = [{"type": "update", "seq": seq} for seq in (5, 6, 7)]
    state = anonymous(lots)
    messages = sent(state.receive(p.Subscribe("watch", 5), NOW))
    assert [(m["type"], m["seq"], m["replayed"]) for m in messages] == [
        ("update", 6, True),
        ("update", 7, True),
        ("snapshot", 7, True),
    ]


def test_subscribe_when_the_updates_are_gone_sends_the_snapshot_alone() -> None:
    state = anonymous(FakeLots(watch=7))  # nothing kept
    (snapshot,) = sent(state.receive(p.Subscribe("watch", 3), NOW))
    assert snapshot["type"] == "snapshot" and snapshot["replayed"] is False


def test_an_unknown_lot_is_an_error_and_too_many_close_4008() -> None:
    state = anonymous()
    unknown = {"type": "error", "code": "UNKNOWN_LOT", "message": "there is no lot 'nope'"}
    for _ in range(MAX_ERRORS):
        assert state.receive(p.Subscribe("nope", 0), NOW) == [Send(unknown)]
    assert state.lots == frozenset() and state.errors == MAX_ERRORS
    assert state.receive(p.Subscribe("nope", 0), NOW) == [
        Send(unknown),
        Close(p.CLOSE_ABUSE, "too many errors"),
    ]
    assert state.phase is Phase.CLOSED


def test_the_error_count_is_per_connection_and_not_reset_by_good_messages() -> None:
    state = new_state(max_errors=1)
    state.receive(p.Hello(p.VERSION, None), NOW)
    assert len(state.receive(p.Subscribe("nope", 0), NOW)) == 1
    assert sent(state.receive(p.Subscribe("watch", 0), NOW))[0]["type"] == "snapshot"
    assert state.receive(p.Subscribe("nope", 0), NOW)[-1] == Close(p.CLOSE_ABUSE, "too many errors")
    assert len(anonymous().receive(p.Subscribe("nope", 0), NOW)) == 1  # another connection


def test_unsubscribe_stops_watching_and_drops_the_pending_update() -> None:
    state = anonymous()
    state.receive(p.Subscribe("watch", 0), NOW)
    assert state.receive(p.Unsubscribe("watch"), NOW) == [Unsubscribed("watch")]
    assert state.lots == frozenset()
    assert state.admit("watch", update(8)) is None
    # a lot never watched: nothing to forget, still answered the same way
    assert state.receive(p.Unsubscribe("other"), NOW) == [Unsubscribed("other")]


# -- lot updates --


def update(seq: int, *event_seqs: int, lot: str = "watch") -> dict[str, Any]:
    events = [{"type": "price", "seq": s} for s in event_seqs]
    return {"type": "update", "lot": lot, "seq": seq, "events": events, "gap": False}


def test_updates_of_lots_not_watched_are_not_admitted() -> None:
    state = anonymous(FakeLots(watch=7, other=1))
    assert state.admit("watch", update(8, 8)) is None
    state.receive(p.Subscribe("watch", 0), NOW)
    assert state.admit("other", update(2, 2, lot="other")) is None


def test_updates_the_snapshot_covered_are_dropped_or_trimmed() -> None:
    state = anonymous(FakeLots(watch=7))
    state.receive(p.Subscribe("watch", 0), NOW)
    assert state.admit("watch", update(7, 6, 7)) is None  # all at or below the snapshot
    straddling = update(9, 7, 8, 9)
    trimmed = state.admit("watch", straddling)
    assert trimmed is not None and trimmed is not straddling
    assert [e["seq"] for e in trimmed["events"]] == [8, 9]
    assert [e["seq"] for e in straddling["events"]] == [7, 8, 9]  # the shared one is unchanged
    # past the snapshot every update passes as it is (its shared JSON can be sent)
    later = update(10, 10)
    assert state.admit("watch", later) is later


def test_an_update_wholly_after_the_snapshot_passes_unchanged() -> None:
    state = anonymous(FakeLots(watch=7))
    state.receive(p.Subscribe("watch", 0), NOW)
    first = update(9, 8, 9)
    assert state.admit("watch", first) is first


# -- the adapter's mistakes are ours, typed --


def test_calls_out_of_phase_raise_a_typed_error_naming_the_phase() -> None:
    state = new_state()
    with pytest.raises(ConnectionStateError, match="waiting for hello"):
        state.authenticated("acct", "bidder", None, NOW)
    with pytest.raises(ConnectionStateError):
        state.not_authenticated()
    state.receive(p.Hello(p.VERSION, TOKEN), NOW)
    with pytest.raises(ConnectionStateError, match="Ping message .* looking up the session"):
        state.receive(p.Ping(), NOW)
    with pytest.raises(ConnectionStateError):
        state.hello_timed_out()
    state.not_authenticated()
    with pytest.raises(ConnectionStateError, match="closed") as raised:
        state.receive(p.Ping(), NOW)
    assert raised.value.phase is Phase.CLOSED and raised.value.code == "INTERNAL"


# -- by property: any sequence of frames --

LOTS = ["watch", "other", "nope"]
messages = st.one_of(
    st.builds(p.Hello, st.sampled_from([p.VERSION, p.VERSION + 1]), st.sampled_from([None, TOKEN])),
    st.builds(p.TimeRequest, st.integers(0, 10**15)),
    st.builds(p.Subscribe, st.sampled_from(LOTS), st.integers(0, 12)),
    st.builds(p.Unsubscribe, st.sampled_from(LOTS)),
    st.just(p.Ping()),
    st.sampled_from(LOTS).map(bid),
    st.sampled_from([p.CLOSE_PROTOCOL, p.CLOSE_TOO_BIG]).map(
        lambda code: p.ProtocolViolation(code, "bad frame")
    ),
)
frames = st.one_of(
    messages,
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
    st.text(max_size=60),
)


def parsed(frame: object) -> p.ClientMessage | p.ProtocolViolation:
    """A frame as the adapter hands it over: parsed, or the parser's typed refusal."""
    if not isinstance(frame, str):
        return frame  # type: ignore[return-value]
    try:
        return p.parse_client_message(frame)
    except p.ProtocolViolation as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.tuples(frames, st.integers(0, 3 * SECOND)), max_size=30),
    session=st.sampled_from([None, "bidder", "auctioneer"]),
    max_errors=st.integers(0, 3),
)
def test_no_sequence_of_frames_raises_and_a_close_is_final(
    frames: list[tuple[object, int]], session: str | None, max_errors: int
) -> None:
    lots = FakeLots(watch=7, other=3)
    lots.kept["watch"] = [{"type": "update", "seq": 6}, {"type": "update", "seq": 7}]
    state = new_state(lots, max_errors=max_errors)
    now = NOW
    for frame, elapsed in frames:
        now += elapsed
        message = parsed(frame)
        if isinstance(message, p.ProtocolViolation):
            actions = state.receive_invalid(message, now)
        else:
            actions = state.receive(message, now)
        if actions and isinstance(actions[0], LookUpSession):
            assert actions == [LookUpSession(TOKEN)]
            if session is None:
                actions = state.not_authenticated()
            else:
                actions = state.authenticated("acct-alice", session, NOW + 2 * SECOND, now)
        closes = [action for action in actions if isinstance(action, Close)]
        if closes:
            assert closes == actions[-1:]  # a close is the last action
        for action in actions:
            if isinstance(action, SubmitBid):
                assert session == "bidder" and action.account == "acct-alice"
        assert state.errors <= max_errors + 1
        if closes:
            assert state.phase is Phase.CLOSED
            assert closes[0].code in {
                p.CLOSE_PROTOCOL,
                p.CLOSE_TOO_BIG,
                p.CLOSE_VERSION,
                p.CLOSE_UNAUTHORIZED,
                p.CLOSE_ABUSE,
            }
            with pytest.raises(ConnectionStateError):
                state.receive(p.Ping(), now)
            return
        assert state.phase is Phase.OPEN


calls = st.one_of(
    frames.map(lambda frame: ("frame", frame)),
    st.sampled_from(
        [("hello timeout", None), ("found", "bidder"), ("found", "court"), ("not found", None)]
    ),
)


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(calls, max_size=30))
def test_any_call_in_any_order_raises_only_the_typed_state_error(
    calls: list[tuple[str, object]],
) -> None:
    """Whatever an adapter (even a wrong one) calls, in any order: a client's fault is a `Close`
    action, and a call the phase does not allow raises `ConnectionStateError` and changes
    nothing."""
    state = new_state(FakeLots(watch=7), max_errors=2)
    for call, argument in calls:
        before = (state.phase, state.account, state.lots, state.errors)
        try:
            if call == "frame":
                message = parsed(argument)
                if isinstance(message, p.ProtocolViolation):
                    state.receive_invalid(message, NOW)
                else:
                    state.receive(message, NOW)
            elif call == "hello timeout":
                state.hello_timed_out()
            elif call == "found":
                state.authenticated("acct-alice", str(argument), None, NOW)
            else:
                state.not_authenticated()
        except ConnectionStateError as exc:
            assert exc.phase is before[0]
            assert (state.phase, state.account, state.lots, state.errors) == before
