"""redctl's commands for jobs and watchers: arguments, and printing of what
:mod:`redpss.sched.control` returns. Every command prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss.cli.common import emit, output_closed
from redpss.dictionary import open_instance_dictionary
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.sched import control as jobs
from redpss.sched.definitions import apply_file, export_text

__all__ = ["HANDLERS", "add_arguments", "print_table"]


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """Arguments of the jobs commands (called for every redctl sub-command)."""
    if name in ("start_db_job", "start_job", "toggle_db_job"):
        p.add_argument("job", help="job name")
    elif name == "toggle_db_watcher":
        p.add_argument("watcher", help="watcher name")
    elif name == "we_list_error":
        p.add_argument("watcher", nargs="?", help="only this watcher")
    elif name == "we_reset_error":
        p.add_argument("watcher", nargs="?", help="only this watcher")
        p.add_argument("--key", help="only this key (file name or value)")
        p.add_argument("--all", action="store_true", help="reset the errors of every watcher")
    elif name == "watch":
        p.add_argument("--interval", type=float, default=1.0, help="refresh every N seconds")


def add_parsers(sub: Any) -> None:
    """The commands of this module beyond the guide's: ``kill``."""
    p = sub.add_parser(
        "kill",
        help="end one run",
        description="End one run: its command's whole process group (through jexec), or its "
        "SQL statement; it is recorded KILLED with who did it. Exit 0 killed, 1 it cannot be "
        "(a load, or sched does not answer), 3 no such run is queued or running.",
    )
    p.add_argument("run_id", type=int, help="the run id (redctl show)")


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as an aligned table of ``columns`` (``-`` for None).

    Column by column, one format per line and one write: 10 000 jobs printed a cell and a
    line at a time took ~0.2 s (bench/year.py).
    """
    cells = [[v if type(v) is str else _cell(v) for v in [r.get(c) for r in rows]] for c in columns]
    widths = [max([len(c), *map(len, col)]) for c, col in zip(columns, cells, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    head = line.format(*(c.upper() for c in columns)).rstrip()
    print("\n".join([head, *(line.format(*row).rstrip() for row in zip(*cells, strict=True))]))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _emit(args: argparse.Namespace, data: Any, table: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        table()


def _list_jobs(inst: Instance, args: argparse.Namespace) -> int:
    with open_instance_dictionary(inst, inst.load_config()) as d:
        rows = jobs.list_jobs(d)
    cols = (
        "job", "schema", "kind", "pool", "schedule", "active", "last_state", "last_run",
        "next_run", "alert", "reason",
    )  # fmt: skip
    _emit(args, rows, lambda: print_table(rows, cols))
    return 0


def _list_watchers(inst: Instance, args: argparse.Namespace) -> int:
    with open_instance_dictionary(inst, inst.load_config()) as d:
        rows = jobs.list_watchers(d)
    cols = ("watcher", "schema", "kind", "interval", "executor", "active", "errors", "watch")
    _emit(args, rows, lambda: print_table(rows, cols))
    return 0


def _toggle(kind: str) -> Callable[[Instance, argparse.Namespace], int]:
    def run(inst: Instance, args: argparse.Namespace) -> int:
        name = args.job if kind == "job" else args.watcher
        with open_instance_dictionary(inst, inst.load_config()) as d:
            active = jobs.toggle(d, kind, name)
        _emit(
            args,
            {kind: name, "active": active},
            lambda: print(f"{kind} {name}: {'active' if active else 'inactive'}"),
        )
        return 0

    return run


def _start(scheduled_only: bool) -> Callable[[Instance, argparse.Namespace], int]:
    def run(inst: Instance, args: argparse.Namespace) -> int:
        config = inst.load_config()
        with open_instance_dictionary(inst, config) as d:
            result = jobs.start_job(config, d, args.job, scheduled_only=scheduled_only)
        _emit(
            args, result, lambda: print(f"job {args.job}: run {result['run_id']} {result['state']}")
        )
        return 0

    return run


def _we_list(inst: Instance, args: argparse.Namespace) -> int:
    with open_instance_dictionary(inst, inst.load_config()) as d:
        rows = jobs.exec_error_dicts(jobs.we_list_error(d, args.watcher))
    cols = ("schema", "watcher", "key", "count", "first_seen", "last_seen", "message")
    _emit(args, rows, lambda: print_table(rows, cols))
    return 0


def _we_reset(inst: Instance, args: argparse.Namespace) -> int:
    if args.watcher is None and not args.all:
        raise RedpssError("we_reset_error: name a watcher, or give --all to reset every one")
    with open_instance_dictionary(inst, inst.load_config()) as d:
        count = jobs.we_reset_error(d, args.watcher, args.key)
    _emit(
        args,
        {"reset": count},
        lambda: print(f"{count} executor error(s) reset; their keys are tried again"),
    )
    return 0


def _show_data(inst: Instance) -> dict[str, Any]:
    return jobs.show(inst.load_config())


def _print_show(data: dict[str, Any]) -> None:
    state = "SUSPENDED" if data.get("suspended") else "active"
    print(f"scheduler: {state}")
    pools = [{"pool": p, **v} for p, v in data["pools"].items()]
    print_table(pools, ("pool", "size", "busy", "queued"))
    print()
    print("running:" if data["running"] else "running: none")
    if data["running"]:
        print_table(
            data["running"], ("run_id", "job", "kind", "pool", "started", "duration", "pid")
        )
    print()
    print("next runs:" if data["next"] else "next runs: none scheduled")
    if data["next"]:
        print_table(data["next"][:20], ("kind", "name", "next"))


def _show(inst: Instance, args: argparse.Namespace) -> int:
    data = _show_data(inst)
    _emit(args, data, lambda: _print_show(data))
    return 0


def _watch(inst: Instance, args: argparse.Namespace) -> int:
    """Live on a terminal; else plain, timestamped lines (``--json``: one object a line),
    flushed at once, until Ctrl-C, SIGTERM or the reader of the pipe goes away."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    every = max(args.interval, 0.2)
    if sys.stdout.isatty() and not args.json:
        return _watch_live(inst, every, stop)
    try:
        while not stop.is_set() and not output_closed():
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                data: dict[str, Any] | None = _show_data(inst)
                error = None
            except RedpssError as exc:
                data, error = None, str(exc)
            if args.json:
                doc = {"time": stamp, "instance": inst.name, "show": data, "error": error}
                print(json.dumps(doc, default=str), flush=True)
            else:
                for line in watch_lines(inst.name, data, error):
                    print(f"{stamp} {line}", flush=True)
            stop.wait(every)
    except KeyboardInterrupt:
        pass
    return 0


def watch_lines(instance: str, data: dict[str, Any] | None, error: str | None) -> list[str]:
    """One refresh of ``watch`` as plain lines: the scheduler and its pools, then one line
    per running run and the next due run."""
    if data is None:
        return [f"{instance} not available: {error}"]
    pools = " ".join(
        f"{name}={v['busy']}/{v['size']}+{v['queued']}" for name, v in data["pools"].items()
    )
    state = "SUSPENDED" if data.get("suspended") else "active"
    lines = [
        f"{instance} scheduler {state} running={len(data['running'])} pools(busy/size+queued) "
        f"{pools}"
    ]
    for r in data["running"]:
        lines.append(
            f"{instance} running run={r.get('run_id')} job={r.get('job')} pool={r.get('pool')} "
            f"started={r.get('started')} duration={_cell(r.get('duration'))}s "
            f"pid={_cell(r.get('pid'))}"
        )
    if data["next"]:
        n = data["next"][0]
        lines.append(f"{instance} next {n.get('kind')} {n.get('name')} at {n.get('next')}")
    return lines


def _watch_live(inst: Instance, every: float, stop: threading.Event) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()

    def render() -> Text:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                _print_show(_show_data(inst))
            except RedpssError as exc:
                print(f"not available: {exc}")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        return Text(f"{inst.name} at {stamp} (Ctrl-C to end)\n\n{buf.getvalue()}")

    try:
        with Live(render(), console=console, refresh_per_second=4) as live:
            while not stop.wait(every):
                live.update(render())
    except KeyboardInterrupt:
        pass
    return 0


def _kill(inst: Instance, args: argparse.Namespace) -> int:
    by = jobs.operator_name("redctl")
    result = jobs.kill_run(inst.load_config(), args.run_id, by=by)
    still = " (still ending: its command got SIGTERM, SIGKILL follows)"
    _emit(
        args,
        {**result, "by": by},
        lambda: print(
            f"run {result['run_id']} (job {result['job']}): {result['state']} by {by}"
            + (still if result["state"] == "KILLING" else "")
        ),
    )
    return 0


def _reload(inst: Instance, args: argparse.Namespace) -> int:
    jobs.reload(inst.require())
    _emit(args, {"reload": True}, lambda: print("jmon re-reads the definitions now"))
    return 0


def db_apply(inst: Instance, file: str, *, as_json: bool = False) -> int:
    """``redctl db apply FILE``."""
    with open_instance_dictionary(inst, inst.load_config()) as d:
        defs = apply_file(d, Path(file))
    doc = {
        "file": file,
        "jobs": [j.name for j in defs.jobs],
        "watchers": [w.name for w in defs.watchers],
        "loaders": [ld.name for ld in defs.loaders],
    }
    emit(
        as_json,
        doc,
        f"applied {len(defs.jobs)} job(s), {len(defs.watchers)} watcher(s), "
        f"{len(defs.loaders)} loader(s) from {file}; jmon takes them up without a restart",
    )
    return 0


def db_export(inst: Instance, file: str | None, *, as_json: bool = False) -> int:
    """``redctl db export [FILE]`` (``--json``: the TOML text in ``definitions``)."""
    with open_instance_dictionary(inst, inst.load_config()) as d:
        text = export_text(d)
    if file is None:
        if as_json:
            emit(True, {"definitions": text}, "")
        else:
            sys.stdout.write(text)
    else:
        Path(file).write_text(text, encoding="utf-8")
        emit(as_json, {"written": file}, f"definitions written to {file}")
    return 0


HANDLERS: dict[str, Callable[[Instance, argparse.Namespace], int]] = {
    "reload": _reload,
    "kill": _kill,
    "show": _show,
    "watch": _watch,
    "we_list_error": _we_list,
    "we_reset_error": _we_reset,
    "start_db_job": _start(False),
    "list_db_jobs": _list_jobs,
    "toggle_db_job": _toggle("job"),
    "list_db_watcher": _list_watchers,
    "toggle_db_watcher": _toggle("watcher"),
    "start_job": _start(True),
}
