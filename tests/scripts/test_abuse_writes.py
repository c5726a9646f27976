"""The abusive client of `scripts/abuse_writes.py` against a real `gavel serve` with the
default limits: the ledger grows no more than docs/protocol.md §1.1 allows (the figures of a
longer run are in RELIABILITY.md)."""

from __future__ import annotations

import pytest
from script_kit import load_script

from auction.throttle import WriteLimits

abuse = load_script("abuse_writes")


def test_the_documented_bound_follows_the_default_limits() -> None:
    limits = WriteLimits()
    assert limits.identity_per_address is not None
    bound = abuse.documented_bound(10.0)
    assert bound["entries_per_account"] == 60
    # 30 + 2 identity checks, 60 + 5 registrations, 60 + 5 deposits of two entries each
    assert limits.identity_per_address.allowed(10.0) == 32
    assert bound["entries"] == 32 + 65 + 2 * 65
    assert abuse.documented_bound(10.0, addresses=3)["entries"] == 3 * bound["entries"]


@pytest.mark.slow
def test_an_abusive_client_cannot_flood_the_ledger() -> None:
    run = abuse.run_mode(
        True, seconds=4.0, max_requests=20_000, concurrency=6, repeats=3, addresses=1
    )
    answers = run["answers"]
    ledger = run["ledger"]
    # the client did try far more than the limits allow, and was told so
    assert answers.get("account 429", 0) > 0, answers
    assert run["accounts_created"] <= WriteLimits().accounts_per_address.allowed(run["seconds"])
    # and the ledger stayed within the documented bound
    bound = abuse.documented_bound(run["seconds"])
    assert 0 < ledger["entries"] <= bound["entries"], (ledger, bound)
    assert ledger["entries_per_account_max"] <= bound["entries_per_account"]
    assert set(ledger["by_type"]) <= {"idv", "registration", "deposit"}
    # repeated requests on a session were refused before the engine: at most one identity
    # check, one registration per lot and one deposit (two entries) per account
    assert ledger["entries_per_account_max"] <= 1 + 2 + 2
