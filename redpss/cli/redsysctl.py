"""``redsysctl``: manage the instances of a RED server (what ``redsys.service`` calls).

``create`` and ``env`` set instances up; ``start|stop|status|restart [instance]`` call the
instance's own ``$REDENV_HOME/bin/redctl`` (so instances of different versions coexist), and the
``*-all`` forms do that for every instance (``start-all``: only those with a ``.autostart`` file).

Container mode (an instance with ``etc/compose.env``, see :mod:`redpss.compose` and
docs/containers.md): ``start|stop|restart`` drive the instance's compose project
``red_<instance>``; ``status`` is the instance's redctl status as in process mode (every role with
its ALERT, from docker's view and the heartbeats, see :func:`redpss.status.status`), same exit
codes. ``redsysctl compose instance`` puts an instance into container mode;
``redsysctl compose instance ARGS`` runs ``docker compose ARGS`` on its project with its env file
and override (``config``: the effective compose file, ``logs sched``, ``ps``); ``redsysctl redctl
instance ARGS`` runs ``redctl ARGS`` inside the running instance (``status``: on the host, as
above).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from redpss import audit, compose
from redpss.cli import redsysctl_ops
from redpss.cli.common import ArgumentParser, emit, entry, guarded, print_json
from redpss.errors import InstanceError
from redpss.instance import (
    Instance,
    broken_instances,
    check_name,
    create_instance,
    list_instances,
    redhome,
    resolve_instance,
    shell_env,
)
from redpss.rest.tls import make_certificate

__all__ = ["main"]

USAGE = """\
redsysctl [-h] command [instance]

Manage the current instance (uses REDENV):
  redsysctl {start | stop | status | restart}
Manage a specific instance:
  redsysctl {start | stop | status | restart} instance
Start/stop all instances:
  redsysctl {start-all | stop-all | restart-all | status-all}
Set up:
  redsysctl create instance [--port-base N] [--autostart] [--compose]
  redsysctl compose instance            container mode: run it as compose project red_<instance>
  redsysctl compose instance ARGS...    docker compose ARGS for it (config, ps, logs ROLE, ...)
  redsysctl redctl instance ARGS...     redctl ARGS for the instance (in its container if any)
  eval "$(redsysctl env instance)"     switch this shell to the instance
  redsysctl shell instance [--install-alias]   open the instance's shell (CTRL-D leaves it)
  redsysctl repair instance             recreate what is missing (a default red_params.conf …)
  redsysctl list
Install and upgrade (redsysctl install -h, redsysctl upgrade -h):
  redsysctl install [--from SOURCE] [--no-switch]   $REDHOME/{bin,etc,lib,log,tmp}, builds
  redsysctl versions                    installed builds and who runs which
  redsysctl upgrade instance [--to VERSION | --rollback] [--verify-command CMD]"""

EPILOG = """\
exit codes: as redctl (0 ok / all running, 1 failed or degraded, 2 usage, 3 stopped);
for the -all forms the worst of the instances (status-all: 3 only if all are stopped);
upgrade: 5 failed and rolled back by itself, 6 failed and the rollback failed too."""

SINGLE = ("start", "stop", "status", "restart")
ALL = ("start-all", "stop-all", "restart-all", "status-all")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of redsysctl."""
    parser = ArgumentParser(
        prog="redsysctl",
        usage=USAGE,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=(*SINGLE, *ALL, "create", "env", "list", "compose", "redctl"),
        metavar="command",
    )
    parser.add_argument("instance", nargs="?", help="instance name (default: $REDENV)")
    parser.add_argument(
        "--port-base",
        type=int,
        metavar="N",
        help="create: first of the 20 ports the instance uses "
        "(default: the first block from 20000, below the kernel's ephemeral port range, "
        "that no instance of the host uses)",
    )
    parser.add_argument(
        "--autostart", action="store_true", help="create: start the instance with start-all"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--compose", action="store_true", help="create: run the instance in container mode"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``redsysctl``; returns the exit code."""
    return entry(argv, _main)


def _main(argv: list[str]) -> int:
    first = next((a for a in argv if not a.startswith("-")), "")
    if first in redsysctl_ops.COMMANDS:
        return redsysctl_ops.main(argv)
    raw = list(argv)
    parser = build_parser()
    # `redsysctl redctl|compose instance ARGS...`: ARGS are redctl's / compose's (options too)
    rest: list[str] = []
    if len(argv) > 2 and argv[0] in ("redctl", "compose"):
        argv, rest = argv[:2], argv[2:]
    args = parser.parse_args(argv)
    args.args = rest
    if args.command in ALL and args.instance:
        parser.error(f"{args.command} takes no instance")
    if args.args and args.command not in ("redctl", "compose"):
        parser.error(f"unexpected arguments: {' '.join(args.args)}")
    if args.command in ("create", "env", "compose", "redctl") and not args.instance:
        parser.error(f"{args.command} needs an instance name")
    if (args.port_base is not None or args.autostart or args.compose) and args.command != "create":
        parser.error("--port-base, --autostart and --compose go with create")
    return guarded(lambda: _audited(args, raw))


def _audited(args: argparse.Namespace, raw: list[str]) -> int:
    """Run the command; write its audit line where redsysctl itself changes something.

    What redsysctl hands to an instance's redctl (start, stop … in process mode) is written
    by that redctl, with ``via: redsysctl``: one line per change.
    """
    log_dir = None
    if args.command in ("create", "compose", "start", "stop", "restart"):
        try:
            inst = resolve_instance(args.instance, home=redhome())
        except InstanceError:
            inst = None  # _run says why
        if inst is not None and (args.command in ("create", "compose") or compose.is_compose(inst)):
            log_dir = inst.log_dir
    return audit.audited(
        log_dir, tool="redsysctl", command=args.command, args=raw, action=lambda: _run(args)
    )


def _run(args: argparse.Namespace) -> int:
    home = redhome()
    if args.command == "create":
        return _create(home, args)
    if args.command == "env":
        found = resolve_instance(args.instance, home=home).require()
        if args.json:
            print_json(found.environment())
        else:
            sys.stdout.write(shell_env(found))
        return 0
    if args.command == "list":
        return _list(home, args.json)
    if args.command == "compose":
        return _compose_cli(resolve_instance(args.instance, home=home).require(), args.args)
    if args.command == "redctl":
        inst = resolve_instance(args.instance, home=home).require()
        if compose.is_compose(inst):
            if "status" in args.args:
                # on the host: docker's view of every container joined with the heartbeats
                return _redctl(inst, *args.args)
            return compose.exec_redctl(inst, inst.load_config(), args.args)
        return _redctl(inst, *args.args)
    if args.command in SINGLE:
        inst = resolve_instance(args.instance, home=home).require()
        if args.json and compose.is_compose(inst) and args.command != "status":
            code = _redctl(inst, args.command)
            print_json({"instance": inst.name, "command": args.command, "exit": code})
            return code
        return _redctl(inst, *(["--json"] if args.json else []), args.command)
    return _all(home, args.command.removesuffix("-all"), as_json=args.json)


def _create(home: Path, args: argparse.Namespace) -> int:
    inst = Instance(check_name(args.instance), home)
    with _quiet_unless(not args.json):
        _first_create(home)
        path = create_instance(inst, port_base=args.port_base, autostart=args.autostart)
        _point_new_instance(inst)
        if args.compose:
            compose.enable(inst)
        # HTTPS only: the API gets a self-signed certificate to start with (docs/rest.md)
        cert, _ = make_certificate(inst, inst.load_config().rest.gu_host)
    doc = {"instance": inst.name, "home": str(inst.home), "configuration": str(path),
           "compose": args.compose, "autostart": args.autostart,
           "rest_certificate": str(cert)}  # fmt: skip
    lines = [f"instance {inst.name} created: {inst.home}"]
    if args.compose:
        lines.append(f"container mode: {compose.settings_path(inst)}")
    lines.append(f"configuration: {path}")
    lines.append(f"REST API certificate: {cert} (self-signed; restctl cert -h says how to replace)")
    lines.append(f'next: eval "$(redsysctl env {inst.name})" && redctl db init && redctl start')
    emit(args.json, doc, "\n".join(lines))
    return 0


def _list(home: Path, as_json: bool) -> int:
    from redpss.install import instance_build

    rows = []
    for inst in list_instances(home):
        build = instance_build(inst)
        rows.append({"instance": inst.name, "home": str(inst.home),
                     "autostart": inst.autostart_flag.exists(),
                     "build": build.version_id if build is not None else None})  # fmt: skip
    broken = [
        {"instance": b.name, "home": str(b.home), "missing": str(b.conf_path)}
        for b in broken_instances(home)
    ]
    if as_json:
        print_json({"instances": rows, "broken": broken})
        return 0
    for r in rows:
        auto = " (autostart)" if r["autostart"] else ""
        runs = f"  {r['build']}" if r["build"] else ""
        print(f"{r['instance']}{auto}  {r['home']}{runs}")
    for b in broken:
        print(
            f"{b['instance']}  {b['home']}  BROKEN: {Path(b['missing']).name} is missing "
            f"(redsysctl repair {b['instance']})"
        )
    return 0


@contextlib.contextmanager
def _quiet_unless(show: bool) -> Iterator[None]:
    """With ``--json``, what a step prints as it goes is said on stderr (stdout is the JSON)."""
    if show:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _redctl(inst: Instance, *command: str, capture: bool = False) -> int:
    """Run the instance's own redctl (``$REDENV_HOME/bin/redctl``) and pass its exit code on.

    An instance in container mode is started and stopped through its compose project instead;
    its status is still redctl's (which knows container mode). ``capture``: see
    :func:`_redctl_output`.
    """
    return _redctl_output(inst, *command, capture=capture)[0]


def _redctl_output(inst: Instance, *command: str, capture: bool = False) -> tuple[int, str]:
    """Exit code and (with ``capture``) stdout of the instance's redctl."""
    verb = [c for c in command if c != "--json"]
    if compose.is_compose(inst) and verb in (["start"], ["stop"], ["restart"]):
        if capture:
            with contextlib.redirect_stdout(sys.stderr):
                return _compose(inst, verb[0]), ""
        return _compose(inst, verb[0]), ""
    tool = inst.home / "bin" / "redctl"
    cmd = (
        [str(tool)]
        if tool.exists()
        else [sys.executable, "-m", "redpss.cli.redctl", "--instance", inst.name]
    )
    env = {**os.environ, **inst.environment(), audit.VIA_ENV: "redsysctl"}
    env.pop("PYTHONPATH", None)  # this tool's build; the instance's tools choose their own
    sys.stdout.flush()  # what this tool printed comes before what its child prints
    if capture:
        done = subprocess.run(
            [*cmd, *command], env=env, check=False, stdout=subprocess.PIPE, text=True
        )
        return done.returncode, done.stdout
    return subprocess.run([*cmd, *command], env=env, check=False).returncode, ""


def _first_create(home: Path) -> None:
    """The first ``create`` of a host lays out ``$REDHOME`` and its tools (``install``)."""
    if not (home / "bin" / "redsysctl").exists():
        from redpss.install import install

        install(home)
        print(f"{home}: laid out (redsysctl install): tools in {home / 'bin'}")


def _point_new_instance(inst: Instance) -> None:
    """A new instance runs the host's current build (if one is installed); the aliases of
    ``redsysctl shell --install-alias`` get its name."""
    from redpss.install import current_build, point_instance, write_instance_tools
    from redpss.switch import aliases_text

    build = current_build(inst.redhome)
    if build is not None:
        point_instance(inst, build)
        print(f"runs build {build.version_id}")
    else:
        write_instance_tools(inst, None)
    aliases = inst.redhome / "etc" / "aliases.sh"
    if aliases.exists():
        aliases.write_text(aliases_text(inst.redhome), encoding="utf-8")


def _compose_cli(inst: Instance, args: Sequence[str]) -> int:
    """``redsysctl compose instance [ARGS]``: container mode on, or ``docker compose ARGS``."""
    if args:
        if not compose.is_compose(inst):
            raise InstanceError(
                f"instance {inst.name} is not in container mode (redsysctl compose {inst.name})"
            )
        return compose.run(inst, *args).returncode
    compose.enable(inst)
    print(f"instance {inst.name}: container mode, project {compose.project_name(inst)}")
    print(f"settings: {compose.settings_path(inst)}")
    print(f"your changes to the stack: {compose.override_path(inst)}")
    print(f"stack: {compose.stack_file()}")
    return 0


def _compose(inst: Instance, command: str) -> int:
    """start|stop|restart of an instance in container mode (exit codes as redctl)."""
    if command == "stop":
        return compose.down(inst)
    if command == "start":
        return compose.up(inst)
    compose.down(inst)
    return compose.up(inst)


def _all(home: Path, command: str, *, as_json: bool = False) -> int:
    instances = list_instances(home)
    if command == "start":
        instances = [i for i in instances if i.autostart_flag.exists()]
    if not instances:
        emit(as_json, [], "no instances" + (" with .autostart" if command == "start" else ""))
        return 0
    codes = []
    found = []
    for inst in instances:
        if as_json:
            code, out = _redctl_output(inst, "--json", command, capture=True)
            try:
                doc = json.loads(out) if out.strip() else None
            except ValueError:
                doc = {"output": out}
            found.append({"instance": inst.name, "exit": code, "result": doc})
        else:
            print(f"--- {inst.name}", flush=True)
            code = _redctl(inst, command)
        codes.append(code)
    worst = max(codes)
    if command == "status":  # 3 only when every instance is stopped
        worst = 3 if all(c == 3 for c in codes) else 0 if all(c == 0 for c in codes) else 1
    if as_json:
        print_json({"command": f"{command}-all", "exit": worst, "instances": found})
    return worst
