"""``redctl config``: show, get, set, edit, diff, history and rollback of red_params.conf.

Thin: parse, call :class:`redpss.conffile.ConfFile`, print (``--json`` for scripts). Every
change is checked whole first, backed up and audited; secrets are masked in every output.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import subprocess
import sys
from typing import Any

from redpss.conffile import ConfFile, Setting, settings_dicts
from redpss.errors import ConfigError
from redpss.instance import Instance

__all__ = ["ACTIONS", "READ_ONLY", "add_parser", "run"]

ACTIONS = ("show", "get", "set", "edit", "diff", "history", "rollback")
READ_ONLY = frozenset(("show", "get", "diff", "history"))
EFFECT = "it takes effect at the next start of the instance (redctl restart)"


def add_parser(sub: Any) -> None:
    """``redctl config ACTION …``."""
    p = sub.add_parser(
        "config",
        help="show and change red_params.conf (checked, backed up, audited)",
        description="Show and change red_params.conf. Every change is checked whole first "
        "(nothing is saved when it is refused), keeps a backup in etc/backup/ and an audit "
        "line; secret values are shown as ********.",
    )
    csub = p.add_subparsers(
        dest="config_action", metavar="{" + ",".join(ACTIONS) + "}", required=True
    )
    show = csub.add_parser("show", help="the file (secrets masked)")
    show.add_argument(
        "--effective",
        action="store_true",
        help="every key with the value in effect and where it comes from",
    )
    get = csub.add_parser("get", help="the value in effect of one key")
    get.add_argument("key", help="section.key or key (e.g. redsys.stop_grace, gu_port)")
    st = csub.add_parser(
        "set",
        help="set keys (keeps every comment and the layout)",
        description="Set KEY to VALUE; several pairs change together (keys that depend on "
        "each other). KEY is section.key or key; VALUE - reads the value from stdin (a "
        "secret then stays out of the shell's history and the process list).",
    )
    st.add_argument("pairs", nargs="+", metavar="KEY VALUE")
    csub.add_parser("edit", help="edit in $VISUAL/$EDITOR; saved only when valid")
    diff = csub.add_parser("diff", help="what the last change did (or: since backup N)")
    diff.add_argument("number", nargs="?", type=int, help="compare with backup N (1 = latest)")
    diff.add_argument(
        "--default",
        action="store_true",
        help="compare with a new instance's file (every local change)",
    )
    csub.add_parser("history", help="the backups: when, who, which keys changed")
    rb = csub.add_parser("rollback", help="put backup N back (default 1: undo the last change)")
    rb.add_argument("number", nargs="?", type=int, default=1)


def run(inst: Instance, args: argparse.Namespace) -> int:
    """Run ``redctl config ACTION``."""
    conf = ConfFile(inst.require())
    action: str = args.config_action
    if action == "show":
        return _show(conf, args)
    if action == "get":
        return _get(conf, args)
    if action == "set":
        return _set(conf, args)
    if action == "edit":
        return _edit(conf, args)
    if action == "diff":
        return _diff(conf, args)
    if action == "history":
        return _history(conf, args)
    return _rollback(conf, args)


def _show(conf: ConfFile, args: argparse.Namespace) -> int:
    from redpss.conffile import mask_text

    if not args.effective:
        text = mask_text(conf.read())
        if args.json:
            print(json.dumps({"path": str(conf.path), "text": text}, indent=2))
        else:
            sys.stdout.write(text)
        return 0
    settings = conf.effective()
    if args.json:
        print(json.dumps(settings_dicts(settings), indent=2))
        return 0
    width = max(len(f"{s.section}.{s.key}") for s in settings)
    for s in settings:
        value = s.value or "''"
        print(f"{s.section + '.' + s.key:<{width}}  {value:<24}  ({s.source})")
    return 0


def _setting_dict(s: Setting) -> dict[str, Any]:
    return {"key": f"{s.section}.{s.key}", "value": s.value, "source": s.source}


def _get(conf: ConfFile, args: argparse.Namespace) -> int:
    s = conf.get(args.key)
    if args.json:
        print(json.dumps(_setting_dict(s), indent=2))
    else:
        print(s.value)
    return 0


def _read_value(key: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"value of {key} (not shown): ")
    return sys.stdin.readline().rstrip("\n")


def _changed(
    conf: ConfFile,
    args: argparse.Namespace,
    doc: dict[str, Any],
    changes: list[str],
    backup_path: str | None,
) -> int:
    doc = {**doc, "changes": changes, "backup": backup_path}
    if args.json:
        print(json.dumps(doc, indent=2))
    elif not changes:
        print(f"{conf.path.name}: unchanged; nothing was saved")
    else:
        for line in changes:
            print(line)
        print(f"saved {conf.path} (previous version: {backup_path}); {EFFECT}")
    return 0


def _set(conf: ConfFile, args: argparse.Namespace) -> int:
    raw: list[str] = args.pairs
    if len(raw) % 2:
        raise UsageError(f"config set takes KEY VALUE pairs; {raw[-1]!r} has no value")
    pairs = [
        (key, _read_value(key) if value == "-" else value)
        for key, value in zip(raw[::2], raw[1::2], strict=True)
    ]
    specs, backup, changes = conf.set(pairs)
    doc = {"keys": [f"{s.section}.{s.key}" for s in specs]}
    return _changed(conf, args, doc, changes, str(backup.path) if backup else None)


class UsageError(ConfigError):
    """A bad argument found after parsing (exit 2)."""

    exit_code = 2


def _editor() -> list[str]:
    return shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")


def _edit(conf: ConfFile, args: argparse.Namespace) -> int:
    current = conf.read()
    draft = conf.inst.tmp / "red_params.conf.edit"
    draft.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(current)
    while True:
        try:
            done = subprocess.run([*_editor(), str(draft)], check=False)
        except OSError as exc:
            raise ConfigError(
                f"cannot run the editor {_editor()[0]!r} ($VISUAL, $EDITOR): {exc.strerror}"
            ) from exc
        if done.returncode != 0:
            raise ConfigError(
                f"the editor exited with {done.returncode}; nothing was saved (your text: {draft})"
            )
        new = draft.read_text(encoding="utf-8")
        try:
            backup, changes = conf.save(new, expected=current, command="edit")
        except ConfigError as exc:
            if not sys.stdin.isatty():
                raise ConfigError(f"{exc}\nnothing was saved; your text is in {draft}") from exc
            print(f"{exc}\nnothing was saved.", file=sys.stderr)
            answer = input("edit again (e) or discard your changes (d)? [e] ").strip().lower()
            if answer.startswith("d"):
                draft.unlink(missing_ok=True)
                print("discarded; red_params.conf is unchanged")
                return 1
            continue
        draft.unlink(missing_ok=True)
        return _changed(conf, args, {}, changes, str(backup.path) if backup else None)


def _diff(conf: ConfFile, args: argparse.Namespace) -> int:
    current = conf.read()
    if args.default:
        old, name = conf.default_text(), "default (a new instance's file, same ports)"
    else:
        backups = conf.backups()
        if not backups and args.number is None:
            print(f"{conf.path.name}: no backup yet (nothing was changed through redctl config)")
            return 0
        chosen = conf.backup(args.number or 1)
        old, name = chosen.path.read_text(encoding="utf-8"), str(chosen.path)
    text = conf.diff(old, current, name, str(conf.path))
    if args.json:
        from redpss.conffile import changed_keys

        print(
            json.dumps(
                {
                    "from": name,
                    "to": str(conf.path),
                    "diff": text,
                    "changes": changed_keys(old, current),
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write(text or "no difference\n")
    return 0


def _history(conf: ConfFile, args: argparse.Namespace) -> int:
    backups = conf.backups()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "number": b.number,
                        "backup": str(b.path),
                        "time": b.time.isoformat(),
                        "user": b.user,
                        "command": b.command,
                        "changes": list(b.changes),
                    }
                    for b in backups
                ],
                indent=2,
            )
        )
        return 0
    if not backups:
        print(f"{conf.path.name}: no backup yet (nothing was changed through redctl config)")
        return 0
    print("N  TIME (UTC)           USER        COMMAND: WHAT CHANGED FROM BACKUP N")
    for b in backups:
        print(f"{b.number:<2} {b.time:%Y-%m-%d %H:%M:%S}  {b.user:<11} {b.command}")
        for change in b.changes or ("(no key changed: comments or layout)",):
            print(f"{'':<35}{change}")
    print("(redctl config rollback N puts backup N back; diff N shows it)")
    return 0


def _rollback(conf: ConfFile, args: argparse.Namespace) -> int:
    chosen, backup, changes = conf.rollback(args.number)
    doc = {"restored": str(chosen.path), "number": chosen.number}
    if not args.json and changes:
        print(
            f"back to the version of {chosen.time:%Y-%m-%d %H:%M:%S} UTC (backup {chosen.number}):"
        )
    return _changed(conf, args, doc, changes, str(backup.path) if backup else None)
