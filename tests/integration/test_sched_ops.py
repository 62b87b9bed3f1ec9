"""Operations around scheduling: preclone, export, the JMON statistics."""

from __future__ import annotations

import json
import sqlite3

from redpss.instance import Instance
from tests.conftest import wait_for
from tests.integration.sched_support import MakeSchedInstance, apply, job, redctl, runs, states


def test_preclone_then_start_restores_flags_and_clears_logs(inst: Instance) -> None:
    apply(inst, jobs={"a": job(), "b": job(active=False)})
    redctl(inst, "preclone")
    assert (inst.tmp / "preclone" / "preclone.json").exists()
    # the database is restored from another instance: other flags, foreign logs
    redctl(inst, "toggle_db_job", "a")
    redctl(inst, "toggle_db_job", "b")
    redctl(inst, "start")
    redctl(inst, "start_db_job", "a")
    wait_for(lambda: states(inst, "a") == ["OK"], timeout=15)
    redctl(inst, "stop")
    redctl(inst, "preclone")
    redctl(inst, "toggle_db_job", "a")
    redctl(inst, "start")
    flags = {r["job"]: r["active"] for r in json.loads(redctl(inst, "--json", "list_db_jobs"))}
    assert flags == {"a": True, "b": False}  # as saved by the last preclone
    assert runs(inst, "a") == []
    assert list((inst.tmp / "preclone").glob("preclone.json.restored-*"))


def test_export_round_trip(inst: Instance) -> None:
    apply(inst, jobs={"a": job(cron="0 2 * * *", description="nightly")})
    text = redctl(inst, "db", "export")
    assert "[job.a]" in text and 'cron = "0 2 * * *"' in text
    out = inst.tmp / "export.toml"
    redctl(inst, "db", "export", str(out))
    redctl(inst, "db", "apply", str(out))


def test_jmon_writes_load_and_joblog_samples(make_sched_instance: MakeSchedInstance) -> None:
    inst = make_sched_instance(sched_stats_interval="1")
    apply(inst, jobs={"tick": job(interval=1)})
    redctl(inst, "start")

    def samples() -> list[tuple[object, ...]]:
        conn = sqlite3.connect(inst.db_dir / "REDSYS.db")
        try:
            return conn.execute(
                "SELECT J.JOB_NAME, J.NEXT_RUN_AT, J.LAST_STATE, L.POOL_SIZE "
                "FROM ADM_JMON_JOBLOG J JOIN ADM_JMON_LOAD L "
                "ON L.SAMPLE_AT = J.SAMPLE_AT AND L.POOL_NAME = 'default' "
                "WHERE J.LAST_STATE IS NOT NULL"
            ).fetchall()
        finally:
            conn.close()

    rows = wait_for(samples, timeout=20, what="JMON samples")
    assert isinstance(rows, list)
    name, nxt, state, size = rows[-1]
    assert (name, size) == ("tick", 4) and nxt is not None
    # samples and runs both tick every second: the sample may catch the run under way
    assert state in ("OK", "QUEUED", "RUNNING")
    redctl(inst, "stop")
