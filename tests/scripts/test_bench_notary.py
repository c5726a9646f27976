"""`scripts/bench_notary.py` runs every request series against a real notary process: the
same-size series re-submits the size the notary co-signed, also when the simulated log ended
its last auction step a few entries beyond it (it answered 409 with its size before)."""

from __future__ import annotations

import json

import pytest

from tests.support.notary_kit import SimulatedLog
from tests.support.script_kit import load_script

bench = load_script("bench_notary")

ENTRIES = 41
REQUESTS = 7  # the log's growth ends on a two-entry step (a close and its sale): 49, not 48


def test_the_log_grows_past_the_cosigned_size() -> None:
    log = SimulatedLog()
    log.grow(ENTRIES - 1)
    base = log.size
    log.grow(REQUESTS)
    assert log.size > base + REQUESTS


@pytest.mark.slow
def test_every_series_runs_and_the_full_replay_is_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--entries", str(ENTRIES), "--requests", str(REQUESTS), "--clients", "2"]
    assert bench.main([*argv, "--repeat", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["entries"] == ENTRIES
    assert len(result["full_replay_runs"]) == 1
    assert result["full_replay_entries_per_second"] > 0
    assert result["same_size_requests_per_second"] > 0
    assert result["same_size_parallel_requests_per_second"] > 0
    if result["full_replay_notary_cpu_seconds"]:  # Linux: the notary's own CPU
        assert result["full_replay_entries_per_notary_cpu_second"] > 0
