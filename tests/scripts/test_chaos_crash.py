"""Crash recovery under load, bounded: `python -m scripts.chaos_crash --kills 5` against real server
and notary processes on 127.0.0.1 (see RELIABILITY.md for the 50-kill run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from script_kit import ROOT, script_command


def figures_of(output: str) -> dict[str, str]:
    """The `name value` lines the script prints at the end."""
    figures: dict[str, str] = {}
    for line in output.splitlines():
        name, _, value = line.partition(" ")
        if name and value and name.replace("_", "").isalpha() and name.islower():
            figures[name] = value.strip()
    return figures


@pytest.mark.slow
def test_five_kills_lose_nothing_and_apply_nothing_twice(tmp_path: Path) -> None:
    command = [
        *script_command("chaos_crash"), "--kills", "5", "--bidders", "3", "--pause", "0.05",
        "--seed", "8", "--audit-every", "3", "--time-limit", "200", "--data", str(tmp_path / "run"),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    output = run.stdout + run.stderr
    figures = figures_of(run.stdout)
    assert run.returncode == 0, output[-4000:]
    assert "chaos_crash: OK" in run.stdout
    assert int(figures["kill_points"]) == 5, output
    assert int(figures["restarts"]) == 5, output
    acknowledged = int(figures["acknowledged"])
    assert acknowledged > 50, output  # the bidders did bid between the kills
    # every acknowledged bid that reached the engine was found in the ledger, as acknowledged
    without_entry = int(figures["acknowledged_without_entry"])
    assert int(figures["checked"]) == acknowledged - without_entry, output
    assert int(figures["lost"]) == 0, output
    assert int(figures["duplicates"]) == 0, output
    assert int(figures["applied_twice"]) == 0, output
    assert int(figures["lost_ack_resends"]) > 0, output  # resends after restarts were tried
    assert int(figures["audits"]) >= 2, output
    assert figures["audit"] == "pass", output
    assert int(figures["violations"]) == 0, output
