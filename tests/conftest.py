"""The test toolkit every tier shares: tier markers by folder, instance and relay factories that
always clean up, ``free_port``, ``wait_for``, ``run_cli``.

- Ports: ``free_port()`` and ``free_port_base()`` hand out ports *below* the kernel's ephemeral
  range (``/proc/sys/net/ipv4/ip_local_port_range``), never port 0: in that range any outgoing
  connection may take the port between the check and the server's bind. Single ports come from
  the top 2,000 ports below the range, instance blocks from below those, so the two never meet.
- Waiting: ``wait_for(predicate, timeout=…, what=…)`` polls with a deadline and returns the
  predicate's (truthy) value; never ``sleep`` to wait for something.
- SMTP: ``make_relay(tls=…, login=…, start=…)`` is a real aiosmtpd relay on loopback
  (``tests/smtp_relay.py``), stopped at the end of the test.
"""

from __future__ import annotations

import gc
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
from typing import TypeVar

import pytest

from redpss.instance import PORT_BLOCK, Instance, create_instance
from redpss.ports import ephemeral_range
from tests.smtp_relay import Inbox, Relay, tls_context

T = TypeVar("T")

TIERS = ("unit", "integration", "faults", "security", "container", "exasol")
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is marked with the tier of its folder (tests/<tier>/...)."""
    here = Path(__file__).resolve().parent
    for item in items:
        # the folder below tests/, not any part of the path (a checkout in .../faults/ would
        # put every test into the faults tier)
        parts = Path(str(item.fspath)).resolve().relative_to(here).parts
        for tier in TIERS:
            if parts and parts[0] == tier:
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
SINGLE_PORTS = 2000  # the top of the test range, below the ephemeral range: free_port()
_handed_out: set[int] = set()  # ports this pytest process gave out (its servers may not bind yet)


def _ephemeral_low() -> int:
    """The first port the kernel may hand to an outgoing connection (ip_local_port_range)."""
    return ephemeral_range()[0]


def free_port_base() -> int:
    """A random free block of instance ports: tests running side by side (several sessions,
    leftovers of others) do not race for the first free block as ``redsysctl create`` does.

    The block lies below the kernel's ephemeral range: there, any outgoing connection may take
    a port between the check and the bind of the role."""
    high = _ephemeral_low() - SINGLE_PORTS - PORT_BLOCK
    for _ in range(200):
        base = random.randrange(TEST_PORT_LOW, high, PORT_BLOCK)
        block = range(base, base + PORT_BLOCK)
        if _handed_out.isdisjoint(block) and all(_port_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError("no free block of ports found")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now and this process has not handed out.

    Below the kernel's ephemeral range (not port 0): see the module docstring."""
    high = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(high - SINGLE_PORTS, high)
        if port not in _handed_out and _port_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server that sets SO_REUSEADDR (as the roles do) could bind ``port`` now: a
    port in TIME-WAIT is, one in use or in a connection's own state is not."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
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


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float = 30, what: str = "", every: float = 0.1
) -> T:
    """Poll ``predicate`` every ``every`` s until it returns something truthy, and return that;
    fail the test at the deadline, naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(every)


MakeRelay = Callable[..., Relay]


@pytest.fixture
def make_relay(tmp_path: Path) -> Iterator[MakeRelay]:
    """Factory: a real SMTP relay on a free loopback port, stopped at the end of the test.

    ``make_relay()`` accepts any mail in clear text; ``tls=True`` demands STARTTLS (the client
    trusts ``relay.cafile``); ``login=(user, password)`` demands AUTH; ``start=False`` leaves it
    down until ``relay.start()`` (a relay that is down, then comes up). A recipient
    ``nobody@…`` is refused with 550.
    """
    relays: list[Relay] = []

    def make(
        *, tls: bool = False, login: tuple[str, str] | None = None, start: bool = True
    ) -> Relay:
        port = free_port()
        cafile = tmp_path / f"relay-{port}-ca.pem" if tls else None
        context = tls_context(cafile) if cafile else None
        relay = Relay(port, Inbox(), tls=context, cafile=cafile, login=login)
        relays.append(relay)
        if start:
            relay.start()
        return relay

    try:
        yield make
    finally:
        for relay in relays:
            relay.stop()
        # what the relays left unclosed warns now, in this test, not in whichever test the
        # garbage collector happens to run in next
        gc.collect()
