"""Collect redpss and its dependencies as wheels for the image's CPython (run by build.sh).

    python images/wheels.py REPO DEST PYTHON_VERSION

The host's pip cannot do this in one step: it evaluates environment markers for its *own*
Python (a dependency needed only on 3.12+ is missed), and a dependency that is only an sdist has
no wheel to download. So: build what the host can (``pip wheel``), download for the target
(binary wheels for a glibc no newer than UBI 8's), then add, until none is left, every
requirement whose marker holds for the target Python but has no wheel yet.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pip._vendor.packaging.markers import default_environment
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", *args], check=True
    )


def download(dest: Path, host: Path, version: str, *specs: str) -> None:
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    pip(
        "download",
        "--dest",
        str(dest),
        "--find-links",
        str(host),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        version,
        *platforms,
        *specs,
    )


def missing(dest: Path, version: str) -> list[Requirement]:
    env = {
        **default_environment(),
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
    }
    have = {canonicalize_name(w.name.split("-")[0]) for w in dest.glob("*.whl")}
    wanted: list[Requirement] = []
    for whl in dest.glob("*.whl"):
        with zipfile.ZipFile(whl) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            lines = zf.read(meta).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            if canonicalize_name(req.name) not in have:
                wanted.append(req)
    return wanted


@contextlib.contextmanager
def build_info_file(repo: Path) -> Iterator[Path]:
    """``redpss/_build_info.json`` (commit, build date) in ``repo`` while its wheel is built:
    inside a container ``redctl version`` has no git checkout to ask. Removed afterwards, so
    that the checkout goes on identifying itself from git (redpss.buildinfo)."""
    sys.path.insert(0, str(repo))
    try:
        from redpss.buildinfo import BUILD_FILE, identify_source
    finally:
        sys.path.pop(0)
    path = repo / "redpss" / BUILD_FILE
    info = identify_source(repo)  # before the file exists: it would make the tree dirty
    path.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    repo, dest, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    host = dest.parent / "host-wheels"
    with build_info_file(repo):
        pip("wheel", "-w", str(host), str(repo))
    download(dest, host, version, *map(str, host.glob("redpss-*.whl")))
    for _ in range(10):
        todo = missing(dest, version)
        if not todo:
            return
        for req in todo:
            spec = f"{req.name}{req.specifier}"
            try:
                download(dest, host, version, spec)
            except subprocess.CalledProcessError:
                pip("wheel", "--no-deps", "-w", str(host), spec)  # an sdist: pure Python
                download(dest, host, version, spec)
    raise SystemExit(f"wheels.py: still missing: {missing(dest, version)}")


if __name__ == "__main__":
    main()
