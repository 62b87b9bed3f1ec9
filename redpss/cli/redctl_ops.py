"""redctl's operations commands: ``audit`` (and which commands leave an audit line).

Thin: parse, call :mod:`redpss.audit` (and the other operations modules), print. Every command
prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from redpss import audit
from redpss.errors import RedpssError
from redpss.instance import Instance

__all__ = ["HANDLERS", "add_parsers", "audit_command"]

# Commands that change nothing. Every other command leaves an audit line: a new command is
# audited unless it is added here on purpose.
READ_ONLY = frozenset(
    {"version", "status", "show", "watch", "we_list_error", "list_db_jobs", "list_db_watcher",
     "audit"}
)  # fmt: skip


def audit_command(args: argparse.Namespace) -> str | None:
    """The name of the audit line of a parsed redctl command; None when it changes nothing."""
    name: str = args.command
    if name in READ_ONLY or getattr(args, "dry_run", False):
        return None
    if name == "db":
        action: str = args.action
        if action == "export" or (action == "scripts" and not (args.output or args.show_secret)):
            return None
        return f"db {action}"
    return name


def add_parsers(sub: Any) -> None:
    """Add the operations commands to redctl's sub-command parsers."""
    p = sub.add_parser(
        "audit",
        help="show the audit log (who changed what, when, with which result)",
        description="Show log/audit.log: one line per state-changing command.",
    )
    p.add_argument(
        "--since", metavar="WHEN", help="only since WHEN: 30m, 2h, 7d, 1w or an ISO date/time"
    )
    p.add_argument("--user", help="only commands of this user (or sudo user, or token:NAME)")
    p.add_argument("--grep", dest="command_prefix", metavar="COMMAND",
                   help="only commands starting with COMMAND (e.g. config, db apply)")  # fmt: skip
    p.add_argument("--tail", type=int, metavar="N", help="only the last N records")


def _audit(inst: Instance, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = audit.parse_since(args.since)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    found = audit.read_records(
        [audit.audit_path(inst.require().log_dir)],
        since=since,
        user=args.user,
        command=args.command_prefix,
    )
    rows = found.records[-args.tail :] if args.tail else found.records
    if args.json:
        print(json.dumps({"records": rows, "skipped_lines": found.skipped}, indent=2))
        return 0
    for r in rows:
        who = r.get("user", "?") + (f" ({r['sudo_user']})" if r.get("sudo_user") else "")
        via = f" via {r['via']}" if r.get("via") else ""
        shown = " ".join(r.get("args") or []) or r.get("command", "")
        print(
            f"{str(r.get('time', ''))[:23]}  {who:<16} {r.get('tool', '')}{via} {shown}  "
            f"-> {r.get('result', '')} (exit {r.get('exit_code', '?')})"
        )
    if not rows:
        print("no audit records" + (" matching" if since or args.user else ""))
    if found.skipped:
        print(f"({found.skipped} unreadable line(s) skipped)")
    return 0


class UsageError(RedpssError):
    """A bad option value found after parsing (exit 2, like argparse's errors)."""

    exit_code = 2


HANDLERS: dict[str, Callable[[Instance, argparse.Namespace], int]] = {
    "audit": _audit,
}
