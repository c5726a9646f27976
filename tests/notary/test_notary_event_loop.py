"""The servers' event loop: uvloop when installed, asyncio's own on request or without it."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from notary.cli import EVENT_LOOP_VARIABLE, event_loop_factory, run_serving


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_is_the_default_when_installed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    with caplog.at_level(logging.INFO, logger="gavel.loop"):
        assert run_serving(loop_module(), "test server") == "uvloop"
    assert "test server: event loop uvloop" in caplog.text


def test_asyncio_on_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    with caplog.at_level(logging.INFO, logger="gavel.loop"):
        assert run_serving(loop_module(), "test server") == "asyncio"
    assert "test server: event loop asyncio" in caplog.text


def test_asyncio_when_uvloop_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it raises ImportError
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "uvloop")
    assert event_loop_factory() == ("asyncio", None)
    assert run_serving(loop_module(), "test server") == "asyncio"
