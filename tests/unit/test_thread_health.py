"""Every worker thread of sched and mail2cmd is in the role's heartbeat (#18): one that dies or
ends makes the role unhealthy (ALERT 1) with the thread's name, and ``--check`` exit 1 — where
before the role stayed RUNNING, ALERT 0, while nothing was run, recorded, watched or received.
"""

from __future__ import annotations

import os
import re
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from redpss.cli.redpss import main as redpss_main
from redpss.dictionary.jobs import JobDef
from redpss.health import check, heartbeat_path
from redpss.instance import Instance
from redpss.roles.base import _beat
from tests.conftest import wait_for
from tests.unit.test_health import _registered

pytestmark = pytest.mark.unit


@pytest.fixture
def inst(make_instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch) -> Instance:
    # heartbeats are written by the test (_beat); a long interval keeps a loaded host's pause
    # between the beat and --check from reading as "no heartbeat for N s"
    instance = make_instance("tst1", sched_default_pool_size="2", heartbeat_interval="5")
    for key, value in instance.environment().items():
        monkeypatch.setenv(key, value)
    return instance


def _broken(*args: object) -> bool:
    raise RuntimeError("broken on purpose")


@pytest.mark.parametrize(
    ("thread", "problem"),
    [
        ("worker", r"default worker [01] died: RuntimeError: broken on purpose"),
        ("release", r"release thread died: RuntimeError: broken on purpose"),
        ("writer", r"run log writer died: RuntimeError: broken on purpose"),
        ("watchers", r"watcher thread is not running"),
    ],
)
def test_sched_whose_worker_thread_ends_is_unhealthy_naming_it(
    inst: Instance, capsys: pytest.CaptureFixture[str], thread: str, problem: str
) -> None:
    from redpss.roles.sched import Sched

    job = JobDef("j", "DWH", "SQL", "SELECT 1")
    with _registered(inst, Sched) as (role, dic):
        assert dic.pss_status()[0].healthy
        assert role.health.problems() == []
        engine = role.engine
        if thread == "worker":  # a callback that raises ends the worker that ran the run
            engine.on_end.append(_broken)
            engine.submit(job)
        elif thread == "release":  # the thread that queues runs handed over ahead of time
            engine.paused = _broken
            engine.submit(job, due=datetime.now(UTC) + timedelta(seconds=0.2))
        elif thread == "writer":  # not a DictionaryError: not retried, the writer ends
            engine.writer.dictionary = SimpleNamespace(record_runs=_broken)  # type: ignore[assignment]
            engine.submit(job)
        else:
            role.watchers.stop()
        problems = wait_for(role.health.problems, timeout=15, what=f"the {thread} to be missed")
        _beat(role, role.ctx, os.getpid())
        (row,) = dic.pss_status()
        assert redpss_main(["role", "sched", "--check"]) == 1
    assert len(problems) == 1 and re.fullmatch(problem, problems[0]), problems
    assert (row.state, row.alert, row.alert_reason, row.healthy) == (
        "RUNNING",
        1,
        problems[0],
        False,
    )
    # "in": a handler an earlier test left on a closed stream may add "--- Logging error ---"
    assert f"role sched: {problems[0]}\n" in capsys.readouterr().err
    assert not check(heartbeat_path(inst.home, "sched")).healthy


def test_sched_watches_every_pool_worker_and_its_other_threads(inst: Instance) -> None:
    from redpss.roles.sched import Sched

    with _registered(inst, Sched) as (role, _):
        names = set(role.engine.threads) | {"watcher thread"}
        assert names == {
            "default worker 0",
            "default worker 1",
            *(f"loader worker {i}" for i in range(role.engine.sizes["loader"])),
            *(f"action worker {i}" for i in range(role.engine.sizes["action"])),
            "release thread",
            "run log writer",
            "watcher thread",
        }
        assert names <= set(role.health._threads)


def test_sched_with_lineage_watches_its_sender(
    make_instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch
) -> None:
    from redpss.roles.sched import Sched

    inst = make_instance("tst1", heartbeat_interval="5", lineage_url="http://127.0.0.1:9/")
    for key, value in inst.environment().items():
        monkeypatch.setenv(key, value)
    with _registered(inst, Sched) as (role, _):
        assert role.lineage is not None and role.health.problems() == []
        role.lineage.close()  # its thread ends: no run event would be sent
        assert role.health.problems() == ["lineage sender is not running"]


def test_mail2cmd_whose_smtp_server_thread_ends_is_unhealthy(
    inst: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    from redpss.roles.mail2cmd import Mail2cmd

    with _registered(inst, Mail2cmd) as (role, dic):
        assert dic.pss_status()[0].healthy
        controller = role._controller
        assert controller is not None
        port = inst.load_config().redsys.mail2csv_port
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            assert smtp.noop()[0] == 250
        controller.loop.call_soon_threadsafe(controller.loop.stop)  # its event loop ends
        problems = wait_for(role.health.problems, timeout=15, what="the SMTP server missed")
        _beat(role, role.ctx, os.getpid())
        (row,) = dic.pss_status()
        assert redpss_main(["role", "mail2cmd", "--check"]) == 1
    assert problems == ["SMTP server is not running"]
    assert (row.alert, row.alert_reason, row.healthy) == (1, problems[0], False)
    assert "role mail2cmd: SMTP server is not running\n" in capsys.readouterr().err
