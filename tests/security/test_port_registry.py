"""The host's port registry (``/var/lib/redpss/ports``), which root's ``redsysctl create`` and
``redctl start`` write, attacked by a local user.

Before, the folder was world-writable (1777, like /tmp): nobody planted a link at the name of
root's temporary file and root wrote its entry through it into any file of the host (and made
it 0644); a FIFO named ``*.json`` hung every reader; ``flock -x .lock sleep`` as nobody hung every
``create`` and ``start`` with no word. Promise: root never writes through another user's link,
never waits on another user's file, waits for the lock a bounded time and then names the lock
and its holder; a registry others could write is closed to 0755 at root's first use.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.ports import LOCK_WAIT, PortRegistry
from tests.conftest import run_cli, wait_for
from tests.security.conftest import as_nobody, needs_root

# root's side, in its own process so that its pid is known before it writes (the old code
# named its temporary file .<entry>.<pid>): waits for a line on stdin, then records
ROOT_RECORDS = """
import json, sys
from pathlib import Path
from redpss.ports import host_registry
sys.stdin.readline()
reg = host_registry(Path(sys.argv[1]))
with reg.lock():
    reg.record(Path(sys.argv[2]), {16300, 16301})
    print(json.dumps(sorted(reg.used())))
"""


@pytest.fixture
def open_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry as the old code made it: root's folder, mode 1777; reachable by nobody."""
    needs_root()
    top = Path(tempfile.mkdtemp(prefix="accreg", dir="/tmp"))
    top.chmod(0o755)
    reg = top / "ports"
    reg.mkdir()
    reg.chmod(0o1777)
    monkeypatch.setenv("REDPSS_PORT_REGISTRY", str(reg))
    try:
        yield reg
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _root_records(reg: Path, conf: Path, plant: list[str]) -> subprocess.CompletedProcess[str]:
    """Start root's recorder, run ``plant`` (a shell line, as nobody, ``{pid}`` = root's pid),
    then let root record; bounded in time (the old code hung on a FIFO)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ROOT_RECORDS, str(conf.parent), str(conf)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "REDPSS_PORT_REGISTRY": str(reg)},
    )
    try:
        for line in plant:
            done = as_nobody("sh", "-c", line.replace("{pid}", str(proc.pid)))
            assert done.returncode == 0, done.stderr
        out, err = proc.communicate("go\n", timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("root's registry write hung on what nobody planted")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_root_never_writes_through_a_link_nobody_planted(open_registry: Path) -> None:
    reg = open_registry
    victim_dir = Path(tempfile.mkdtemp(prefix="accvic", dir="/tmp"))  # 0700, root's
    victim = victim_dir / "victim"
    victim.write_text("root's own\n")
    victim.chmod(0o600)
    conf = Path(tempfile.mkdtemp(prefix="accconf", dir="/tmp")) / "red_params.conf"
    conf.write_text("")
    entry = PortRegistry(reg)._file(conf).name
    try:
        done = _root_records(
            reg,
            conf,
            [
                f"ln -s {victim} {reg}/.{entry}." + "{pid}",  # the old temporary name
                f"ln -s {victim} {reg}/.{entry}.tmp",
            ],
        )
        assert done.returncode == 0, done.stderr
        assert victim.read_text() == "root's own\n"
        assert victim.stat().st_mode & 0o777 == 0o600
        # root's entry is there, a regular file, and the folder no longer lets nobody in
        recorded = reg / entry
        assert not recorded.is_symlink()
        assert json.loads(recorded.read_text())["ports"] == [16300, 16301]
        assert reg.stat().st_mode & 0o7777 == 0o755
        assert "writable by every user" in done.stderr
        touched = as_nobody("touch", f"{reg}/planted.json")
        assert touched.returncode != 0
    finally:
        shutil.rmtree(victim_dir, ignore_errors=True)
        shutil.rmtree(conf.parent, ignore_errors=True)


def test_root_ignores_what_nobody_put_in_the_registry(open_registry: Path) -> None:
    reg = open_registry
    conf = Path(tempfile.mkdtemp(prefix="accconf", dir="/tmp")) / "red_params.conf"
    conf.write_text("")
    claim = json.dumps({"conf": "/tmp", "ports": list(range(20000, 20020))})
    try:
        done = _root_records(
            reg,
            conf,
            [
                f"mkfifo {reg}/aaaa.json",  # a reader that opens it waits for a writer
                f"printf '%s' '{claim}' > {reg}/bbbb.json",  # nobody claims the first block
            ],
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [16300, 16301]  # nobody's claim does not count
        assert f"{reg}/bbbb.json ignored: it belongs to nobody" in done.stderr
    finally:
        shutil.rmtree(conf.parent, ignore_errors=True)


def _held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.parametrize("roots_lock", [False, True], ids=["nobodys-lock", "roots-0644-lock"])
def test_nobody_holding_the_lock_does_not_hang_create(
    open_registry: Path, roots_lock: bool
) -> None:
    reg = open_registry
    if roots_lock:  # the old code made it so: root's, 0644, which nobody may open and flock
        (reg / ".lock").touch(0o644)
    home = Path(tempfile.mkdtemp(prefix="acch", dir="/tmp"))
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    holder = subprocess.Popen(
        [runuser, "-u", "nobody", "--", "flock", "-x", str(reg / ".lock"), "sleep", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _held(reg / ".lock"), timeout=15, what="nobody's lock")
        began = time.monotonic()
        done = run_cli("redsysctl", "create", "tst1", "--port-base", "16340", home=home, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert time.monotonic() - began < LOCK_WAIT
        lock = (reg / ".lock").stat()
        assert lock.st_uid == 0 and lock.st_mode & 0o777 == 0o600
        assert as_nobody("flock", "-n", str(reg / ".lock"), "true").returncode != 0
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(home, ignore_errors=True)


def test_a_held_lock_is_waited_for_a_bounded_time_and_named(
    open_registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = open_registry
    reg.chmod(0o755)
    home = Path(tempfile.mkdtemp(prefix="acch", dir="/tmp"))
    done = run_cli("redsysctl", "create", "tst1", "--port-base", "16360", home=home, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    holder = subprocess.Popen(  # root's own process that hangs with the lock
        ["flock", "-x", str(reg / ".lock"), "sleep", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _held(reg / ".lock"), timeout=15, what="the held lock")
        began = time.monotonic()
        refused = run_cli(
            "redsysctl", "create", "tst2", "--port-base", "16380", home=home, timeout=60
        )
        took = time.monotonic() - began
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert LOCK_WAIT <= took < LOCK_WAIT + 20
        assert f"{reg / '.lock'} is held by pid {holder.pid} (flock, user root)" in refused.stderr
        # start records its ports too: a busy registry is a warning, never a refusal
        from redpss import control
        from redpss.instance import Instance

        inst = Instance("tst1", home)
        with caplog.at_level("WARNING"):
            control._check_ephemeral_ports(inst, inst.load_config())
        assert "ports not recorded in the host registry" in caplog.text
        assert f"is held by pid {holder.pid}" in caplog.text
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(home, ignore_errors=True)
