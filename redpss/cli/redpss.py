"""``redpss``: the entry point of a role process, and its health check.

``redpss role NAME`` runs one role of an instance (what supervisord and the containers start);
``redpss role NAME --check`` exits 0 when the role's heartbeat is fresh and 1 otherwise (the
container HEALTHCHECK and scripts use it). ``redpss version`` prints the version.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from redpss import __version__
from redpss.cli.common import add_instance_option, fail, guarded
from redpss.config import LogLevel, require_private_secrets
from redpss.control import open_instance_dictionary
from redpss.dictionary import open_config_dictionary
from redpss.instance import resolve_instance
from redpss.logs import configure
from redpss.roles import ROLES, role_class
from redpss.roles.base import RoleContext, run_role
from redpss.supervisor import die_with_supervisor

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of redpss."""
    parser = argparse.ArgumentParser(prog="redpss", description="Run a role of an instance.")
    sub = parser.add_subparsers(dest="command", required=True)
    role = sub.add_parser("role", help="run one role (or check its health)")
    role.add_argument("name", choices=sorted(ROLES), help="the role")
    add_instance_option(role)
    role.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if the role's heartbeat is fresh, 1 if not (healthcheck)",
    )
    role.add_argument("--trace", action="store_true", help="log at TRACE level, also to stderr")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redpss``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"redpss {__version__}")
        return 0
    return guarded(lambda: _check(args) if args.check else _run(args))


def _run(args: argparse.Namespace) -> int:
    # first: a role must not outlive the supervisord that started it (issue #14)
    die_with_supervisor()
    inst = resolve_instance(args.instance).require()
    config = inst.load_config()
    require_private_secrets(config)  # a role restarted by supervisord checks again
    level = LogLevel.TRACE if args.trace else config.redsys.log_level
    configure(
        level=level,
        log_file=inst.log_dir / f"{args.name}.log",
        retention_days=config.redsys.log_retention,
        # container mode: also to stderr, which `docker compose logs` shows
        stream=args.trace or os.environ.get("REDPSS_CONTAINER") == "1",
    )
    cls = role_class(args.name)
    dictionary = open_config_dictionary(config, db_dir=inst.db_dir, etc_dir=inst.etc)
    try:
        return run_role(cls, RoleContext(inst, config, dictionary))
    finally:
        dictionary.close()


def _check(args: argparse.Namespace) -> int:
    inst = resolve_instance(args.instance).require()
    config = inst.load_config()
    with open_instance_dictionary(inst, config) as dictionary:
        rows = {r.role: r for r in dictionary.pss_status()}
    row = rows.get(args.name)
    if row is None:
        return fail(f"role {args.name}: no heartbeat recorded")
    if row.state not in ("RUNNING", "SUSPENDED") or row.alert >= 2:
        return fail(f"role {args.name}: {row.state}, alert {row.alert}: {row.alert_reason}")
    print(f"role {args.name}: {row.state}, heartbeat {row.heartbeat_age:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
