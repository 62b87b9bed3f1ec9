"""The runtime image's wheel knows its build: ``redctl version`` inside a container (issue #16)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]


def _wheels() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wheels", ROOT / "images" / "wheels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_the_wheel_is_built_with_its_build_info_and_the_checkout_stays_clean(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "src"
    shutil.copytree(ROOT / "redpss", repo / "redpss", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "_build_info.json"))  # fmt: skip
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "x")
    head = _git(repo, "rev-parse", "HEAD")
    with _wheels().build_info_file(repo) as path:
        assert path == repo / "redpss" / "_build_info.json"
        info = json.loads(path.read_text())
        assert info["git_commit"] == head and info["git_dirty"] is False
        assert info["version_id"].endswith(f"+g{head[:7]}") and info["build_date"]
        assert _git(repo, "status", "--porcelain") == ""  # ignored: no "dirty" build
    assert not path.exists()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "_build_info.json" in package_data["package-data"]["redpss"]  # it goes into the wheel
