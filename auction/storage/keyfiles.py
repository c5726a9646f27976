"""The files of a data directory next to the database: the house signing key
(`house.key`, written atomically before entry 0 and installed after it) and the trust
policy (`policy`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from chain import ChainError, Ed25519Verifier, parse_policy

from .errors import LedgerCorrupt, StorageConflict, StorageUnavailable
from .house import House
from .schema import _HOUSE

#: The house signing key inside a data directory (signer key text, mode 0600).
HOUSE_KEY_FILE = "house.key"

#: The house key of a first start, until entry 0 is committed.
HOUSE_KEY_PENDING = HOUSE_KEY_FILE + ".new"

#: The trust policy (C2SP tlog-policy) written next to it.
POLICY_FILE = "policy"


def _key_location(directory: Path | None) -> str:
    return str(directory / HOUSE_KEY_FILE) if directory is not None else "table ledger_house"


def _read_house_key(connection: Connection, directory: Path | None) -> tuple[str | None, bool]:
    """The house signer key text (None if there is none yet), and whether it is still the
    pending `house.key.new` of a first start that may not have committed entry 0."""
    if directory is None:
        text = connection.execute(select(_HOUSE.c.signer_key).where(_HOUSE.c.id == 1)).scalar()
        return (None if text is None else str(text)), False
    text = _read_key_file(directory / HOUSE_KEY_FILE)
    if text is not None:
        return text, False
    text = _read_key_file(directory / HOUSE_KEY_PENDING)
    return text, text is not None


def _read_key_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise LedgerCorrupt(f"{path} is readable by others: chmod 600 it")
        with path.open("rb") as file:
            data = file.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise LedgerCorrupt(f"{path} is not a signer key") from exc


def _write_house_key(
    connection: Connection, directory: Path | None, house: House, now: int
) -> bool:
    """Store a new house key: a row in the transaction that writes entry 0, or, for a data
    directory, `house.key.new` (0600, created exclusively, synced before any entry it signs is
    committed), renamed to `house.key` once entry 0 is (`_install_house_key`). Returns whether
    that rename is still due. A crash in between is recovered at the next start."""
    text = house.signer.signer_key
    if directory is None:
        connection.execute(insert(_HOUSE).values(id=1, signer_key=text, created_at=now))
        return False
    path = directory / HOUSE_KEY_PENDING
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, (text + "\n").encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        _sync_directory(directory)
    except FileExistsError as exc:
        raise StorageConflict(f"{path} appeared meanwhile: another gavel is starting") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc
    return True


def _install_house_key(directory: Path) -> None:
    try:
        os.replace(directory / HOUSE_KEY_PENDING, directory / HOUSE_KEY_FILE)
        _sync_directory(directory)
    except OSError as exc:
        raise StorageUnavailable(f"cannot install {directory / HOUSE_KEY_FILE}: {exc}") from exc


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageUnavailable(f"cannot remove {path}: {exc}") from exc


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_if_changed(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` unless it already holds exactly that."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc


def _policy_file(directory: Path | None, verifier: Ed25519Verifier) -> bytes | None:
    """`DIR/policy` if it parses, trusts this log's key and names notaries (written by the
    operator or `gavel demo`); None otherwise (the default policy is then used)."""
    if directory is None:
        return None
    try:
        data = (directory / POLICY_FILE).read_bytes()
        policy = parse_policy(data)
    except (OSError, ChainError):
        return None
    if not policy.witnesses or not any(log.verifier.vkey == verifier.vkey for log in policy.logs):
        return None
    return data
