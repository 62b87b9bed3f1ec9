"""The REST API's parts that need no server: the error table, the chart data, the access log
line, a run's log lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, RunUpdate
from redpss.errors import (
    ConfigError,
    DictionaryError,
    MigrationError,
    NotFound,
    RedpssError,
    RemoteError,
    ServiceUnavailable,
    SupervisorError,
)
from redpss.instance import Instance
from redpss.rest import charts, views
from redpss.rest.api import access_line
from redpss.rest.errors import TABLE, responses, rule_for
from redpss.sched.control import KillRefused

NOW = datetime(2030, 5, 6, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "status", "outcome"),
    [
        (NotFound("no job named 'x'"), 404, "not found"),
        (DictionaryError("locked"), 503, "unavailable"),
        (MigrationError("old"), 503, "unavailable"),
        (SupervisorError("gone"), 503, "unavailable"),
        (ServiceUnavailable("sched does not answer"), 503, "unavailable"),
        (RemoteError("max_parallel", "job j runs already"), 409, "refused"),
        (KillRefused("not_running", "run 7 is not queued or running"), 409, "refused"),
        (ConfigError("bad key"), 409, "refused"),
        (RedpssError("no"), 409, "refused"),
    ],
)
def test_one_table_maps_every_error(error: RedpssError, status: int, outcome: str) -> None:
    rule = rule_for(error)
    assert (rule.status, rule.outcome) == (status, outcome)


def test_a_subclass_row_stands_before_its_base() -> None:
    for i, rule in enumerate(TABLE):
        for later in TABLE[i + 1 :]:
            assert not issubclass(later.error, rule.error) or later.error is rule.error, (
                f"{later.error.__name__} after its base {rule.error.__name__} is never reached"
            )
    doc = responses(401, 404, 503)
    assert set(doc) == {401, 404, 503} and "dictionary" in doc[503]["description"]


def _job(name: str, kind: str) -> JobDef:
    return JobDef(name=name, schema="DWH", kind=kind, action="SELECT 1")


def test_chart_data_buckets_runs_by_hour_state_rows_and_duration(dic: Dictionary) -> None:
    dic.ensure_schema("DWH")
    dic.apply_definitions([_job("load", "LOAD"), _job("calc", "SQL")], [])
    runs = []
    for i, (name, state, minutes_ago, rows, took) in enumerate([
        ("load", "OK", 5, 100, 2.0),
        ("load", "OK", 20, 50, 4.0),
        ("calc", "FAILED", 25, None, 1.0),
        ("load", "OK", 70, 7, 1.0),
        ("calc", "OK", 60 * 30, None, 1.0),  # older than a day: left out
    ]):  # fmt: skip
        queued = NOW - timedelta(minutes=minutes_ago)
        runs.append(RunUpdate("DWH", i + 1, name, "default", state, queued, started_at=queued,
                              ended_at=queued + timedelta(seconds=took), rows=rows))  # fmt: skip
    dic.record_runs(runs)

    per_hour = charts.runs_per_hour(dic, now=NOW)
    assert len(per_hour["x"]) == 24 and per_hour["x"][-1] == int(NOW.replace(minute=0).timestamp())
    assert per_hour["series"]["OK"][-1] == 2 and per_hour["series"]["OK"][-2] == 1
    assert per_hour["series"]["FAILED"][-1] == 1 and sum(per_hour["series"]["FAILED"]) == 1
    assert per_hour["range"] == [per_hour["x"][0], per_hour["x"][-1] + 3600]

    loaded = charts.load_rows_per_hour(dic, now=NOW)
    assert loaded["series"]["rows"][-1] == 150 and loaded["series"]["rows"][-2] == 7

    spent = charts.durations(dic, now=NOW)
    assert set(spent["series"]) == {"calc", "load"}
    assert sorted(v for v in spent["series"]["load"] if v is not None) == [1.0, 2.0, 4.0]
    assert len(spent["x"]) == 4  # the run of 30 h ago is outside the day


def test_access_line_has_time_token_and_latency() -> None:
    line = access_line(when=NOW.timestamp(), client="10.0.0.5", token="ops", method="POST",
                       target="/api/suspend", status=200, ms=12.345)  # fmt: skip
    assert line == '2030-05-06T12:30:00.000+00:00 10.0.0.5 token=ops "POST /api/suspend" 200 12.3ms'


def test_run_log_lines_are_the_lines_naming_the_run(tmp_path: Path) -> None:
    inst = Instance("v1", tmp_path)
    inst.log_dir.mkdir(parents=True)
    (inst.log_dir / "sched.log").write_text(
        "2030-05-06 12:00:01 INFO run=17 job=a started\n"
        "2030-05-06 12:00:02 INFO run=170 job=b started\n"
        "2030-05-06 12:00:05 INFO run=17 job=a OK\n"
    )
    (inst.log_dir / "jexec.log").write_text("2030-05-06 12:00:03 INFO job=a run=17 pid=9\n")
    assert views.run_log_lines(inst, 17) == [
        "2030-05-06 12:00:01 INFO run=17 job=a started",
        "2030-05-06 12:00:03 INFO job=a run=17 pid=9",
        "2030-05-06 12:00:05 INFO run=17 job=a OK",
    ]
    assert views.run_log_lines(inst, 18) == []
