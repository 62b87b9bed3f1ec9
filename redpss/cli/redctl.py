"""``redctl``: the main command line utility of one RED-PSS instance.

The instance comes from ``--instance`` or ``$REDENV`` (set by ``eval "$(redsysctl env NAME)"``).
This module only parses, calls :mod:`redpss.control` and prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from redpss import audit, control, db_scripts, status
from redpss.cli import redctl_jobs, redctl_ops, redctl_purge
from redpss.cli.common import (
    ArgumentParser,
    add_instance_option,
    emit,
    entry,
    fail,
    guarded,
    print_json,
    setup_cli_logging,
    warn,
)
from redpss.config import Config
from redpss.dictionary.scripts import grantee_name
from redpss.errors import ConfigError
from redpss.instance import Instance, resolve_instance
from redpss.sched.control import NotFound

__all__ = ["COMMANDS", "main"]

log = logging.getLogger(__name__)

# The commands of the product guide, in its order, with its explanations.
COMMANDS: dict[str, str] = {
    "version": "show versions",
    "start": "start server (-S: start suspended, no jobs and watchers are started)",
    "stop": "stop server (gracefully: running work finishes)",
    "abort": "abort server (stop now: every role is killed)",
    "restart": "restart server (ends a suspended mode)",
    "start_trace": "start server with trace logging, following the logs on STDOUT",
    "status": "show server status",
    "reload": "reload job config",
    "suspend": "suspend all jobs",
    "resume": "resume all jobs",
    "show": "show status for jobs and processes",
    "watch": "watch status for jobs and processes",
    "we_list_error": "list errors of watcher executors",
    "we_reset_error": "reset errors of watcher executors",
    "start_db_job": "start a DB job immediately",
    "list_db_jobs": "list DB jobs",
    "toggle_db_job": "toggle DB job between active and inactive",
    "list_db_watcher": "list DB watcher",
    "toggle_db_watcher": "toggle DB watcher between active and inactive",
    "start_job": "start an already scheduled job immediately",
    "preclone": "save state before cloning from another instance",
}
EPILOG = """\
further commands:
  db init            create the dictionary objects (REDSYS and target schemas)
                     --with-scripts: install the database-side scripts too (Exasol only)
  db upgrade         apply pending dictionary migrations
  db apply FILE      check and upsert job/watcher/loader definitions from a TOML file
  db export [FILE]   write the current definitions (jobs, watchers, loaders) in the same
                     format: export -> apply restores them on another instance
  db remove job|watcher|loader NAME
                     remove one definition (refused while another one needs it);
                     prints what was removed, in the format of apply
  db purge           delete what is older than its retention (runs, watcher fires, jmon
                     statistics, LOG_MESSAGES, the load ledger), in small batches; jmon does
                     it every night (--dry-run: what would go; --vacuum: rewrite old files)
  db scripts         print the database-side scripts (REDSYS.SEND_MAIL …) for a DBA
                     (--output FILE, --show-secret, --grant-to USER_OR_ROLE)
  config show [--effective] | get KEY | set KEY VALUE... | edit | diff [N] | history
         | rollback [N]
                     red_params.conf: every change checked whole first, backed up in
                     etc/backup/ and audited; secrets shown as ********
  kill RUN_ID        end one run (its command's process group, or its SQL statement);
                     recorded KILLED with who did it (exit 3: no such run is running)
  log [--schema S] [--level ERROR|ALERT] [--since WHEN] [-n N] [-f]
                     the ERROR/ALERT lines the database logged (LOG_MESSAGES of every
                     schema: ALL_LOG_MESSAGES), oldest first; -f follows new ones
  audit [--since WHEN] [--user NAME] [--grep COMMAND] [--tail N]
                     who changed what: log/audit.log (every state-changing command
                     of redctl, redsysctl, restctl and the REST API writes one line)
  (every command takes --json for scripts, before the command: redctl --json show)

exit codes:
  0  done (status: every role running)
  1  failed (status: degraded, some role down or without heartbeat, or roles running
     without supervisor)
  2  usage error, or an unknown job or watcher name (the nearest names are shown)
  3  status: the instance is stopped; stop --if-idle: refused, runs are active (named)
  4  status: unknown, the heartbeats (the dictionary) could not be read;
     stop, abort, restart: processes of the instance are left (named; stop --force kills them)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of redctl."""
    parser = ArgumentParser(
        prog="redctl",
        usage="redctl [options] command [command-options]",
        description="Control one RED-PSS instance.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-D", "--debug", action="store_true", help="show debug output")
    add_instance_option(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(
        dest="command", metavar="{" + ",".join(COMMANDS) + "}", title="commands"
    )
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == "start":
            p.add_argument(
                "-S",
                "--suspended",
                action="store_true",
                help="start suspended: no jobs and watchers are started",
            )
        if name == "start_trace":
            p.add_argument(
                "--no-follow",
                action="store_true",
                help="return after the start instead of following the logs",
            )
        redctl_jobs.add_arguments(name, p)
        redctl_ops.add_arguments(name, p)
    db = sub.add_parser(
        "db",
        help="dictionary objects and definitions: init, upgrade, apply, export, remove, scripts, "
        "purge",
        description="The dictionary objects and the definitions (see redctl -h).",
    )
    db.add_argument(
        "action", choices=("init", "upgrade", "apply", "export", "scripts", "remove", "purge")
    )
    db.add_argument(
        "file", nargs="?", help="apply: the definitions file; export: output file; "
        "remove: job, watcher or loader"
    )  # fmt: skip
    db.add_argument("name", nargs="?", help="remove: the name of the job, watcher or loader")
    db.add_argument(
        "--with-scripts", action="store_true", help="init: install the database-side scripts"
    )
    db.add_argument("--output", metavar="FILE", help="scripts: write to FILE (mode 600)")
    db.add_argument(
        "--show-secret", action="store_true", help="scripts: the real secret, not ********"
    )
    db.add_argument(
        "--grant-to",
        action="append",
        default=[],
        metavar="NAME",
        help="scripts, init --with-scripts: user or role that may call the scripts (repeatable)",
    )
    redctl_purge.add_options(db)
    redctl_ops.add_parsers(sub)
    redctl_jobs.add_parsers(sub)
    # every command, not only the guide's: -h and every usage error show this list
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    return parser


def _check_db_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options of ``db`` that do not fit its action are usage errors (exit 2)."""
    action = args.action
    if args.with_scripts and action != "init":
        parser.error("--with-scripts goes with db init")
    if (args.output or args.show_secret) and action != "scripts":
        parser.error("--output and --show-secret go with db scripts")
    if args.grant_to and not (action == "scripts" or args.with_scripts):
        parser.error("--grant-to goes with db scripts or db init --with-scripts")
    if action == "scripts" and args.file:
        parser.error("db scripts writes to --output FILE")
    redctl_purge.check_usage(parser, args)
    for name in args.grant_to:
        try:
            grantee_name(name)
        except ValueError as exc:
            parser.error(f"--grant-to: {exc}")


def _print_status(st: status.InstanceStatus, as_json: bool) -> None:
    if as_json:
        print_json(asdict(st.report()))
        return
    print(f"instance {st.instance}: {st.summary}")
    if st.message:
        print(st.message)
    header = (
        f"{'ROLE':<10} {'STATE':<10} {'PID':>7} {'UPTIME':>9} {'HEARTBEAT':>10} "
        f"{'RESTARTS':>8} {'ALERT':>5}  REASON"
    )
    print(header)
    for r in st.roles:
        uptime = _duration(r.uptime)
        beat = "-" if r.heartbeat_age is None else f"{r.heartbeat_age:.1f}s ago"
        pid = str(r.pid) if r.pid else "-"
        print(
            f"{r.role:<10} {r.state:<10} {pid:>7} {uptime:>9} {beat:>10} "
            f"{r.restarts:>8} {r.alert:>5}  {r.reason}"
        )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _start(inst: Instance, args: argparse.Namespace, *, trace: bool = False) -> int:
    config = inst.load_config()
    st = control.start(inst, config, suspended=getattr(args, "suspended", False), trace=trace)
    _print_status(st, args.json)
    return st.exit_code


def _config_or_none(inst: Instance, consequence: str) -> Config | None:
    """The configuration, or None after saying why it cannot be used (stop/abort/status)."""
    try:
        return inst.load_config()
    except ConfigError as exc:
        warn(f"{exc}\n({consequence})")
        return None


def _restart(inst: Instance, args: argparse.Namespace) -> int:
    config = inst.load_config()  # refuse before stopping what runs
    report = redctl_ops.graceful_stop(inst, config, args.json)
    if report.leftovers:
        return redctl_ops.report_leftovers(report, False)
    return _start(inst, args)


def _status(inst: Instance, args: argparse.Namespace) -> int:
    config = _config_or_none(inst.require(), "status without heartbeats")
    st = status.status(inst, config)
    _print_status(st, args.json)
    return st.exit_code


def _start_trace(inst: Instance, args: argparse.Namespace) -> int:
    code = _start(inst, args, trace=True)
    if code != 0 or args.no_follow or args.json:  # --json: the status document, no log lines
        return code
    from redpss.cli.follow import follow_logs

    print(f"following {inst.log_dir}/*.log -- Ctrl-C ends following; the instance keeps running")
    follow_logs(inst.log_dir)
    return 0


def _suspend(inst: Instance, args: argparse.Namespace) -> int:
    inst.require()
    changed = control.suspend(inst)
    text = f"instance {inst.name}: suspended" + ("" if changed else " (already)")
    emit(args.json, {"instance": inst.name, "suspended": True, "changed": changed}, text)
    return 0


def _resume(inst: Instance, args: argparse.Namespace) -> int:
    inst.require()
    changed = control.resume(inst)
    text = f"instance {inst.name}: resumed" + ("" if changed else " (was not suspended)")
    emit(args.json, {"instance": inst.name, "suspended": False, "changed": changed}, text)
    return 0


def _db_scripts(inst: Instance, config: Config, args: argparse.Namespace) -> int:
    text = db_scripts.render_db_scripts(
        inst, config, grant_to=args.grant_to, show_secret=args.show_secret
    )
    if args.output is None:
        if args.json:
            emit(True, {"instance": inst.name, "scripts": text}, "")
        else:
            print(text, end="")
    else:
        db_scripts.write_db_scripts(Path(args.output), text)
        emit(
            args.json,
            {"instance": inst.name, "written": args.output},
            f"database-side scripts of {inst.name} written to {args.output}",
        )
    return 0


def _db(inst: Instance, args: argparse.Namespace) -> int:
    if args.action == "apply":
        if not args.file:
            return fail("db apply needs a definitions file", code=2)
        return redctl_jobs.db_apply(inst, args.file, as_json=args.json)
    if args.action == "export":
        return redctl_jobs.db_export(inst, args.file, as_json=args.json)
    if args.action == "remove":
        return redctl_ops.db_remove(inst, args)
    if args.action == "purge":
        return redctl_purge.db_purge(inst, args)
    config = inst.load_config()
    if args.action == "scripts":
        return _db_scripts(inst, config, args)
    if args.action == "init":
        version, database = control.db_init(inst, config)
        doc: dict[str, object] = {"instance": inst.name, "database": database, "version": version}
        if not args.json:  # before the scripts: their failure must not hide that this is done
            print(f"dictionary of {inst.name} on {database}: schema version {version}", flush=True)
        if args.with_scripts:
            count = db_scripts.install_db_scripts(inst, config, grant_to=args.grant_to)
            doc["script_statements"] = count
            if not args.json:
                print(f"database-side scripts of {inst.name}: {count} statements run")
        if args.json:
            emit(True, doc, "")
    else:
        applied = control.db_upgrade(inst, config)
        emit(
            args.json,
            {"instance": inst.name, "applied": applied},
            "\n".join(applied) if applied else f"dictionary of {inst.name}: up to date",
        )
    return 0


HANDLERS: dict[str, Callable[[Instance, argparse.Namespace], int]] = {
    "start": _start,
    "restart": _restart,
    "start_trace": _start_trace,
    "status": _status,
    "suspend": _suspend,
    "resume": _resume,
    "db": _db,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redctl``; returns the exit code."""
    return entry(argv, _main)


def _main(raw: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(raw)
    if args.command is None:
        if args.json:
            return fail("a command is needed (redctl -h lists them)", code=2)
        parser.print_help()
        return 2
    if args.command == "db":
        _check_db_usage(parser, args)
    redctl_ops.check_usage(parser, args)
    return guarded(lambda: _run(args, raw))


def _run(args: argparse.Namespace, raw: list[str]) -> int:
    inst = resolve_instance(args.instance)
    setup_cli_logging(inst, debug=args.debug)
    log.debug("redctl %s instance=%s", args.command, inst.name)
    handler = (
        HANDLERS.get(args.command)
        or redctl_ops.HANDLERS.get(args.command)
        or redctl_jobs.HANDLERS[args.command]
    )
    name = redctl_ops.audit_command(args)
    # every state-changing command leaves one line in log/audit.log (redpss.audit)
    log_dir = inst.log_dir if name is not None and inst.log_dir.is_dir() else None
    try:
        return audit.audited(
            log_dir,
            tool="redctl",
            command=name or args.command,
            args=raw,
            action=lambda: handler(inst, args),
            codes=((NotFound, 2),),
        )
    except NotFound as exc:
        return fail(str(exc), code=2)


if __name__ == "__main__":
    sys.exit(main())
