"""Staff sessions made, listed and revoked by an admin over HTTP on a real server: admin only,
the token shown once and never listed, a revoked token refused at once, and each creation and
revocation a ledger entry attributed to the admin's account (no label, no personal data)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import aiohttp
from server_kit import add_lots, new_bidder, running_server, wait_open

from auction.accounts import Role
from auction.cli import main as gavel


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_admin_makes_lists_and_revokes_staff_sessions(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.1)
        await wait_open(server, "watch", "flat")
        url = server.url + "/api/staff/sessions"
        admin = await server.staff(Role.ADMIN)
        admin_account = (await server.gateway.session(admin)).account
        size = await server.ledger_size()

        status, made = await call(
            http, "POST", url, admin, {"role": "auditor", "label": "night-audit 2"}
        )
        assert status == 201, made
        assert made["role"] == "auditor" and made["label"] == "night-audit 2"
        assert made["session"].startswith("st-") and made["expires_us"] > made["created_us"]
        token = made["token"]
        # the new token works, with its role (the auditor reads the dashboard, not the console)
        status, _ = await call(http, "GET", server.url + "/api/dashboard", token)
        assert status == 200
        status, body = await call(
            http, "POST", server.url + "/api/console/lots/watch/commands", token,
            {"type": "Pause", "reason": "x"},
        )  # fmt: skip
        assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
        status, second = await call(http, "POST", url, admin, {"role": "court", "label": "desk-2"})
        assert status == 201

        # the list: both, never a token
        status, listed = await call(http, "GET", url, admin)
        assert status == 200
        sessions = {s["session"]: s for s in listed["sessions"]}
        assert set(sessions) == {made["session"], second["session"]}
        assert sessions[made["session"]] == {
            k: v for k, v in made.items() if k not in ("token", "entry")
        }
        assert token not in str(listed) and "token" not in str(listed)

        # revoke: the token is refused at once; the list no longer shows it
        status, revoked = await call(http, "DELETE", f"{url}/{made['session']}", admin)
        assert status == 200 and revoked["session"] == made["session"]
        status, body = await call(http, "GET", server.url + "/api/dashboard", token)
        assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")
        status, listed = await call(http, "GET", url, admin)
        assert [s["session"] for s in listed["sessions"]] == [second["session"]]
        # revoking again, or an unknown session: 404, nothing written
        after = await server.ledger_size()
        for session in (made["session"], "st-0000000000000000"):
            status, body = await call(http, "DELETE", f"{url}/{session}", admin)
            assert (status, body["error"]["code"]) == (404, "UNKNOWN_SESSION")
        assert await server.ledger_size() == after

        # the ledger: three document entries, attributed to the admin's account
        entries = server.entry_json()[size:]
        documents = [e["body"] for e in entries if e["type"] == "document"]
        assert documents == [
            {"v": 1, "kind": "staff_session", "action": "created", "session": made["session"],
             "role": "auditor", "by": admin_account},
            {"v": 1, "kind": "staff_session", "action": "created", "session": second["session"],
             "role": "court", "by": admin_account},
            {"v": 1, "kind": "staff_session", "action": "revoked", "session": made["session"],
             "role": "auditor", "by": admin_account},
        ]  # fmt: skip
        assert [made["entry"], second["entry"], revoked["entry"]] == [
            e["seq"] for e in entries if e["type"] == "document"
        ]
        assert "night-audit" not in str(entries) and token not in str(entries)


async def test_only_an_admin_manages_staff_sessions(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        url = server.url + "/api/staff/sessions"
        admin = await server.staff(Role.ADMIN)
        status, made = await call(http, "POST", url, admin, {"role": "compliance", "label": "c1"})
        assert status == 201
        bidder = await new_bidder(http, server.url)
        others = [bidder.session] + [
            await server.staff(role)
            for role in (Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR, Role.COURT)
        ]
        size = await server.ledger_size()
        calls = [
            ("GET", url, None),
            ("POST", url, {"role": "auditor", "label": "x"}),
            ("DELETE", f"{url}/{made['session']}", None),
        ]
        for method, path, body in calls:
            for token in others:
                status, answer = await call(http, method, path, token, body)
                assert (status, answer["error"]["code"]) == (403, "FORBIDDEN"), (method, token)
            for token in (None, "garbage"):
                status, answer = await call(http, method, path, token, body)
                assert (status, answer["error"]["code"]) == (401, "UNAUTHENTICATED")
        # bad input: typed errors, nothing made, nothing written
        for body, code in (
            ({"role": "admin", "label": "x"}, "BAD_ROLE"),
            ({"role": "bidder", "label": "x"}, "BAD_ROLE"),
            ({"label": "x"}, "BAD_ROLE"),
            ({"role": "auditor"}, "BAD_LABEL"),
            ({"role": "auditor", "label": ""}, "BAD_LABEL"),
            ({"role": "auditor", "label": "x" * 41}, "BAD_LABEL"),
            ({"role": "auditor", "label": "<script>"}, "BAD_LABEL"),
        ):
            status, answer = await call(http, "POST", url, admin, body)
            assert (status, answer["error"]["code"]) == (422, code), body
        assert await server.ledger_size() == size
        status, listed = await call(http, "GET", url, admin)
        assert [s["session"] for s in listed["sessions"]] == [made["session"]]
        # the compliance session still works: nobody revoked it
        status, _ = await call(http, "GET", server.url + "/api/compliance/alerts", made["token"])
        assert status == 200


def test_gavel_staff_makes_the_first_admin(tmp_path: Path, capsys: Any) -> None:
    from auction.accounts import AccountStore
    from auction.cli import main
    from auction.storage import Storage, system_clock

    Storage.open(tmp_path).close()
    assert main(["staff", "--data", str(tmp_path), "--role", "admin"]) == 0
    out = capsys.readouterr().out
    token = next(line.split()[1] for line in out.splitlines() if line.startswith("token "))
    assert f"/console/staff#token={token}" in out
    accounts = AccountStore.open(tmp_path)
    try:
        session = accounts.session(token, system_clock())
        assert session is not None and session.role is Role.ADMIN
    finally:
        accounts.close()


async def test_the_export_with_staff_entries_verifies(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        url = server.url + "/api/staff/sessions"
        admin = await server.staff(Role.ADMIN)
        status, made = await call(http, "POST", url, admin, {"role": "auditor", "label": "a1"})
        assert status == 201
        status, _ = await call(http, "DELETE", f"{url}/{made['session']}", admin)
        assert status == 200
        data = server.data
    out = tmp_path / "export"
    assert gavel(["ledger", "export", "--data", str(data), "--out", str(out)]) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert gavel(["audit", "verify", str(out)]) == 0, printed.getvalue()
    assert printed.getvalue().startswith("audit OK")
