"""The security tier: a real instance, attacked by a local user without rights.

The tests run as root; an attacker is ``nobody``, reached with ``runuser``. Its client is the
host's own Python (``/usr/bin/python3``: the project's virtualenv may sit in a folder nobody
cannot enter) running :data:`CLIENT`, a bare socket speaking lines, as ``nc`` would.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from redpss.config import Config
from redpss.instance import Instance, create_instance
from tests.conftest import _stop_supervisors, free_port_base, run_cli

SYSTEM_PYTHON = "/usr/bin/python3"

# argv[1] host, argv[2] port; stdin: JSON list of base64 lines to send at once. Prints one
# JSON object: the replies (parsed) in order and whether the server closed the connection.
CLIENT = r"""
import base64, json, socket, sys
lines = [base64.b64decode(x) for x in json.load(sys.stdin)]
out = {"replies": [], "closed": False, "error": None}
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    f = s.makefile("rb")
    try:
        s.sendall(b"".join(lines))
    except OSError as exc:
        out["error"] = repr(exc)
    for _ in lines:
        line = f.readline()
        if not line:
            out["closed"] = True
            break
        out["replies"].append(json.loads(line))
    else:
        s.settimeout(float(sys.argv[4]))
        try:
            out["closed"] = f.readline() == b""
        except OSError:
            pass
except OSError as exc:
    out["error"] = repr(exc)
print(json.dumps(out))
"""


def needs_root() -> None:
    """Skip unless this process can drop privileges to nobody (the tier runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("the security tier runs as root to act as nobody (runuser)")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is missing (Debian package python3)")


def as_nobody(
    *argv: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the unprivileged user nobody, in /, with a bare environment."""
    needs_root()
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return subprocess.run(
        [runuser, "-u", "nobody", "--", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    )


@dataclass
class Exchange:
    """What a raw client saw: the replies, and whether the server closed afterwards."""

    replies: list[dict[str, Any]]
    closed: bool
    error: str | None


def nobody_sends(
    port: int, *lines: bytes, host: str = "127.0.0.1", timeout: float = 30, linger: float = 1
) -> Exchange:
    """As nobody, send ``lines`` on one connection and read a reply per line.

    After the last reply waits ``linger`` seconds to see whether the server closes.
    """
    payload = json.dumps([base64.b64encode(line).decode() for line in lines])
    done = as_nobody(
        SYSTEM_PYTHON, "-c", CLIENT, host, str(port), str(timeout), str(linger), stdin=payload
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return Exchange(out["replies"], out["closed"], out["error"])


@dataclass
class Running:
    """A started instance of the tier: its paths, configuration and secret."""

    instance: Instance
    config: Config

    @property
    def secret(self) -> str:
        """The instance secret (root reads it; nobody cannot)."""
        return self.config.redsys.pss_secret.reveal()

    @property
    def home(self) -> Path:
        """``$REDENV_HOME``."""
        return self.instance.home

    def role_pid(self, role: str) -> int:
        """The pid of a running role (from redctl status --json)."""
        out = run_cli("redctl", "--json", "status", inst=self.instance)
        rows = json.loads(out.stdout)["roles"]
        return int(next(r["pid"] for r in rows if r["role"] == role))


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """One started instance (process mode, SQLite) for the tests of a module, as a real
    REDHOME lies: folders 0755, so that nobody meets exactly the modes the instance set."""
    needs_root()
    home = Path(tempfile.mkdtemp(prefix="rhs", dir="/tmp"))
    home.chmod(0o755)
    try:
        inst = Instance("sec1", home)
        create_instance(inst, port_base=free_port_base())
        text = inst.conf_path.read_text()  # short limits the tests can watch expire
        inst.conf_path.write_text(text.replace("[redsys]\n", "[redsys]\njexec_timeout = 3\n", 1))
        for args in (("db", "init"), ("start",)):
            out = run_cli("redctl", *args, inst=inst)
            assert out.returncode == 0, out.stdout + out.stderr
        yield Running(inst, inst.load_config())
    finally:
        _stop_supervisors(home)
        shutil.rmtree(home, ignore_errors=True)
