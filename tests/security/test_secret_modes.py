"""Issue 15 item 6: secrets and the dictionary are private; start refuses a readable secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redpss.instance import Instance
from tests.conftest import run_cli
from tests.security.conftest import Running, as_nobody, needs_root, running

__all__ = ["running"]  # the fixture, imported for pytest


@pytest.mark.parametrize(
    "path",
    ["etc/secret", "etc/cfi_password", "etc/red_params.conf", "data/db/REDSYS.db"],
)
def test_nobody_reads_no_secret_and_no_dictionary(running: Running, path: str) -> None:
    done = as_nobody("cat", str(running.home / path))
    assert done.returncode != 0 and "Permission denied" in done.stderr
    assert (running.home / path).stat().st_mode & 0o007 == 0


def test_nobody_cannot_list_etc(running: Running) -> None:
    assert as_nobody("ls", str(running.home / "etc")).returncode != 0


@pytest.mark.parametrize("path", ["etc/secret", "etc/cfi_password"])
def test_start_refuses_a_secret_others_can_read(
    make_instance: Callable[..., Instance], path: str
) -> None:
    needs_root()
    inst = make_instance("tst1")
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    (inst.home / path).chmod(0o644)
    out = run_cli("redctl", "start", inst=inst)
    assert out.returncode != 0
    assert "refusing to start" in out.stderr and str(inst.home / path) in out.stderr
    assert f"chmod 600 {inst.home / path}" in out.stderr
    assert run_cli("redctl", "status", inst=inst).returncode == 3  # nothing runs
    # a role started on its own (as supervisord restarts one) refuses as well
    role = run_cli("redpss", "role", "dbls", "--instance", "tst1", inst=inst, timeout=60)
    assert role.returncode != 0 and "refusing to start" in role.stderr
