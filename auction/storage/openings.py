"""The openings of sealed values, and ledger entries read back with them opened."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from .. import sealed
from .errors import LedgerCorrupt, _translated
from .ledger_reads import _LedgerReads
from .schema import OPENINGS, _may_be_sealed, select_openings


class _Openings(_LedgerReads):
    """The openings of the ledger's sealed values (`auction.sealed`): served to notaries and
    auditors, and used to read entries back with their values opened."""

    def opened_entry(self, seq: int, raw: bytes) -> bytes:
        """Entry `seq` (its stored bytes `raw`) as JSON with its sealed values opened: account
        ids in place of aliases, the signed request and the idv account back (for this
        server's own readers: cluster followers, the gateway's restart; not an entry to
        publish). An entry without sealed values or aliases comes back as is."""
        return self.opened_entries(seq, [raw])[0]

    def opened_entries(self, begin: int, raws: Sequence[bytes]) -> list[bytes]:
        """`opened_entry` of entries `begin, begin + 1, ...` with one read of their openings."""
        if not any(_may_be_sealed(raw) for raw in raws):
            return list(raws)
        with _translated("reading openings"), self._engine.connect() as connection:
            found = self._openings(connection, begin, begin + len(raws))
            for openings in found.values():  # links first: a later entry of the batch uses them
                self._learn_links(openings)
            return [
                self._opened(connection, begin + i, raw, found.get(begin + i))
                if _may_be_sealed(raw)
                else raw
                for i, raw in enumerate(raws)
            ]

    def _opened(
        self, connection: Connection, seq: int, raw: bytes, found: dict[str, Any] | None
    ) -> bytes:
        value = json.loads(raw)
        body = value["body"]
        names = sealed.bidders_of(body)
        links = sealed.LinkBook()
        lot = body.get("lot")
        if isinstance(lot, str) and names:
            for name in names:
                if name.startswith(sealed.ALIAS_MARK):
                    account = self._alias_account(connection, name)
                    if account is not None and sealed.LINK + name not in (found or {}):
                        links.accounts.setdefault(lot, {})[name] = account
                        links.aliases.setdefault(lot, {})[account] = name
        try:
            value["body"] = sealed.open_body(value["type"], body, found, links)
        except sealed.SealError as exc:
            raise LedgerCorrupt(f"ledger entry {seq} cannot be opened: {exc}") from exc
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def ledger_entries_opened(self, begin: int, end: int) -> list[bytes]:
        """`ledger_entries` with each entry's sealed values opened (`opened_entry`)."""
        return self.opened_entries(begin, self.ledger_entries(begin, end))

    def _openings(self, connection: Connection, begin: int, end: int) -> dict[int, dict[str, Any]]:
        """`read_openings`, asking the catalogue whether the table exists only once."""
        if self._openings_table is None:
            self._openings_table = inspect(connection).has_table("ledger_openings")
        return select_openings(connection, begin, end) if self._openings_table else {}

    def _learn_links(self, openings: Mapping[str, Any]) -> None:
        """Remember the accounts behind the aliases that `openings` link."""
        for name, item in openings.items():
            if name.startswith(sealed.LINK) and isinstance(item, dict):
                value = item.get("value")
                if isinstance(value, dict) and isinstance(value.get("account"), str):
                    self._aliases[name[len(sealed.LINK) :]] = value["account"]

    def _alias_account(self, connection: Connection, alias: str) -> str | None:
        """The account behind `alias` (from the link openings; remembered)."""
        known = self._aliases.get(alias)
        if known is None and not self._links_loaded:  # once: every link stored so far
            self._links_loaded = True
            rows = connection.execute(
                select(OPENINGS.c.openings).where(OPENINGS.c.openings.contains(f'"{sealed.LINK}'))
            ).all()
            for (text,) in rows:
                self._learn_links(json.loads(text))
            known = self._aliases.get(alias)
        if known is None:
            rows = connection.execute(
                select(OPENINGS.c.openings).where(
                    OPENINGS.c.openings.contains(f'"{sealed.LINK}{alias}"')
                )
            ).all()
            for (text,) in rows:
                item = json.loads(text).get(sealed.LINK + alias)
                if isinstance(item, dict) and isinstance(item.get("value"), dict):
                    known = self._aliases[alias] = str(item["value"]["account"])
        return known

    def ledger_openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]:
        """The openings of the sealed values of entries `[begin, end)` (`auction.sealed`)."""
        with _translated("reading openings"), self._engine.connect() as connection:
            return self._openings(connection, begin, end)
