"""The per-lot ring of recent updates behind `since_seq` replay (`auction.bidding.replay`)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from auction.bidding.replay import ReplayRing


def update(seq: int) -> dict[str, Any]:
    return {"type": "update", "seq": seq}


def ring_of(*seqs: int, size: int = 8, start: int = 0) -> ReplayRing:
    """Updates taking the lot from `start` through each of `seqs` in turn."""
    ring = ReplayRing(size)
    previous = start
    for seq in seqs:
        ring.record(previous, seq, update(seq))
        previous = seq
    return ring


def seqs_of(replayed: list[dict[str, Any]] | None) -> list[int] | None:
    return None if replayed is None else [message["seq"] for message in replayed]


def test_the_updates_after_since_seq_are_replayed_and_marked() -> None:
    ring = ring_of(1, 2, 4, 5)
    replayed = ring.missed(2, current_seq=5)
    assert replayed == [update(4) | {"replayed": True}, update(5) | {"replayed": True}]
    assert seqs_of(ring.missed(3, 5)) == [4, 5]  # a seq inside an update's events
    assert seqs_of(ring.missed(1, 5)) == [2, 4, 5]


def test_nothing_is_missed_by_a_client_already_up_to_date() -> None:
    assert ring_of(1, 2, 3).missed(3, 3) == []


def test_since_seq_zero_or_from_the_future_gets_no_replay() -> None:
    ring = ring_of(1, 2, 3)
    assert ring.missed(0, 3) is None
    assert ring.missed(4, 3) is None


def test_updates_older_than_the_ring_cannot_be_replayed() -> None:
    ring = ring_of(1, 2, 3, 4, 5, size=3)  # keeps 3, 4, 5 (from seq 2)
    assert len(ring) == 3
    assert ring.missed(1, 5) is None
    assert seqs_of(ring.missed(2, 5)) == [3, 4, 5]


def test_a_cleared_ring_replays_nothing_but_knows_an_up_to_date_client() -> None:
    ring = ring_of(1, 2, 3)
    ring.clear()
    assert ring.missed(2, 3) is None
    assert ring.missed(3, 3) == []
    # the lot's last recorded seq, when the ring is empty, stands for the ring's last
    assert ring.missed(3, 4, last_seq=3) == []
    assert ring.missed(2, 4, last_seq=3) is None


@given(
    steps=st.lists(st.integers(1, 3), min_size=1, max_size=30),
    size=st.integers(1, 10),
    since=st.integers(0, 100),
)
def test_a_replay_is_every_kept_update_after_since_seq_or_nothing(
    steps: list[int], size: int, since: int
) -> None:
    seqs = [sum(steps[: i + 1]) for i in range(len(steps))]
    ring = ring_of(*seqs, size=size)
    current = seqs[-1]
    kept = seqs[-size:]
    oldest_previous = ([0, *seqs])[len(seqs) - len(kept)]
    replayed = seqs_of(ring.missed(since, current))
    if since == 0 or since > current or since < oldest_previous:
        assert replayed is None
    else:
        assert replayed == [seq for seq in kept if seq > since]
