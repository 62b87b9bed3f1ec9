"""Promise 3 and 4 at the tools: a local user without the instance's rights who runs redctl or
redsysctl is refused with the file and its owner named, and changes nothing.

Before, every command (``status`` and ``audit`` too) ended in a ``PermissionError`` traceback
(``log/redctl.log``, then ``etc/red_params.conf``).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from tests.security.conftest import SYSTEM_PYTHON, Running, as_nobody, running

__all__ = ["running"]  # the fixture, imported for pytest

REPO = Path(__file__).resolve().parents[2]
SITE = sysconfig.get_paths()["purelib"]


def _as_nobody_tool(run: Running, tool: str, *args: str) -> tuple[int, str, str]:
    """Run ``tool`` of this checkout as nobody, with the host's Python (the project's
    virtualenv may sit where nobody cannot enter), on the instance of ``run``."""
    readable = as_nobody("test", "-r", str(REPO / "redpss" / "__init__.py"))
    if readable.returncode != 0 or as_nobody("test", "-r", SITE).returncode != 0:
        pytest.skip(f"nobody cannot read this checkout ({REPO}) or its libraries ({SITE})")
    start = f"from redpss.cli.{tool} import main; sys.exit(main())"
    code = f"import sys; sys.argv[0] = {tool!r}; {start}"
    done = as_nobody(
        "env",
        f"PYTHONPATH={REPO}:{SITE}",
        f"REDHOME={run.instance.redhome}",
        f"REDENV={run.instance.name.upper()}",
        f"REDENV_HOME={run.home}",
        SYSTEM_PYTHON,
        "-c",
        code,
        *args,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("audit", "--tail", "3"),
        ("config", "show"),
        ("config", "history"),
        ("config", "set", "stop_grace", "20"),
        ("stop",),
        ("abort",),
        ("kill", "1"),
        ("list_db_jobs",),
    ],
)
def test_redctl_as_nobody_is_refused_with_the_owner_named(
    running: Running, args: tuple[str, ...]
) -> None:
    audit = running.home / "log" / "audit.log"
    before = audit.read_bytes() if audit.exists() else b""
    conf = running.instance.conf_path.read_bytes()
    code, out, err = _as_nobody_tool(running, "redctl", "--instance", running.instance.name, *args)
    assert code == 1, out + err
    assert "Traceback" not in err, err
    assert "Permission denied for user nobody" in err
    assert "(it belongs to root): run this as root, the instance's user" in err
    # nothing changed: the configuration, the audit log (nobody cannot write it), the roles
    assert running.instance.conf_path.read_bytes() == conf
    assert (audit.read_bytes() if audit.exists() else b"") == before
    assert running.role_pid("sched") > 0


@pytest.mark.parametrize("args", [("list",), ("status-all",), ("shell", "sec1")])
def test_redsysctl_as_nobody_is_refused_with_the_owner_named(
    running: Running, args: tuple[str, ...]
) -> None:
    code, out, err = _as_nobody_tool(running, "redsysctl", *args)
    assert code == 1, out + err
    assert "Traceback" not in err, err
    assert "Permission denied for user nobody" in err
