"""Role health: the verdict (against the SQL of STA_PSS_STATUS), what a role reports, the local
heartbeat record and ``redpss role X --check``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redpss.cli.redpss import _check_request
from redpss.cli.redpss import main as redpss_main
from redpss.dictionary import Dictionary, RoleStatus, open_dictionary
from redpss.dictionary.sqlite.core import to_db
from redpss.health import (
    DOWN_STATES,
    Verdict,
    check,
    heartbeat_path,
    is_healthy,
    judge,
    problems_text,
    write_record,
)
from redpss.instance import Instance
from redpss.roles import ROLES
from redpss.roles.base import Role, RoleContext, RoleHealth, _beat
from redpss.status import InstanceStatus, RoleRow, _row
from redpss.supervisor import ProcessInfo
from tests.conftest import wait_for
from tests.unit.test_dictionary import verdict_of

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
R = TypeVar("R", bound=Role)


# -- the verdict, against the SQL of both backends' reference ------------------------------


def test_a_restart_or_a_suspension_warns_but_the_role_is_healthy() -> None:
    restarted = judge(state="RUNNING", heartbeat_age=1, heartbeat_interval=5, restarts=1)
    assert (restarted.alert, restarted.healthy) == (1, True)
    paused = judge(state="SUSPENDED", heartbeat_age=1, heartbeat_interval=5)
    assert (paused.alert, paused.reason, paused.healthy) == (1, "suspended", True)


def test_a_problem_warns_and_makes_the_role_unhealthy_before_any_other_warning() -> None:
    v = judge(
        state="RUNNING",
        heartbeat_age=12,  # late, too
        heartbeat_interval=5,
        restarts=3,
        problems="FTPS serve loop is not running",
    )
    assert v == Verdict(1, "FTPS serve loop is not running", False)


def test_silence_and_down_states_are_alert_2_whatever_the_role_says() -> None:
    silent = judge(state="RUNNING", heartbeat_age=16, heartbeat_interval=5, problems="x")
    assert silent == Verdict(2, "no heartbeat for 16 s", False)
    for state in DOWN_STATES:
        down = judge(state=state, heartbeat_age=0, heartbeat_interval=5, last_exit="bye")
        assert down == Verdict(2, f"state {state}: bye", False)


STATES = st.sampled_from(["STARTING", "RUNNING", "SUSPENDED", "STOPPING", *DOWN_STATES])
TEXT = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
RECORDS = st.tuples(
    STATES,
    st.none() | st.integers(0, 100_000).map(lambda ms: ms / 1000),  # ages in whole ms
    st.sampled_from([0.5, 1.0, 2.5, 5.0, 60.0]),
    st.integers(0, 3),
    TEXT,
    TEXT,
    st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1),
)


@pytest.fixture(scope="module")
def sqlite_dic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dictionary]:
    with open_dictionary("sqlite", db_dir=tmp_path_factory.mktemp("db")) as d:
        d.init()
        yield d


@settings(max_examples=300, deadline=None)
@given(record=RECORDS)
def test_the_sql_of_sta_pss_status_is_the_python_verdict(
    sqlite_dic: Dictionary,
    record: tuple[str, float | None, float, int, str | None, str | None, str | None],
) -> None:
    state, age, interval, restarts, last_exit, info, problems = record
    beat = None if age is None else to_db(NOW - timedelta(seconds=age))
    path = sqlite_dic.db_dir / "REDSYS.db"  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM ADM_PSS_STATUS")
        conn.execute(
            "INSERT INTO ADM_PSS_STATUS (ROLE, STATE, PID, HOST, STARTED_AT, HEARTBEAT_AT, "
            "HEARTBEAT_INTERVAL, RESTARTS, LAST_EXIT, VERSION, INFO, PROBLEMS) "
            "VALUES ('r', ?, 1, 'h', ?, ?, ?, ?, ?, 't', ?, ?)",
            (state, to_db(NOW), beat, interval, restarts, last_exit, info, problems),
        )
    conn.close()
    (row,) = sqlite_dic.pss_status(now=NOW)
    verdict = verdict_of(record)
    assert (row.alert, row.alert_reason, row.healthy) == (
        verdict.alert,
        verdict.reason,
        verdict.healthy,
    )


# -- what a role reports ---------------------------------------------------------------------


def test_watched_threads_and_named_problems() -> None:
    health = RoleHealth()
    release = threading.Event()
    worker = health.start_thread("writer", release.wait)
    health.watch("accept loop", None)
    health.problem("relay", "relay refused login: 535 5.7.8 bad credentials")
    assert health.problems() == [
        "accept loop is not running",
        "relay refused login: 535 5.7.8 bad credentials",
    ]
    release.set()
    worker.join(5)
    assert "writer is not running" in health.problems()
    health.clear("relay")
    health.forget("accept loop")
    health.forget("writer")
    assert health.problems() == [] and health.text() is None


def test_a_thread_that_dies_of_an_exception_says_which(caplog: pytest.LogCaptureFixture) -> None:
    health = RoleHealth()

    def boom() -> None:
        raise OSError(28, "No space left on device")

    health.start_thread("dictionary writer", boom).join(5)
    assert health.problems() == [
        "dictionary writer died: OSError: [Errno 28] No space left on device"
    ]
    assert "thread 'dictionary writer' died" in caplog.text  # with its traceback


def test_problems_fit_their_column() -> None:
    text = problems_text(["x" * 1500, "y" * 1500])
    assert text is not None and len(text) == 2000 and text.endswith("…")
    assert problems_text([]) is None


# -- the local record and --check ----------------------------------------------------------


def _record(path: Path, **fields: object) -> None:
    values: dict[str, object] = {
        "role": "jexec",
        "pid": os.getpid(),
        "state": "RUNNING",
        "interval": 5.0,
        "info": None,
        "problems": None,
    }
    values.update(fields)
    write_record(path, **values)  # type: ignore[arg-type]


def test_check_judges_the_local_record(tmp_path: Path) -> None:
    path = Path(heartbeat_path(tmp_path, "jexec"))
    assert check(path) == Verdict(2, f"no heartbeat record at {path} (not started?)", False)
    _record(path)
    assert check(path) == Verdict(0, None, True)
    assert check(path, now=time.time() + 11) == Verdict(1, "heartbeat late (11 s)", True)
    assert not check(path, now=time.time() + 16).healthy
    _record(path, problems="request server is not running")
    assert check(path) == Verdict(1, "request server is not running", False)
    _record(path, state="STOPPED", info="stopped by SIGTERM")
    assert check(path) == Verdict(2, "state STOPPED: stopped by SIGTERM", False)
    _record(path, state="STARTING")
    assert check(path) == Verdict(0, None, False)  # not up yet
    path.write_text("{half")
    assert check(path).reason is not None and "unreadable" in str(check(path).reason)


def test_a_record_of_a_process_that_is_gone_is_unhealthy(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = Path(heartbeat_path(tmp_path, "jexec"))
    _record(path, pid=int(proc.stdout))
    verdict = check(path)
    assert not verdict.healthy and f"process {int(proc.stdout)} is gone" in str(verdict.reason)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["role", "jexec", "--check"], ("jexec", None)),
        (["role", "jexec", "--check", "--instance", "tst1"], ("jexec", "tst1")),
        (["role", "jexec", "--instance", "tst1", "--check"], ("jexec", "tst1")),
        (["role", "jexec", "--instance=tst1", "--check"], ("jexec", "tst1")),
        (["role", "jexec"], None),
        (["role", "nope", "--check"], None),  # argparse names the known roles
        (["role", "jexec", "--check", "--trace"], None),
        (["role", "jexec", "--check", "--instance"], None),
        (["version"], None),
    ],
)
def test_the_quick_check_takes_only_its_own_options(
    argv: list[str], expected: tuple[str, str | None] | None
) -> None:
    assert _check_request(argv) == expected


@pytest.fixture
def checked_instance(
    make_instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch
) -> Instance:
    inst = make_instance("tst1")
    for key, value in inst.environment().items():
        monkeypatch.setenv(key, value)
    return inst


def test_redpss_role_check_exit_codes(
    checked_instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(heartbeat_path(checked_instance.home, "jexec"))
    assert redpss_main(["role", "jexec", "--check"]) == 1
    assert "role jexec: no heartbeat record" in capsys.readouterr().err
    _record(path)
    assert redpss_main(["role", "jexec", "--check"]) == 0
    assert capsys.readouterr().out == "role jexec: healthy\n"
    _record(path, problems="request server is not running")
    assert redpss_main(["role", "jexec", "--check", "--instance", "tst1"]) == 1
    assert capsys.readouterr().err.endswith("role jexec: request server is not running\n")
    os.environ.pop("REDENV")
    assert redpss_main(["role", "jexec", "--check"]) == 1  # never 2: Docker reserves it
    assert "no instance given" in capsys.readouterr().err


def test_the_check_imports_nothing_of_the_role_stack(checked_instance: Instance) -> None:
    code = (
        "import sys; from redpss.cli.redpss import main; main(['role', 'jexec', '--check']); "
        "print(' '.join(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(proc.stdout.split())
    heavy = {
        "redpss.config",
        "redpss.dictionary",
        "redpss.control",
        "redpss.status",
        "sqlite3",
        "pyarrow",
    }
    heavy |= {"argparse", "logging", "dataclasses", "typing", "threading"}
    assert not heavy & loaded, heavy & loaded


# -- what the framework writes, and what status makes of it --------------------------------


class _Serving(Role):
    name = "jexec"

    def start(self) -> None:
        self.release = threading.Event()
        self.health.start_thread("request server", self.release.wait)


@contextlib.contextmanager
def _registered(inst: Instance, role_cls: type[R]) -> Iterator[tuple[R, Dictionary]]:
    """``role_cls`` started in this process on an initialised dictionary, registered, with one
    heartbeat written; stopped at the end."""
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        role = role_cls(RoleContext(inst, inst.load_config(), dic))
        role.start()
        try:
            pid = os.getpid()
            dic.register_role(role.name, pid=pid, host="h", version="t", heartbeat_interval=5)
            _beat(role, role.ctx, pid)
            yield role, dic
        finally:
            role.stop()


def test_a_heartbeat_carries_the_problems_to_the_dictionary_and_the_record(
    checked_instance: Instance,
) -> None:
    inst = checked_instance
    with _registered(inst, _Serving) as (role, dic):
        (row,) = dic.pss_status()
        assert (row.alert, row.problems, row.healthy) == (0, None, True)
        role.release.set()
        wait_for(lambda: role.health.problems(), what="the dead thread to be seen")
        _beat(role, role.ctx, os.getpid())
        (row,) = dic.pss_status()
        assert (row.alert, row.alert_reason, row.healthy) == (
            1,
            "request server is not running",
            False,
        )
    assert check(heartbeat_path(inst.home, "jexec")) == Verdict(
        1, "request server is not running", False
    )


def test_a_heartbeat_the_dictionary_refuses_is_a_problem_of_the_local_record(
    checked_instance: Instance,
) -> None:
    inst = checked_instance
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:  # not initialised: no table
        role = _Serving(RoleContext(inst, inst.load_config(), dic))
        role.start()
        _beat(role, role.ctx, os.getpid())
        role.release.set()
    verdict = check(heartbeat_path(inst.home, "jexec"))
    assert not verdict.healthy
    assert str(verdict.reason).startswith("heartbeat not written to the dictionary:")


def _proc(name: str, pid: int = 7) -> ProcessInfo:
    return ProcessInfo(name, "RUNNING", pid, 60.0, "", 0)


def _beat_of(name: str, pid: int = 7, problems: str | None = None) -> RoleStatus:
    """A fresh heartbeat row of ``name`` (ALERT 1 with the reason when it reports problems)."""
    alert, reason = (1, problems) if problems else (0, None)
    return RoleStatus(
        name, "RUNNING", pid, "h", NOW, NOW, 5.0, 0, None, "t", None, 1.0, alert, reason, problems
    )


@pytest.mark.parametrize(
    ("name", "suspended", "state", "alert", "reason"),
    [
        ("dbls", False, "RUNNING", 0, ""),
        ("dbls", True, "RUNNING", 0, "instance suspended"),
        ("sendmail", True, "RUNNING", 0, "instance suspended"),
        ("jmon", True, "SUSPENDED", 1, "suspended"),
        ("sched", True, "SUSPENDED", 1, "suspended"),
        ("json2csv", True, "SUSPENDED", 1, "suspended"),
    ],
)
def test_a_suspended_instance_pauses_jmon_and_sched_while_services_keep_running(
    name: str, suspended: bool, state: str, alert: int, reason: str
) -> None:
    row = _row(name, _proc(name), _beat_of(name), running=True, suspended=suspended)
    assert (row.state, row.alert, row.reason, row.healthy) == (state, alert, reason, True)


def test_a_role_reporting_a_problem_makes_the_instance_degraded() -> None:
    sick = _beat_of("cfisrv", 8, problems="FTPS serve loop is not running")
    rows = (
        _row("dbls", _proc("dbls"), _beat_of("dbls"), running=True, suspended=False),
        _row("cfisrv", _proc("cfisrv", 8), sick, running=True, suspended=False),
    )
    assert rows[1] == RoleRow(
        "cfisrv", "RUNNING", 8, 60.0, 1.0, 0, 1, "FTPS serve loop is not running", False
    )
    status = InstanceStatus("tst1", True, False, rows)
    assert (status.exit_code, status.summary) == (1, "DEGRADED")
    assert InstanceStatus("tst1", True, False, rows[:1]).exit_code == 0
    assert is_healthy("RUNNING", 1, None) and not is_healthy("RUNNING", 1, "x")


def test_unreadable_heartbeats_make_the_status_unknown_unless_a_role_is_down() -> None:
    # end to end this was the locked-dictionary fault test, whose lock a running instance
    # now refuses (tests/faults/test_dictionary_locked.py)
    rows = (_row("dbls", _proc("dbls"), None, running=True, suspended=False),)
    unknown = InstanceStatus("tst1", True, False, rows, unreadable="database is locked")
    assert (unknown.exit_code, unknown.summary) == (4, "UNKNOWN")
    assert "heartbeats not readable" in str(unknown.message)
    assert "database is locked" in str(unknown.message)
    down = (_row("dbls", None, None, running=True, suspended=False),)
    assert InstanceStatus("tst1", True, False, down, unreadable="x").exit_code == 1


def test_every_role_of_the_registry_has_the_quick_check() -> None:
    assert all(_check_request(["role", r, "--check"]) == (r, None) for r in ROLES)


def test_cfisrv_whose_serve_loop_dies_is_unhealthy_with_the_reason(
    checked_instance: Instance,
) -> None:
    from redpss.roles.cfisrv import Cfisrv

    with _registered(checked_instance, Cfisrv) as (role, dic):
        assert dic.pss_status()[0].healthy

        def broken(*args: object, **kwargs: object) -> None:
            raise OSError(9, "Bad file descriptor")

        role._server.ioloop.loop = broken  # the poller's descriptor is gone
        assert role._waker is not None
        role._waker.wake()  # the loop sleeps until something happens: its next pass fails
        wait_for(lambda: role.health.problems(), what="the dead serve loop to be seen")
        _beat(role, role.ctx, os.getpid())
        (row,) = dic.pss_status()
    reason = "FTPS serve loop failed: OSError: [Errno 9] Bad file descriptor"
    assert (row.state, row.alert, row.alert_reason, row.healthy) == ("RUNNING", 1, reason, False)
    assert check(heartbeat_path(checked_instance.home, "cfisrv")) == Verdict(1, reason, False)
