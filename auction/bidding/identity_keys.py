"""The identity provider's key: its ledger signer and where its seed is kept."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chain import Ed25519Signer

from ..accounts import AccountStore
from ..errors import (
    GavelError,
)
from ..identity.provider import IdentityProvider

#: The identity provider's key name (its `idv` entries' actor) and attestation validity.
IDP_NAME = "idp.gavel.local"

IDP_KEY_FILE = "idp.key"

ATTESTATION_VALIDITY_US = 365 * 24 * 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class IdentityKeys:
    """The identity provider and its ledger signer (the same Ed25519 key)."""

    provider: IdentityProvider
    signer: Ed25519Signer


def load_identity_keys(
    seed: bytes, validity_us: int = ATTESTATION_VALIDITY_US, name: str = IDP_NAME
) -> IdentityKeys:
    """The provider and its ledger signer from the key's 32-byte seed."""
    return IdentityKeys(
        IdentityProvider(name, Ed25519PrivateKey.from_private_bytes(seed), validity_us),
        Ed25519Signer.from_seed(name, seed),
    )


def identity_seed(data_dir: Path | None, accounts: AccountStore) -> bytes:
    """The provider's key seed: `DATA/idp.key` (mode 0600, made on first use) for a data
    directory, the accounts database's secret table for a database URL. Blocking."""
    if data_dir is None:
        return accounts.secret("idp-key")
    path = data_dir / IDP_KEY_FILE
    try:
        return base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, binascii.Error) as exc:
        raise GavelError(f"cannot read {path}: {exc}", code="IDP_KEY") from exc
    seed = secrets.token_bytes(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(seed).decode("ascii") + "\n")
    return seed
