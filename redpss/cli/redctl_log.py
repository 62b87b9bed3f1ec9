"""``redctl log``: the ERROR and ALERT lines of the database (``LOG_MESSAGES`` of every target
schema, ``REDSYS.ALL_LOG_MESSAGES``), on both dictionary backends.

Thin: parse, call :meth:`redpss.dictionary.Dictionary.all_log_messages`, print; ``-f`` polls for
new lines until Ctrl-C, SIGTERM or the reader of the pipe goes away.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from redpss import audit
from redpss.cli.common import output_closed, print_json
from redpss.dictionary import open_instance_dictionary
from redpss.dictionary.base import LogMessage
from redpss.dictionary.columns import LOG_LEVELS
from redpss.errors import NotFound, RedpssError
from redpss.instance import Instance

__all__ = ["FOLLOW_EVERY", "add_parser", "run"]

FOLLOW_EVERY = 2.0
"""Seconds between two reads of ``redctl log -f``."""


class UsageError(RedpssError):
    """A bad option value found after parsing (exit 2)."""

    exit_code = 2


def add_parser(sub: Any) -> None:
    """``redctl log`` among redctl's sub-commands."""
    p = sub.add_parser(
        "log",
        help="show the ERROR/ALERT lines of LOG_MESSAGES (all schemas: ALL_LOG_MESSAGES)",
        description="Show the ERROR and ALERT lines the database logged (dbls writes them into "
        "<schema>.LOG_MESSAGES), newest last.",
    )
    p.add_argument("--schema", help="only this target schema")
    p.add_argument("--level", choices=LOG_LEVELS, type=str.upper, help="only this level")
    p.add_argument(
        "--since", metavar="WHEN", help="only since WHEN: 30m, 2h, 7d, 1w or an ISO date/time"
    )
    p.add_argument(
        "-n", "--lines", type=int, default=50, metavar="N", help="the last N lines (default 50)"
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="then print new lines as they come (Ctrl-C)"
    )


def _row(m: LogMessage) -> dict[str, Any]:
    return {
        "time": m.log_ts.isoformat(timespec="seconds"),
        "schema": m.schema,
        "level": m.level,
        "source": m.source,
        "message": m.message,
        "message_id": m.message_id,
    }


def _line(m: LogMessage) -> str:
    source = f" {m.source}:" if m.source else ""
    return f"{m.log_ts.isoformat(timespec='seconds')} {m.level:<5} {m.schema}{source} {m.message}"


def run(inst: Instance, args: argparse.Namespace) -> int:
    """``redctl log``."""
    if args.lines < 1:
        raise UsageError("--lines must be at least 1")
    try:
        since = audit.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    levels = (args.level,) if args.level else None
    config = inst.load_config()
    with open_instance_dictionary(inst, config) as d:
        known = d.schemas()
        if args.schema and args.schema.upper() not in known:
            raise NotFound(
                f"no target schema {args.schema!r}; schemas: {', '.join(known) or 'none yet'}"
            )
        found = d.all_log_messages(args.lines, schema=args.schema, levels=levels, since=since)
    found.reverse()  # oldest first, as a log reads
    if args.json and not args.follow:
        print_json([_row(m) for m in found])
        return 0
    for m in found:
        _print(m, args.json)
    if not found and not args.follow and not args.json:
        print("no log messages" + (" matching" if args.schema or levels or since else ""))
    if args.follow:
        _follow(inst, args, found, levels, since)
    return 0


def _print(m: LogMessage, as_json: bool) -> None:
    print(json.dumps(_row(m)) if as_json else _line(m), flush=True)


def _follow(
    inst: Instance,
    args: argparse.Namespace,
    shown: list[LogMessage],
    levels: tuple[str, ...] | None,
    since: datetime | None,
) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    seen = {(m.schema, m.message_id) for m in shown}
    newest = max((m.log_ts for m in shown), default=since or datetime.now(UTC))
    config = inst.load_config()
    try:
        while not stop.wait(FOLLOW_EVERY) and not output_closed():
            with open_instance_dictionary(inst, config) as d:
                fresh = d.all_log_messages(1000, schema=args.schema, levels=levels, since=newest)
            for m in reversed(fresh):
                if (m.schema, m.message_id) in seen:
                    continue
                seen.add((m.schema, m.message_id))
                newest = max(newest, m.log_ts)
                _print(m, args.json)
    except KeyboardInterrupt:
        pass
