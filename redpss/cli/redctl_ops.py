"""redctl's operations commands: ``stop``/``abort`` (with what they wait for and what is
left), ``audit`` (and which commands leave an audit line).

Thin: parse, call :mod:`redpss.audit` (and the other operations modules), print. Every command
prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from redpss import audit, control, preclone, shutdown
from redpss.cli import redctl_config, redctl_log
from redpss.config import Config
from redpss.dictionary import open_instance_dictionary
from redpss.errors import ConfigError, RedpssError
from redpss.instance import Instance
from redpss.sched.definitions import KINDS, remove_definition
from redpss.status import in_container
from redpss.supervisor import Supervisor

__all__ = [
    "HANDLERS",
    "add_arguments",
    "add_parsers",
    "audit_command",
    "check_usage",
    "db_remove",
    "graceful_stop",
    "report_leftovers",
]

# Commands that change nothing. Every other command leaves an audit line: a new command is
# audited unless it is added here on purpose.
READ_ONLY = frozenset(
    ("version", "status", "show", "watch", "we_list_error", "list_db_jobs", "list_db_watcher",
     "audit", "log")
)  # fmt: skip


def audit_command(args: argparse.Namespace) -> str | None:
    """The name of the audit line of a parsed redctl command; None when it changes nothing."""
    name: str = args.command
    if name in READ_ONLY or getattr(args, "dry_run", False):
        return None
    if name == "config":
        action: str = args.config_action
        return None if action in redctl_config.READ_ONLY else f"config {action}"
    if name == "db":
        action = args.action
        if action == "export" or (action == "scripts" and not (args.output or args.show_secret)):
            return None
        return f"db {action}"
    return name


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Options of the guide's commands that this module handles (stop, abort, preclone)."""
    if name == "stop":
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="show what a stop would stop and what runs now; change nothing",
        )
        p.add_argument(
            "--if-idle",
            action="store_true",
            help="refuse (exit 3, naming them) while runs are active",
        )
        p.add_argument(
            "--force",
            action="store_true",
            help="stop now: kill every role and leftover process (as abort)",
        )
    if name == "abort":
        p.add_argument(
            "--dry-run", action="store_true", help="show what abort would kill; change nothing"
        )
    if name == "preclone":
        what = p.add_mutually_exclusive_group()
        what.add_argument(
            "--dry-run",
            action="store_true",
            help="show what would be saved, and what a waiting state would do; change nothing",
        )
        what.add_argument(
            "--cancel", action="store_true", help="drop the waiting state: a start restores nothing"
        )
        what.add_argument(
            "--restore",
            action="store_true",
            help="restore the waiting state now (instance stopped), even without a clone seen",
        )


def check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Option combinations that make no sense are usage errors (exit 2)."""
    if args.command == "stop" and args.if_idle and args.force:
        parser.error("stop: --if-idle and --force exclude each other")
    if args.command == "db" and args.action == "remove":
        if args.file not in KINDS or not args.name:
            parser.error("usage: redctl db remove job|watcher|loader NAME")
    elif args.command == "db" and args.name:
        parser.error(f"db {args.action}: unexpected argument {args.name!r}")


def db_remove(inst: Instance, args: argparse.Namespace) -> int:
    """``redctl db remove job|watcher|loader NAME``."""
    with open_instance_dictionary(inst, inst.load_config()) as d:
        text = remove_definition(d, args.file, args.name)
    if args.json:
        print(json.dumps({"removed": args.file, "name": args.name, "definition": text}, indent=2))
    else:
        print(f"{args.file} {args.name} removed; to put it back, give this to redctl db apply:")
        print(text, end="")
    return 0


def add_parsers(sub: Any) -> None:
    """Add the operations commands to redctl's sub-command parsers."""
    redctl_config.add_parser(sub)
    redctl_log.add_parser(sub)
    p = sub.add_parser(
        "audit",
        help="show the audit log (who changed what, when, with which result)",
        description="Show log/audit.log: one line per state-changing command.",
    )
    p.add_argument(
        "--since", metavar="WHEN", help="only since WHEN: 30m, 2h, 7d, 1w or an ISO date/time"
    )
    p.add_argument("--user", help="only commands of this user (or sudo user, or token:NAME)")
    p.add_argument(
        "--grep",
        dest="command_prefix",
        metavar="COMMAND",
        help="only commands starting with COMMAND (e.g. config, db apply)",
    )
    p.add_argument("--tail", type=int, metavar="N", help="only the last N records")
    p.add_argument(
        "--host",
        action="store_true",
        help="with the host's lines too ($REDHOME/log/audit.log: install, aliases)",
    )


def _audit(inst: Instance, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = audit.parse_since(args.since)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    paths = [audit.audit_path(inst.require().log_dir)]
    if args.host:
        paths.append(audit.audit_path(inst.redhome / "log"))
    found = audit.read_records(
        paths,
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
        result = " | ".join(str(r.get("result", "")).split("\n"))  # one line per record
        print(
            f"{str(r.get('time', ''))[:23]}  {who:<16} {r.get('tool', '')}{via} {shown}  "
            f"-> {result} (exit {r.get('exit_code', '?')})"
        )
    if not rows:
        print("no audit records" + (" matching" if since or args.user else ""))
    if found.skipped:
        print(f"({found.skipped} unreadable line(s) skipped)")
    return 0


def _config_or_none(inst: Instance, consequence: str) -> Config | None:
    try:
        return inst.load_config()
    except ConfigError as exc:
        print(f"redctl: warning: {exc}\n({consequence})", file=sys.stderr)
        return None


def _say(as_json: bool) -> Callable[[str], None]:
    out = sys.stderr if as_json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say


def report_leftovers(report: shutdown.StopReport, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    if report.killed:
        print(
            f"killed {len(report.killed)} leftover process(es): "
            + ", ".join(f"{x.pid} ({x.what})" for x in report.killed),
            file=sys.stderr,
        )
    if report.leftovers:
        lines = "\n".join(f"  pid {x.pid}: {x.what}: {x.cmdline}" for x in report.leftovers)
        print(
            f"redctl: error: instance {report.instance}: {len(report.leftovers)} process(es) "
            f"of the instance are still alive:\n{lines}\n(kill them: redctl stop --force)",
            file=sys.stderr,
        )
    return report.exit_code


def graceful_stop(inst: Instance, config: Config | None, as_json: bool) -> shutdown.StopReport:
    """The graceful stop of ``stop`` and ``restart``: progress on stdout (stderr with --json)."""
    return control.stop_report(inst, config, progress=_say(as_json))


def _stop(inst: Instance, args: argparse.Namespace) -> int:
    inst.require()
    control.require_process_mode(inst, "stop")
    config = _config_or_none(inst, "stopping with the default grace")
    if args.dry_run:
        return _dry_run(inst, config, args, force=args.force)
    if args.force:
        return _force(inst, config, args)
    if args.if_idle:
        runs, source = shutdown.running_runs(inst, config)
        if runs or source == "unknown":
            why = (
                shutdown.describe_runs(runs)
                if runs
                else "whether runs are active cannot be told (sched does not answer)"
            )
            raise BusyError(
                f"instance {inst.name}: stop refused (--if-idle): {why}; wait for them, stop "
                "without --if-idle (they get the grace time) or use --force"
            )
    report = graceful_stop(inst, config, args.json)
    if not args.json:
        if not report.was_running:
            print(f"instance {inst.name}: was not running")
        elif not report.leftovers:
            print(
                f"instance {inst.name}: stopped in {report.seconds:.1f} s; "
                "no process of the instance is left"
            )
    return report_leftovers(report, args.json)


def _force(inst: Instance, config: Config | None, args: argparse.Namespace) -> int:
    """Today's abort path (every role's process group SIGKILLed, supervisord stopped), then
    every leftover process of the instance killed, then the verification."""
    began = time.monotonic()
    report = shutdown.StopReport(inst.name, was_running=Supervisor(inst).is_running())
    report.runs_at_start, _ = (
        shutdown.running_runs(inst, config) if report.was_running else ([], "")
    )
    killed = control.abort(inst, config)
    report.roles = [{"role": name, "result": "killed", "seconds": 0.0} for name in killed]
    report.killed, report.leftovers = shutdown.kill_leftovers(inst)
    report.seconds = time.monotonic() - began
    if not args.json:
        what = ", ".join(killed) or "no role was running"
        lost = shutdown.describe_runs(report.runs_at_start)
        print(
            f"instance {inst.name}: aborted ({what}); {lost} killed"
            if report.runs_at_start
            else f"instance {inst.name}: aborted ({what})"
        )
    return report_leftovers(report, args.json)


def _dry_run(
    inst: Instance, config: Config | None, args: argparse.Namespace, *, force: bool
) -> int:
    p = shutdown.plan(inst, config)
    procs = shutdown.leftovers(inst)
    if args.json:
        print(
            json.dumps(
                {**p.to_dict(), "force": force, "processes": [asdict(x) for x in procs]}, indent=2
            )
        )
        return 0
    verb = "kill" if force else "stop"
    if p.running:
        how = (
            "each role's process group is killed now"
            if force
            else f"each gets {p.grace} s grace, then is killed"
        )
        print(
            f"instance {inst.name} is running; a stop would {verb} {len(p.roles)} roles "
            f"in this order ({how}):\n  {', '.join(p.roles)}"
        )
        src = f" (from the {p.runs_from})" if p.runs_from != "sched" else ""
        fate = "killed" if force else "waited for (aborted at the end of the grace)"
        print(
            f"active: {shutdown.describe_runs(list(p.runs))}{src}" + (f": {fate}" if p.runs else "")
        )
    else:
        print(f"instance {inst.name} is not running: there is nothing to {verb}")
    if procs:
        print(f"processes of the instance ({len(procs)}):")
        for x in procs:
            print(f"  pid {x.pid}: {x.what}")
    print("(dry run: nothing was changed)")
    return 0


def _abort(inst: Instance, args: argparse.Namespace) -> int:
    inst.require()
    control.require_process_mode(inst, "stop")
    config = _config_or_none(inst, "aborting all the same")
    if args.dry_run:
        return _dry_run(inst, config, args, force=True)
    return _force(inst, config, args)


class BusyError(RedpssError):
    """``stop --if-idle`` while runs are active (exit 3)."""

    exit_code = shutdown.EXIT_BUSY


class UsageError(RedpssError):
    """A bad option value found after parsing (exit 2, like argparse's errors)."""

    exit_code = 2


def _preclone(inst: Instance, args: argparse.Namespace) -> int:
    with open_instance_dictionary(inst, inst.load_config()) as d:
        if args.dry_run:
            return _preclone_dry_run(inst, d, args)
        if args.cancel:
            kept = preclone.cancel(inst)
            _emit(
                args,
                {"cancelled": str(kept)},
                f"preclone state cancelled (kept as {kept}); the next start restores nothing",
            )
            return 0
        if args.restore:
            state = preclone.pending(inst)
            if state is None:
                raise preclone.PrecloneError("no preclone state waits: nothing to restore")
            control.require_stopped(inst, "preclone --restore")
            done = preclone.restore(inst, d, state)
            _emit(
                args,
                done,
                f"restored: {done['flags_restored']} flags, "
                f"{done['log_rows_cleared']} log rows and {done['log_files_removed']} log "
                "files cleaned",
            )
            return 0
        state = preclone.save(inst, d)
    path = preclone.state_path(inst)
    _emit(
        args,
        state,
        f"saved to {path}: {len(state['jobs'])} job and {len(state['watchers'])} watcher "
        "flags, identity stamp written into the dictionary; restore the database now — the "
        "next redctl start sees the clone, puts the flags back and clears the cloned logs "
        "(a start without a clone changes nothing)",
    )
    return 0


def _preclone_dry_run(inst: Instance, d: Any, args: argparse.Namespace) -> int:
    doc = preclone.plan(inst, d)
    save = doc["would_save"]
    lines = [
        f"preclone would save {len(save['jobs'])} job and {len(save['watchers'])} "
        f"watcher flags to {preclone.state_path(inst)} and write a new identity stamp"
    ]
    waiting = doc["pending"]
    if waiting is not None:
        seen = {
            True: "a clone happened: the next start restores it and clears the logs",
            False: "no clone seen yet: the next start changes nothing",
            None: "the state has no identity stamp: only --restore restores it",
        }
        lines.append(f"a state of {waiting['saved_at']} waits; {seen[waiting['clone_seen']]}")
    lines.append("(dry run: nothing was changed)")
    _emit(args, doc, "\n".join(lines))
    return 0


def version_info(inst: Instance) -> dict[str, Any]:
    """What ``redctl version`` shows: the build, the dictionary, the runtime, the image."""
    import supervisor.options

    from redpss import buildinfo, compose
    from redpss.dictionary import SCHEMA_VERSION

    build = buildinfo.build_info()
    info: dict[str, Any] = {
        "instance": inst.name,
        "redpss": build.version,
        "version_id": build.version_id,
        "git_commit": build.git_commit + (" (with uncommitted changes)" if build.git_dirty else "")
        or "unknown",
        "build_date": build.build_date,
        "dictionary_schema": SCHEMA_VERSION,
    }
    try:
        with open_instance_dictionary(inst, inst.load_config()) as dictionary:
            info["dictionary_installed"] = dictionary.version()
    except Exception as exc:  # version must print even on a broken instance
        info["dictionary_installed"] = f"unknown ({exc})"
    runtime = buildinfo.runtime_info()
    info.update(
        python=runtime["python"],
        openssl=runtime["openssl"],
        supervisor=supervisor.options.VERSION,
        installed_at=runtime["package_path"],
    )
    if in_container():
        info["mode"] = "container (inside)"
        info["image"] = os.environ.get("REDPSS_IMAGE", "unknown (see redctl version on the host)")
    elif compose.is_compose(inst):
        info["mode"] = "container"
        info.update(image_info(inst))
    else:
        info["mode"] = "process"
    return info


def image_info(inst: Instance) -> dict[str, str]:
    """The runtime image of an instance in container mode: its reference and digest."""
    from redpss import compose

    try:
        image = compose.load_settings(inst).REDPSS_IMAGE
    except RedpssError as exc:
        return {"image": f"unknown ({exc})"}
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}} {{json .RepoDigests}}", image],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"image": image, "image_digest": f"unknown (docker: {exc})"}
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return {"image": image, "image_digest": f"unknown (docker: {why})"}
    image_id, _, repo = out.stdout.strip().partition(" ")
    digests = json.loads(repo) if repo.startswith("[") else []
    found = {"image": image, "image_id": image_id}
    found["image_digest"] = ", ".join(digests) if digests else image_id
    return found


def _version(inst: Instance, args: argparse.Namespace) -> int:
    info = version_info(inst)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:<20} {value}")
    return 0


def _emit(args: argparse.Namespace, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2, default=str) if args.json else text)


HANDLERS: dict[str, Callable[[Instance, argparse.Namespace], int]] = {
    "version": _version,
    "stop": _stop,
    "preclone": _preclone,
    "abort": _abort,
    "audit": _audit,
    "config": redctl_config.run,
    "log": redctl_log.run,
}
