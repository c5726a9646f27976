"""A notary's data directory: key file, database, lock, evidence files and reports (adapter).

Layout of ``D``::

    D/notary.key      PRIVATE+KEY+<name>+<id>+... (mode 0600): the cosigner key, type 0x04
    D/notary.vkey     the matching vkey, to put in the policy
    D/notary.db       SQLite state (:mod:`notary.store`)
    D/notary.lock     held (flock) by the running ``serve`` so two never share a directory
    D/evidence/       one JSON file per split view detected

Everything here is blocking file I/O without aiohttp, shared by the CLI and the server.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from chain import (
    ChainError,
    CosignatureSigner,
    parse_checkpoint_text,
    parse_note,
    parse_signer_key,
    parse_vkey,
    validate_key_name,
)

from .errors import NotaryStateError
from .store import NotaryStore, Refusal

__all__ = [
    "DATABASE_FILE",
    "EVIDENCE_DIR",
    "KEY_FILE",
    "LOCK_FILE",
    "VKEY_FILE",
    "DataDir",
    "checkpoint_summary",
    "evidence_export",
    "init_data_dir",
    "status_report",
]

KEY_FILE: Final = "notary.key"
VKEY_FILE: Final = "notary.vkey"
DATABASE_FILE: Final = "notary.db"
LOCK_FILE: Final = "notary.lock"
EVIDENCE_DIR: Final = "evidence"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _time_text(time_us: int) -> str:
    moment = datetime.fromtimestamp(time_us / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def init_data_dir(directory: Path, name: str) -> CosignatureSigner:
    """Create ``directory`` with a fresh cosigner key named ``name``; return the signer.

    Refuses to overwrite an existing key. The key file is created with mode 0600. The caller
    prints ``signer.vkey`` for the operator to put in the policy.
    """
    try:
        validate_key_name(name)
    except ChainError as exc:
        raise NotaryStateError(f"invalid notary name {name!r}: {exc.message}") from exc
    key_path = directory / KEY_FILE
    signer = CosignatureSigner.generate(name)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise NotaryStateError(f"{key_path} already exists: refusing to replace a key") from exc
    except OSError as exc:
        raise NotaryStateError(f"cannot create {key_path}: {exc.strerror or exc}") from exc
    with os.fdopen(descriptor, "w", encoding="ascii") as key_file:
        key_file.write(signer.signer_key + "\n")
        key_file.flush()
        os.fsync(key_file.fileno())
    (directory / VKEY_FILE).write_text(signer.vkey + "\n", encoding="ascii")
    return signer


@dataclass(frozen=True, slots=True)
class DataDir:
    """Paths of a notary data directory."""

    path: Path

    @property
    def key_file(self) -> Path:
        return self.path / KEY_FILE

    @property
    def database(self) -> Path:
        return self.path / DATABASE_FILE

    @property
    def evidence(self) -> Path:
        return self.path / EVIDENCE_DIR

    def identity(self) -> tuple[str, str]:
        """The notary's key name and vkey, read from the public ``notary.vkey`` file."""
        try:
            vkey = (self.path / VKEY_FILE).read_text(encoding="ascii").strip()
            verifier = parse_vkey(vkey)
        except (OSError, UnicodeDecodeError) as exc:
            raise NotaryStateError(f"no notary key in {self.path}: {exc}") from exc
        except ChainError as exc:
            raise NotaryStateError(f"{self.path / VKEY_FILE}: {exc.message}") from exc
        return verifier.name, vkey

    def load_signer(self) -> CosignatureSigner:
        """Read the cosigner key; refuse a key file readable by group or others."""
        try:
            mode = self.key_file.stat().st_mode
            text = self.key_file.read_text(encoding="ascii").strip()
        except FileNotFoundError as exc:
            raise NotaryStateError(
                f"no key in {self.path}: run 'gavel notary init --dir {self.path} --name NAME'"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise NotaryStateError(f"cannot read {self.key_file}: {exc}") from exc
        if stat.S_IMODE(mode) & 0o077:
            raise NotaryStateError(f"{self.key_file} must not be readable by others (chmod 600)")
        try:
            signer = parse_signer_key(text)
        except ChainError as exc:
            raise NotaryStateError(f"{self.key_file}: {exc.message}") from exc
        if not isinstance(signer, CosignatureSigner):
            raise NotaryStateError(f"{self.key_file} is not a cosignature (type 0x04) key")
        return signer

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the directory's lock file: only one ``serve`` per data directory."""
        try:
            handle = open(self.path / LOCK_FILE, "a+b")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise NotaryStateError(f"cannot open the lock file in {self.path}: {exc}") from exc
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise NotaryStateError(f"another notary is running on {self.path}") from exc
            yield
        finally:
            handle.close()

    def open_store(self, *, read_only: bool = False) -> NotaryStore:
        """Open the notary database."""
        return NotaryStore.open(self.database, read_only=read_only)

    def write_evidence(self, kind: str, document: Mapping[str, Any], at_us: int) -> Path:
        """Write an evidence JSON file atomically under ``evidence/``; return its path."""
        data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        stamp = datetime.fromtimestamp(at_us / 1_000_000, tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{kind}-{stamp}-{hashlib.sha256(data).hexdigest()[:12]}.json"
        try:
            self.evidence.mkdir(mode=0o700, exist_ok=True)
            temporary = self.evidence / f".{name}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            final = self.evidence / name
            os.replace(temporary, final)
        except OSError as exc:
            raise NotaryStateError(f"cannot write evidence: {exc}") from exc
        return final


def checkpoint_summary(note: bytes) -> dict[str, Any]:
    """Origin, size, base64 root and the full text of a signed checkpoint (for evidence)."""
    summary: dict[str, Any] = {"note": note.decode("utf-8", "replace")}
    try:
        checkpoint = parse_checkpoint_text(parse_note(note).text)
    except ChainError:
        return summary
    summary.update(origin=checkpoint.origin, size=checkpoint.size, root=_b64(checkpoint.root))
    return summary


def _refusal_json(refusal: Refusal, *, with_request: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "at": _time_text(refusal.at_us),
        "status": refusal.status,
        "reason": refusal.reason,
        "message": refusal.message,
        "step": refusal.step,
        "seq": refusal.seq,
        "evidence": refusal.evidence,
        "checkpoint_size": refusal.checkpoint_size,
    }
    if refusal.detail:
        item["detail"] = json.loads(refusal.detail)
    if with_request and refusal.request is not None:
        try:
            item["request"] = refusal.request.decode("utf-8")
        except UnicodeDecodeError:
            item["request_base64"] = _b64(refusal.request)
    return item


def status_report(store: NotaryStore, *, name: str, vkey: str, recent: int = 10) -> dict[str, Any]:
    """What ``gavel notary status`` and ``GET /status`` show, as JSON-able data."""
    state = store.load_state()
    seen_text = store.get_meta("log_size_seen")
    log_size_seen = int(seen_text) if seen_text is not None else None
    log_keys = store.get_meta("log_keys")
    report: dict[str, Any] = {
        "name": name,
        "vkey": vkey,
        "log_keys": log_keys.split() if log_keys else [],
    }
    if state is None:
        report.update(origin=None, size=0, root=None, cosigned_at=None)
    else:
        report.update(
            origin=state.origin,
            size=state.size,
            root=_b64(state.root),
            cosigned_at=_time_text(state.cosigned_at * 1_000_000) if state.cosigned_at else None,
        )
    size = report["size"]
    report["log_size_seen"] = log_size_seen
    report["lag"] = max(0, log_size_seen - size) if log_size_seen is not None else None
    report["mirrored_entries"] = store.mirror_size()
    report["refusals"] = store.refusal_count()
    report["recent_refusals"] = [
        _refusal_json(refusal, with_request=False) for refusal in store.refusals(recent)
    ]
    report["peers"] = [
        {
            "url": peer.url,
            "status": peer.status,
            "message": peer.message,
            "size": peer.size,
            "seen_at": _time_text(peer.seen_at_us),
        }
        for peer in store.peers()
    ]
    report["conflicts"] = [
        {"at": _time_text(c.at_us), "source": c.source, "reason": c.reason, "file": c.file}
        for c in store.conflicts()
    ]
    return report


def evidence_export(data_dir: DataDir, store: NotaryStore, *, name: str, vkey: str) -> bytes:
    """Everything the notary kept as evidence, as one deterministic JSON document.

    The co-signed checkpoint, every refusal (with the request bytes when authenticated) and
    the content of every conflict evidence file.
    """
    state = store.load_state()
    conflicts: list[dict[str, Any]] = []
    for conflict in store.conflicts():
        item: dict[str, Any] = {
            "at": _time_text(conflict.at_us),
            "source": conflict.source,
            "reason": conflict.reason,
            "file": conflict.file,
        }
        try:
            item["evidence"] = json.loads((data_dir.evidence / conflict.file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            item["missing"] = f"cannot read the evidence file: {exc}"
        conflicts.append(item)
    document = {
        "format": "gavel/notary-evidence/v1",
        "notary": {"name": name, "vkey": vkey},
        "cosigned": (
            checkpoint_summary(state.checkpoint) if state is not None and state.checkpoint else None
        ),
        "refusals": [
            _refusal_json(refusal, with_request=True) for refusal in reversed(store.refusals())
        ],
        "conflicts": conflicts,
    }
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
