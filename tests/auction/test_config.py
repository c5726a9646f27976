"""`--config FILE` (TOML) for `gavel serve` and `gavel notary serve`, and `--log-format json`:
a good file, a flag that overrides it, an unknown key, a bad value; real processes started
from a file, their JSON log lines parsed one by one."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from notary_kit import notary_group, quorum_policy
from repo_kit import REPO

from auction.cli import build_parser, main
from auction.config import ConfigError, subcommand_parser, with_config
from auction.logs import LOT, REQUEST_ID, JsonFormatter, configure
from auction.storage import Storage


def parsed(argv: list[str]) -> object:
    parser = build_parser()
    words = 2 if argv[0] == "notary" else 1
    command = subcommand_parser(parser, argv[:words])
    return parser.parse_args(with_config(command, argv, words))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_serve_file_sets_every_kind_of_option_and_flags_win(tmp_path: Path) -> None:
    config = write(
        tmp_path / "gavel.toml",
        'data = "/srv/gavel"\nhost = "0.0.0.0"\nport = 8300\nbids_per_second = 7\n'
        'metrics-port = 9300\nlog-format = "json"\nlog-level = "info"\n'
        'policy = "/etc/gavel/policy"\n',
    )
    args = parsed(["serve", "--config", str(config)])
    assert (args.data, args.host, args.port, args.bids_per_second) == (  # type: ignore[attr-defined]
        Path("/srv/gavel"), "0.0.0.0", 8300, 7,
    )  # fmt: skip
    assert args.metrics_port == 9300 and args.log_format == "json"  # type: ignore[attr-defined]
    assert args.log_level == "INFO"  # type: ignore[attr-defined]
    assert args.policy == Path("/etc/gavel/policy")  # type: ignore[attr-defined]
    # the command line wins, and replaces an exclusive option of the file (--db for data)
    args = parsed(["serve", "--port", "8301", f"--config={config}", "--db", "postgresql://x/y"])
    assert args.port == 8301 and args.db == "postgresql://x/y"  # type: ignore[attr-defined]
    assert args.data is None and args.host == "0.0.0.0"  # type: ignore[attr-defined]
    # without --config nothing changes
    assert build_parser().parse_args(["serve", "--data", "d"]).port == 8080


def test_a_notary_file_with_a_list_and_flags_win(tmp_path: Path) -> None:
    config = write(
        tmp_path / "notary.toml",
        'dir = "/srv/notary1"\nlog = "http://log.example.org:8080"\npolicy = "/etc/policy"\n'
        'port = 7001\npeer = ["http://n2.example.org:7001", "http://n3.example.org:7001"]\n'
        "max-skew = 1.5\nmetrics-port = 9101\n",
    )
    args = parsed(["notary", "serve", "--config", str(config)])
    assert args.dir == Path("/srv/notary1") and args.port == 7001  # type: ignore[attr-defined]
    assert args.peer == ["http://n2.example.org:7001", "http://n3.example.org:7001"]  # type: ignore[attr-defined]
    assert args.max_skew == 1.5 and args.metrics_port == 9101  # type: ignore[attr-defined]
    args = parsed(["notary", "serve", "--config", str(config), "--peer", "http://p", "--port", "1"])
    assert args.peer == ["http://p"] and args.port == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "text", "named"),
    [
        (["serve"], 'data = "d"\nprot = 8080\n', "unknown key 'prot'"),
        (["serve"], 'data = "d"\nport = 70000\n', "key 'port': 70000: must be 0..65535"),
        (["serve"], 'data = "d"\nport = "eighty"\n', "key 'port'"),
        (["serve"], 'data = "d"\nport = 80.5\n', "key 'port'"),
        (["serve"], 'data = "d"\nbids-per-second = 0\n', "key 'bids-per-second'"),
        (["serve"], 'data = "d"\nhost = true\n', "key 'host'"),
        (["serve"], 'data = "d"\nlog-format = "xml"\n', "key 'log-format'"),
        (["serve"], 'data = "d"\n[serve]\nport = 1\n', "unknown key 'serve'"),
        (["serve"], "data = \n", "not valid TOML"),
        (["notary", "serve"], 'dir = "d"\nmax-skew = -1\n', "key 'max-skew'"),
        (["notary", "serve"], 'dir = "d"\npeer = [1]\n', "key 'peer'"),
        (["notary", "serve"], 'dir = "d"\nbids-per-second = 3\n', "unknown key"),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_the_key(
    tmp_path: Path, command: list[str], text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as error:
        parsed([*command, "--config", str(config)])
    assert named in str(error.value) and str(config) in str(error.value)
    assert main([*command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gavel: error: ") and named in err and "Traceback" not in err


def test_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read the configuration file" in capsys.readouterr().err


def test_json_lines_escape_and_carry_lot_and_request_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("gavel.test.json")
    configure("json", "INFO", stream)
    try:
        token_id, token_lot = REQUEST_ID.set("req-1"), LOT.set("watch")
        try:
            logger.warning('two\nlines \x1b[31m and a quote "', extra={})
        finally:
            REQUEST_ID.reset(token_id)
            LOT.reset(token_lot)
        logger.info("plain", extra={"lot": "flat"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        configure("text", "WARNING")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == 'two\\x0alines \\x1b[31m and a quote "'  # escaped, one line
    assert (first["lot"], first["request_id"], first["level"]) == ("watch", "req-1", "warning")
    assert first["component"] == "gavel.test.json" and first["time"].endswith("Z")
    assert second["lot"] == "flat" and "request_id" not in second
    assert "ValueError: boom" in third["exception"]
    assert JsonFormatter  # the formatter configure installs


def _start(arguments: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "auction.cli", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    return out, err


@pytest.mark.slow
def test_serve_from_a_file_logs_json_lines(tmp_path: Path) -> None:
    config = write(
        tmp_path / "gavel.toml",
        f'data = "{tmp_path / "data"}"\nport = 1\nmetrics-port = 0\nlog-format = "json"\n'
        'log-level = "INFO"\n',
    )
    process = _start(["serve", "--config", str(config), "--port", "0"])  # the flag wins
    try:
        assert process.stdout is not None
        served = re.search(r"serving (http://127\.0\.0\.1:\d+)/", process.stdout.readline())
        assert served
        process.stdout.readline()  # the console URL
        metrics = re.search(r"metrics (http://\S+/metrics)", process.stdout.readline())
        assert metrics
        with urllib.request.urlopen(metrics.group(1), timeout=10) as response:
            assert b"gavel_ledger_entries" in response.read()
        request = urllib.request.Request(
            served.group(1) + "/api/lots/no-such-lot", headers={"X-Request-Id": "trace-42"}
        )
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=10)
        assert missing.value.headers["X-Request-Id"] == "trace-42"
        missing.value.close()
    finally:
        _, err = _stop(process)
    records = [json.loads(line) for line in err.splitlines()]  # every line is one object
    assert records
    for record in records:
        assert {"time", "level", "component", "message"} <= set(record)
    access = [r for r in records if r["component"] == "aiohttp.access"]
    mine = [r for r in access if r.get("request_id") == "trace-42"]
    assert mine and mine[0]["lot"] == "no-such-lot" and " 404 " in mine[0]["message"]
    assert not any("127.0.0.1" in r["message"] for r in access)  # no client address


@pytest.mark.slow
def test_notary_serve_from_a_file(tmp_path: Path) -> None:
    with Storage.open(tmp_path / "data") as store:
        assert store.house is not None
        house = store.house.vkey
    notary = notary_group(tmp_path, count=1)[0]
    policy = write(tmp_path / "policy", quorum_policy(house, [notary], quorum=1).decode())
    config = write(
        tmp_path / "notary.toml",
        f'dir = "{notary.directory}"\nlog = "http://127.0.0.1:1"\npolicy = "{policy}"\n'
        f'port = 1\nmetrics-port = 0\nlog-format = "json"\nlog-level = "INFO"\n',
    )
    process = _start(["notary", "serve", "--config", str(config), "--port", str(notary.port)])
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "notary1.test co-signs" in line and f"127.0.0.1:{notary.port}/" in line, line
        metrics = re.search(r"metrics on (http://\S+/metrics)", process.stdout.readline())
        assert metrics
        with urllib.request.urlopen(metrics.group(1), timeout=10) as response:
            text = response.read().decode()
        assert "gavel_notary_cosigned_size 0.0" in text
        with urllib.request.urlopen(notary.url + "/status", timeout=10) as response:
            assert json.loads(response.read())["name"] == "notary1.test"
    finally:
        _, err = _stop(process)
    for line in err.splitlines():
        assert {"time", "level", "component", "message"} <= set(json.loads(line))
