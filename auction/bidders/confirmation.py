"""The sale confirmation (成交确认书) a winner downloads, made by the server at the sale.

`confirmation_text(...)` (pure) writes it as UTF-8 plain text: the lot, the buyer (their name
as verified, and their bidder code), the hammer price in digits and, for yuan, in 大写, the
deposit applied, the balance due and its deadline, and the ledger entries it rests on (the
`sale` entry and its `confirmation_sha256`, the close and winning bid entries).

`SaleClerk` (the adapter) watches the service's updates; when a lot is sold it makes the
document once, keeps its bytes in `auction.bidders.book` and anchors its SHA-256 in the ledger
with a `document` entry whose body holds no personal data:
`{"v": 1, "lot", "kind": "sale_confirmation", "name", "content_type", "size", "sha256"}`.

Why a `document` entry and not the `sale` entry's own hash: the `sale` entry's
`confirmation_sha256` is of a deterministic, name-free record (`auction.verify.
confirmation_document`) that every notary and the auditor recompute from the lot's close when
they replay the rules; a document naming the buyer cannot be recomputed by them, so putting its
hash there would change the replay. This document quotes that hash instead, binding the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chain import ChainError, EntryType, parse_entry

from ..rules import DepositChanged, DepositState, LotClosed, Result
from ..service import AuctionService, ServiceError
from ..storage import HistoryRecord, Storage, StorageError
from .book import BidderBook, Document
from .mylots import format_money, format_time

logger = logging.getLogger(__name__)

KIND = "sale_confirmation"
CONTENT_TYPE = "text/plain; charset=utf-8"
#: Ledger entries read per step when looking back for a lot's `sale` entry.
SCAN_STEP = 512

_CN_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_CN_UNITS = ("", "拾", "佰", "仟")
_CN_SECTIONS = ("", "万", "亿", "万亿")


def _section(value: int) -> str:
    out, zero = "", False
    for position in range(3, -1, -1):
        digit = value // 10**position % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _CN_DIGITS[digit] + _CN_UNITS[position]
    return out


def chinese_uppercase(fen: int) -> str:
    """人民币大写 of an amount in fen: `21000000` → `"贰拾壹万元整"`."""
    if fen < 0:
        raise ValueError("a negative amount has no uppercase form")
    yuan, jiao, cents = fen // 100, fen // 10 % 10, fen % 10
    sections: list[int] = []
    rest = yuan
    while rest:
        sections.insert(0, rest % 10000)
        rest //= 10000
    if len(sections) > len(_CN_SECTIONS):
        raise ValueError("amount too large")
    integer, need_zero = "", False
    for position, value in enumerate(sections):
        unit = _CN_SECTIONS[len(sections) - 1 - position]
        if value == 0:
            need_zero = bool(integer)
            continue
        if integer and (need_zero or value < 1000):
            integer += "零"
        integer += _section(value) + unit
        need_zero = value % 10 == 0
    if integer:
        integer += "元"
    if jiao == 0 and cents == 0:
        return (integer or "零元") + "整"
    decimals = _CN_DIGITS[jiao] + "角" if jiao else ("零" if integer else "")
    decimals += _CN_DIGITS[cents] + "分" if cents else "整"
    return integer + decimals


@dataclass(frozen=True, slots=True)
class SaleFacts:
    """What the document states, gathered by the clerk."""

    lot: str
    title: str
    sale_title: str | None
    currency: str
    zone: str
    buyer_name: str | None
    buyer_code: str
    price: int
    deposit_applied: int
    balance_due_at: int | None
    closed_us: int
    sale_entry: dict[str, Any] | None  # {"seq", "close_entry", "winning_bid_entry", "sha256"}
    issued_us: int


def _money(amount: int, currency: str) -> str:
    text = format_money(amount, currency)
    return f"{text} (人民币{chinese_uppercase(amount)})" if currency == "CNY" else text


def confirmation_text(facts: SaleFacts) -> bytes:
    """The document's bytes (UTF-8 plain text, LF line ends)."""
    balance = facts.price - facts.deposit_applied
    due = format_time(facts.balance_due_at, facts.zone) if facts.balance_due_at else "-"
    lines = [
        "成交确认书 / Confirmation of sale",
        "",
        f"Lot:            {facts.title} ({facts.lot})",
    ]
    if facts.sale_title:
        lines.append(f"Sale:           {facts.sale_title}")
    buyer = facts.buyer_name or "(name withheld: the personal data was erased)"
    lines += [
        f"Buyer:          {buyer}, bidder code {facts.buyer_code}",
        f"Closed:         {format_time(facts.closed_us, facts.zone)}",
        "",
        f"Hammer price:   {_money(facts.price, facts.currency)}",
        f"Deposit applied to the price: {_money(facts.deposit_applied, facts.currency)}",
        f"Balance due:    {_money(balance, facts.currency)}",
        f"Pay by:         {due}",
        "",
        "The deposit applied is part of the price. The buyer pays the balance by the date",
        "above into the account the court or the seller names. If the balance is not paid",
        "in time the sale may be declared in default and the deposit forfeited.",
        "",
        "Ledger (verify at /log/receipt/<entry>):",
    ]
    sale = facts.sale_entry
    if sale is not None:
        lines += [
            f"  sale entry {sale['seq']}; close entry {sale['close_entry']};"
            f" winning bid entry {sale['winning_bid_entry']}",
            f"  the sale entry's confirmation_sha256: {sale['sha256']}",
        ]
    else:
        lines.append("  the sale entry was not found when this document was made")
    lines += [
        "  this document's SHA-256 is recorded in a `document` entry of the same ledger",
        "",
        f"Issued: {format_time(facts.issued_us, facts.zone)}",
        "All times are the auction server's, in the lot's legal time zone.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def document_body(lot: str, name: str, content: bytes) -> dict[str, Any]:
    """The `document` ledger entry's body: no personal data, only the hash."""
    return {
        "v": 1,
        "lot": lot,
        "kind": KIND,
        "name": name,
        "content_type": CONTENT_TYPE,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def find_sale_entry(store: Storage, lot: str) -> dict[str, Any] | None:
    """The lot's `sale` entry, looking back from the end of the ledger (blocking)."""
    end = store.ledger_end()
    while end > 0:
        begin = max(0, end - SCAN_STEP)
        for offset, raw in enumerate(reversed(store.ledger_entries(begin, end))):
            if b'"sale"' not in raw:
                continue
            try:
                entry = parse_entry(raw)
            except ChainError:
                continue
            if entry.type is EntryType.SALE and entry.body.get("lot") == lot:
                return {
                    "seq": end - 1 - offset,
                    "close_entry": entry.body.get("close_entry"),
                    "winning_bid_entry": entry.body.get("winning_bid_entry"),
                    "sha256": entry.body.get("confirmation_sha256"),
                }
        end = begin
    return None


def _sold(records: Sequence[HistoryRecord]) -> tuple[LotClosed, int] | None:
    """The lot's sale close and the winner's deposit applied to the price."""
    closed: LotClosed | None = None
    applied: dict[str, int] = {}
    for record in records:
        for event in record.events:
            if isinstance(event, LotClosed):
                closed = event
            elif isinstance(event, DepositChanged):
                if event.state is DepositState.APPLIED_TO_PRICE:
                    applied[event.bidder] = event.amount
    if closed is None or closed.result is not Result.SOLD or closed.winner is None:
        return None
    return closed, applied.get(closed.winner, 0)


class SaleClerk:
    """Makes each sold lot's confirmation once (at the sale, and at start for sales a stop
    interrupted). Start with `start()`, stop with `stop()`."""

    def __init__(
        self,
        service: AuctionService,
        store: Storage,
        book: BidderBook,
        identity: Callable[[str], Awaitable[Any]],
    ) -> None:
        """`identity(account)`: the account's newest identity (its `personal_data` names the
        buyer; None once erased), e.g. `Gateway.identity`."""
        self._service = service
        self._store = store
        self._book = book
        self._identity = identity
        self._task: asyncio.Task[None] | None = None
        self._done: set[str] = set()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sale-clerk")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with self._service.subscription() as updates:
            for view in self._service.views():
                if view.result == Result.SOLD.value:
                    await self._make_logged(view.lot_id)
            async for batch in updates:
                for update in batch:
                    if update.view.result == Result.SOLD.value:
                        await self._make_logged(update.lot_id)

    async def _make_logged(self, lot: str) -> None:
        if lot in self._done:
            return
        try:
            await self.make(lot)
        except (ServiceError, StorageError, OSError) as exc:
            logger.warning("the sale confirmation of %s was not made: %s", lot, exc)
        except Exception:  # a clerk that dies would leave every later sale without one
            logger.exception("the sale confirmation of %s was not made", lot)

    async def make(self, lot: str) -> Document | None:
        """Make, keep and anchor the lot's confirmation if it is sold and has none yet."""
        async with self._lock:
            if self._service.clustered and not self._service.leads(lot):
                return None  # the lot's writer makes it
            book = self._book
            existing = await asyncio.to_thread(book.document, lot, KIND)
            if existing is not None:
                if existing.entry is None:  # kept, not yet anchored: a stop came between
                    await self._anchor(existing)
                self._done.add(lot)
                return existing
            view = self._service.view(lot)
            records = await self._service.read(self._store.history, lot)
            sold = _sold(records)
            if view is None or sold is None:
                return None
            closed, applied = sold
            assert closed.winner is not None and closed.price is not None
            identity = await self._identity(closed.winner)
            name = None
            if identity is not None and identity.personal_data is not None:
                name = str(identity.personal_data.get("name") or "") or None
            sale = await self._service.read(find_sale_entry, self._store, lot)
            facts = SaleFacts(
                lot=lot,
                title=view.title,
                sale_title=view.sale_title,
                currency=view.currency,
                zone=view.legal_timezone,
                buyer_name=name,
                buyer_code=closed.winner_code or "",
                price=closed.price,
                deposit_applied=applied,
                balance_due_at=closed.balance_due_at,
                closed_us=closed.t,
                sale_entry=sale,
                issued_us=self._service.now(),
            )
            content = confirmation_text(facts)
            document = Document(
                lot=lot,
                kind=KIND,
                account=closed.winner,
                name=f"sale-confirmation-{lot}.txt",
                content_type=CONTENT_TYPE,
                body=content,
                sha256=hashlib.sha256(content).hexdigest(),
                entry=None,
                created_us=facts.issued_us,
            )
            if not await asyncio.to_thread(book.add_document, document):
                self._done.add(lot)
                return await asyncio.to_thread(book.document, lot, KIND)
            anchored = await self._anchor(document)
            self._done.add(lot)
            return anchored

    async def _anchor(self, document: Document) -> Document:
        body = document_body(document.lot, document.name, document.body)
        seq = await self._service.record(EntryType.DOCUMENT, body)
        await asyncio.to_thread(self._book.set_document_entry, document.lot, document.kind, seq)
        logger.info(
            "sale confirmation of %s: %s bytes, ledger entry %d",
            document.lot,
            json.dumps(body["size"]),
            seq,
        )
        return Document(
            document.lot,
            document.kind,
            document.account,
            document.name,
            document.content_type,
            document.body,
            document.sha256,
            seq,
            document.created_us,
        )


__all__ = [
    "CONTENT_TYPE",
    "KIND",
    "SaleClerk",
    "SaleFacts",
    "chinese_uppercase",
    "confirmation_text",
    "document_body",
    "find_sale_entry",
]
