"""`gavel` command line: arguments, clear errors, clean shutdown, restart on the same data."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from auction.cli import build_parser, main
from auction.storage import Storage


def test_commands_and_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["serve"])  # needs --data or --db
    assert exited.value.code == 2
    assert "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--data", "d", "--db", "postgresql://x/y"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    for option in (
        "--data", "--db", "--host", "--port", "--bots", "--duration", "--seed", "--speed",
        "--fresh",
    ):  # fmt: skip
        assert option in help_text


@pytest.mark.parametrize(
    "arguments",
    [
        ["--port", "70000"],
        ["--duration", "0"],
        ["--duration", "-3"],
        ["--bots", "-1"],
        ["--speed", "0.5"],
        ["--speed", "fast"],
    ],  # fmt: skip
)
def test_bad_arguments_exit_2(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", *arguments])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_defaults() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.data, args.db, args.host, args.port, args.bots, args.duration, args.seed) == (
        Path("gavel-data"),
        None,
        "127.0.0.1",
        8080,
        5,
        None,
        None,
    )


def test_an_unreachable_database_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--db", "postgresql://postgres@127.0.0.1:1/test", "--duration", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("gavel: error: opening the database") and "Traceback" not in err


def test_a_taken_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["demo", "--data", str(tmp_path), "--port", str(port), "--duration", "1"])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_restart_reuses_the_stored_lots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    common = ["demo", "--data", data, "--port", "0", "--bots", "2", "--seed", "1"]
    assert main([*common, "--duration", "2"]) == 0
    first = capsys.readouterr().out
    with Storage.open(data) as store:
        lots_before = [lot.lot_id for lot in store.load()]
        commands_before = store.counts().commands
    assert len(lots_before) == 6 and "6 lots in 4 sales" in first

    assert main([*common, "--duration", "1"]) == 0
    second = capsys.readouterr().out
    with Storage.open(data) as store:
        lots_after = [lot.lot_id for lot in store.load()]  # replayed and checked
        commands_after = store.counts().commands
    assert lots_after == lots_before  # no second copy of the catalogue
    assert commands_after >= commands_before
    assert "6 lots in 4 sales" in second


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "auction.cli",
            "demo",
            "--data",
            str(tmp_path),
            "--port",
            "0",
            "--bots",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert re.search(r"serving http://127\.0\.0\.1:\d+/", line), line
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    # without --duration: the living catalogue, its first lots created before it serves
    assert "living catalogue: a court-ordered property lot opens every 5 min" in out
    assert "hz-lot-0001" in out and "ldn-lot-0001" in out and "Traceback" not in err


def test_serve_prints_the_console_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "auction.cli", "serve", "--data", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        served = re.search(r"gavel serve: serving (http://127\.0\.0\.1:\d+/)", line)
        assert served, line
        console = process.stdout.readline()
        token = re.search(r"console (http://127\.0\.0\.1:\d+/console)#token=(\S+)", console)
        assert token, console
        url = served.group(1)
        request = urllib.request.Request(
            url + "api/console/lots/none/commands",
            data=b'{"type": "Pause", "reason": "test"}',
            headers={"Authorization": f"Bearer {token.group(2)}"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404  # authorised as the auctioneer; no such lot
        refused.value.close()
        with urllib.request.urlopen(url + "api/lots", timeout=10) as response:
            assert json.loads(response.read())["lots"] == []  # serve seeds nothing
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "idp.key").is_file()
    with Storage.open(tmp_path, read_only=True) as store:
        assert store.ledger_size() >= 2  # the house entry and the identity provider's key


async def test_staff_sessions_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gavel staff` makes a working session in a running server's database."""
    import aiohttp
    from server_kit import add_lots, running_server

    assert main(["staff", "--data", str(tmp_path / "none"), "--role", "compliance"]) == 1
    assert "no gavel database" in capsys.readouterr().err
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        await add_lots(server, open_in=60)
        tokens = {}
        for role in ("compliance", "auctioneer"):
            assert main(["staff", "--data", str(server.data), "--role", role]) == 0
            out = capsys.readouterr().out
            tokens[role] = re.search(r"^token (\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
            assert role in out
        url = f"{server.url}/api/compliance/lots/flat/identities"
        for role, expected in (("compliance", 409), ("auctioneer", 403)):
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            async with http.get(url, headers=headers) as response:
                assert response.status == expected, await response.text()


def test_malformed_requests_do_not_fill_the_log() -> None:
    """aiohttp's traceback for a malformed request line is dropped; other errors are kept."""
    import logging

    from aiohttp.http_exceptions import BadHttpMessage

    from auction.cli.gavel import _drop_malformed_requests

    def record(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException:
            return logging.LogRecord(
                "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (),
                sys.exc_info(),
            )  # fmt: skip

    assert not _drop_malformed_requests(record(BadHttpMessage("bad request line")))
    assert _drop_malformed_requests(record(RuntimeError("a real bug")))
