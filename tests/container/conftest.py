"""The container tier: a real Docker engine, images built from a local base, compose projects.

The session fixture ``engine`` uses ``$DOCKER_HOST`` or a private dockerd (``images/engine.sh``:
installs Debian's docker.io when missing, own socket and data root under
/var/lib/redpss-ci/docker so that a second run reuses the images) and stops the dockerd it
started. ``images`` builds both images from a local Debian base (no registry is reachable in CI).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.instance import Instance
from tests.conftest import free_port_base

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENGINE = ROOT / "images" / "engine.sh"
# a cold build compiles OpenSSL and CPython (~10 min on 2 cores); later runs hit the layer cache
BUILD_TIMEOUT = 45 * 60


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with the test environment; output captured, shown when it fails."""
    proc = subprocess.run(
        cmd,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """DOCKER_HOST of a running engine for the whole session."""
    started = False
    host = os.environ.get("DOCKER_HOST")
    if not host:
        private = subprocess.run([str(ENGINE), "env"], capture_output=True, text=True, check=True)
        sock = private.stdout.strip().split("unix://", 1)[1]
        answered = (
            subprocess.run(
                ["docker", "-H", f"unix://{sock}", "version"], capture_output=True, check=False
            ).returncode
            == 0
            if shutil.which("docker")
            else False
        )
        proc = subprocess.run(
            [str(ENGINE), "start"], capture_output=True, text=True, timeout=900, check=False
        )
        if proc.returncode != 0:
            pytest.fail(f"no Docker engine: {proc.stderr}")
        host = proc.stdout.strip()
        started = not answered
    os.environ["DOCKER_HOST"] = host
    try:
        yield host
    finally:
        if started:
            subprocess.run([str(ENGINE), "stop"], check=False, timeout=120)


@pytest.fixture(scope="session")
def images(engine: str) -> None:
    """Both images, built from the local base (the layer cache makes this quick when warm)."""
    env = {
        **os.environ,
        "DOCKER_HOST": engine,
        "REDPSS_BASE_IMAGE": os.environ.get("REDPSS_TEST_BASE_IMAGE", "redpss-base:bookworm"),
        "SOURCE_ORIGIN": os.environ.get("SOURCE_ORIGIN", "debian"),
        "DOCKER_BUILD_NETWORK": "host",
        "PYTHON": sys.executable,
    }
    if "REDPSS_TEST_BASE_IMAGE" not in os.environ:
        run([str(ROOT / "images" / "base.sh")], env=env, timeout=600)
    run([str(ROOT / "images" / "build.sh"), "all"], env=env, timeout=BUILD_TIMEOUT)


@pytest.fixture
def redhome_c() -> Iterator[Path]:
    """A private $REDHOME for compose instances (owned by root; the init container chowns)."""
    path = Path(tempfile.mkdtemp(prefix="rhc", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def redhome_m() -> Iterator[Path]:
    """A private $REDHOME shared by the tests of one module (one instance up for all of them)."""
    path = Path(tempfile.mkdtemp(prefix="rhm", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def create(home: Path, prefix: str, **conf: str) -> Instance:
    """``redsysctl create NAME --compose`` on a free port block (below the ephemeral range: the
    host's docker-proxy binds every port of it), with ``conf`` set in red_params.conf.

    NAME is ``prefix`` and a random suffix: compose projects are named by the instance alone, and
    another session's container tier on the same engine must not share (and remove) them."""
    name = f"{prefix}{secrets.token_hex(2)}"
    env = {**os.environ, "REDHOME": str(home)}
    env.pop("REDENV", None)
    base = free_port_base()
    run([str(BIN / "redsysctl"), "create", name, "--compose", "--port-base", str(base)], env=env)
    inst = Instance(name, home)
    text = inst.conf_path.read_text()
    for key, value in conf.items():
        text, n = re.subn(rf"(?m)^#?\s*{key}\s*=.*$", f"{key} = {value}", text, count=1)
        assert n == 1, f"{key} is not in red_params.conf"
    inst.conf_path.write_text(text)
    return inst


def make(
    target: str, instance: str, home: Path, *extra: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``make <target> INSTANCE=<instance>`` with the test's REDHOME and engine."""
    env = {**os.environ, "REDHOME": str(home)}
    env.pop("REDENV", None)
    return run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            target,
            f"INSTANCE={instance}",
            f"VENV={BIN.parent}",
            *extra,
        ],
        env=env,
        timeout=timeout,
        check=check,
    )
