"""redsysctl's operations commands: ``install``, ``versions``, ``upgrade``, ``shell``, ``repair``.

Thin: parse, call :mod:`redpss.install` / :mod:`redpss.upgrade` / :mod:`redpss.switch`, print
(``--json`` for scripts). Each state-changing command leaves an audit line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redpss import audit, install, switch
from redpss import upgrade as upgrading
from redpss.cli.common import ArgumentParser, guarded
from redpss.instance import Instance, check_name, list_instances, redhome, resolve_instance

__all__ = ["COMMANDS", "main"]

COMMANDS = ("install", "versions", "upgrade", "shell", "repair")

EPILOG = """\
exit codes:
  0  done (upgrade: upgraded and verified)
  1  failed or refused, nothing changed (upgrade: before the switch; install: a build that
     does not run on its interpreter)
  2  usage error
  5  upgrade: a step failed after the switch; the instance is back on its previous build
  6  upgrade: a step failed and going back failed too: act now (the message says how)
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of redsysctl's operations commands."""
    parser = ArgumentParser(
        prog="redsysctl", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(
        dest="command", metavar="{" + ",".join(COMMANDS) + "}", required=True
    )
    p = sub.add_parser(
        "install",
        help="lay out $REDHOME (bin, etc, lib, log, tmp) and its tools; --from: a build",
        description="Lay out $REDHOME/{bin,etc,lib,log,tmp,env} and write redsysctl, redctl, "
        "restctl, redftp_useradd and redftp_userdel into $REDHOME/bin. With --from SOURCE (a "
        "redpss source tree), install its build as $REDHOME/lib/<version id> and make it the "
        "current one (what new instances and the host's tools run).",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        type=Path,
        help="a redpss source tree (a checkout of any commit) to build from",
    )
    p.add_argument(
        "--no-switch", action="store_true", help="install the build without making it current"
    )
    sub.add_parser("versions", help="the installed builds and which instance runs which")
    p = sub.add_parser(
        "upgrade",
        help="move an instance to another build (and back by itself when it fails)",
        description="Stop, keep etc/ data/ log/, switch to the build, db upgrade, start, "
        "verify; a failed step rolls back by itself. See docs/operations.md.",
    )
    p.add_argument("instance", nargs="?", help="instance name (default: $REDENV)")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--to",
        metavar="VERSION",
        help="process mode: an installed build (version id or a unique prefix; "
        "default: the current one); container mode: the runtime image tag",
    )
    what.add_argument(
        "--rollback", action="store_true", help="go back to the build the last upgrade came from"
    )
    p.add_argument(
        "--start",
        action="store_true",
        help="start the instance after the upgrade even if it was stopped",
    )
    p.add_argument(
        "--verify-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds the instance has to come up healthy (default 60)",
    )
    p.add_argument(
        "--verify-command",
        metavar="CMD",
        help="a shell command that must exit 0 on the new build (your smoke test; "
        "it runs in $REDENV_HOME with the instance's environment)",
    )
    p = sub.add_parser("shell", help="open the instance's shell (the guide's switch)")
    p.add_argument("instance", nargs="?", help="instance name (default: $REDENV)")
    p.add_argument(
        "--install-alias",
        action="store_true",
        help="write an alias per instance into $REDHOME/etc/aliases.sh and load it "
        "from ~/.bashrc, so that typing the instance's name opens its shell",
    )
    p = sub.add_parser(
        "repair",
        help="recreate what is missing of an instance (a default red_params.conf, secrets, "
        "folders, tools); data and logs are never touched",
    )
    p.add_argument("instance", help="instance name")
    p.add_argument(
        "--port-base",
        type=int,
        metavar="N",
        help="first port of the block for a recreated red_params.conf (default: "
        "the one of its newest backup, else a free block)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run one of :data:`COMMANDS` (``argv`` without the program name)."""
    args = build_parser().parse_args(argv)
    return guarded(lambda: _audited(args, list(argv)))


def _audited(args: argparse.Namespace, raw: list[str]) -> int:
    home = redhome()
    if args.command == "versions":
        return _versions(home, args)
    if args.command == "install":
        return audit.audited(
            home / "log",
            tool="redsysctl",
            command="install",
            args=raw,
            action=lambda: _install(home, args),
        )
    inst = (
        Instance(check_name(args.instance.lower()), home)
        if args.command == "repair"
        else resolve_instance(args.instance, home=home)
    )
    if args.command == "shell":
        if args.install_alias:  # changes ~/.bashrc and $REDHOME/etc: the host's audit log
            return audit.audited(
                home / "log",
                tool="redsysctl",
                command="shell --install-alias",
                args=raw,
                action=lambda: _shell(inst, args),
            )
        return _shell(inst, args)
    action = {"upgrade": _upgrade, "repair": _repair}[args.command]
    return audit.audited(
        inst.log_dir,
        tool="redsysctl",
        command=args.command,
        args=raw,
        action=lambda: action(inst, args),
    )


def _out(args: argparse.Namespace, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2, default=str) if args.json else text)


def _install(home: Path, args: argparse.Namespace) -> int:
    report = install.install(home, args.source, switch=not args.no_switch)
    lines = [
        f"{home}: "
        + (f"created {', '.join(report.created)}" if report.created else "layout in place")
    ]
    if report.build is not None:
        lines.append(f"build {report.build.version_id} in {report.build.path}")
    cur = report.current
    lines.append(
        f"current: {cur.version_id}" + (" (switched)" if report.switched else "")
        if cur is not None
        else "current: the runtime's own redpss (no build installed: redsysctl install --from)"
    )
    lines.append(f"tools: {', '.join(p.name for p in report.tools)} in {home / 'bin'}")
    lines.append(
        f'next: export PATH={home / "bin"}:"$PATH" (conf/redsys.service calls '
        f"{home / 'bin' / 'redsysctl'})"
    )
    doc = {
        "home": str(home),
        "created": report.created,
        "switched": report.switched,
        "build": report.build.info.to_dict() if report.build else None,
        "current": cur.version_id if cur else None,
        "tools": [str(p) for p in report.tools],
    }
    _out(args, doc, "\n".join(lines))
    return 0


def _versions(home: Path, args: argparse.Namespace) -> int:
    current = install.current_build(home)
    users: dict[str, list[str]] = {}
    for inst in list_instances(home):
        build = install.instance_build(inst)
        users.setdefault(build.version_id if build else "", []).append(inst.name)
    rows: list[dict[str, Any]] = [
        {
            "version_id": b.version_id,
            "git_commit": b.info.git_commit,
            "build_date": b.info.build_date,
            "current": current is not None and b.path == current.path,
            "instances": users.get(b.version_id, []),
            "path": str(b.path),
        }
        for b in install.builds(home)
    ]
    if args.json:
        print(json.dumps({"builds": rows, "unversioned": users.get("", [])}, indent=2))
        return 0
    for r in rows:
        mark = "*" if r["current"] else " "
        print(
            f"{mark} {r['version_id']:<34} {r['build_date']:<26} {', '.join(r['instances']) or '-'}"
        )
    if users.get(""):
        print(f"  (runtime's own redpss)              {'':<26} {', '.join(users[''])}")
    if not rows and not users.get(""):
        print("no builds installed (redsysctl install --from SOURCE)")
    return 0


def _upgrade(inst: Instance, args: argparse.Namespace) -> int:
    from redpss import compose

    say = (
        (lambda line: print(line, file=sys.stderr, flush=True))
        if args.json
        else (lambda line: print(line, flush=True))
    )
    kwargs = {
        "start": args.start,
        "verify_timeout": args.verify_timeout,
        "verify_command": args.verify_command,
        "progress": say,
    }
    if compose.is_compose(inst.require()):
        if args.rollback:
            report = upgrading.rollback_image(inst, **kwargs)
        else:
            if not args.to:
                raise upgrading.UpgradeError("container mode: give the image with --to IMAGE")
            report = upgrading.upgrade_image(inst, args.to, **kwargs)
    elif args.rollback:
        report = upgrading.rollback(inst, **kwargs)
    else:
        target = (
            install.find_build(inst.redhome, args.to)
            if args.to
            else install.current_build(inst.redhome)
        )
        if target is None:
            raise upgrading.UpgradeError(
                "no current build to upgrade to: install one (redsysctl install --from "
                "SOURCE) or name one with --to"
            )
        report = upgrading.upgrade(inst, target, **kwargs)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.result == "unchanged":
        print(f"instance {inst.name} already runs {report.target}: nothing to do")
    elif report.result == "upgraded":
        print(
            f"instance {inst.name}: {report.source} -> {report.target} in "
            f"{report.seconds:.1f} s; verified"
        )
    else:
        print(
            f"redsysctl: error: upgrade of {inst.name} to {report.target} failed at "
            f"{report.failed_step}: {report.reason}; {report.result}"
            + (f" (runs {report.source})" if report.result == "rolled back" else ""),
            file=sys.stderr,
        )
    return report.exit_code


def _shell(inst: Instance, args: argparse.Namespace) -> int:
    inst.require()
    if args.install_alias:
        done = switch.install_aliases(inst.redhome)
        print("\n".join(done))
        return 0
    return switch.open_shell(inst)


def _repair(inst: Instance, args: argparse.Namespace) -> int:
    done = install.repair_instance(inst, port_base=args.port_base)
    if args.json:
        print(json.dumps({"instance": inst.name, "recreated": done}, indent=2))
    elif done:
        print(f"instance {inst.name}: recreated " + "; ".join(done))
        print(
            "data/, log/ and every file that was there are untouched; look at "
            "etc/red_params.conf (redctl config diff --default shows what differs from a "
            "new one), then redctl start"
        )
    else:
        print(f"instance {inst.name}: nothing is missing")
    return 0
