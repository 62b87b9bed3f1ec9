"""``redpss``: the entry point of a role process, and its health check.

``redpss role NAME`` runs one role of an instance (what supervisord and the containers start);
``redpss role NAME --check`` exits 0 when the role is healthy and 1 when not, saying why (the
container HEALTHCHECK and scripts use it). ``redpss version`` prints the version.

``--check`` reads the role's local heartbeat record (``tmp/health/<role>.json``, written with
every heartbeat) and judges it with :func:`redpss.health.check`, the rule of ``redctl status``;
it imports nothing else of redpss and opens no dictionary, so a check costs a Python start and
one small read (``bench/health_check.py``). Everything else is imported only to run a role.
"""

from __future__ import annotations

import os
import sys

from redpss import __version__
from redpss.roles import ROLES

TYPE_CHECKING = False  # typing, argparse: imported only when needed (see the docstring)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["main"]

INSTANCE_NAME_HELP = "the instance to act on (default: $REDENV)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of redpss."""
    import argparse

    parser = argparse.ArgumentParser(prog="redpss", description="Run a role of an instance.")
    sub = parser.add_subparsers(dest="command", required=True)
    role = sub.add_parser("role", help="run one role (or check its health)")
    role.add_argument("name", choices=sorted(ROLES), help="the role")
    role.add_argument("--instance", metavar="NAME", help=INSTANCE_NAME_HELP)
    role.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if the role is healthy (fresh heartbeat, no problem reported), 1 if not",
    )
    role.add_argument("--trace", action="store_true", help="log at TRACE level, also to stderr")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redpss``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quick = _check_request(argv)
    if quick is not None:  # the health check, every few seconds: argparse costs a third of it
        return check_role(*quick)
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"redpss {__version__}")
        return 0
    if args.check:
        return check_role(args.name, args.instance)
    from redpss.cli.common import guarded

    return guarded(lambda: _run(args))


def _check_request(argv: list[str]) -> tuple[str, str | None] | None:
    """(role, instance) of exactly ``role NAME --check [--instance NAME]`` (in any order after
    NAME); anything else, None: argparse parses it and says what is wrong."""
    if len(argv) < 3 or argv[0] != "role" or argv[1] not in ROLES:
        return None
    rest, instance = argv[2:], None
    if "--check" not in rest:
        return None
    rest.remove("--check")
    if len(rest) == 2 and rest[0] == "--instance" and not rest[1].startswith("-"):
        instance = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--instance="):
        instance = rest[0].removeprefix("--instance=")
    elif rest:
        return None
    return argv[1], instance


def _run(args: argparse.Namespace) -> int:
    from redpss.config import LogLevel
    from redpss.config.secrets import require_private_secrets
    from redpss.dictionary import open_config_dictionary
    from redpss.instance import resolve_instance
    from redpss.logs import configure
    from redpss.roles import role_class
    from redpss.roles.base import RoleContext, run_role
    from redpss.supervisor import die_with_supervisor

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


def check_role(role: str, instance: str | None) -> int:
    """``redpss role ROLE --check``: 0 healthy, 1 not (saying why on stderr)."""
    from redpss.health import check, heartbeat_path

    name = (instance or os.environ.get("REDENV", "")).lower()
    if not name:
        print(
            "redpss: error: no instance given: use --instance NAME, or switch to one with eval "
            '"$(redsysctl env NAME)"',
            file=sys.stderr,
        )
        return 1  # not 2: Docker reserves exit 2 of a HEALTHCHECK
    if not name.isalnum():  # a name, not a path
        print(f"redpss: error: bad instance name {name!r}", file=sys.stderr)
        return 1
    home = os.path.abspath(os.path.expanduser(os.environ.get("REDHOME") or "/app/redsys"))
    verdict = check(heartbeat_path(os.path.join(home, "env", name), role))
    if not verdict.healthy:
        print(f"redpss: error: role {role}: {verdict.reason}", file=sys.stderr)
        return 1
    print(f"role {role}: healthy" + (f" ({verdict.reason})" if verdict.reason else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
