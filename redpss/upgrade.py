"""``redsysctl upgrade``: move one instance to another build, and back by itself on failure.

Process mode (a build is a versioned install under ``$REDHOME/lib``, :mod:`redpss.install`)::

    1 check      the target build runs on its interpreter; the instance can be stopped
    2 stop       with the instance's current build (``bin/redctl stop``: nothing may be left)
    3 snapshot   the embedded dictionary (data/db) into tmp/upgrade/<time>/, and the tools
    4 switch     $REDENV_HOME/lib/redpss -> the target build; bin/redctl, bin/restctl rewritten
    5 db upgrade with the target build (new migrations; etc/, data/, log/ are never touched)
    6 start      with the target build (when the instance ran before, or with --start)
    7 verify     status exit 0 within --verify-timeout, every role running the target build
                 (its PYTHONPATH in /proc), and the operator's --verify-command, if given

A failure in 5-7 rolls back by itself: stop, the dictionary snapshot put back (only when step
5 applied migrations: migrations only add, but an older build refuses a newer dictionary), the
link and tools of the previous build, start, and its status checked. ``$REDENV_HOME/lib/previous``
keeps the build upgraded from: ``redsysctl upgrade INSTANCE --rollback`` goes back to it (the
dictionary stays as it is).

Container mode (``etc/compose.env``): the build is the runtime image; the upgrade sets
``REDPSS_IMAGE`` to the new tag (:func:`redpss.compose.update_settings`), recreates the
project, runs ``db upgrade`` in it, verifies the status, and sets the previous tag back when
the verification fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss import audit, install
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.supervisor import Supervisor

__all__ = [
    "EXIT_ROLLBACK_FAILED",
    "EXIT_ROLLED_BACK",
    "UpgradeError",
    "UpgradeReport",
    "rollback",
    "rollback_image",
    "snapshot_folder",
    "upgrade",
    "upgrade_image",
]

EXIT_ROLLED_BACK = 5
"""The upgrade failed and the instance is back on its previous build (and running as before)."""
EXIT_ROLLBACK_FAILED = 6
"""The upgrade failed and going back failed too: the operator must act (the report says how)."""

Progress = Callable[[str], None]
PREVIOUS = "previous"
UNVERSIONED = "runtime"


class UpgradeError(RedpssError):
    """An upgrade refused before anything changed (exit 1)."""


class StepFailed(RedpssError):
    """A step after the switch failed: the upgrade rolls back."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why


@dataclass
class UpgradeReport:
    """What an upgrade did."""

    instance: str
    source: str
    target: str
    was_running: bool
    result: str = "upgraded"
    failed_step: str = ""
    reason: str = ""
    migrations: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 upgraded; 5 failed and rolled back; 6 failed and the rollback failed too."""
        return {"upgraded": 0, "unchanged": 0, "rolled back": EXIT_ROLLED_BACK}.get(
            self.result, EXIT_ROLLBACK_FAILED
        )

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {**asdict(self), "exit_code": self.exit_code}


def _redctl(inst: Instance, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The instance's own redctl (its current build), as an operator would run it."""
    env = {**os.environ, **inst.environment(), audit.VIA_ENV: "redsysctl upgrade"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(inst.home / "bin" / "redctl"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _last(out: subprocess.CompletedProcess[str]) -> str:
    lines = (out.stderr.strip() or out.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit {out.returncode}"


def _label(build: install.Build | None) -> str:
    return build.version_id if build is not None else "the runtime's own redpss (unversioned)"


# ---------------------------------------------------------------------- snapshot


def snapshot_folder(parent: Path, stamp: str) -> Path:
    """A new, empty ``parent/<stamp>`` — ``<stamp>-2``, ``-3`` … when a snapshot of the same
    second is there (an upgrade and its rollback within one second collided)."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            n += 1
            continue
        return folder


def _snapshot(inst: Instance, folder: Path) -> None:
    """The tools, the link and the embedded dictionary, as they are before the switch."""
    tools = folder / "bin"
    tools.mkdir()
    for tool in install.INSTANCE_TOOLS:
        src = inst.home / "bin" / tool
        if src.exists():
            shutil.copy2(src, tools / tool)
    link = inst.home / "lib" / "redpss"
    (folder / "link").write_text(os.readlink(link) if link.is_symlink() else "", encoding="utf-8")
    db = folder / "db"
    db.mkdir()
    for path in sorted(inst.db_dir.glob("*.db")):
        # the backup API copies a consistent database (its WAL included)
        with (
            contextlib.closing(sqlite3.connect(path)) as src_conn,
            contextlib.closing(sqlite3.connect(db / path.name)) as dst_conn,
        ):
            src_conn.backup(dst_conn)


def _restore_tools(inst: Instance, folder: Path) -> None:
    for tool in install.INSTANCE_TOOLS:
        saved = folder / "bin" / tool
        if saved.exists():
            shutil.copy2(saved, inst.home / "bin" / tool)
    link = inst.home / "lib" / "redpss"
    target = (folder / "link").read_text(encoding="utf-8")
    if target:
        tmp = link.with_name(".redpss.rollback")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    else:
        link.unlink(missing_ok=True)


def _restore_dictionary(inst: Instance, folder: Path) -> None:
    saved = sorted((folder / "db").glob("*.db"))
    for path in inst.db_dir.glob("*.db*"):
        path.unlink()
    for path in saved:
        with (
            contextlib.closing(sqlite3.connect(path)) as src_conn,
            contextlib.closing(sqlite3.connect(inst.db_dir / path.name)) as dst_conn,
        ):
            src_conn.backup(dst_conn)


# ---------------------------------------------------------------------- verify


def _roles_on(inst: Instance, build: install.Build) -> list[str]:
    """Roles whose process does not run ``build`` (by the PYTHONPATH in its environment)."""
    wrong = []
    for proc in Supervisor(inst).processes():
        try:
            raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
        except OSError:
            wrong.append(f"{proc.name} (pid {proc.pid} not readable)")
            continue
        env = dict(x.split(b"=", 1) for x in raw.split(b"\0") if b"=" in x)
        path = env.get(b"PYTHONPATH", b"").decode()
        if not path or Path(path).resolve() != build.path.resolve():
            wrong.append(f"{proc.name} (PYTHONPATH {path or 'unset'})")
    return wrong


def _verify(
    inst: Instance,
    build: install.Build | None,
    *,
    running: bool,
    timeout: float,
    command: str | None,
) -> None:
    """Raise StepFailed unless the instance works on ``build``."""
    version = _redctl(inst, "--json", "version")
    if version.returncode != 0:
        raise StepFailed("verify", f"redctl version: {_last(version)}")
    info = json.loads(version.stdout)
    # a build older than the build identity has no version_id: its roles' PYTHONPATH tells
    if build is not None and info.get("version_id", build.version_id) != build.version_id:
        raise StepFailed("verify", f"redctl runs {info.get('version_id')}, not {build.version_id}")
    if str(info.get("dictionary_installed")) != str(info.get("dictionary_schema")):
        raise StepFailed(
            "verify",
            f"dictionary at version {info.get('dictionary_installed')}, the build needs "
            f"{info.get('dictionary_schema')}",
        )
    deadline = time.monotonic() + timeout
    if running:
        while True:
            status = _redctl(inst, "status")
            wrong = _roles_on(inst, build) if build is not None and status.returncode == 0 else []
            if status.returncode == 0 and not wrong:
                break
            if time.monotonic() > deadline:
                why = (
                    f"roles not on the new build: {', '.join(wrong)}"
                    if wrong
                    else f"status exit {status.returncode}: {_last(status)}"
                )
                raise StepFailed("verify", f"{why} after {timeout:.0f} s")
            time.sleep(1.0)
    if command:
        env = {**os.environ, **inst.environment(), "REDPSS_UPGRADE_TO": _label(build)}
        left = max(deadline - time.monotonic(), 10.0)
        try:
            out = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=inst.home,
                env=env,
                capture_output=True,
                text=True,
                timeout=left,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(
                "verify", f"--verify-command did not end within {left:.0f} s"
            ) from None
        if out.returncode != 0:
            raise StepFailed(
                "verify", f"--verify-command {command!r} exit {out.returncode}: {_last(out)}"
            )


# ---------------------------------------------------------------------- the procedure


def _stop(inst: Instance, step: str) -> None:
    out = _redctl(inst, "stop")
    if out.returncode == 0:
        return
    forced = _redctl(inst, "stop", "--force")
    if forced.returncode != 0:
        raise StepFailed(step, f"the instance does not stop: {_last(out)}; {_last(forced)}")


def _check_startable(inst: Instance, build: install.Build) -> None:
    from redpss.install import _check_build

    try:
        _check_build(build.path, build.python)
    except install.InstallError as exc:
        raise UpgradeError(f"{exc}; nothing was changed") from exc


def upgrade(
    inst: Instance,
    target: install.Build | None,
    *,
    start: bool = False,
    verify_timeout: float = 60.0,
    verify_command: str | None = None,
    progress: Progress | None = None,
) -> UpgradeReport:
    """Upgrade (or move back) ``inst`` to ``target`` (the module docstring has the steps);
    ``target`` None: the runtime's own redpss (where an instance created before builds came
    from)."""
    say = progress or (lambda _line: None)
    began = time.monotonic()
    inst.require()
    source = install.instance_build(inst)
    running = Supervisor(inst).is_running()
    report = UpgradeReport(inst.name, _label(source), _label(target), running)
    if (source.path if source else None) == (target.path if target else None):
        report.result = "unchanged"
        return report
    if target is not None:
        _check_startable(inst, target)
    say(f"upgrading {inst.name}: {report.source} -> {report.target}")
    if running:
        say("  stopping with the current build")
        stop = _redctl(inst, "stop")
        if stop.returncode != 0:
            raise UpgradeError(f"stop refused or incomplete ({_last(stop)}); nothing was changed")
    folder = snapshot_folder(inst.tmp / "upgrade", datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))
    _snapshot(inst, folder)
    say(f"  snapshot of the tools and the dictionary: {folder}")
    migrated = False
    try:
        install.point_instance(inst, target)
        say(f"  switched: lib/redpss -> {target.path if target else '(none: the runtime)'}")
        up = _redctl(inst, "db", "upgrade")
        if up.returncode != 0:
            raise StepFailed("db upgrade", _last(up))
        lines = [x for x in up.stdout.splitlines() if x.strip() and "up to date" not in x]
        report.migrations, migrated = lines, bool(lines)
        say("  db upgrade: " + ("; ".join(lines) if lines else "up to date"))
        if running or start:
            began_start = _redctl(inst, "start")
            if began_start.returncode != 0:
                raise StepFailed("start", _last(began_start))
            say("  started with the new build")
        _verify(
            inst, target, running=running or start, timeout=verify_timeout, command=verify_command
        )
        say("  verified")
    except (StepFailed, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        failed = exc if isinstance(exc, StepFailed) else StepFailed("verify", str(exc))
        report.failed_step, report.reason = failed.step, failed.why
        say(f"  FAILED at {failed.step}: {failed.why}; rolling back")
        _roll_back(inst, source, folder, migrated=migrated, running=running, report=report, say=say)
        report.seconds = time.monotonic() - began
        return report
    # lib/previous: the build this came from; a link to "runtime" (no such build): unversioned
    previous = inst.home / "lib" / PREVIOUS
    install._relink(previous, source.path if source is not None else previous.parent / UNVERSIONED)
    report.seconds = time.monotonic() - began
    return report


def _roll_back(
    inst: Instance,
    source: install.Build | None,
    folder: Path,
    *,
    migrated: bool,
    running: bool,
    report: UpgradeReport,
    say: Progress,
) -> None:
    try:
        _stop(inst, "rollback: stop")
        if migrated and inst.db_dir.is_dir():
            _restore_dictionary(inst, folder)
            say("  dictionary put back from the snapshot (the migrations are undone)")
        _restore_tools(inst, folder)
        say(f"  back on {report.source}")
        if running:
            out = _redctl(inst, "start")
            if out.returncode != 0:
                raise StepFailed("rollback: start", _last(out))
        _verify(inst, source, running=running, timeout=60.0, command=None)
    except (StepFailed, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        report.result = "rollback failed"
        report.reason += f"; the rollback failed too: {exc} (the snapshot is in {folder})"
        say(f"  ROLLBACK FAILED: {exc}")
        return
    report.result = "rolled back"
    say("  rolled back" + (", running again" if running else ""))


def rollback(inst: Instance, **kwargs: Any) -> UpgradeReport:
    """``redsysctl upgrade INSTANCE --rollback``: back to the build upgraded from."""
    link = inst.home / "lib" / PREVIOUS
    if not link.is_symlink():
        raise UpgradeError(
            f"instance {inst.name} has no previous build to go back to ({link} is missing)"
        )
    if Path(os.readlink(link)).name == UNVERSIONED:
        return upgrade(inst, None, **kwargs)
    previous = install._read_build(link.resolve())
    if previous is None:
        raise UpgradeError(f"the previous build of {inst.name} is gone: {os.readlink(link)}")
    return upgrade(inst, previous, **kwargs)


# ---------------------------------------------------------------------- container mode


def _image_state(inst: Instance) -> Path:
    return inst.etc / "upgrade.previous_image"


def upgrade_image(
    inst: Instance,
    image: str,
    *,
    start: bool = False,
    verify_timeout: float = 60.0,
    verify_command: str | None = None,
    progress: Progress | None = None,
) -> UpgradeReport:
    """Container mode: run ``image`` instead of the current runtime image (see the module
    docstring); the previous tag goes back when a step fails."""
    from redpss import compose
    from redpss.status import compose_status

    del start  # a container instance is started by the upgrade (compose up)
    say = progress or (lambda _line: None)
    began = time.monotonic()
    config = inst.load_config()
    previous = compose.load_settings(inst).REDPSS_IMAGE
    report = UpgradeReport(inst.name, previous, image, was_running=True)
    if previous == image:
        report.result = "unchanged"
        return report
    say(f"upgrading {inst.name}: image {previous} -> {image}")
    compose.update_settings(inst, REDPSS_IMAGE=image)
    try:
        if compose.down(inst) != 0:
            raise StepFailed("stop", "docker compose down failed")
        if compose.up(inst, timeout=int(verify_timeout)) != 0:
            raise StepFailed("start", "docker compose up did not bring every service up")
        if compose.exec_redctl(inst, config, ["db", "upgrade"]) != 0:
            raise StepFailed("db upgrade", "redctl db upgrade failed in the container")
        deadline = time.monotonic() + verify_timeout
        while compose_status(inst, config).exit_code != 0:
            if time.monotonic() > deadline:
                raise StepFailed("verify", f"status not 0 after {verify_timeout:.0f} s")
            time.sleep(2.0)
        if verify_command:
            env = {**os.environ, **inst.environment(), "REDPSS_UPGRADE_TO": image}
            out = subprocess.run(
                ["/bin/sh", "-c", verify_command],
                cwd=inst.home,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise StepFailed("verify", f"--verify-command exit {out.returncode}: {_last(out)}")
    except StepFailed as exc:
        report.failed_step, report.reason = exc.step, exc.why
        say(f"  FAILED at {exc.step}: {exc.why}; back to {previous}")
        compose.update_settings(inst, REDPSS_IMAGE=previous)
        ok = compose.down(inst) == 0 and compose.up(inst, timeout=int(verify_timeout)) == 0
        report.result = "rolled back" if ok else "rollback failed"
        report.seconds = time.monotonic() - began
        return report
    _image_state(inst).write_text(previous + "\n", encoding="utf-8")
    report.seconds = time.monotonic() - began
    return report


def rollback_image(inst: Instance, **kwargs: Any) -> UpgradeReport:
    """Container mode ``--rollback``: back to the image the last upgrade came from."""
    try:
        previous = _image_state(inst).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UpgradeError(f"instance {inst.name} has no previous image to go back to") from None
    return upgrade_image(inst, previous, **kwargs)
