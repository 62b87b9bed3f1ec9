"""Operations around scheduling: export, the JMON statistics (preclone: test_preclone.py)."""

from __future__ import annotations

import sqlite3

from redpss.instance import Instance
from tests.conftest import wait_for
from tests.integration.sched_support import MakeSchedInstance, apply, job, redctl


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
