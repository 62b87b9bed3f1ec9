"""A role's child between fork and exec looks like the role (same command line, same
environment): it is not a role left without supervisor (jexec starting commands made `redctl
start` report "roles running without supervisor (jexec pid N)")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from redpss.instance import Instance
from redpss.supervisor import leftover_roles

FORKS = """
import os, sys
child = os.fork()
if child == 0:
    sys.stdin.read()  # a child that has not exec'd yet: the role's command line still
    os._exit(0)
print(child, flush=True)
sys.stdin.read()  # both end when the test closes their stdin
"""


def test_a_roles_forked_child_is_not_a_leftover_role(tmp_path: Path) -> None:
    inst = Instance("lft1", tmp_path)
    argv = [sys.executable, "-c", FORKS, "redpss.cli.redpss", "role", "jexec", "--instance", "lft1"]
    role = subprocess.Popen(
        argv,
        env={"REDENV_HOME": str(inst.home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert role.stdout is not None
        child = int(role.stdout.readline())
        deadline = time.monotonic() + 10
        while not leftover_roles(inst) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(p.pid, p.role) for p in leftover_roles(inst)] == [(role.pid, "jexec")]
        assert child not in [p.pid for p in leftover_roles(inst)]
    finally:
        assert role.stdin is not None
        role.stdin.close()  # the forked child ends too (it shares the pipe)
        role.kill()
        role.wait()
        if role.stdout is not None:
            role.stdout.close()
