"""`gavel staff --role ROLE (--data DIR | --db URL)`: a staff session and its token."""

from __future__ import annotations

import argparse
import sys

from chain import format_time

from ..accounts import AccountError, AccountStore, Role
from ..printable import printable
from ..storage import SQLITE_FILE, system_clock


def run(args: argparse.Namespace) -> int:
    """`gavel staff`: a staff session in the server's accounts table."""
    if args.data is not None and not (args.data / SQLITE_FILE).exists():
        print(f"gavel: error: no gavel database in {args.data}", file=sys.stderr, flush=True)
        return 1
    try:
        accounts = AccountStore.open(args.db or args.data)
        try:
            now = system_clock()
            account = accounts.create_account(None, now)
            token, expires = accounts.create_session(account, Role(args.role), now)
        finally:
            accounts.close()
    except AccountError as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    print(f"gavel staff: {args.role} session for {account}, valid until {format_time(expires)}")
    print(f"token {token}")
    if args.role == Role.AUCTIONEER:
        print(f"console /console#token={token}")
    elif args.role == Role.ADMIN:
        print(f"staff sessions /console/staff#token={token}")
    else:
        print(f"use it as: Authorization: Bearer {token}")
    return 0
