"""`gavel` command line: arguments, clear errors, clean shutdown, restart on the same data."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from auction.cli import build_parser, main
from auction.storage import Storage


def test_demo_is_the_only_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["serve"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--data", "--db", "--host", "--port", "--bots", "--duration", "--seed"):
        assert option in help_text


@pytest.mark.parametrize(
    "arguments",
    [["--port", "70000"], ["--duration", "0"], ["--duration", "-3"], ["--bots", "-1"]],
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
    assert "6 lots in 4 sales" in out and "Traceback" not in err
