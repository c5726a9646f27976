"""Loopback-only ICE for tests, benchmarks and the dev server.

aioice's `get_host_addresses` skips 127.0.0.1 (aioice/ice.py), so a peer connection on a
loopback-only host would gather no candidate at all. This swaps that function for one that
returns 127.0.0.1 only, for as long as the context is entered, and restores what was there
before (nesting is fine as long as exits happen in reverse order). It is a process-wide patch:
never use it in production.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aioice.ice


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


@contextlib.contextmanager
def loopback_only_ice() -> Iterator[None]:
    previous = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = _loopback_addresses
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = previous
