"""A naive RFC 9162 section 2.1 Merkle tree: the oracle the fast code is checked against.

Straight from the RFC's recursive definitions (MTH, PATH, PROOF/SUBPROOF); deliberately slow and
independent of ``chain`` (it does its own hashing).
"""

from hashlib import sha256


def _k(n: int) -> int:  # the largest power of two smaller than n (n > 1)
    return 1 << ((n - 1).bit_length() - 1)


def mth(d: list[bytes]) -> bytes:  # RFC 9162 2.1.1
    if len(d) == 0:
        return sha256(b"").digest()
    if len(d) == 1:
        return sha256(b"\x00" + d[0]).digest()
    return sha256(b"\x01" + mth(d[: _k(len(d))]) + mth(d[_k(len(d)) :])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:  # RFC 9162 2.1.3.1
    if len(d) == 1:
        return []
    k = _k(len(d))
    return [*path(m, d[:k]), mth(d[k:])] if m < k else [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:  # RFC 9162 2.1.4.1
    return subproof(m, d, True)


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]
