"""Several instances on one PostgreSQL database with Redis between them (issue: scale-out).

Real PostgreSQL, real Redis, real websockets over loopback; instances in this process here,
separate processes killed with SIGKILL in `test_cluster_failover.py`."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import psycopg
import pytest
from cluster_kit import instance, wait_same, wait_written
from server_kit import ready_bidder
from stream_kit import wait_until
from video_kit import video_settings

from auction.client import BidderClient
from auction.rules import SECOND, RegisterBidder, english_timed, judicial
from auction.storage import LotFenced, Storage
from auction.video import VIDEO
from streaming.loadtest import Viewer

pytestmark = pytest.mark.asyncio


async def test_bids_through_two_instances_make_one_history(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    async with (
        instance(tmp_path, "a", postgres_url, redis_url, bids_per_second=1000) as a,
        instance(tmp_path, "b", postgres_url, redis_url, bids_per_second=1000) as b,
        aiohttp.ClientSession() as http,
    ):
        now = a.service.now()
        start, end = now + SECOND // 2, now + 600 * SECOND
        await a.service.add_lot(
            "watch", english_timed(start_price=10_000, start_at=start, end_at=end), "A watch"
        )
        await b.service.add_lot(
            "flat",
            judicial(
                start_price=1_000_000, step=10_000, start_at=start, end_at=end, min_duration=0
            ),
            "A flat",
        )
        await wait_written([a, b], "watch", "flat")
        one = await ready_bidder(http, a.url, ("watch", "flat"))
        two = await ready_bidder(http, b.url, ("watch", "flat"))
        while a.service.view("watch").status != "OPEN" or b.service.view("flat").status != "OPEN":
            await asyncio.sleep(0.05)
        first = await BidderClient.connect(
            a.url, account=one.account, key=one.key, session=one.session
        )
        second = await BidderClient.connect(
            b.url, account=two.account, key=two.key, session=two.session
        )
        watch_cur = a.service.view("watch").currency
        acks = []
        async with first, second:
            amounts = itertools.count(11_000, 1_000)
            for _ in range(20):  # both at once, each through its own instance
                x, y = next(amounts), next(amounts)
                acks += await asyncio.gather(
                    first.bid("watch", x, watch_cur), second.bid("watch", y, watch_cur)
                )
                acks += await asyncio.gather(
                    first.bid("flat", 1_000_000 + 10_000 * (2 * _ + 1), "CNY"),
                    second.bid("flat", 1_000_000 + 10_000 * (2 * _ + 2), "CNY"),
                )
        assert all(ack.result in ("accepted", "rejected") for ack in acks)
        accepted = [ack for ack in acks if ack.accepted]
        # Two bids racing: the lower one may arrive second and be too low, or a bidder may
        # already lead; nothing else.
        reasons = {ack.reason for ack in acks if not ack.accepted}
        assert reasons <= {"BELOW_MIN", "SELF_OUTBID"}, (reasons, acks)
        assert len(accepted) >= 20
        size = await wait_same([a, b])
        with Storage.open(postgres_url, read_only=True) as store:
            entries = store.ledger_entries(0, size)
            replayed = {lot: store.load_lot(lot) for lot in ("watch", "flat")}
        for lot in ("watch", "flat"):
            stored = replayed[lot]
            assert stored is not None
            for node in (a, b):
                view = node.service.view(lot)
                assert view.price == stored.state.price, (node.name, lot)
                assert node.service.state(lot) == stored.state, (node.name, lot)
        seqs = {ack.entry for ack in accepted}
        assert len(seqs) == len(accepted)  # one entry per acknowledged bid
        assert max(seqs) < len(entries)


async def test_a_viewer_on_any_instance_sees_the_writers_stream(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    def video(name: str) -> dict[str, object]:
        return {"video": video_settings(tmp_path / name / "recordings", lots="all")}

    async with (
        instance(tmp_path, "a", postgres_url, redis_url, **video("a")) as a,
        instance(tmp_path, "b", postgres_url, redis_url, **video("b")) as b,
        aiohttp.ClientSession() as http,
    ):
        now = a.service.now()
        rules = english_timed(
            start_price=10_000, start_at=now + SECOND // 4, end_at=now + 60 * SECOND
        )
        await a.service.add_lot("watch", rules, "A watch")
        await wait_written([a, b], "watch")
        writer, other = (a, b) if a.service.leads("watch") else (b, a)
        await wait_until(lambda: writer.app[VIDEO].hub.lot("watch") is not None, 10)
        assert other.app[VIDEO].hub.lot("watch") is None  # only the writer streams and records
        viewer = Viewer(http, other.url, "watch")
        await viewer.connect()
        try:
            await wait_until(lambda: viewer.stats.frames > 10, 15)
        finally:
            await viewer.close()


async def test_a_writer_whose_lot_was_taken_cannot_write(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """Fencing: once another instance holds the lot's token, this one's writes are refused
    (nothing stored), it stops writing the lot, and the lot gets a writer again."""
    async with instance(tmp_path, "a", postgres_url, redis_url) as a:
        now = a.service.now()
        rules = english_timed(start_price=10_000, start_at=now + SECOND, end_at=now + 60 * SECOND)
        await a.service.add_lot("watch", rules, "A watch")
        await wait_written([a], "watch")
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(
                "UPDATE lot_owners SET owner = 'elsewhere', token = token + 1"
                " WHERE lot_id = 'watch'"
            )
            size = connection.execute("SELECT count(*) FROM ledger_entries").fetchone()
        with pytest.raises(LotFenced):
            await a.service.submit("watch", RegisterBidder("acct-x", "C-1", kyc_verified=False))
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            assert connection.execute("SELECT count(*) FROM ledger_entries").fetchone() == size
        await wait_until(lambda: not a.service.leads("watch"), 5)
        await wait_until(lambda: a.service.leads("watch"), 10)  # "elsewhere" is not alive
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            owner, token = connection.execute(
                "SELECT owner, token FROM lot_owners WHERE lot_id = 'watch'"
            ).fetchone()
        assert owner == "a" and token >= 3
        events = await a.service.submit(
            "watch", RegisterBidder("acct-x", "C-1", kyc_verified=False)
        )
        assert events
