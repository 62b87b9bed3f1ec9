"""Shared test set-up: tier markers by folder, instance factories that always clean up."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redpss.instance import PORT_BLOCK, Instance, create_instance

TIERS = ("unit", "integration", "faults", "security", "container", "exasol")
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is marked with the tier of its folder (tests/<tier>/...)."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the instance switch of the shell that runs pytest; each test has its own
    port registry (the host's /var/lib/redpss/ports stays the operator's)."""
    for key in ("REDHOME", "REDENV", "REDENV_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("REDPSS_PORT_REGISTRY", str(tmp_path_factory.mktemp("ports")))


@pytest.fixture
def redhome() -> Iterator[Path]:
    """A short, private $REDHOME (UNIX socket paths must stay below 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    try:
        yield path
    finally:
        _stop_supervisors(path)
        shutil.rmtree(path, ignore_errors=True)


def _stop_supervisors(home: Path) -> None:
    """Stop every supervisord an instance under ``home`` still runs (by its pid file)."""
    for pidfile in home.glob("env/*/tmp/supervisord.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)


TEST_PORT_LOW = 20000


def _ephemeral_low() -> int:
    """The first port the kernel may hand to an outgoing connection (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base() -> int:
    """A random free block of instance ports: tests running side by side (several sessions,
    leftovers of others) do not race for the first free block as ``redsysctl create`` does.

    The block lies below the kernel's ephemeral range: there, any outgoing connection may take
    a port between the check and the bind of the role."""
    rng = random.Random()
    high = _ephemeral_low() - PORT_BLOCK
    for _ in range(200):
        base = rng.randrange(TEST_PORT_LOW, high, PORT_BLOCK)
        if all(_port_free(p) for p in range(base, base + PORT_BLOCK)):
            return base
    raise RuntimeError("no free block of ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def make_instance(redhome: Path) -> Callable[..., Instance]:
    """Factory: create an instance under the test's $REDHOME, with fast heartbeats."""

    def make(name: str = "tst1", **settings: str) -> Instance:
        inst = Instance(name, redhome)
        create_instance(inst, port_base=free_port_base())
        text = inst.conf_path.read_text()
        settings.setdefault("heartbeat_interval", "0.5")
        settings.setdefault("stop_grace", "10")
        for key, value in settings.items():
            # the template has every key, some commented out (their default): set it either way
            lines = text.splitlines()
            hits = [
                i for i, line in enumerate(lines) if line.lstrip("#").split("=")[0].strip() == key
            ]
            assert hits, f"{key} is not in the red_params.conf template"
            lines[hits[0]] = f"{key} = {value}"
            text = "\n".join(lines) + "\n"
        inst.conf_path.write_text(text)
        return inst

    return make


def run_cli(
    tool: str,
    *args: str,
    inst: Instance | None = None,
    home: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script as a user would, in a real process."""
    env = dict(os.environ)
    if inst is not None:
        env.update(inst.environment())
    elif home is not None:
        env["REDHOME"] = str(home)
    return subprocess.run(
        [str(BIN / tool), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def wait_for(predicate: Callable[[], object], *, timeout: float = 30, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.1)
