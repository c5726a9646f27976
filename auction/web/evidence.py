"""The console's evidence download (docs/protocol.md §1 "Evidence package"):

    GET /api/console/lots/{lot}/evidence[?format=zip|tar][&recording=1]

Staff only (auctioneer, compliance, auditor or court session; a bidder gets 403). The lot must
have closed (409 ``LOT_NOT_CLOSED`` before: its sealed entries are not handed out). Builds the
lot's evidence package (:func:`auction.evidence.package.build_evidence`) from the server's own
ledger on a reader thread, checks it
(:func:`auction.audit.evidence_package.verify_evidence_package`: its
replay must reach the lot's current state, else it waits up to 10 s for the lot's last entries
to be published, then answers 409 ``NO_EVIDENCE``) and answers it as one
``evidence-<lot>.zip`` (default) or ``.tar`` download, the files under ``evidence-<lot>/``;
``recording=1`` adds the recording's segment files when they fit in 64 MiB.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from chain import ChainError, EntryBundle, Tile

from ..accounts import Role
from ..audit import AuditFailure
from ..audit.evidence_package import verify_evidence_package
from ..errors import BadInput, Conflict, NotAllowed, NotFound, Unavailable
from ..evidence.package import build_evidence
from ..ledger_export import ExportError
from ..service import LedgerStore
from .api import Components, bearer_session

__all__ = ["MAX_RECORDING_BYTES", "add_evidence_routes"]

MAX_RECORDING_BYTES = 64 * 1024 * 1024
#: Seconds to wait for the lot's last entries to be published (co-signed) before answering 409.
PUBLICATION_WAIT = 10.0
_OPEN_STATUSES = frozenset({"SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"})


class _LedgerSource:
    """The server's own ledger as an export source (call on a reader thread only)."""

    def __init__(self, ledger: LedgerStore) -> None:
        self._ledger = ledger

    def policy(self) -> bytes:
        return self._ledger.ledger_policy()

    def checkpoint(self) -> bytes:
        head = self._ledger.published_checkpoint()
        if head is None:
            raise ExportError("the log has no published checkpoint yet")
        return head.note

    def checkpoint_sizes(self) -> list[int]:
        return self._ledger.checkpoint_sizes()

    def checkpoint_at(self, size: int) -> bytes:
        note = self._ledger.checkpoint_note(size)
        if note is None:
            raise ExportError(f"no published checkpoint of size {size}")
        return note

    def tile(self, tile: Tile | EntryBundle) -> bytes:
        return self._ledger.ledger_tile(tile)

    def openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]:
        reader = getattr(self._ledger, "ledger_openings", None)
        return {} if reader is None else dict(reader(begin, end))

    def close(self) -> None:
        return None


def _archive(folder: Path, name: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if kind == "tar":
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in files:
                tar.add(path, arcname=f"{name}/{path.relative_to(folder).as_posix()}")
    else:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, f"{name}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def _package(
    ledger: LedgerStore, lot: str, recordings: Path | None, kind: str, name: str
) -> tuple[str, bytes]:
    """The lot's status as its package replays it, and the archive."""
    work = Path(tempfile.mkdtemp(prefix="gavel-evidence-"))
    try:
        out = work / name
        build_evidence(
            _LedgerSource(ledger),
            lot,
            out,
            recordings=recordings,
            max_recording_bytes=MAX_RECORDING_BYTES,
        )
        status = verify_evidence_package(out).status
        return status, _archive(out, name, kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def add_evidence_routes(
    app: web.Application,
    parts: Callable[[web.Request], Components],
    recordings: Callable[[web.Request], Path],
) -> None:
    """Register the evidence download (after `add_api_routes`, whose middleware answers
    errors)."""

    async def evidence(request: web.Request) -> web.Response:
        components = parts(request)
        session = await bearer_session(request, components)
        if session.role is Role.BIDDER:
            raise NotAllowed("evidence packages are for staff sessions")
        service = components.service
        lot = request.match_info["lot"]
        view = service.view(lot)
        if view is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        if str(view.status) in _OPEN_STATUSES:
            raise Conflict(
                "an evidence package is made once the lot has closed", code="LOT_NOT_CLOSED"
            )
        kind = request.query.get("format", "zip")
        if kind not in ("zip", "tar"):
            raise BadInput("format must be zip or tar", code="MALFORMED")
        ledger = service.ledger
        if ledger is None:
            raise Unavailable("this server keeps no ledger", code="NO_LEDGER")
        folder = recordings(request) if request.query.get("recording") == "1" else None
        name = f"evidence-{lot}"
        deadline = asyncio.get_running_loop().time() + PUBLICATION_WAIT
        while True:
            try:
                status, data = await service.read(_package, ledger, lot, folder, kind, name)
            except (ExportError, ChainError, AuditFailure) as exc:
                raise Conflict(f"the package cannot be made: {exc}", code="NO_EVIDENCE") from exc
            if status == str(view.status).lower():
                break  # the published log holds the lot's whole history so far
            if asyncio.get_running_loop().time() >= deadline:
                raise Conflict(
                    "the lot's last entries are not in a co-signed checkpoint yet: try again "
                    "in a moment",
                    code="NO_EVIDENCE",
                )
            await asyncio.sleep(0.25)
            view = service.view(lot) or view
        media = "application/zip" if kind == "zip" else "application/x-tar"
        return web.Response(
            body=data,
            content_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{name}.{kind}"',
                "Cache-Control": "no-store",
            },
        )

    app.router.add_get("/api/console/lots/{lot}/evidence", evidence)
