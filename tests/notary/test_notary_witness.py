"""``gavel notary serve`` as a real process on 127.0.0.1: every tlog-witness status code, the
monitoring endpoint, restart after kill -9, rolled-back and rule-breaking logs, and the
operator commands (init, status, evidence)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from notary_kit import REPO, LogServer, NotaryProcess, SimulatedLog, gavel_command, house_key

from auction.cli import main
from chain import (
    add_cosignatures,
    open_checkpoint,
    parse_policy,
    parse_signature_lines,
)
from notary import format_add_checkpoint


@dataclass
class Setup:
    log: SimulatedLog
    server: LogServer
    notary: NotaryProcess
    policy: Path
    session: aiohttp.ClientSession

    async def post(self, body: bytes) -> tuple[int, str, bytes]:
        async with self.session.post(
            self.notary.url + "/add-checkpoint",
            data=body,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        ) as response:
            return response.status, response.headers["Content-Type"], await response.read()

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(self.notary.url + path) as response:
            return response.status, await response.read()

    async def status(self) -> dict[str, Any]:
        async with self.session.get(self.notary.url + "/status") as response:
            value: dict[str, Any] = await response.json()
            return value


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    log = SimulatedLog()
    log.grow(300)
    server = LogServer(log)
    log_url = await server.start()
    notary = NotaryProcess(tmp_path / "notary", "notary1.example.org")
    policy = tmp_path / "policy"
    policy.write_bytes(log.make_policy([("notary1", notary.vkey, notary.url)], 1, log_url))
    await notary.start(log_url, policy)
    try:
        async with aiohttp.ClientSession() as session:
            yield Setup(log, server, notary, policy, session)
        assert await notary.stop() == 0  # SIGTERM: a clean exit
    finally:
        await notary.kill()
        await server.stop()


def verified_cosignature(setup: Setup, answer: bytes, size: int) -> None:
    lines = parse_signature_lines(answer)
    assert [line.name for line in lines] == ["notary1.example.org"]
    merged = add_cosignatures(setup.log.checkpoint(size), lines)
    signed = open_checkpoint(merged, setup.log.signer.verifier, [setup.notary.signer.verifier])
    assert signed.cosigner_names == {"notary1.example.org"}
    assert signed.checkpoint.size == size


@pytest.mark.slow
async def test_every_tlog_witness_status(setup: Setup) -> None:
    log = setup.log
    # 404: a checkpoint of another log
    other = SimulatedLog(origin="other.example.org/log", key=house_key("other"))
    status, content_type, _ = await setup.post(other.body(0))
    assert status == 404 and content_type.startswith("text/plain")
    # 403: no trusted signature, then a bad one
    impostor = SimulatedLog(key=house_key("impostor"))
    assert (await setup.post(impostor.body(0)))[0] == 403
    good = log.checkpoint()
    flipped = good[:-6] + (b"A" if good[-6:-5] != b"A" else b"B") + good[-5:]
    assert (await setup.post(format_add_checkpoint(0, [], flipped)))[0] == 403
    # 413: larger than any valid body
    assert (await setup.post(b"old 0\n\n" + b"x" * 200_000))[0] == 413
    # 400: malformed, and old above the checkpoint size
    assert (await setup.post(b"old 01\n\n" + good))[0] == 400
    assert (await setup.post(log.body(200, 100)))[0] == 400
    # 409: old is not the last co-signed size (0), answered as text/x.tlog.size
    status, content_type, body = await setup.post(log.body(50))
    assert (status, content_type, body) == (409, "text/x.tlog.size", b"0\n")
    # 200: from the empty tree, with a cosignature that chain verifies
    status, content_type, body = await setup.post(log.body(0, 200))
    assert status == 200 and content_type.startswith("text/plain")
    verified_cosignature(setup, body, 200)
    status, _, body = await setup.post(log.body(0))
    assert (status, body) == (409, b"200\n")
    # 422: a bad consistency proof
    proof = log.proof(200)
    proof[1] = hashlib.sha256(proof[1]).digest()
    status, _, body = await setup.post(format_add_checkpoint(200, proof, log.checkpoint()))
    assert status == 422 and b"consistency proof" in body
    # 422: the same size with another root
    fork = log.fork(150)
    fork.grow(60)
    status, _, body = await setup.post(fork.body(200, 200))
    assert status == 422 and b"another root" in body
    # 200 again: same size and root (idempotent), then growth
    assert (await setup.post(log.body(200, 200)))[0] == 200
    status, _, body = await setup.post(log.body(200))
    assert status == 200
    verified_cosignature(setup, body, log.size)

    # GET /checkpoint and the tlog-witness monitoring path serve the co-signed checkpoint.
    status, note = await setup.get("/checkpoint")
    assert status == 200
    signed = open_checkpoint(note, log.signer.verifier, [setup.notary.signer.verifier])
    assert signed.checkpoint.size == log.size and signed.cosigner_names
    origin_hash = hashlib.sha256(log.origin.encode()).hexdigest()
    assert await setup.get(f"/{origin_hash}/checkpoint") == (200, note)
    assert (await setup.get(f"/{'0' * 64}/checkpoint"))[0] == 404

    report = await setup.status()
    assert report["size"] == log.size and report["mirrored_entries"] == log.size
    answers = report["answers"]
    assert isinstance(answers, dict)
    assert {code: answers.get(str(code), 0) for code in (200, 400, 403, 404, 409, 422)} == {
        200: 3,
        400: 2,
        403: 2,
        404: 1,
        409: 2,
        422: 2,
    }
    reasons = [r["reason"] for r in report["recent_refusals"]]
    assert reasons[:2] == ["INCONSISTENT", "INCONSISTENT"]
    assert {"UNKNOWN_ORIGIN", "BAD_LOG_SIGNATURE", "BAD_REQUEST"} <= set(reasons)
    # The fork at the same size left an evidence file with both checkpoints.
    files = list((setup.notary.directory / "evidence").glob("fork-*.json"))
    assert len(files) == 1
    evidence = json.loads(files[0].read_text())
    assert evidence["ours"]["size"] == evidence["theirs"]["size"] == 200
    assert evidence["ours"]["root"] != evidence["theirs"]["root"]


@pytest.mark.slow
async def test_restart_after_kill_keeps_the_state(setup: Setup) -> None:
    log = setup.log
    assert (await setup.post(log.body(0, 250)))[0] == 200
    _, note_before = await setup.get("/checkpoint")
    await setup.notary.kill()  # kill -9
    await setup.notary.restart()
    status, _, body = await setup.post(log.body(0))
    assert (status, body) == (409, b"250\n")
    assert await setup.get("/checkpoint") == (200, note_before)
    # It never co-signs another root for a size it co-signed, before or after the restart.
    fork = log.fork(200)
    fork.grow(60)
    assert (await setup.post(fork.body(250, 250)))[0] == 422
    status, _, body = await setup.post(log.body(250))
    assert status == 200
    verified_cosignature(setup, body, log.size)
    report = setup.notary.status()  # `gavel notary status --json` on the running notary
    assert (report["size"], report["mirrored_entries"]) == (log.size, log.size)


@pytest.mark.slow
async def test_a_rolled_back_log_is_refused_and_recorded(setup: Setup) -> None:
    log = setup.log
    assert (await setup.post(log.body(0)))[0] == 200
    size = log.size
    # The log restored from a backup: fewer entries, then a different history.
    log.rollback(size - 40)
    log.grow(20)
    smaller = log.size
    assert smaller < size
    status, _, body = await setup.post(log.body(size, smaller))  # old above new
    assert status == 400
    status, _, body = await setup.post(log.body(smaller, smaller))
    assert (status, body) == (409, b"%d\n" % size)
    log.grow(size - smaller)  # the same size as co-signed, another root
    assert log.size == size
    status, _, body = await setup.post(log.body(size))
    assert status == 422 and b"another root" in body
    log.grow(30)  # past it: no consistency proof can exist
    status, _, body = await setup.post(log.body(size))
    assert status == 422 and b"consistency proof" in body

    report = await setup.status()
    assert report["size"] == size
    refusals = report["recent_refusals"]
    assert isinstance(refusals, list)
    assert [(r["status"], r["reason"]) for r in refusals] == [
        (422, "INCONSISTENT"),
        (422, "INCONSISTENT"),
        (409, "SIZE_CONFLICT"),
        (400, "BAD_REQUEST"),
    ]
    assert all(r["evidence"] for r in refusals)
    assert refusals[2]["message"].startswith("fork: the log signed size")
    assert refusals[3]["message"].startswith("fork: the log signed size")
    export = setup.notary.directory / "evidence.json"
    subprocess.run(
        gavel_command(
            "notary", "evidence", "--dir", str(setup.notary.directory), "--out", str(export)
        ),
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    document = json.loads(export.read_text())
    assert len(document["refusals"]) == 4
    assert all("request" in item for item in document["refusals"])
    assert document["refusals"][0]["detail"]["rollback"] == "fork"
    assert len(document["conflicts"]) >= 3
    assert document["cosigned"]["size"] == size


@pytest.mark.slow
async def test_a_log_breaking_the_rules_is_refused_with_evidence(setup: Setup) -> None:
    log = setup.log
    assert (await setup.post(log.body(0)))[0] == 200
    size = log.size
    forged = log.inject_low_bid()
    log.grow(10)
    status, _, body = await setup.post(log.body(size))
    assert status == 422
    text = body.decode()
    assert text.startswith("step 8 replay:") and f"entry {forged.seq}" in text
    assert "BELOW_MIN" in text
    report = await setup.status()
    assert report["size"] == size  # nothing co-signed past the honest prefix
    refusal = report["recent_refusals"][0]
    assert (refusal["step"], refusal["seq"], refusal["evidence"]) == ("8 replay", forged.seq, True)

    human = subprocess.run(
        gavel_command("notary", "status", "--dir", str(setup.notary.directory)),
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"co-signed   size {size}," in human
    assert "REFUSED_CONTENT step 8 replay" in human and f"seq {forged.seq}" in human
    assert f"lag         {log.size - size}" in human

    document = json.loads(
        subprocess.run(
            gavel_command("notary", "evidence", "--dir", str(setup.notary.directory), "--out", "-"),
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
    )
    item = document["refusals"][-1]
    assert item["request"].encode() == log.body(size)
    assert json.loads(item["detail"]["entry"])["seq"] == forged.seq
    # Once the log stops breaking rules (another branch), co-signing resumes from the prefix.
    honest = log.fork(size)
    honest.grow(20)
    setup.server.log = honest
    assert (await setup.post(honest.body(size)))[0] == 200


@pytest.mark.slow
async def test_an_unreachable_log_is_502_and_not_evidence(setup: Setup) -> None:
    setup.server.down = True
    status, _, body = await setup.post(setup.log.body(0))
    assert status == 502 and b"log" in body
    report = await setup.status()
    assert report["size"] == 0
    refusal = report["recent_refusals"][0]
    assert (refusal["status"], refusal["evidence"]) == (502, False)
    setup.server.down = False
    assert (await setup.post(setup.log.body(0)))[0] == 200


def run_gavel(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    """``gavel ...`` in this process (the commands that do not serve): status, out, err."""
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_prints_the_policy_line_and_the_demo_policy_parses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    for index in (1, 2, 3):
        directory = tmp_path / f"n{index}"
        code, out, err = run_gavel(
            capsys,
            "notary",
            "init",
            "--dir",
            str(directory),
            "--name",
            f"notary{index}.example.org",
        )
        assert code == 0, err
        line = out.strip()
        assert line.startswith(f"witness notary{index}.example.org notary{index}.example.org+")
        lines.append(f"{line} http://127.0.0.1:{8090 + index}")
        key = directory / "notary.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_text().startswith("PRIVATE+KEY+notary")
    log = SimulatedLog()
    demo = "\n".join(
        [
            f"log {log.signer.vkey} http://127.0.0.1:8080",
            *lines,
            "group notaries 2 notary1.example.org notary2.example.org notary3.example.org",
            "quorum notaries",
        ]
    )
    policy = parse_policy(demo.encode() + b"\n")
    assert [w.url for w in policy.witnesses] == [f"http://127.0.0.1:{8090 + i}" for i in (1, 2, 3)]
    assert policy.quorum.name == "notaries" and getattr(policy.quorum, "k", None) == 2
    assert policy.log_verifiers(log.origin) == [log.signer.verifier]

    code, _, err = run_gavel(
        capsys, "notary", "init", "--dir", str(tmp_path / "n1"), "--name", "x.example.org"
    )
    assert code == 1 and "refusing to replace a key" in err
    code, _, err = run_gavel(
        capsys, "notary", "init", "--dir", str(tmp_path / "n4"), "--name", "has space"
    )
    assert code == 1 and "invalid notary name" in err


def test_operator_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(f"log {SimulatedLog().signer.vkey}\nquorum none\n")
    bad.write_text("quorum none\n")
    directory = tmp_path / "n"
    assert (
        run_gavel(capsys, "notary", "init", "--dir", str(directory), "--name", "n.example.org")[0]
        == 0
    )
    os.chmod(directory / "notary.key", 0o644)
    serve = ["notary", "serve", "--dir", str(directory), "--log", "http://127.0.0.1:9", "--policy"]
    results = [
        run_gavel(capsys, "notary", "status", "--dir", str(tmp_path / "missing")),
        run_gavel(capsys, *serve, str(good)),
        run_gavel(capsys, *serve, str(bad)),
        run_gavel(capsys, *serve, str(tmp_path / "absent")),
    ]
    assert [code for code, _, _ in results] == [1, 1, 1, 1]
    assert all(err.startswith("gavel notary: error:") for _, _, err in results)
    assert "chmod 600" in results[1][2]
    assert "exactly one log origin" in results[2][2]
    assert "cannot read the policy" in results[3][2]
    with pytest.raises(SystemExit) as exited:
        main(["notary", "serve", "--dir", str(directory)])
    assert exited.value.code == 2 and "--log" in capsys.readouterr().err
