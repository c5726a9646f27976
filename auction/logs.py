"""The server's log lines: plain text (the default) or JSON, one object per line
(`--log-format json`), for a log pipeline.

A JSON line has `time` (UTC, ISO 8601 with microseconds), `level`, `component` (the logger's
name), `message`, and, when known, `lot` and `request_id`; `exception` holds a traceback.
Messages are escaped as in every format (`auction.printable`: C0, C1 and bidi controls as
`\\xNN`), and `json.dumps` escapes what is left, so a message cannot forge a second line. The log
carries no personal data: messages name accounts by their opaque ids and lots by their ids,
never names or document numbers (an identity is read only by compliance, and only that access
is logged, without the data).

`request_id` and `lot` come from context variables that `request_context` (an aiohttp
middleware) sets for the duration of each HTTP request: the request id is the client's
`X-Request-Id` when it is a short token of letters, digits, `-`, `_` and `.`, else a new random
one, and is sent back in the answer's `X-Request-Id`; the lot is the route's `{lot}` or
`{lot_id}`. A call may also pass them itself: `logger.info(..., extra={"lot": lot_id})`.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .printable import EscapeControls

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gavel_request_id", default=None
)
LOT: contextvars.ContextVar[str | None] = contextvars.ContextVar("gavel_lot", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "component": record.name,
            "message": record.getMessage(),
        }
        lot = getattr(record, "lot", None) or LOT.get()
        if lot is not None:
            line["lot"] = str(lot)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = str(request_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(
    log_format: str = "text", level: str | None = None, stream: TextIO | None = None
) -> None:
    """Set up the root logger once for the process: `level` (default `GAVEL_LOG_LEVEL`, else
    WARNING) and `log_format` ("text" or "json") on standard error."""
    chosen = (level or os.environ.get("GAVEL_LOG_LEVEL", "WARNING")).upper()
    if chosen not in logging.getLevelNamesMapping():
        chosen = "WARNING"
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif chosen in ("INFO", "DEBUG"):
        handler.setFormatter(
            logging.Formatter("gavel: %(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    else:
        handler.setFormatter(logging.Formatter("gavel: %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "gavel", False):  # ours, from an earlier call in this process
            root.removeHandler(old)
    handler.addFilter(EscapeControls())  # C0, C1 and bidi controls escaped, any format
    handler.gavel = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(chosen)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id (the client's `X-Request-Id` if well formed) and its lot to the
    log lines written while it is handled; answer with the id in `X-Request-Id`."""
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(8)
    lot = request.match_info.get("lot") or request.match_info.get("lot_id")
    request_token = REQUEST_ID.set(request_id)
    lot_token = LOT.set(lot)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-Id"] = request_id
            raise
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        LOT.reset(lot_token)
        REQUEST_ID.reset(request_token)


class AccessLogger(AbstractAccessLogger):
    """One INFO line per answered request: method, path, status and seconds, with the
    request's id and lot, and without the client's address or user agent (personal data)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        match_info = getattr(request, "match_info", {})
        lot = match_info.get("lot") or match_info.get("lot_id")
        self.logger.info(
            "%s %s %d %.4fs",
            request.method,
            request.path,
            response.status,
            time,
            extra={"request_id": response.headers.get("X-Request-Id"), "lot": lot},
        )
