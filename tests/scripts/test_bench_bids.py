"""The signed-bid benchmark's fair load generator (`python -m scripts.bench_bids`): bids signed
beforehand on a ladder the bidders share, and a short real run reporting the server's CPU."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from repo_kit import REPO
from script_kit import load_script, script_command

from auction.protocol import signed_bytes

load = load_script("harness.load")
bidders_kit = load_script("harness.bidders")


def plan(bidders: int, ladder: int) -> object:
    return load.Plan(
        lot="lot-1", currency="CNY", start=1_000, step=10, bidders=bidders, ladder=ladder,
        depth=1, interval=None, warmup=0.0, duration=1.0,
    )  # fmt: skip


def test_presigned_bids_are_signed_by_the_bidder_and_interleave() -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    bidders = [
        {"account": f"acct-{n}", "session": "s", "seed": bidders_kit.seed_of(key)}
        for n, key in enumerate(keys)
    ]
    ladders = [load.presign(bidder, n, plan(3, 4)) for n, bidder in enumerate(bidders)]
    amounts = sorted(a for amounts, _, _ in ladders for a in amounts)
    assert amounts == [1_000 + 10 * i for i in range(12)]  # every step taken once
    assert ladders[1][0] == [1_010, 1_040, 1_070, 1_100]
    for (amounts, idem_keys, frames), bidder, key in zip(ladders, bidders, keys, strict=True):
        assert len(set(idem_keys)) == len(idem_keys)
        for amount, idem_key, frame in zip(amounts, idem_keys, frames, strict=True):
            message = json.loads(frame)
            assert message["type"] == "bid" and message["amount"] == amount
            assert message["idempotency_key"] == idem_key and "account" not in message
            payload = {
                name: message[name]
                for name in ("amount", "currency", "idempotency_key", "kind", "lot")
            }
            signature = base64.b64decode(message["sig"])
            key.public_key().verify(
                signature, signed_bytes(payload | {"account": bidder["account"]})
            )


def test_paced_bidders_take_turns_evenly_in_the_order_of_their_amounts() -> None:
    paced = load.Plan(
        lot="lot-1", currency="CNY", start=1_000, step=10, bidders=4, ladder=8,
        depth=2, interval=0.8, warmup=0.0, duration=1.0,
    )  # fmt: skip
    offsets = sorted(
        (load.lane_offset(paced, index, lane), index) for index in range(4) for lane in range(2)
    )
    assert [t for t, _ in offsets] == pytest.approx([0.1 * n for n in range(8)])
    assert [index for _, index in offsets] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert load.lane_offset(plan(4, 8), 3, 0) == 0.0  # unpaced: everybody at once


def test_ladder_size_covers_the_expected_bids_with_a_margin() -> None:
    assert load.ladder_size(10, 10.0, 1.0, 1000.0) * 10 >= 1.5 * 1000 * 11
    assert load.ladder_size(10, 1.0, 0.0, 0.0) == 16


def test_a_short_run_reports_the_servers_cpu_per_answered_bid(tmp_path: Path) -> None:
    out = tmp_path / "bids.json"
    command = script_command(
        "bench_bids", "--scenarios", "hot", "--bidders", "6", "--duration", "2",
        "--warmup", "0.5", "--ladder-rate", "3000", "--clients", "2", "--json", str(out),
    )  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text())
    assert figures["loadgen"] == "fair"
    hot = figures["hot"]
    assert hot["errors"] == [] and hot["exhausted"] == 0
    assert hot["answered_per_s"] > 0 and hot["ack_p50_ms"] <= hot["ack_p99_ms"]
    # the server's own CPU time over the window, per bid it answered in the window
    assert hot["server_cpu_pct"] > 0
    assert 0 < hot["server_cpu_ms_per_ack"] < 1000
    assert (
        abs(hot["server_cpu_ms_per_ack"] * hot["answered_per_s"] - 10 * hot["server_cpu_pct"]) < 1
    )
    assert 0 < hot["clients_share_pct"] <= 100 and hot["clients_cpu_pct"] > 0
    assert hot["signed"] == 6 * load.ladder_size(6, 2.0, 0.5, 3000.0) and hot["signing_s"] > 0
    assert "ms per answered bid" in run.stdout and "client processes" in run.stdout
