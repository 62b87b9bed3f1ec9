"""What build of redpss this is: ``redctl version`` and the versioned installs of an upgrade.

A build is identified by its **version id**: the package version and, as a local version
label, the git commit it was built from (``0.1.0+g1a2b3c4``); a tree with uncommitted changes
adds a hash of its content (``0.1.0+g1a2b3c4.dirty.5e6f7a8b``), a tree without git only that
hash (``0.1.0+h5e6f7a8b``). ``redsysctl install`` writes the identity into the package it
installs (``redpss/_build_info.json``: version id, commit, build date, source); a package
without that file (a development checkout) is identified from its git checkout at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import ssl
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["BUILD_FILE", "BuildInfo", "build_info", "identify_source", "tree_hash"]

BUILD_FILE = "_build_info.json"
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BuildInfo:
    """The identity of one build of redpss."""

    version: str
    """The package version (``redpss.__version__``)."""
    version_id: str
    """The version with the build's local label: the name of its ``$REDHOME/lib/<id>``."""
    git_commit: str
    git_dirty: bool
    build_date: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """For JSON."""
        return asdict(self)


def _git(source: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(source), *args],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def tree_hash(package: Path) -> str:
    """A hash of the package's source files (names and contents; caches left out)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo") or path.is_dir():
            continue
        if path.name == BUILD_FILE:
            continue
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _package_version(package: Path) -> str:
    text = (package / "__init__.py").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise ValueError(f"{package / '__init__.py'}: no __version__")


def identify_source(source: Path, *, when: datetime | None = None) -> BuildInfo:
    """The identity of the redpss source tree ``source`` (which holds ``redpss/``) if it were
    built now."""
    package = source / "redpss"
    version = _package_version(package)
    commit = _git(source, "rev-parse", "HEAD") or ""
    dirty = bool(commit) and bool(_git(source, "status", "--porcelain", "--", "redpss", "conf"))
    if commit and not dirty:
        label = f"g{commit[:7]}"
    elif commit:
        label = f"g{commit[:7]}.dirty.{tree_hash(package)[:8]}"
    else:
        label = f"h{tree_hash(package)[:8]}"
    return BuildInfo(
        version=version,
        version_id=f"{version}+{label}",
        git_commit=commit,
        git_dirty=dirty,
        build_date=(when or datetime.now(UTC)).isoformat(timespec="seconds"),
        source=str(source),
    )


def build_info(package: Path = _PACKAGE) -> BuildInfo:
    """The identity of the running redpss: its build file, else its git checkout."""
    try:
        doc = json.loads((package / BUILD_FILE).read_text(encoding="utf-8"))
        return BuildInfo(**doc)
    except (OSError, ValueError, TypeError):
        pass
    source = package.parent
    if (source / "pyproject.toml").is_file() and _git(source, "rev-parse", "HEAD"):
        found = identify_source(source)
        # a checkout is not built: its date is the last commit's
        date = _git(source, "log", "-1", "--format=%cI") or ""
        return BuildInfo(**{**found.to_dict(), "build_date": f"{date} (checkout)"})
    from redpss import __version__

    return BuildInfo(__version__, __version__, "", False, "unknown", str(package))


def runtime_info() -> dict[str, str]:
    """Python, OpenSSL and the platform this process runs on."""
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "openssl": ssl.OPENSSL_VERSION,
        "platform": platform.platform(),
        "package_path": str(_PACKAGE),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }
