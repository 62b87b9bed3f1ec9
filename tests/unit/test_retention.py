"""Retention: what grows is purged to its age, in batches, and nothing that must stay goes.

The same purge on both backends (``any_dic``: SQLite, then the Exasol backend on the emulated
database); the rows that stay are checked against the rule written in Python here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from redpss import retention
from redpss.config import parse_config
from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.columns import YEAR_SINCE
from redpss.dictionary.exasol import ExasolDictionary
from redpss.dictionary.jobs import JobDef, PoolSample, RunUpdate
from redpss.dictionary.landing import LedgerEntry
from redpss.dictionary.loaders import Loader, LoaderColumn
from redpss.dictionary.model import MIGRATIONS, TABLES, VIEWS
from redpss.dictionary.objects import Model
from redpss.dictionary.sqlite import SqliteDictionary
from redpss.errors import ConfigError
from redpss.instance import Instance
from redpss.retention import Purger, Retention, claims_in_work
from tests.conftest import run_cli, wait_for

pytestmark = pytest.mark.unit

NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
DAYS = {"runs": 90, "watcher_runs": 60, "jmon_stats": 30, "log_messages": 45, "load_ledger": 20,
        "definition_log": 1}  # fmt: skip
LOADER = Loader("sales", r"sales.*\.csv", "DWH", "SALES", (LoaderColumn("ID", "DECIMAL(9,0)"),))


def _sql(dic: Dictionary, schema: str, statement: str) -> None:
    """Plain SQL on the backend (to age rows: the API stamps them with the time of the call)."""
    if isinstance(dic, ExasolDictionary):
        dic.tx(lambda tx: tx.statement(statement), what="test")
        return
    assert isinstance(dic, SqliteDictionary)
    with sqlite3.connect(dic.db_dir / f"{schema}.db") as conn:
        conn.execute(statement.replace(f"{schema}.", ""))


def _ts(dic: Dictionary, moment: datetime) -> str:
    text = moment.isoformat(sep=" ", timespec="microseconds")
    if isinstance(dic, ExasolDictionary):
        return f"TIMESTAMP '{text[:26]}'"
    return f"'{text}'"


def _fill(dic: Dictionary) -> dict[str, set[Any]]:
    """Runs, fires, samples, lines and ledger rows every 10 days back to 200 days; returns what
    must stay of each kind."""
    ages = range(0, 200, 10)
    runs, fires = [], []
    for age in ages:
        queued = NOW - timedelta(days=age, hours=1)
        run_id = int(queued.timestamp() * 1000) * 1000
        state = "RUNNING" if age == 190 else "OK"  # an old run that has not ended stays
        runs.append(RunUpdate("DWH", run_id, "job", "default", state, queued))
        fires.append(RunUpdate("DWH", run_id + 1, "w", "default", "OK", queued, watcher=True))
    dic.record_runs(runs + fires)
    for age in ages:
        at = NOW - timedelta(days=age, hours=1)
        dic.write_jmon_sample(at, [PoolSample("default", 4, 0, 0, 1)], [("job", None, at, "OK")])
        dic.log_message("DWH", level="ERROR", message=f"age {age}", ts=at)
    dic.ensure_target_table(LOADER)
    for age in ages:
        entry = LedgerEntry(f"L{age:024x}", f"{age:064x}", f"sales{age}.csv", 1, "DWH.SALES",
                            "sales", 1)  # fmt: skip
        dic.load_rows(LOADER, [(age,)], entry=entry)
        loaded = _ts(dic, NOW - timedelta(days=age, hours=1))
        _sql(dic, "DWH", f"UPDATE DWH.ADM_LOAD_LOG SET LOADED_AT = {loaded} "
                         f"WHERE CLAIM_ID = '{entry.claim_id}'")  # fmt: skip
    # a job that was deleted long ago keeps a status row; one deleted yesterday too
    dic.apply_definitions([JobDef("job", "DWH", "SQL", "SELECT 1")], [])
    dic.record_job_status(runs)
    old = RunUpdate("DWH", 1_000_000, "gone", "default", "OK", NOW - timedelta(days=300))
    new = RunUpdate("DWH", 2_000_000, "recent", "default", "OK", NOW - timedelta(days=1))
    dic.record_job_status([old, new])
    return {
        "runs": {a for a in ages if a < 90 or a == 190},
        "watcher_runs": {a for a in ages if a < 60},
        "jmon_stats": {a for a in ages if a < 30},
        "log_messages": {a for a in ages if a < 45},
        "load_ledger": {a for a in ages if a < 20} | {150},  # 150: its claim is in work/
        "job_status": {"job", "recent"},
    }


def _left(dic: Dictionary) -> dict[str, set[Any]]:
    def age(moment: datetime | None) -> int:
        assert moment is not None
        return (NOW - moment).days // 10 * 10

    return {
        "runs": {age(r.queued_at) for r in dic.runs(limit=1000)},
        "watcher_runs": {age(r.queued_at) for r in dic.runs(watcher=True, limit=1000)},
        "jmon_stats": _samples(dic),
        "log_messages": {int(m.message.split()[1]) for m in dic.all_log_messages(1000)},
        "load_ledger": {int(e.file_name[5:-4]) for e in dic.load_ledger(None)},
        "job_status": {s.job for s in dic.job_status()} | _status_rows(dic),
    }


def _status_rows(dic: Dictionary) -> set[str]:
    """Job names of ADM_JOB_STATUS rows (STA_JOB_STATUS shows defined jobs only)."""
    if isinstance(dic, ExasolDictionary):
        rows = dic.tx(lambda tx: tx.query("SELECT JOB_NAME FROM REDSYS.ADM_JOB_STATUS"), what="t")
    else:
        assert isinstance(dic, SqliteDictionary)
        with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:
            rows = conn.execute("SELECT JOB_NAME FROM ADM_JOB_STATUS").fetchall()
    return {str(r[0]) for r in rows}


def _samples(dic: Dictionary) -> set[int]:
    if isinstance(dic, ExasolDictionary):
        rows = dic.tx(lambda tx: tx.query("SELECT SAMPLE_AT FROM REDSYS.ADM_JMON_LOAD"), what="t")
    else:
        assert isinstance(dic, SqliteDictionary)
        with sqlite3.connect(dic.db_dir / "REDSYS.db") as conn:
            rows = conn.execute("SELECT SAMPLE_AT FROM ADM_JMON_LOAD").fetchall()
    moments = [datetime.fromisoformat(str(r[0])).replace(tzinfo=UTC) for r in rows]
    return {(NOW - m).days // 10 * 10 for m in moments}


def test_the_purge_keeps_what_is_young_and_what_must_stay(
    any_dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "FIRST_BATCH", 3)  # several batches per table
    monkeypatch.setattr(retention, "MIN_BATCH", 2)
    monkeypatch.setattr(retention, "MIN_REST", 0.0)
    want = _fill(any_dic)
    keep = frozenset({f"L{150:024x}"})
    purger = Purger(any_dic, Retention(DAYS), keep=lambda: keep)
    plan = purger.plan(NOW)
    report = purger.run(NOW)
    assert [(t.table, t.rows) for t in report.tables] == [(t.table, t.rows) for t in plan.tables]
    assert report.rows == plan.rows > 0
    assert max(t.batches for t in report.tables) > 2
    assert _left(any_dic) == want
    assert purger.plan(NOW).rows == 0  # done: a second purge finds nothing


def test_the_definition_log_keeps_its_newest_change(dic: Dictionary) -> None:
    dic.apply_definitions([JobDef(f"j{i}", "DWH", "SQL", "SELECT 1") for i in range(5)], [])
    stamp = dic.definitions_stamp()
    purger = Purger(dic, Retention(DAYS))
    report = purger.run(datetime.now(UTC) + timedelta(days=3))  # every change is old then
    assert {t.table: t.rows for t in report.tables}["REDSYS.ADM_DEFINITION_LOG"] == 4
    assert dic.definitions_stamp() == stamp  # the newest id is still there
    assert dic.definition_changes(stamp) is not None


def test_a_purged_sqlite_file_gives_its_pages_back(tmp_path: Path) -> None:
    with open_dictionary("sqlite", db_dir=tmp_path) as d:
        d.init()
        old = NOW - timedelta(days=400)
        d.record_runs([
            RunUpdate("DWH", i, "job", "default", "OK", old + timedelta(seconds=i),
                      message="x" * 500)
            for i in range(1, 20_001)
        ])  # fmt: skip
        grown = d.storage_bytes()
        assert grown is not None
        report = Purger(d, Retention(DAYS)).run(NOW)
        assert report.rows == 20_000 and report.compacted > 0
        assert report.bytes_after is not None and report.bytes_after < grown / 3
        assert d.compaction_blocked() == []


def test_a_file_made_before_version_7_needs_one_vacuum(tmp_path: Path) -> None:
    old_model = Model(TABLES, VIEWS, MIGRATIONS[: YEAR_SINCE - 1])
    before = SqliteDictionary(tmp_path, model=old_model)
    before.init()
    before.record_runs([
        RunUpdate("DWH", i, "job", "default", "OK", NOW - timedelta(days=400), message="x" * 500)
        for i in range(1, 5001)
    ])  # fmt: skip
    for name in ("REDSYS.db", "DWH.db"):  # as files were made before version 7
        with sqlite3.connect(tmp_path / name, isolation_level=None) as conn:
            conn.execute("PRAGMA auto_vacuum = NONE")
            conn.execute("VACUUM")
    with open_dictionary("sqlite", db_dir=tmp_path) as d:
        d.upgrade()
        report = Purger(d, Retention(DAYS)).run(NOW)
        assert report.rows == 5000 and report.compacted == 0
        assert report.blocked == ["DWH.db"]
        grown, _ = d.storage_bytes(), d.vacuum()
        after = d.storage_bytes()
        assert grown is not None and after is not None and after < grown / 3
        assert d.compaction_blocked() == []


def test_batches_shrink_when_a_transaction_takes_long() -> None:
    pace = retention._Pace(1000, 10, 100_000)
    assert pace.took(retention.LOCK_BUDGET) == retention.LOCK_BUDGET  # rests as long
    assert pace.size == 500
    pace.took(retention.LOCK_BUDGET / 10)
    assert pace.size == 1000
    for _ in range(20):
        pace.took(1.0)
    assert pace.size == 10  # never below the floor


def test_claims_in_work_are_read_from_their_names(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / f"L{'a' * 24}.sales.csv").write_text("x")
    (work / "not-a-claim.csv").write_text("x")
    assert claims_in_work(tmp_path) == {f"L{'a' * 24}"}
    assert claims_in_work(tmp_path / "missing") == frozenset()


def test_the_next_purge_is_at_the_configured_time() -> None:
    r = Retention(DAYS, (2, 30))
    assert r.next_purge(datetime(2031, 1, 1, 1, 0, tzinfo=UTC)) == datetime(
        2031, 1, 1, 2, 30, tzinfo=UTC
    )
    assert r.next_purge(datetime(2031, 1, 1, 2, 30, tzinfo=UTC)) == datetime(
        2031, 1, 2, 2, 30, tzinfo=UTC
    )


_CONF = """[redsys]
pss_secret = s
sched_service_port = 1
sendmail_port = 2
sendfile_port = 3
dbls_port = 4
jexec_port = 5
cfi_port = 6
cfi_pasv_port_start = 7
cfi_pasv_port_end = 8
mail2csv_port = 9
{extra}
[rest]
gu_port = 10
"""


def test_retention_is_read_from_red_params(tmp_path: Path) -> None:
    cfg = parse_config(_CONF.format(extra="runs_retention = 400\ndictionary_purge_time = 23:05"),
                       path=tmp_path / "red_params.conf")  # fmt: skip
    r = Retention.from_config(cfg)
    assert r.days == {"runs": 400, "watcher_runs": 90, "jmon_stats": 30, "log_messages": 90,
                      "load_ledger": 90, "definition_log": 1}  # fmt: skip
    assert r.purge_at == (23, 5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("runs_retention = 0", "line 12: [redsys] runs_retention must be at least 1"),
        ("load_ledger_retention = 5",
         "load_ledger_retention (5 days) must be at least landing_archive_retention (7 days)"),
        ("load_ledger_retention = 10\njson2csv_retention = 14",
         "must be at least json2csv_retention (14 days)"),
        ("dictionary_purge_time = 25:00", "dictionary_purge_time must be a time of day HH:MM"),
    ],
)  # fmt: skip
def test_a_retention_that_would_lose_something_is_refused(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=r"red_params\.conf refused") as err:
        parse_config(_CONF.format(extra=extra), path=tmp_path / "red_params.conf")
    assert message in str(err.value)


def test_the_nightly_purge_runs_at_its_time(tmp_path: Path) -> None:
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        d.init()
        old = datetime.now(UTC) - timedelta(days=400)
        d.record_runs([RunUpdate("DWH", 1, "job", "default", "OK", old)])
        start = datetime(2031, 1, 1, 2, 29, 59, 900_000, tzinfo=UTC)
        times = iter([start, start + timedelta(seconds=0.1)])
        nightly = retention.NightlyPurge(
            d, Retention(DAYS, (2, 30)), data_dir=tmp_path / "data",
            now=lambda: next(times, datetime.now(UTC) + timedelta(days=1)),
        )  # fmt: skip
        nightly.start()
        try:
            wait_for(lambda: nightly.last, timeout=10, what="the purge at 02:30")
        finally:
            nightly.stop()
        assert nightly.last is not None and nightly.last.rows == 1
        assert not nightly.thread.is_alive()


def test_redctl_db_purge_dry_run_changes_nothing_and_the_purge_is_audited(
    make_instance: Callable[..., Instance],
) -> None:
    inst = make_instance()
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        old = datetime.now(UTC) - timedelta(days=400)
        d.record_runs([RunUpdate("DWH", i, "job", "default", "OK", old) for i in range(1, 11)])
    dry = run_cli("redctl", "--json", "db", "purge", "--dry-run", inst=inst)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and plan["rows"] == 10
    assert {"kind": "runs", "table": "DWH.ADM_JOB_LOG"}.items() <= plan["tables"][0].items()
    done = run_cli("redctl", "db", "purge", inst=inst)
    assert done.returncode == 0, done.stderr
    assert "deleted 10 rows" in done.stdout
    assert run_cli("redctl", "--json", "db", "purge", "--dry-run", inst=inst).returncode == 0
    lines = [json.loads(x) for x in (inst.log_dir / "audit.log").read_text().splitlines()]
    assert [x["command"] for x in lines if "purge" in x["command"]] == ["db purge"]
    bad = run_cli("redctl", "db", "purge", "--dry-run", "--vacuum", inst=inst)
    assert bad.returncode == 2 and "--vacuum" in bad.stderr
    assert run_cli("redctl", "db", "init", "--dry-run", inst=inst).returncode == 2
