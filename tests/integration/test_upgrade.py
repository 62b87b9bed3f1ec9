"""An operator's upgrade: the previous commit's build to this one with the data kept, a failed
verification rolling back by itself (a dictionary migration undone), --rollback; the instance's
shell and its alias (a real terminal)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss import install
from redpss.instance import Instance
from tests.conftest import BIN, free_port_base, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEFS = ROOT / "conf" / "demo-definitions.toml"


def previous_commit(tmp_path: Path) -> Path:
    """A checkout of the commit before this tree's HEAD."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: there is no previous commit to build")
    src = tmp_path / "previous"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "checkout", "-q", "HEAD~1"], check=True)
    return src


def this_tree(tmp_path: Path) -> Path:
    """This tree as it is (uncommitted changes included)."""
    src = tmp_path / "this"
    shutil.copytree(ROOT / "redpss", src / "redpss", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def next_with_a_migration(tmp_path: Path) -> Path:
    """This tree plus one dictionary migration (a build that changes the dictionary)."""
    src = tmp_path / "next"
    shutil.copytree(ROOT / "redpss", src / "redpss", ignore=shutil.ignore_patterns("__pycache__"))
    model = src / "redpss" / "dictionary" / "model.py"
    text = model.read_text()
    # the probe table joins TABLES and its migration ends MIGRATIONS, both just before the
    # model is built (a patch that no longer matches fails here, not as an unknown table)
    last = max(m.version for m in __import__("redpss.dictionary.model").dictionary.model.MIGRATIONS)
    end = "\n)\n\nDICTIONARY = Model("
    assert text.count(end) == 1, f"{model}: the end of MIGRATIONS is not {end!r} any more"
    text = text.replace(
        end,
        f"\n    Migration({last + 1}, 'upgrade probe', redsys=('ADM_UPGRADE_PROBE',)),\n)\n\n"
        "TABLES = TABLES + (Table('ADM_UPGRADE_PROBE', 'REDSYS', 'test', "
        "(Column('X', 'VARCHAR(10)', True, 'x'),)),)\n\n"
        "DICTIONARY = Model(",
    )
    model.write_text(text)
    return src


def tool(
    home: Path, name: str, *args: str, timeout: float = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    """This tree's tool (an upgrade is run by the newer redsysctl)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDENV")}
    env.update(REDHOME=str(home), **extra)
    return subprocess.run(
        [str(BIN / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=home,
        check=False,
    )


def counts(inst: Instance) -> tuple[int, int]:
    """Rows of DEMO.SALES and of its load ledger ((0, 0) before the first load)."""
    conn = sqlite3.connect(inst.db_dir / "DEMO.db")
    try:
        sales = conn.execute("SELECT COUNT(*) FROM SALES").fetchone()[0]
        ledger = conn.execute("SELECT COUNT(*) FROM ADM_LOAD_LOG").fetchone()[0]
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()
    return int(sales), int(ledger)


def dictionary_version(inst: Instance) -> int:
    with sqlite3.connect(inst.db_dir / "REDSYS.db") as conn:
        version = conn.execute("SELECT MAX(VERSION) FROM ADM_VERSION_HISTORY").fetchone()[0]
    conn.close()
    return int(version)


def test_upgrade_keeps_data_and_rolls_back_by_itself(redhome: Path, tmp_path: Path) -> None:
    home = redhome
    prev = tool(home, "redsysctl", "install", "--from", str(previous_commit(tmp_path)))
    assert prev.returncode == 0, prev.stdout + prev.stderr
    old = install.current_build(home)
    assert old is not None and (home / "bin" / "redctl").exists()
    out = tool(home, "redsysctl", "create", "up1", "--port-base", str(free_port_base()))
    assert out.returncode == 0 and f"runs build {old.version_id}" in out.stdout, out.stderr
    inst = Instance("up1", home)
    redctl = inst.home / "bin" / "redctl"
    for args in (("db", "init"), ("db", "apply", str(DEFS)), ("start",)):
        done = subprocess.run([str(redctl), *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    (inst.home / "data" / "input" / "sales_1.csv").write_text("ID,AMOUNT\n1,9.99\n2,5.00\n")
    wait_for(lambda: list((inst.home / "data" / "archive").glob("sales_1.csv*")), what="loaded")
    wait_for(lambda: counts(inst) == (2, 1), what="2 rows, 1 ledger entry")

    # this build: upgrade, data kept, every role on the new build
    new = install.install_build(home, this_tree(tmp_path))
    up = tool(home, "redsysctl", "--json", "upgrade", "up1", "--to", new.version_id)
    assert up.returncode == 0, up.stdout + up.stderr
    report = json.loads(up.stdout)
    assert (report["source"], report["target"]) == (old.version_id, new.version_id)
    assert install.instance_build(inst) == new
    assert counts(inst) == (2, 1)
    (inst.home / "data" / "input" / "sales_2.csv").write_text("ID,AMOUNT\n3,1.00\n")
    wait_for(lambda: counts(inst) == (3, 2), what="a load on the new build")
    version = json.loads(
        subprocess.run(
            [str(redctl), "--json", "version"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert version["version_id"] == new.version_id

    # a build with a migration whose verification fails: back by itself, migration undone
    nxt = install.install_build(home, next_with_a_migration(tmp_path))
    before = dictionary_version(inst)
    failed = tool(
        home,
        "redsysctl",
        "upgrade",
        "up1",
        "--to",
        nxt.version_id,
        "--verify-command",
        "echo the smoke test fails >&2; exit 3",
    )
    assert failed.returncode == 5, failed.stdout + failed.stderr
    assert "upgrade probe" in failed.stdout  # the migration was applied, then undone
    assert "the smoke test fails" in failed.stderr and "rolled back" in failed.stderr
    assert install.instance_build(inst) == new
    assert dictionary_version(inst) == before
    assert subprocess.run([str(redctl), "status"], capture_output=True, check=False).returncode == 0
    assert counts(inst) == (3, 2)

    # and back to the previous build on request
    back = tool(home, "redsysctl", "upgrade", "up1", "--rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert install.instance_build(inst) == old and counts(inst) == (3, 2)
    audit = [json.loads(x) for x in (inst.log_dir / "audit.log").read_text().splitlines()]
    ups = [(a["tool"], a["command"], a["exit_code"]) for a in audit if a["command"] == "upgrade"]
    assert ups == [
        ("redsysctl", "upgrade", 0),
        ("redsysctl", "upgrade", 5),
        ("redsysctl", "upgrade", 0),
    ]
    via = [a for a in audit if a.get("via") == "redsysctl upgrade"]
    assert {a["command"] for a in via} >= {"stop", "start", "db upgrade"}
    subprocess.run([str(redctl), "stop"], capture_output=True, check=False)


class Terminal:
    """The master side of a pty: what was read and not yet looked at stays for the next look."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""

    def expect(self, until: bytes, timeout: float = 20) -> str:
        """Everything up to and including ``until`` (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while until not in self.pending and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.pending += os.read(self.fd, 4096)
                except OSError:
                    break
        assert until in self.pending, self.pending.decode(errors="replace")
        cut = self.pending.index(until) + len(until)
        seen, self.pending = self.pending[:cut], self.pending[cut:]
        return seen.decode(errors="replace")

    def send(self, text: bytes) -> None:
        os.write(self.fd, text)


def test_the_instance_shell_and_its_alias(
    make_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    inst = make_instance("sh1")
    home = inst.redhome
    install.install(home)
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {**os.environ, "HOME": str(user_home), "REDHOME": str(home), "TERM": "dumb"}
    env.pop("REDENV", None)
    alias = tool(home, "redsysctl", "shell", "sh1", "--install-alias", HOME=str(user_home))
    assert alias.returncode == 0, alias.stderr
    master, slave = pty.openpty()
    bash = subprocess.Popen(
        ["bash", "-i"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        cwd=tmp_path,
    )
    os.close(slave)
    term = Terminal(master)
    try:
        term.send(b"sh1\n")  # the alias: the guide's switch
        banner = term.expect(b"SH1 [")
        assert "current environment: SH1" in banner and "exit with CTRL-D" in banner
        term.expect(b"# " if os.geteuid() == 0 else b"$ ")
        term.send(b"echo at=$PWD env=$REDENV; command -v redsysctl redctl\n")
        shown = term.expect(f"{inst.home}/bin/redctl".encode())
        assert f"at={inst.home} env=SH1" in shown
        assert f"{home}/bin/redsysctl" in shown
        term.expect(b"SH1 [")  # the prompt again: the shell waits for a line
        term.send(b"\x04")  # CTRL-D leaves the instance's shell
        term.expect(b"exit")  # bash says so when CTRL-D ends it
        term.send(b"echo left=${REDENV:-none}\n")
        term.expect(b"left=none")
        term.send(b"exit\n")
        assert bash.wait(20) == 0
    finally:
        if bash.poll() is None:
            bash.kill()
        os.close(master)


def test_an_instance_of_the_runtime_moves_to_a_build_and_back(
    make_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    inst = make_instance("up2")  # made before any build: it runs the runtime's own redpss
    home = inst.redhome
    assert tool(home, "redctl", "--instance", "up2", "db", "init").returncode == 0
    build = install.install_build(home, this_tree(tmp_path))
    up = tool(home, "redsysctl", "upgrade", "up2", "--to", build.version_id)
    assert up.returncode == 0, up.stdout + up.stderr
    assert install.instance_build(inst) == build
    assert "lib/redpss" in (inst.home / "bin" / "redctl").read_text()
    back = tool(home, "redsysctl", "upgrade", "up2", "--rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert install.instance_build(inst) is None
    assert "the runtime's own redpss" in back.stdout
    version = subprocess.run(
        [str(inst.home / "bin" / "redctl"), "--json", "version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(version.stdout)["installed_at"] == str(ROOT / "redpss")
