"""One websocket connection's protocol state (docs/protocol.md §2), sans-I/O.

The websocket adapter (`auction.web.ws`) reads a frame, parses it with `parse_client_message`
and hands the message (or the `ProtocolViolation` the parser raised) to a `ConnectionState`
together with the server time. The state answers with actions, plain values the adapter
carries out in order:

* `Send`: queue a message to this client (never dropped);
* `LookUpSession`: look the bearer token up, then call `authenticated` or `not_authenticated`
  (the only action that needs an answer before the next frame is read);
* `SubmitBid`: hand the signed bid to the gateway; its ack goes to the session's connection;
* `Unsubscribed`: forget this connection's unsent update of the lot;
* `Close`: close the connection with the code and reason once the queued messages are sent.
  It is always the last action, and the state takes no message after it.

Lot updates the hub fans out pass through `admit`, which drops those of lots the client does not
watch and the part of an update its snapshot already covered.

States (rule: a message arrives only in a state that reads frames)::

    AWAITING_HELLO --hello, no session--------------------> OPEN
    AWAITING_HELLO --hello with a session--> AUTHENTICATING --authenticated--> OPEN
    AWAITING_HELLO --anything else / no hello in time-----> CLOSED
    AUTHENTICATING --not_authenticated--------------------> CLOSED
    OPEN           --hello again, bid without a bidder's session, expired session,
                     a malformed frame, too many errors---> CLOSED

No asyncio, no sockets, no clock reads: the adapter passes `now_us` (server time, UTC µs).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..errors import GavelError
from ..verify import SignedBid
from .protocol import (
    CLOSE_ABUSE,
    CLOSE_PROTOCOL,
    CLOSE_REPLACED,
    CLOSE_UNAUTHORIZED,
    CLOSE_VERSION,
    MAX_FRAME_BYTES,
    VERSION,
    ClientMessage,
    Hello,
    Ping,
    ProtocolViolation,
    Subscribe,
    TimeRequest,
    Unsubscribe,
    time_reply,
)

#: Non-fatal errors (unknown lot, ...) a connection may cause before it is closed (4008).
MAX_ERRORS: Final = 50
#: The role whose session may bid (`auction.accounts.Role.BIDDER`).
BIDDER_ROLE: Final = "bidder"


class Phase(enum.Enum):
    AWAITING_HELLO = "waiting for hello"
    AUTHENTICATING = "looking up the session"
    OPEN = "open"
    CLOSED = "closed"


class ConnectionStateError(GavelError):
    """The adapter called the connection state in a phase that does not allow it: a bug of
    ours, never the client's fault (the client's faults are `Close` actions)."""

    code = "INTERNAL"

    def __init__(self, phase: Phase, event: str) -> None:
        super().__init__(f"{event} is not allowed while the connection is {phase.value}")
        self.phase = phase
        self.event = event


# -- actions --


@dataclass(frozen=True, slots=True)
class Send:
    """Queue `message` to this client, after the messages queued before it."""

    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with `code` and `reason` once the queued messages are sent."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class LookUpSession:
    """Find the session of bearer `token`; answer with `authenticated` or `not_authenticated`."""

    token: str


@dataclass(frozen=True, slots=True)
class SubmitBid:
    """Hand `bid`, signed by `account`, to the gateway; send its ack to the current connection
    of `session_key` (a newer one may have replaced this one meanwhile)."""

    account: str
    session_key: str
    bid: SignedBid


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The client stopped watching `lot`: drop its unsent update."""

    lot: str


Action = Send | Close | LookUpSession | SubmitBid | Unsubscribed

#: What an earlier connection of the same session is closed with when a newer one says hello.
REPLACED: Final = Close(CLOSE_REPLACED, "replaced by a newer connection")


# -- what the state reads: the lots --


@dataclass(frozen=True, slots=True)
class LotSnapshot:
    """A lot's public view (`view`, its JSON form) as of `seq`."""

    seq: int
    view: dict[str, Any]


class LotSource(Protocol):
    """The lots a client may watch, read synchronously (the service's views and the hub's
    replay rings; an in-memory fake in tests)."""

    def snapshot(self, lot: str) -> LotSnapshot | None:
        """The lot's current view, or None when there is no such lot."""

    def missed(self, lot: str, since_seq: int, current_seq: int) -> list[dict[str, Any]] | None:
        """The updates after `since_seq` up to `current_seq`, or None when they are not all
        kept (the client then gets the snapshot alone)."""


def session_key(token: str) -> str:
    """The key a connection's session is known by (the token itself is not kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ConnectionState:
    """The protocol state of one websocket connection. Every method returns the actions to
    carry out, in order; none reads a clock or touches a socket."""

    def __init__(
        self,
        lots: LotSource,
        *,
        heartbeat_s: float,
        bids_per_second: int,
        max_errors: int = MAX_ERRORS,
    ) -> None:
        self._lots = lots
        self._heartbeat_s = heartbeat_s
        self._bids_per_second = bids_per_second
        self._max_errors = max_errors
        self.phase = Phase.AWAITING_HELLO
        self.account: str | None = None
        self.role: str | None = None
        self.session_key: str | None = None
        self.expires_us: int | None = None
        #: lot → the seq of the snapshot just sent: an update at or below it is not sent again
        self._floors: dict[str, int] = {}
        self._watched: set[str] = set()
        #: non-fatal errors so far (unknown lots)
        self.errors = 0

    @property
    def lots(self) -> frozenset[str]:
        """The lots this client watches now."""
        return frozenset(self._watched)

    # -- events from the adapter --

    def hello_timed_out(self) -> list[Action]:
        """No first frame arrived within the hello timeout."""
        self._expect(Phase.AWAITING_HELLO, "a hello timeout")
        return self._close(CLOSE_PROTOCOL, "say hello first, within 10 seconds")

    def receive(self, message: ClientMessage, now_us: int) -> list[Action]:
        """One parsed client message, received at server time `now_us`."""
        if self.phase is Phase.AWAITING_HELLO:
            return self._hello(message, now_us)
        self._expect(Phase.OPEN, f"a {type(message).__name__} message")
        if self._expired(now_us):
            return self._close(CLOSE_UNAUTHORIZED, "the session has expired; sign in again")
        try:
            actions = self._dispatch(message, now_us)
        except ProtocolViolation as exc:
            return self._close(exc.close_code, exc.message)
        if self.errors > self._max_errors:
            return [*actions, *self._close(CLOSE_ABUSE, "too many errors")]
        return actions

    def receive_invalid(self, error: ProtocolViolation, now_us: int) -> list[Action]:
        """A frame that is not a valid message (`error`: what the parser raised)."""
        if self.phase is not Phase.AWAITING_HELLO:
            self._expect(Phase.OPEN, "a malformed frame")
            if self._expired(now_us):
                return self._close(CLOSE_UNAUTHORIZED, "the session has expired; sign in again")
        return self._close(error.close_code, error.message)

    def authenticated(
        self, account: str, role: str, expires_us: int | None, now_us: int
    ) -> list[Action]:
        """The hello's session is valid: `account` with `role` until `expires_us`. The adapter
        must make this connection the session's and the account's current one (closing an
        earlier connection of the session with `REPLACED`)."""
        self._expect(Phase.AUTHENTICATING, "a session found")
        self.account, self.role, self.expires_us = account, role, expires_us
        return self._welcome(now_us)

    def not_authenticated(self) -> list[Action]:
        """The hello's session is unknown or expired (or could not be looked up)."""
        self._expect(Phase.AUTHENTICATING, "a session not found")
        return self._close(CLOSE_UNAUTHORIZED, "the session is invalid or has expired")

    def admit(self, lot: str, update: dict[str, Any]) -> dict[str, Any] | None:
        """A lot update as this client must get it: None when it watches not the lot or the
        update is all at or below the snapshot it got; `update` itself when it passes
        unchanged; else a copy without the events the snapshot covered."""
        if lot not in self._watched:
            return None
        floor = self._floors.get(lot)
        if floor is None:
            return update
        if update["seq"] <= floor:
            return None
        del self._floors[lot]
        events = [e for e in update["events"] if e.get("seq", floor + 1) > floor]
        if len(events) != len(update["events"]):
            return update | {"events": events}
        return update

    # -- decisions --

    def _hello(self, message: ClientMessage, now_us: int) -> list[Action]:
        if not isinstance(message, Hello):
            return self._close(CLOSE_PROTOCOL, "the first message must be hello")
        if message.version != VERSION:
            return self._close(CLOSE_VERSION, f"this server speaks version {VERSION}")
        if message.session is None:
            return self._welcome(now_us)
        self.phase = Phase.AUTHENTICATING
        self.session_key = session_key(message.session)
        return [LookUpSession(message.session)]

    def _welcome(self, now_us: int) -> list[Action]:
        self.phase = Phase.OPEN
        welcome = {
            "type": "welcome",
            "v": VERSION,
            "server_time_us": now_us,
            "account": self.account,
            "role": self.role,
            "heartbeat_s": self._heartbeat_s,
            "limits": {"frame_bytes": MAX_FRAME_BYTES, "bids_per_second": self._bids_per_second},
        }
        return [Send(welcome)]

    def _dispatch(self, message: ClientMessage, now_us: int) -> list[Action]:
        if isinstance(message, TimeRequest):
            return [Send(time_reply(message.t0, now_us))]
        if isinstance(message, Ping):
            return [Send({"type": "pong"})]
        if isinstance(message, Subscribe):
            return self._subscribe(message)
        if isinstance(message, Unsubscribe):
            self._watched.discard(message.lot)
            self._floors.pop(message.lot, None)
            return [Unsubscribed(message.lot)]
        if isinstance(message, Hello):
            raise ProtocolViolation(CLOSE_PROTOCOL, "hello is sent once")
        # a SignedBid: the only message left
        if self.account is None or self.session_key is None or self.role != BIDDER_ROLE:
            raise ProtocolViolation(CLOSE_UNAUTHORIZED, "bidding needs a bidder's session")
        return [SubmitBid(self.account, self.session_key, message)]

    def _subscribe(self, message: Subscribe) -> list[Action]:
        snapshot = self._lots.snapshot(message.lot)
        if snapshot is None:
            self.errors += 1
            error = {
                "type": "error",
                "code": "UNKNOWN_LOT",
                "message": f"there is no lot {message.lot!r}",
            }
            return [Send(error)]
        self._watched.add(message.lot)
        self._floors[message.lot] = snapshot.seq  # later updates start after the snapshot
        missed = self._lots.missed(message.lot, message.since_seq, snapshot.seq)
        actions: list[Action] = [Send(update) for update in missed or ()]
        reply = {
            "type": "snapshot",
            "lot": message.lot,
            "seq": snapshot.seq,
            "view": snapshot.view,
            "replayed": missed is not None,
        }
        actions.append(Send(reply))
        return actions

    def _expired(self, now_us: int) -> bool:
        return self.expires_us is not None and now_us >= self.expires_us

    def _close(self, code: int, reason: str) -> list[Action]:
        self.phase = Phase.CLOSED
        return [Close(code, reason)]

    def _expect(self, phase: Phase, event: str) -> None:
        if self.phase is not phase:
            raise ConnectionStateError(self.phase, event)


__all__ = [
    "BIDDER_ROLE",
    "MAX_ERRORS",
    "REPLACED",
    "Action",
    "Close",
    "ConnectionState",
    "ConnectionStateError",
    "LookUpSession",
    "LotSnapshot",
    "LotSource",
    "Phase",
    "Send",
    "SubmitBid",
    "Unsubscribed",
    "session_key",
]
