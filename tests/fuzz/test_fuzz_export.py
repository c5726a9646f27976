"""Fuzzing export directories: `gavel audit verify DIR` on damaged and hostile directories.

Documented (auction/audit/cli.py): exit 0 verified, 1 verification failed, 2 no verdict, with
one ``gavel audit: ...`` line on stderr; never a traceback. The seed is a real export written by
`tests/ledger_builder.py` (a judicial lot, checkpoints cosigned by two of three notaries, a
quorum of two, receipts); each case copies it and applies 1-3 changes: a file deleted,
truncated, mutated or replaced by garbage, a whole folder removed, extra files (also with
names the auditor reads, such as ``checkpoints/<20 digits>``), a file replaced by a folder, a
FIFO, a symlink pointing outside (to a secret file, to ``/dev/zero``, dangling, a loop), or a
huge sparse file.

Soundness: when the verdict is "verified", the checkpoint's text and every tile and entry
bundle are exactly the original ones.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_kit import Check, bounded, mutated, run_fuzzer
from hypothesis import strategies as st
from ledger_kit import T0, LedgerBuilder, judicial_lot, notary_signers
from repo_kit import REPO

from auction.audit import DirectorySource, SourceError
from auction.audit import cli as audit_cli
from auction.rules import SECOND
from chain import parse_note

SECRET = b"FUZZ-SECRET-4b1d outside the export\n"


def _write_seed(directory: Path) -> None:
    builder = LedgerBuilder()
    builder.run("judicial-flat", "Flat 1502, Hangzhou", *judicial_lot(T0 + SECOND))
    builder.checkpoint()
    builder.write(directory, notaries=notary_signers(3), cosigners=notary_signers(3)[:2], quorum=2)


def _files(directory: Path) -> list[str]:
    return sorted(
        str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()
    )


@st.composite
def damage(draw: st.DrawFn, files: list[str]) -> list[tuple[str, str, bytes]]:
    """1..3 changes: (operation, relative path, data)."""
    changes: list[tuple[str, str, bytes]] = []
    names = [*files, "checkpoint", "policy", "tile", "checkpoints", "receipts", "tile/entries"]
    extra = st.sampled_from(
        [
            "checkpoints/00000000000000000099",
            "checkpoints/00000000000000000000",
            "checkpoints/99999999999999999999",
            "checkpoints/0",
            "tile/0/x001/999",
            "tile/entries/000.p/1",
            "tile/0/000.p/7",
            "tile/1/000.p/1",
            "junk",
            "tile/junk",
            ".hidden",
        ]
    )
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(
            st.sampled_from(
                [
                    "delete",
                    "truncate",
                    "mutate",
                    "garbage",
                    "extra",
                    "folder",
                    "fifo",
                    "link-secret",
                    "link-zero",
                    "link-dangling",
                    "link-loop",
                    "huge",
                ]
            )
        )
        if op == "extra":
            changes.append((op, draw(extra), draw(st.binary(max_size=300))))
        else:
            changes.append((op, draw(st.sampled_from(names)), draw(st.binary(max_size=300))))
    return changes


def _apply(
    directory: Path, outside: Path, changes: list[tuple[str, str, bytes]], draw: Any
) -> None:
    for op, name, data in changes:
        path = directory / name
        if op == "extra":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                path.write_bytes(data)
            continue
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_dir() and not path.is_symlink():
            if op == "delete":
                shutil.rmtree(path)
            continue
        regular = path.is_file() and not path.is_symlink()
        if op in ("truncate", "mutate", "garbage", "huge") and not regular:
            continue  # an earlier change made it a FIFO or a link: reading it would block
        if op == "delete":
            path.unlink()
        elif op == "truncate":
            content = path.read_bytes()
            path.write_bytes(content[: len(data) % (len(content) + 1)])
        elif op == "mutate":
            path.write_bytes(draw(mutated([path.read_bytes()], max_ops=3)))
        elif op == "garbage":
            path.write_bytes(data)
        elif op == "huge":
            with path.open("r+b") as handle:
                handle.truncate(200 * 1024 * 1024)  # sparse
        else:
            path.unlink()
            if op == "folder":
                path.mkdir()
                (path / "x").write_bytes(data)
            elif op == "fifo":
                os.mkfifo(path)
            elif op == "link-secret":
                os.symlink(outside, path)
            elif op == "link-zero":
                os.symlink("/dev/zero", path)
            elif op == "link-dangling":
                os.symlink(directory / "no-such-file", path)
            elif op == "link-loop":
                os.symlink(path, path)


class _ExportServer(http.server.ThreadingHTTPServer):
    """Serves one directory as a log server's ``/log/``: files as they are (the server is the
    adversary here: it may serve whatever a damaged export holds), folders as a listing of
    names, one a line, as gavel's ``/log/checkpoints`` does."""

    daemon_threads = True
    root = Path("/nonexistent")

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the auditor hangs up once it read its bound: not a failure of the test server


class _ExportHandler(http.server.BaseHTTPRequestHandler):
    server: _ExportServer

    def do_GET(self) -> None:
        relative = urllib.parse.unquote(self.path).removeprefix("/log/")
        target = self.server.root / relative
        try:
            if target.is_dir():
                body = "".join(f"{name}\n" for name in sorted(os.listdir(target))).encode()
            else:
                with target.open("rb") as handle:
                    body = handle.read(2 * 1024 * 1024)
        except OSError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving() -> Iterator[_ExportServer]:
    server = _ExportServer(("127.0.0.1", 0), _ExportHandler)
    thread = threading.Thread(target=server.serve_forever, name="fuzz-export-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def export_verifier(over_http: bool = False) -> Iterator[tuple[st.SearchStrategy[Any], Check]]:
    """A strategy of damage plans and a check that applies one to a fresh copy of the seed
    export and runs `gavel audit verify` on it in-process: on the directory, or (`over_http`)
    on a URL whose server serves that directory."""
    folder = Path(tempfile.mkdtemp(prefix="gavel-fuzz-export-"))
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(_serving()) if over_http else None
            seed = folder / "seed"
            _write_seed(seed)
            files = _files(seed)
            original = {name: (seed / name).read_bytes() for name in files}
            text = parse_note(original["checkpoint"]).text
            outside = folder / "secret"
            outside.write_bytes(SECRET)

            @st.composite
            def plans(draw: st.DrawFn) -> tuple[list[tuple[str, str, bytes]], Any]:
                changes = draw(damage(files))
                if over_http:  # a FIFO would block the test's own server, not the auditor
                    changes = [("delete" if op == "fifo" else op, n, d) for op, n, d in changes]
                return changes, draw

            def check(plan: tuple[list[tuple[str, str, bytes]], Any]) -> None:
                changes, draw = plan
                with tempfile.TemporaryDirectory(dir=folder) as work:
                    directory = Path(work) / "export"
                    shutil.copytree(seed, directory)
                    _apply(directory, outside, changes, draw)
                    source = str(directory)
                    if server is not None:
                        server.root = directory
                        source = f"http://127.0.0.1:{server.server_address[1]}/"
                    out, err = io.StringIO(), io.StringIO()
                    with bounded(20.0, "gavel audit verify"):
                        code = audit_cli.run(audit_cli_args(source), stdout=out, stderr=err)
                    assert code in (0, 1, 2), code
                    if code:
                        lines = err.getvalue().splitlines()
                        assert lines and lines[-1].startswith("gavel audit: "), err.getvalue()
                        assert "Traceback" not in err.getvalue()
                        return
                    assert parse_note((directory / "checkpoint").read_bytes()).text == text
                    for name, data in original.items():
                        if name.startswith("tile/"):
                            assert (directory / name).read_bytes() == data, f"{name} changed"

            yield plans(), check
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def audit_cli_args(source: Path | str) -> Any:
    parser = argparse.ArgumentParser()
    audit_cli._add_actions(parser)
    return parser.parse_args(["verify", str(source), "--workers", "0"])


CONTEXT_FUZZERS: dict[str, Callable[[], Any]] = {
    "export directory": export_verifier,
    "export over http": lambda: export_verifier(over_http=True),
}


@pytest.mark.slow
def test_fuzz_export_directories() -> None:
    with export_verifier() as (strategy, check):
        run_fuzzer({"export": (strategy, check)}, "export", 150)


@pytest.mark.slow
def test_fuzz_exports_served_over_http() -> None:
    with export_verifier(over_http=True) as (strategy, check):
        run_fuzzer({"export": (strategy, check)}, "export", 100)


def test_a_checkpoint_size_beyond_the_int_conversion_limit_is_refused() -> None:
    """Found by the fuzzer: a server whose checkpoint's size line has over 4,300 digits made
    `HttpSource.checkpoint` raise ValueError (a traceback) instead of a verdict."""
    with tempfile.TemporaryDirectory() as folder, _serving() as server:
        directory = Path(folder) / "export"
        _write_seed(directory)
        text = (directory / "checkpoint").read_bytes().split(b"\n")
        text[1] = b"9" * 5000
        (directory / "checkpoint").write_bytes(b"\n".join(text))
        server.root = directory
        out, err = io.StringIO(), io.StringIO()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert audit_cli.run(audit_cli_args(url), stdout=out, stderr=err) == 1
        assert err.getvalue().startswith("gavel audit: audit failed at step 1 parse")


def test_the_seed_export_verifies() -> None:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "export"
        _write_seed(directory)
        out, err = io.StringIO(), io.StringIO()
        assert audit_cli.run(audit_cli_args(directory), stdout=out, stderr=err) == 0, err.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("op", ["fifo", "link-loop", "huge"])
def test_the_real_command_fails_cleanly(tmp_path: Path, op: str) -> None:
    """`gavel audit verify DIR` as a process: exit 1 or 2, one message line, no traceback."""
    directory = tmp_path / "export"
    _write_seed(directory)
    (tmp_path / "secret").write_bytes(SECRET)
    for name in ("checkpoint", "tile/entries/000.p/" + _bundle_width(directory)):
        _apply(directory, tmp_path / "secret", [(op, name, b"garbage")], None)
    result = subprocess.run(
        [sys.executable, "-m", "auction.cli", "audit", "verify", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode in (1, 2), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("gavel audit: "), result.stderr
    assert SECRET.decode().strip() not in result.stdout + result.stderr


def _bundle_width(directory: Path) -> str:
    return next(iter(os.listdir(directory / "tile" / "entries" / "000.p")))


def test_a_fifo_in_an_export_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Found by the fuzzer: the auditor opened a FIFO planted as `checkpoint` and blocked
    forever waiting for a writer."""
    os.mkfifo(tmp_path / "checkpoint")
    with bounded(5.0, "reading a FIFO"), pytest.raises(SourceError, match="not a regular file"):
        DirectorySource(tmp_path).checkpoint()


def test_a_symlink_loop_in_an_export_is_a_source_error(tmp_path: Path) -> None:
    """Found by the fuzzer: `Path.resolve` raises RuntimeError on a loop (Python 3.11), which
    escaped `gavel audit verify` as a traceback."""
    os.symlink(tmp_path / "policy", tmp_path / "policy")
    with pytest.raises(SourceError, match="cannot resolve policy"):
        DirectorySource(tmp_path).policy()
