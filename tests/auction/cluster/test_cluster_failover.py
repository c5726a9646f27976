"""Scale-out under failure: the instance writing a lot is killed with SIGKILL during bidding,
and Redis is stopped and restarted during bidding. Real processes, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from cluster_kit import InstanceProcess, RedisProcess, instance, processes, wait_same
from server_kit import Bidder, ready_bidder

from auction.accounts import AccountStore, Role
from auction.client import Ack, BidderClient, ClientError
from auction.rules import SECOND
from auction.storage import Storage, system_clock

pytestmark = pytest.mark.asyncio

LOTS = ("k1", "k2", "k3", "k4")


def auctioneer_token(database_url: str) -> str:
    accounts = AccountStore.open(database_url)
    try:
        now = system_clock()
        account = accounts.create_account(None, now)
        token, _ = accounts.create_session(account, Role.AUCTIONEER, now)
        return str(token)
    finally:
        accounts.close()


async def create_lots(
    http: aiohttp.ClientSession, url: str, token: str, lots: tuple[str, ...]
) -> None:
    now = system_clock()
    for lot in lots:
        body = {
            "preset": "ENGLISH_TIMED",
            "lot": lot,
            "title": f"Lot {lot}",
            "parameters": {
                "start_price": 10_000,
                "start_at": now + 2 * SECOND,
                "end_at": now + 900 * SECOND,
                "currency": "CNY",
            },
        }
        async with http.post(
            f"{url}/api/console/lots", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 201, await response.text()


def owners(database_url: str) -> dict[str, tuple[str | None, int]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute("SELECT lot_id, owner, token FROM lot_owners").fetchall()
    return {row[0]: (row[1], int(row[2])) for row in rows}


async def wait_owned(database_url: str, lots: tuple[str, ...], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(owners, database_url)
        if all(found.get(lot, (None, 0))[0] is not None for lot in lots):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"lots without a writer: {found}")


async def wait_open(http: aiohttp.ClientSession, url: str, lots: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/lots") as response:
            views = (await response.json())["lots"]
        if all(v["status"] == "OPEN" for v in views if v["lot_id"] in lots):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("lots did not open")


def diagnose(database_url: str) -> dict[str, Any]:
    """What PostgreSQL says about the cluster (for a failure message)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return {
            "owners": connection.execute("SELECT * FROM lot_owners").fetchall(),
            "instances": connection.execute("SELECT * FROM cluster_instances").fetchall(),
            "locks": connection.execute(
                "SELECT l.pid, l.classid, l.objid, a.state, a.query, a.wait_event"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory'"
            ).fetchall(),
        }


class Bidding:
    """Bidders bidding the next minimum on random lots through their instance; every ack kept."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, Ack]] = []
        self.stop = asyncio.Event()
        self.errors: list[str] = []

    async def run(self, client: BidderClient, survivor: str, rng: random.Random) -> None:
        next_amount = {lot: 10_000 for lot in LOTS}
        while not self.stop.is_set():
            lot = rng.choice(LOTS)
            message = client.signed_bid(lot, next_amount[lot], "CNY")
            try:
                ack = await client.send_bid(message, timeout=20)
            except (ClientError, TimeoutError, OSError, Exception) as exc:  # its instance died
                self.errors.append(type(exc).__name__)
                await client.reconnect(base_url=survivor)  # resends what was not acknowledged
                ack = await client.wait_ack(message["idempotency_key"], timeout=20)
            self.acks.append((client.account or "", ack))
            if ack.min_next is not None:
                next_amount[lot] = max(next_amount[lot], ack.min_next)
            await asyncio.sleep(rng.uniform(0, 0.01))


async def test_the_writer_killed_during_bidding_is_replaced(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    a = InstanceProcess("a", postgres_url, redis_url, tmp_path / "a.log")
    b = InstanceProcess("b", postgres_url, redis_url, tmp_path / "b.log")
    async with processes(a, b), aiohttp.ClientSession() as http:
        token = await asyncio.to_thread(auctioneer_token, postgres_url)
        await create_lots(http, a.url, token, LOTS)
        await wait_owned(postgres_url, LOTS)
        bidders: list[Bidder] = []
        for i in range(6):
            bidders.append(await ready_bidder(http, (a, b)[i % 2].url, LOTS))
        await wait_open(http, b.url, LOTS)
        before = await asyncio.to_thread(owners, postgres_url)
        victim = a if before["k1"][0] == "a" else b
        survivor = b if victim is a else a
        clients = []
        for i, bidder in enumerate(bidders):
            url = (a, b)[i % 2].url
            clients.append(
                await BidderClient.connect(
                    url, account=bidder.account, key=bidder.key, session=bidder.session
                )
            )
        watcher = await BidderClient.connect(victim.url)
        await watcher.subscribe("k1")
        bidding = Bidding()
        rng = random.Random(7)
        tasks = [
            asyncio.create_task(bidding.run(c, survivor.url, random.Random(rng.random())))
            for c in clients
        ]
        await asyncio.sleep(2.0)
        killed_at = time.monotonic()
        victim.sigkill()
        taken_after = None
        while time.monotonic() - killed_at < 20:
            now = await asyncio.to_thread(owners, postgres_url)
            if all(now[lot][0] == survivor.name for lot in LOTS if before[lot][0] == victim.name):
                taken_after = time.monotonic() - killed_at
                break
            await asyncio.sleep(0.05)
        assert taken_after is not None, (
            "no takeover",
            await asyncio.to_thread(diagnose, postgres_url),
        )
        assert taken_after < 5.0, taken_after
        await asyncio.sleep(2.0)
        bidding.stop.set()
        await asyncio.gather(*tasks)
        after = await asyncio.to_thread(owners, postgres_url)
        assert after["k1"][1] > before["k1"][1]  # a new fencing token
        # the watcher of the dead instance resumes on the survivor from its last seq
        last_seq = 0
        while True:
            try:
                update = await watcher.next_update(timeout=0.2)
            except TimeoutError:
                break
            last_seq = max(last_seq, int(update.get("seq") or 0))
        await watcher.reconnect(base_url=survivor.url)
        await watcher.subscribe("k1", since_seq=last_seq)
        resumed = await watcher.next_update(timeout=10)
        assert resumed.get("lot") == "k1", resumed
        for client in (*clients, watcher):
            await client.close()

        with Storage.open(postgres_url, read_only=True) as store:
            size = store.ledger_size()
            entries = [json.loads(raw) for raw in store.ledger_entries_opened(0, size)]
            stored = {lot: store.load_lot(lot) for lot in LOTS}  # replays and checks events
        bids: dict[tuple[str, str, str], list[int]] = {}
        accepted_entries: dict[int, Any] = {}
        for entry in entries:
            body = entry["body"]
            request = body.get("request") if isinstance(body, dict) else None
            if request is None:
                continue
            payload = request["payload"]
            key = (payload["account"], payload["lot"], payload["idempotency_key"])
            bids.setdefault(key, []).append(entry["seq"])
            accepted_entries[entry["seq"]] = entry
        assert all(len(seqs) == 1 for seqs in bids.values()), "a bid applied twice"
        acknowledged = [(account, ack) for account, ack in bidding.acks if ack.accepted]
        assert len(acknowledged) > 50, len(acknowledged)
        for account, ack in acknowledged:
            entry = accepted_entries.get(ack.entry)
            assert entry is not None, f"acknowledged bid {ack} not in the ledger"
            payload = entry["body"]["request"]["payload"]
            assert (payload["account"], payload["idempotency_key"]) == (
                account,
                ack.idempotency_key,
            )
            assert any(e["type"] == "BidAccepted" for e in entry["body"]["events"])
        for lot in LOTS:
            assert stored[lot] is not None and stored[lot].bids > 0
        # the whole ledger verifies offline
        out = tmp_path / "export"
        gavel = [sys.executable, "-c", "from auction.cli import main; raise SystemExit(main())"]
        export = subprocess.run(
            [*gavel, "ledger", "export", "--db", postgres_url, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert export.returncode == 0, export.stderr
        verify = subprocess.run(
            [*gavel, "audit", "verify", str(out)], capture_output=True, text=True, timeout=300
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        print(
            f"takeover {taken_after:.2f} s; {len(acknowledged)} acknowledged bids; "
            f"{len(bidding.errors)} bids resent after the kill"
        )


async def test_redis_stopped_and_restarted_during_bidding(
    tmp_path: Path, postgres_url: str
) -> None:
    redis = RedisProcess(tmp_path / "redis.log")
    redis.start()
    try:
        async with (
            instance(tmp_path, "a", postgres_url, redis.url, bids_per_second=1000) as a,
            instance(tmp_path, "b", postgres_url, redis.url, bids_per_second=1000) as b,
            aiohttp.ClientSession() as http,
        ):
            token = await asyncio.to_thread(auctioneer_token, postgres_url)
            await create_lots(http, a.url, token, ("k1",))
            await wait_owned(postgres_url, ("k1",))
            writer, other = (a, b) if a.service.leads("k1") else (b, a)
            one = await ready_bidder(http, other.url, ("k1",))
            two = await ready_bidder(http, writer.url, ("k1",))
            await wait_open(http, other.url, ("k1",))
            first = await BidderClient.connect(
                other.url, account=one.account, key=one.key, session=one.session
            )
            second = await BidderClient.connect(
                writer.url, account=two.account, key=two.key, session=two.session
            )
            watcher = await BidderClient.connect(other.url)
            await watcher.subscribe("k1")
            acks: list[Ack] = []
            amount = 10_000
            async with first, second, watcher:

                async def bid_for(seconds: float) -> None:
                    nonlocal amount
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline:
                        client = (first, second)[len(acks) % 2]  # they take turns
                        ack = await client.bid("k1", amount, "CNY", timeout=20)
                        acks.append(ack)
                        amount = max(amount, ack.min_next or amount)
                        await asyncio.sleep(0.01)

                await bid_for(1.0)
                assert other.cluster.redis_up
                messages = other.cluster.redis_messages
                assert messages > 0
                redis.stop()
                await bid_for(2.0)  # acknowledgements go on without Redis
                assert not other.cluster.redis_up
                during = other.service.view("k1").price
                assert during == writer.service.view("k1").price or await _converges(
                    writer, other
                ), "the watchers' instance did not follow by polling"
                redis.start()
                deadline = time.monotonic() + 10
                while not other.cluster.redis_up and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert other.cluster.redis_up, "Redis not rejoined"
                await bid_for(1.0)
                assert other.cluster.redis_messages > messages
                await wait_same([a, b])
                final = writer.service.view("k1")
                seen = None
                while True:  # the watcher's last update shows the final price
                    try:
                        update = await watcher.next_update(timeout=1.0)
                    except TimeoutError:
                        break
                    seen = update
                assert seen is not None and seen["view"]["price"] == final.price, seen
            assert all(ack.accepted for ack in acks), [a for a in acks if not a.accepted][:3]
            with Storage.open(postgres_url, read_only=True) as store:
                entries = store.ledger_entries(0, store.ledger_size())
            stored = {json.loads(raw)["seq"] for raw in entries}
            assert {ack.entry for ack in acks} <= stored
    finally:
        redis.stop()


async def _converges(one: Any, two: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if one.service.view("k1").price == two.service.view("k1").price:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_an_instance_that_loses_its_database_session_stops_writing(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """The writer's lock connection is terminated by PostgreSQL (as a restart or a network
    cut would): its locks are gone at once, so it must stop writing — fencing refuses any
    write still in flight — and the lots get a writer again; bidding goes on, every
    acknowledged bid is stored once."""
    async with (
        instance(tmp_path, "a", postgres_url, redis_url, bids_per_second=1000) as a,
        instance(tmp_path, "b", postgres_url, redis_url, bids_per_second=1000) as b,
        aiohttp.ClientSession() as http,
    ):
        token = await asyncio.to_thread(auctioneer_token, postgres_url)
        await create_lots(http, a.url, token, LOTS)
        await wait_owned(postgres_url, LOTS)
        bidders = [await ready_bidder(http, (a, b)[i % 2].url, LOTS) for i in range(4)]
        await wait_open(http, a.url, LOTS)
        before = await asyncio.to_thread(owners, postgres_url)
        clients = [
            await BidderClient.connect(
                (a, b)[i % 2].url, account=x.account, key=x.key, session=x.session
            )
            for i, x in enumerate(bidders)
        ]
        bidding = Bidding()
        rng = random.Random(11)
        tasks = [
            asyncio.create_task(bidding.run(c, (a, b)[i % 2].url, random.Random(rng.random())))
            for i, c in enumerate(clients)
        ]
        await asyncio.sleep(1.5)
        victim = a if any(v[0] == "a" for v in before.values()) else b

        def terminate_lock_session() -> int:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                pids = connection.execute(
                    "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objsubid = 2 AND pid <> pg_backend_pid()"
                ).fetchall()
                held = {
                    int(pid)
                    for (pid,) in pids
                    if connection.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()[0]
                }
                # the victim's lock session: the one holding the locks of its lots
                lock_ids = [
                    row[0]
                    for row in connection.execute(
                        "SELECT lock_id FROM lot_owners WHERE owner = %s", (victim.name,)
                    ).fetchall()
                ]
                where = connection.execute(
                    "SELECT current_database() || '/' || current_schema()"
                ).fetchone()[0]
                namespace = zlib.crc32(where.encode()) & 0x7FFF_FFFF  # as auction.cluster
                victims = {
                    int(row[0])
                    for row in connection.execute(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND objsubid = 2 AND classid::bigint = %s AND objid::bigint = ANY(%s)",
                        (namespace, lock_ids),
                    ).fetchall()
                }
                assert victims and victims <= held
                for pid in victims:
                    connection.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return len(victims)

        assert await asyncio.to_thread(terminate_lock_session) == 1
        await asyncio.sleep(4.0)
        bidding.stop.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.close()
        after = await asyncio.to_thread(owners, postgres_url)
        for lot in LOTS:
            assert after[lot][0] is not None, after
            if before[lot][0] == victim.name:
                assert after[lot][1] > before[lot][1], (lot, before, after)  # taken again
        await wait_same([a, b])
        with Storage.open(postgres_url, read_only=True) as store:
            entries = [
                json.loads(raw) for raw in store.ledger_entries_opened(0, store.ledger_size())
            ]
            stored = {lot: store.load_lot(lot) for lot in LOTS}
        keys = [
            (
                e["body"]["request"]["payload"]["account"],
                e["body"]["request"]["payload"]["idempotency_key"],
            )
            for e in entries
            if isinstance(e["body"], dict) and "request" in e["body"]
        ]
        assert len(keys) == len(set(keys)), "a bid applied twice"
        by_seq = {e["seq"]: e for e in entries}
        accepted = [(account, ack) for account, ack in bidding.acks if ack.accepted]
        assert len(accepted) > 20
        for account, ack in accepted:
            payload = by_seq[ack.entry]["body"]["request"]["payload"]
            assert (payload["account"], payload["idempotency_key"]) == (
                account,
                ack.idempotency_key,
            )
        for lot in LOTS:
            for node in (a, b):
                assert node.service.state(lot) == stored[lot].state, (node.name, lot)
        reasons = {ack.reason for _, ack in bidding.acks if not ack.accepted}
        assert reasons <= {"BELOW_MIN", "SELF_OUTBID", "UNAVAILABLE"}, reasons
