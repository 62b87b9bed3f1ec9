"""Scheduling end to end: jmon and sched under the real supervisord, definitions from TOML."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import textwrap
import time
from datetime import timedelta
from pathlib import Path

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.integration.sched_support import (
    MakeSchedInstance,
    apply,
    job,
    redctl,
    runs,
    script,
    start,
    states,
)


def test_interval_jobs_run_on_time_and_changes_need_no_restart(inst: Instance) -> None:
    apply(
        inst,
        jobs={
            "tick": job(
                "SQL", "CREATE TABLE IF NOT EXISTS T (X); INSERT INTO T VALUES (1)", interval=1
            ),
            "slow": job(interval=3600),
        },
    )
    start(inst)
    wait_for(lambda: states(inst, "tick").count("OK") >= 4, timeout=30, what="4 runs of tick")
    started = [r.started_at for r in reversed(runs(inst, "tick")) if r.started_at]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(started)]
    assert all(0.5 < g < 1.8 for g in gaps), gaps
    assert runs(inst, "slow") == []

    # a changed interval, a new job and a deactivated job: all without restart
    apply(
        inst, jobs={"slow": job(interval=1), "fresh": job("CMD", "ok.sh", interval=1, schema="OPS")}
    )
    redctl(inst, "toggle_db_job", "tick")
    wait_for(
        lambda: len(runs(inst, "slow")) >= 2 and len(runs(inst, "fresh")) >= 2,
        timeout=30,
        what="changed and new jobs running",
    )
    assert runs(inst, "fresh")[-1].message == "ok fresh"
    count = len(runs(inst, "tick"))
    wait_for(lambda: len(runs(inst, "slow")) >= 5, timeout=30, what="more runs of slow")
    assert len(runs(inst, "tick")) <= count + 1  # at most one already handed over
    listing = json.loads(redctl(inst, "--json", "list_db_jobs"))
    assert {r["job"]: r["active"] for r in listing}["tick"] is False


def test_cron_job_is_scheduled_at_the_next_minute(inst: Instance) -> None:
    apply(inst, jobs={"nightly": job(cron="*/5 * * * *")})
    start(inst)

    def next_run() -> str | None:
        shown = json.loads(redctl(inst, "--json", "show"))
        return next((n["next"] for n in shown["next"] if n["name"] == "nightly"), None)

    nxt = wait_for(next_run, timeout=15, what="nightly in show")
    assert isinstance(nxt, str)
    minute = int(nxt[14:16])
    assert minute % 5 == 0 and nxt[17:19] == "00"


def test_cron_every_minute_runs_once_a_minute(inst: Instance) -> None:
    """#13: a `* * * * *` CMD job ran 4-8 times a minute and logged thousands of SKIPPED."""
    script(inst.home / "cmd" / "tick.sh", 'echo "$RED_RUN_ID" >> "$REDENV_HOME/tmp/ticks"')
    apply(inst, jobs={"tick": job("CMD", "tick.sh", cron="* * * * *")})
    start(inst)
    ticks = inst.home / "tmp" / "ticks"
    wait_for(lambda: ticks.exists(), timeout=75, what="the first minute's run")
    wait_for(lambda: states(inst, "tick") == ["OK"], timeout=10, what="the run OK")
    started = runs(inst, "tick")[0].started_at
    assert started is not None

    def moved_on() -> bool:  # jmon's timetable offers the next minute: this fire is behind it
        shown = json.loads(redctl(inst, "--json", "show"))
        nxt = next((n["next"] for n in shown["next"] if n["name"] == "tick"), None)
        return nxt is not None and nxt > started.isoformat()

    wait_for(moved_on, timeout=20, what="the next fire of tick in show")
    assert states(inst, "tick") == ["OK"]  # no second copy, no SKIPPED row
    assert len(ticks.read_text().split()) == 1
    assert started.second == 0  # within the second it was due


def test_pools_cap_concurrency_and_timeout_kills(inst: Instance) -> None:
    # the four runs hold until the test releases them (their time depended on how fast four
    # redctl calls were on a busy host: the first two could end before the last was queued)
    release = inst.home / "tmp" / "release"
    hold = inst.home / "cmd" / "hold.sh"
    hold.write_text(f'#!/bin/sh\nwhile [ ! -e "{release}" ]; do sleep 0.05; done\n')
    hold.chmod(0o755)
    holds = {f"s{i}": job("CMD", "hold.sh", pool="action") for i in range(4)}
    apply(inst, jobs=holds | {"hang": job("CMD", "sleep.sh 60", timeout=1)})
    start(inst)
    for i in range(4):
        redctl(inst, "start_db_job", f"s{i}")

    def action_pool() -> dict[str, int]:
        pool: dict[str, int] = json.loads(redctl(inst, "--json", "show"))["pools"]["action"]
        assert pool["busy"] <= 2, pool  # the pool's size, never more
        return pool

    wait_for(
        lambda: (p := action_pool())["busy"] == 2 and p["queued"] == 2,
        timeout=60,
        what="two runs busy and two queued in the action pool",
    )
    redctl(inst, "start_db_job", "hang")
    release.touch()
    wait_for(
        lambda: all(states(inst, f"s{i}") == ["OK"] for i in range(4)),
        timeout=60,
        what="all four runs OK",
    )
    spans = [runs(inst, f"s{i}")[0] for i in range(4)]
    for r in spans:  # never more than 2 at once
        overlapping = [
            o
            for o in spans
            if o.started_at
            and r.started_at
            and o.ended_at
            and o.started_at <= r.started_at < o.ended_at
        ]
        assert len(overlapping) <= 2
    wait_for(lambda: states(inst, "hang") == ["TIMEOUT"], timeout=15, what="hang TIMEOUT")
    hang = runs(inst, "hang")[0]
    assert hang.ended_at and hang.started_at
    assert (hang.ended_at - hang.started_at) < timedelta(seconds=5)
    assert "timeout of 1 s" in (hang.message or "")


def test_max_parallel_skips_and_says_so(inst: Instance) -> None:
    apply(inst, jobs={"long": job("CMD", "sleep.sh 3")})
    start(inst)
    redctl(inst, "start_db_job", "long")
    out = run_cli("redctl", "start_db_job", "long", inst=inst)
    assert out.returncode == 1 and "max_parallel 1" in out.stderr
    assert sorted(states(inst, "long")) in (["QUEUED", "SKIPPED"], ["RUNNING", "SKIPPED"])
    out = run_cli("redctl", "start_db_job", "lon", inst=inst)
    assert out.returncode == 2 and "did you mean: long" in out.stderr


def test_suspend_and_resume(inst: Instance) -> None:
    apply(inst, jobs={"tick": job(interval=1)})
    start(inst, "-S")
    status = json.loads(redctl(inst, "--json", "status"))
    assert status["state"] == "SUSPENDED"
    assert json.loads(redctl(inst, "--json", "show"))["suspended"] is True
    wait_for(lambda: "suspended" in (inst.log_dir / "jmon.log").read_text(), timeout=10)
    wait_for(
        lambda: "timetable loaded: 1 entries" in (inst.log_dir / "jmon.log").read_text(), timeout=10
    )
    assert runs(inst, "tick") == []
    redctl(inst, "resume")
    wait_for(lambda: len(runs(inst, "tick")) >= 2, timeout=20, what="runs after resume")
    redctl(inst, "suspend")
    wait_for(
        lambda: (
            "role=jmon suspended" in (inst.log_dir / "jmon.log").read_text().split("resumed")[-1]
        ),
        timeout=10,
    )
    count = len(runs(inst, "tick"))
    assert count >= 2


def _pid_of(inst: Instance, role: str) -> int:
    status = json.loads(
        run_cli("redctl", "--json", "status", inst=inst).stdout
    )  # exit 1 after a kill
    return int(next(r for r in status["roles"] if r["role"] == role)["pid"] or 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_kill_sched_mid_run_adopts_the_command_and_tells_the_truth(inst: Instance) -> None:
    """#13: the run was logged ABORTED at once while jexec ran the command to its end."""
    script(
        inst.home / "cmd" / "long.sh",
        'echo "$$" >> "$REDENV_HOME/tmp/long.starts"; sleep "$1"; echo done',
    )
    apply(inst, jobs={"long": job("CMD", "long.sh 8")})
    start(inst)
    redctl(inst, "start_db_job", "long")
    starts = inst.home / "tmp" / "long.starts"
    wait_for(lambda: starts.exists() and states(inst, "long") == ["RUNNING"], timeout=15)
    command = int(starts.read_text().split()[0])
    old = _pid_of(inst, "sched")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: _pid_of(inst, "sched") != old, timeout=30, what="sched restarted")
    wait_for(
        lambda: "adopted after sched restarted" in (inst.log_dir / "sched.log").read_text(),
        timeout=30,
        what="the run adopted",
    )
    # while the command lives the run is RUNNING, and no second copy may start
    assert _alive(command)
    assert states(inst, "long") == ["RUNNING"]
    out = run_cli("redctl", "start_db_job", "long", inst=inst)
    assert out.returncode == 1 and "max_parallel" in out.stderr  # (logged SKIPPED, not run)
    deadline = time.monotonic() + 30
    while _alive(command):  # sampling the invariant: not ended while its process lives
        adopted = runs(inst, "long")[-1]
        assert adopted.state == "RUNNING" or not _alive(command), adopted
        assert time.monotonic() < deadline, "the command should end after 8 s"
        time.sleep(0.2)
    wait_for(lambda: states(inst, "long") == ["OK", "SKIPPED"], timeout=10, what="the run OK")
    record = runs(inst, "long")[-1]
    assert "done" in (record.message or "") and "adopted by sched pid" in (record.message or "")
    assert len(starts.read_text().split()) == 1  # it ran once


def test_kill_jexec_mid_run_kills_the_command_and_says_so(inst: Instance) -> None:
    script(inst.home / "cmd" / "long.sh", 'echo "$$" >> "$REDENV_HOME/tmp/long.starts"; sleep 60')
    apply(inst, jobs={"long": job("CMD", "long.sh")})
    start(inst)
    redctl(inst, "start_db_job", "long")
    starts = inst.home / "tmp" / "long.starts"
    wait_for(lambda: starts.exists() and states(inst, "long") == ["RUNNING"], timeout=15)
    command = int(starts.read_text().split()[0])
    os.kill(_pid_of(inst, "jexec"), signal.SIGKILL)
    wait_for(lambda: states(inst, "long") == ["ABORTED"], timeout=40, what="the run ended")
    assert not _alive(command)  # ended in the log only once its process is gone
    assert "killed: jexec restarted" in (runs(inst, "long")[0].message or "")


def test_sigterm_lets_runs_finish_then_aborts_the_rest(
    make_sched_instance: MakeSchedInstance,
) -> None:
    inst = make_sched_instance(stop_grace="7")
    apply(inst, jobs={"short": job("CMD", "sleep.sh 1"), "long": job("CMD", "sleep.sh 60")})
    start(inst)
    redctl(inst, "start_db_job", "short")
    redctl(inst, "start_db_job", "long")
    wait_for(lambda: states(inst, "long") == ["RUNNING"], timeout=15)
    redctl(inst, "stop")
    assert states(inst, "short") == ["OK"]
    assert states(inst, "long") == ["ABORTED"]
    assert "grace time" in (runs(inst, "long")[0].message or "")


def test_bad_definitions_are_refused_or_isolated(inst: Instance) -> None:
    bad = inst.tmp / "bad.toml"
    bad.write_text(
        textwrap.dedent("""
        [job.a]
        schema = "DWH"
        kind = "SQL"
        action = "SELECT 1"
        cron = "61 * * * *"
        [job.b]
        schema = "DWH"
        kind = "SQL"
        action = "SELECT 1"
        pool = "fast"
        interval = -5
        [watcher.w]
        schema = "DWH"
        kind = "FILE"
        pattern = "x"
        executor = "missing"
    """)
    )
    out = run_cli("redctl", "db", "apply", str(bad), inst=inst)
    assert out.returncode == 1
    assert f"{bad}: [job.a] job a: cron expression '61 * * * *'" in out.stderr
    assert f"{bad}: [job.b] job b: pool 'fast' is not one of default, loader, action" in out.stderr
    assert f"{bad}: [watcher.w] watcher w: executor job 'missing' does not exist" in out.stderr
    assert json.loads(redctl(inst, "--json", "list_db_jobs")) == []
    # a bad row written by SQL directly: jmon reports it and schedules the others
    apply(inst, jobs={"good": job(interval=1)})

    conn = sqlite3.connect(inst.db_dir / "REDSYS.db")
    with conn:
        conn.execute(
            "INSERT INTO ADM_JOBS (JOB_NAME, SCHEMA_NAME, JOB_KIND, ACTION_TEXT, SCHEDULE_TYPE, "
            "CRON_EXPR, CREATED_AT, CHANGED_AT) VALUES ('broken', 'DWH', 'SQL', 'SELECT 1', "
            "'CRON', 'not a cron', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
        )
    conn.close()
    start(inst)
    wait_for(lambda: len(runs(inst, "good")) >= 2, timeout=20, what="good keeps running")
    log = (inst.log_dir / "jmon.log").read_text()
    assert "definition refused: job broken: cron expression 'not a cron'" in log
    status = json.loads(redctl(inst, "--json", "status"))
    jmon = next(r for r in status["roles"] if r["role"] == "jmon")
    assert jmon["state"] == "RUNNING"


def test_misfire_while_down_runs_once_or_skips(inst: Instance) -> None:
    apply(inst, jobs={"once": job(interval=2), "skip": job(interval=2, misfire="SKIP")})
    start(inst)
    wait_for(lambda: runs(inst, "once") and runs(inst, "skip"), timeout=20)
    redctl(inst, "stop")
    # the stack is down for a while: pretend by moving the last runs 30 s into the past

    conn = sqlite3.connect(inst.db_dir / "DWH.db")
    with conn:
        conn.execute(
            "UPDATE ADM_JOB_LOG SET QUEUED_AT = datetime(QUEUED_AT, '-30 seconds') || '+00:00'"
        )
    conn.close()
    before = {j: len(runs(inst, j)) for j in ("once", "skip")}
    start(inst)
    wait_for(
        lambda: (
            len(runs(inst, "skip")) > before["skip"] and len(runs(inst, "once")) > before["once"]
        ),
        timeout=20,
    )
    first_once = runs(inst, "once")[-before["once"] - 1]
    first_skip = runs(inst, "skip")[-before["skip"] - 1]
    assert "misfire" in (first_once.message or "") and "running once" in (first_once.message or "")
    assert first_skip.state == "SKIPPED" and "skipped (policy SKIP)" in (first_skip.message or "")


def test_sta_job_status_says_which_job_fails_and_which_definition_is_refused(
    inst: Instance,
) -> None:
    script(inst.home / "cmd" / "fail.sh", 'echo "no such file: x.csv"; exit 3')
    apply(
        inst,
        jobs={
            "fails": job("CMD", "fail.sh"),
            "fine": job(interval=3600),
            "bad": job(interval=3600),
        },
    )
    with sqlite3.connect(inst.db_dir / "REDSYS.db") as conn:  # a bad row written by SQL
        conn.execute(
            "UPDATE ADM_JOBS SET SCHEDULE_TYPE = 'CRON', INTERVAL_SECONDS = NULL, "
            "CRON_EXPR = '61 * * * *' WHERE JOB_NAME = 'bad'"
        )
    conn.close()
    start(inst)
    redctl(inst, "start_db_job", "fails")

    def status() -> dict[str, dict[str, object]]:
        return {r["job"]: r for r in json.loads(redctl(inst, "--json", "list_db_jobs"))}

    wait_for(lambda: status()["fails"]["alert"] == 2, timeout=20, what="fails with ALERT 2")
    rows = status()
    assert rows["fails"]["reason"] == "last run FAILED: exit code 3; output: no such file: x.csv"
    assert rows["bad"]["alert"] == 2
    assert "invalid definition: job bad: cron expression '61 * * * *'" in str(rows["bad"]["reason"])
    assert rows["fine"]["alert"] == 0 and rows["fine"]["next_run"] is not None
    with sqlite3.connect(inst.db_dir / "REDSYS.db") as conn:  # the view itself, as SQL sees it
        alerts = dict(conn.execute("SELECT JOB_NAME, ALERT FROM STA_JOB_STATUS").fetchall())
    conn.close()
    assert alerts == {"bad": 2, "fails": 2, "fine": 0}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        _alive(int(p.parent.name))
        for p in Path("/proc").glob("[0-9]*/stat")
        if p.read_text().rsplit(")", 1)[1].split()[2] == str(pgid)
    )


def test_redctl_kill_ends_a_command_group_and_a_statement_and_says_who(inst: Instance) -> None:
    """#16: there was no way to end one run; show gave sched's pid, not the command's."""
    script(
        inst.home / "cmd" / "hang.sh",
        'echo "$$" > "$REDENV_HOME/tmp/hang.pid"; sleep 300 & sleep 300; wait',
    )
    forever = "WITH RECURSIVE C(N) AS (SELECT 1 UNION ALL SELECT N + 1 FROM C) SELECT MAX(N) FROM C"
    apply(inst, jobs={"hang": job("CMD", "hang.sh"), "spin": job("SQL", forever)})
    start(inst)
    run_id = json.loads(redctl(inst, "--json", "start_db_job", "hang"))["run_id"]
    pidfile = inst.home / "tmp" / "hang.pid"
    wait_for(lambda: pidfile.exists() and states(inst, "hang") == ["RUNNING"], timeout=15)
    command = int(pidfile.read_text())
    shown = json.loads(redctl(inst, "--json", "show"))["running"]
    row = next(r for r in shown if r["run_id"] == run_id)
    assert row["pid"] == command and row["kind"] == "CMD" and row["duration"] >= 0
    assert row["started"]
    out = json.loads(redctl(inst, "--json", "kill", str(run_id)))
    assert out["state"] == "KILLED" and out["job"] == "hang"
    assert not _group_alive(command)  # the command and the sleep it started
    record = runs(inst, "hang")[0]
    assert record.state == "KILLED" and "killed by " in (record.message or "")
    assert "with redctl" in (record.message or "")
    line = json.loads((inst.log_dir / "audit.log").read_text().splitlines()[-1])
    assert (line["command"], line["result"], line["exit_code"]) == ("kill", "ok", 0)

    spin = json.loads(redctl(inst, "--json", "start_db_job", "spin"))["run_id"]
    wait_for(lambda: states(inst, "spin") == ["RUNNING"], timeout=15)
    out = json.loads(redctl(inst, "--json", "kill", str(spin)))
    assert out["state"] == "KILLED"
    assert "statement was interrupted" in (runs(inst, "spin")[0].message or "")

    gone = run_cli("redctl", "kill", str(spin), inst=inst)
    assert gone.returncode == 3 and "is not queued or running" in gone.stderr
    assert run_cli("redctl", "kill", "nope", inst=inst).returncode == 2
