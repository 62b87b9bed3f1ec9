"""The installation on a RED server: ``$REDHOME``'s layout, versioned installs, the tools.

The guide's tree (``REDHOME=/app/redsys``)::

    $REDHOME/bin/      redsysctl, redctl, restctl, redftp_useradd, redftp_userdel
    $REDHOME/etc/      aliases.sh (the instance switch: one alias per instance)
    $REDHOME/lib/      one folder per installed build (<version id>, buildinfo.py), and
                       current -> the build the host's tools run
    $REDHOME/log/      audit.log of what concerns the host (install)
    $REDHOME/tmp/
    $REDHOME/env/<instance>/lib/redpss -> ../../../lib/<version id>: the build the instance runs

A build folder holds the ``redpss`` package as it was built (``redpss/_build_info.json`` says
which) and ``runtime``: the Python interpreter it runs on, whose site-packages give the
libraries (the guide's ``/app/python``: the runtime and libraries are one install, redpss's
code another, so instances of different versions run side by side on one runtime).

Every tool in a ``bin/`` is a small shell wrapper that runs the build's package with that
interpreter (``PYTHONPATH`` = the build, ``PYTHONSAFEPATH=1``: never a ``redpss/`` of the current
folder); an instance's wrappers run the instance's build, whatever ``current`` is. An instance
without ``lib/redpss`` (created before versioned installs) runs the interpreter's own redpss.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from redpss import buildinfo
from redpss.errors import InstanceError, RedpssError
from redpss.instance import SUBDIRS, Instance

__all__ = [
    "HOST_DIRS",
    "HOST_TOOLS",
    "INSTANCE_TOOLS",
    "Build",
    "builds",
    "current_build",
    "install",
    "install_build",
    "instance_build",
    "point_instance",
    "write_instance_tools",
]

HOST_DIRS = ("bin", "etc", "lib", "log", "tmp", "env")
HOST_TOOLS = {
    "redsysctl": "redpss.cli.redsysctl:main",
    "redctl": "redpss.cli.redctl:main",
    "restctl": "redpss.cli.restctl:main",
    "redftp_useradd": "redpss.cli.redftp:useradd_main",
    "redftp_userdel": "redpss.cli.redftp:userdel_main",
}
INSTANCE_TOOLS = ("redctl", "restctl")
CURRENT = "current"
RUNTIME = "runtime"


class InstallError(RedpssError):
    """An installation step failed (names what and where)."""


@dataclass(frozen=True)
class Build:
    """One installed build under ``$REDHOME/lib``."""

    path: Path
    info: buildinfo.BuildInfo
    python: str

    @property
    def version_id(self) -> str:
        """The folder's name."""
        return self.info.version_id


def lib_dir(home: Path) -> Path:
    """``$REDHOME/lib``."""
    return home / "lib"


def _read_build(path: Path) -> Build | None:
    try:
        info = buildinfo.build_info(path / "redpss")
        python = (path / RUNTIME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not (path / "redpss" / buildinfo.BUILD_FILE).is_file():
        return None
    return Build(path, info, python)


def builds(home: Path) -> list[Build]:
    """Every installed build, in the order they were installed."""
    found = []
    if lib_dir(home).is_dir():
        for path in lib_dir(home).iterdir():
            if path.is_dir() and not path.is_symlink():
                build = _read_build(path)
                if build is not None:
                    found.append(build)
    return sorted(found, key=lambda b: ((b.path / RUNTIME).stat().st_mtime_ns, b.version_id))


def find_build(home: Path, version: str) -> Build:
    """The installed build ``version`` (a version id, or a unique prefix of one)."""
    all_builds = builds(home)
    exact = [b for b in all_builds if b.version_id == version]
    matches = exact or [b for b in all_builds if b.version_id.startswith(version)]
    if len(matches) == 1:
        return matches[0]
    have = ", ".join(b.version_id for b in all_builds) or "none"
    what = "is ambiguous" if matches else "is not installed"
    raise InstallError(
        f"version {version!r} {what} under {lib_dir(home)} (installed: {have}); "
        "install one with: redsysctl install --from SOURCE"
    )


def current_build(home: Path) -> Build | None:
    """The build ``$REDHOME/lib/current`` points to (what the host's tools run)."""
    link = lib_dir(home) / CURRENT
    return _read_build(link.resolve()) if link.is_symlink() else None


def instance_build(inst: Instance) -> Build | None:
    """The build the instance runs (``$REDENV_HOME/lib/redpss``); None: the runtime's own."""
    link = inst.home / "lib" / "redpss"
    return _read_build(link.resolve()) if link.is_symlink() else None


def _copy_package(source_pkg: Path, target: Path) -> None:
    # conf/ is a link to the top-level conf folder in a checkout: copied as files
    shutil.copytree(
        source_pkg,
        target,
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
    )


def install_build(home: Path, source: Path | None = None, *, python: str | None = None) -> Build:
    """Install the redpss of ``source`` (a source tree holding ``redpss/``; default: the
    running package) as a build under ``$REDHOME/lib/<version id>``; return it.

    The same build installed again is found, not copied twice. The build is checked before it
    counts: its interpreter must import every tool of it (a missing library is named).
    """
    if source is None:
        running = Path(buildinfo.__file__).resolve().parent
        source = running.parent
        info = buildinfo.build_info(running)
    else:
        source = source.resolve()
        if not (source / "redpss" / "__init__.py").is_file():
            raise InstallError(f"{source}: not a redpss source tree (no redpss/__init__.py)")
        info = buildinfo.identify_source(source)
    python = python or sys.executable
    target = lib_dir(home) / info.version_id
    existing = _read_build(target) if target.is_dir() else None
    if existing is not None:
        return existing
    tmp = lib_dir(home) / f".{info.version_id}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    lib_dir(home).mkdir(parents=True, exist_ok=True)
    try:
        _copy_package(source / "redpss", tmp / "redpss")
        (tmp / "redpss" / buildinfo.BUILD_FILE).write_text(
            json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        (tmp / RUNTIME).write_text(python + "\n", encoding="utf-8")
        _check_build(tmp, python)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    build = _read_build(target)
    assert build is not None
    return build


def _check_build(path: Path, python: str) -> None:
    import subprocess

    modules = sorted({target.split(":")[0] for target in HOST_TOOLS.values()})
    code = "import " + ", ".join([*modules, "redpss.roles.sched", "redpss.roles.jmon"])
    env = {**os.environ, "PYTHONPATH": str(path), "PYTHONSAFEPATH": "1"}
    out = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(
            f"the build in {path} does not run on {python}: {last} (the runtime lacks a "
            "library this version needs: install it into the runtime first)"
        )


def _tool_text(
    tool: str, target: str, python: str, lib: str, *, header: str, instance: Instance | None = None
) -> str:
    module, _, func = target.partition(":")
    # argv[0] is the tool's name, as its messages say it
    call = f"import sys; sys.argv[0] = {tool!r}; from {module} import {func}; sys.exit({func}())"
    lines = ["#!/bin/sh", f"# {tool} ({header}; written by redsysctl)"]
    if instance is not None:
        lines.append(
            f"export REDHOME={shlex.quote(str(instance.redhome))} REDENV={instance.redenv} "
            f"REDENV_HOME={shlex.quote(str(instance.home))}"
        )
    lines += [
        f"lib={lib}",
        # the build's package, never a redpss/ of the current folder
        'if [ -d "$lib/redpss" ]; then export PYTHONPATH="$lib"; else unset PYTHONPATH; fi',
        "export PYTHONSAFEPATH=1",
    ]
    argv = f'--instance {instance.name} "$@"' if instance else '"$@"'
    lines.append(f"exec {shlex.quote(python)} -c {shlex.quote(call)} {argv}")
    return "\n".join(lines) + "\n"


def _write_tool(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    tmp.replace(path)


def write_host_tools(home: Path, build: Build | None) -> list[Path]:
    """``$REDHOME/bin/*``: the host's tools, running ``lib/current`` (or the runtime's)."""
    python = build.python if build is not None else sys.executable
    lib = shlex.quote(str(lib_dir(home) / CURRENT))
    written = []
    for tool, target in HOST_TOOLS.items():
        path = home / "bin" / tool
        _write_tool(path, _tool_text(tool, target, python, lib, header="of this RED server"))
        written.append(path)
    return written


def write_instance_tools(inst: Instance, build: Build | None) -> list[Path]:
    """``$REDENV_HOME/bin/redctl|restctl``: bound to the instance and to its build."""
    python = build.python if build is not None else sys.executable
    lib = '"$REDENV_HOME/lib/redpss"'
    written = []
    for tool in INSTANCE_TOOLS:
        path = inst.home / "bin" / tool
        text = _tool_text(
            tool, HOST_TOOLS[tool], python, lib, header=f"of instance {inst.name}", instance=inst
        )
        _write_tool(path, text)
        written.append(path)
    return written


def _relink(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (a relative link when both share a parent)."""
    try:
        dest: Path = Path(os.path.relpath(target, link.parent))
    except ValueError:
        dest = target
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(dest)
    tmp.replace(link)


def point_instance(inst: Instance, build: Build | None) -> None:
    """Let the instance run ``build`` (its ``lib/redpss`` link and its tools); None: the
    runtime's own redpss (no link)."""
    (inst.home / "lib").mkdir(parents=True, exist_ok=True)
    if build is None:
        (inst.home / "lib" / "redpss").unlink(missing_ok=True)
    else:
        _relink(inst.home / "lib" / "redpss", build.path)
    write_instance_tools(inst, build)


@dataclass
class InstallReport:
    """What ``redsysctl install`` did."""

    home: Path
    build: Build | None
    current: Build | None
    created: list[str]
    tools: list[Path]
    switched: bool


def install(home: Path, source: Path | None = None, *, switch: bool = True) -> InstallReport:
    """``redsysctl install``: lay out ``$REDHOME`` and write the host's tools into
    ``$REDHOME/bin``. With ``source`` (a source tree), install its build under ``lib/`` and
    make it ``current`` (unless ``switch`` is False and a current one exists); without, the
    tools run ``current`` if there is one, else the runtime's own redpss (a development
    checkout stays live). Idempotent."""
    created = []
    for sub in HOST_DIRS:
        path = home / sub
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            created.append(sub)
    build = install_build(home, source) if source is not None else None
    current = current_build(home)
    switched = False
    if build is not None and (switch or current is None):
        if current is None or current.path != build.path:
            _relink(lib_dir(home) / CURRENT, build.path)
            switched = True
        current = build
    tools = write_host_tools(home, current)
    return InstallReport(home, build, current, created, tools, switched)


def repair_instance(inst: Instance, *, port_base: int | None = None) -> list[str]:
    """``redsysctl repair``: recreate what ``create`` made and is missing — folders, secrets,
    ``red_params.conf`` (the default, with the instance's ports), the tools — touching nothing
    that exists (data, logs, an existing configuration). Returns what was recreated."""
    from redpss.conffile import ConfFile
    from redpss.instance import choose_free_base, conf_text, record_ports

    if not inst.home.is_dir():
        raise InstanceError(
            f"instance {inst.name!r} does not exist under {inst.redhome / 'env'}: "
            f"redsysctl create {inst.name}"
        )
    done = []
    for sub in SUBDIRS:
        path = inst.home / sub
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            done.append(f"folder {sub}/")
    for name, size in (("secret", 32), ("cfi_password", 24)):
        path = inst.etc / name
        if not path.exists():
            import secrets

            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(size) + "\n")
            done.append(
                f"etc/{name} (a new one"
                + (
                    ": reinstall the database-side scripts, redctl db scripts)"
                    if name == "secret"
                    else ")"
                )
            )
    if not inst.conf_path.exists():
        base = port_base if port_base is not None else _known_port_base(inst)
        if base is None:
            base = choose_free_base(inst)
        text = conf_text(inst, base)
        tmp = inst.conf_path.with_name(inst.conf_path.name + ".new")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(inst.conf_path)
        ConfFile(inst).check(text)
        record_ports(inst, inst.load_config())  # the block is the instance's again
        done.append(f"etc/red_params.conf (the default, ports from {base})")
    build = instance_build(inst)
    for tool in INSTANCE_TOOLS:
        if not (inst.home / "bin" / tool).exists():
            write_instance_tools(inst, build)
            done.append("bin/redctl, bin/restctl")
            break
    return done


def _known_port_base(inst: Instance) -> int | None:
    """The instance's port block: recorded in the host's port registry, else in its newest
    configuration backup; None when neither knows it."""
    from redpss.conffile import ConfFile
    from redpss.instance import port_base_of
    from redpss.ports import host_registry

    entry = host_registry(inst.redhome).entry(inst.conf_path)
    if entry is not None and entry.ports:
        return min(entry.ports)

    for backup in ConfFile(inst).backups():
        for line in backup.path.read_text(encoding="utf-8").splitlines():
            key, eq, value = line.partition("=")
            if eq and key.strip() == "sched_service_port" and value.strip().isdigit():
                return port_base_of(int(value.strip()))
    return None
