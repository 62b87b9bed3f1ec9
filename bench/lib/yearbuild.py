"""Build an instance that has run for a year, in a minute: definitions and a synthesized year.

    .venv/bin/python bench/lib/yearbuild.py --home /tmp/rhyear --name yr1 [--size 1.0] [--fresh]

Creates instance NAME under $REDHOME = HOME (embedded dictionary, REST enabled with a trustme
certificate; ``ca.pem`` and a reader token in ``HOME/NAME.bench.json``) with 10 000 job and
1 000 watcher definitions (``--jobs``, ``--watchers``) and — unless ``--fresh`` — a year of what
an instance writes, bulk-inserted into its SQLite files (not through the API row by row, which
would take hours): at ``--size 1``

- ``OPS.ADM_JOB_LOG``: the heartbeat job every 10 s, 3.15 M runs;
- ``DWH|STAGE|MART.ADM_JOB_LOG``: every other job weekly (2 % FAILED), the watchers' executor
  runs; ``ADM_WATCHER_LOG``: 100 fires a year per watcher; ``LOG_MESSAGES``: 200 lines a day
  per schema; ``DWH.ADM_LOAD_LOG``: 1 000 loaded files a day; a few executor errors;
- ``REDSYS.ADM_JMON_LOAD``: 3 pools every minute; ``ADM_JMON_JOBLOG``: a row per change (the
  heartbeat's every minute, each weekly job's per run); ``ADM_JOB_STATUS`` as sched leaves it.

``--size 0.1`` writes a tenth of every kind (a quick try). The secondary indexes are dropped
for the insert and built again afterwards (the same DDL the migrations run). The daily jobs
are weekly crons at hours 6 to 18 hours away from now, so that none of them is due while a
bench measures; the watchers look at ``data/input`` every 60 s and find nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.dictionary.jobs import JobDef, WatcherDef  # noqa: E402
from redpss.dictionary.model import DICTIONARY  # noqa: E402
from redpss.dictionary.sqlite.core import to_db  # noqa: E402
from redpss.dictionary.sqlite.ddl import index_ddl  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.sched.triggers import job_trigger  # noqa: E402

BIN = Path(sys.executable).parent
SCHEMAS = ("DWH", "STAGE", "MART")
YEAR = 365
HEARTBEAT = "heartbeat"
EXECUTORS = 100
_LOG = (
    "RUN_ID, {name}, POOL_NAME, STATE, QUEUED_AT, STARTED_AT, ENDED_AT, ROW_COUNT, MESSAGE, "
    "HOST, PID"
)


def definitions(jobs: int, watchers: int, now: datetime) -> tuple[list[JobDef], list[WatcherDef]]:
    """The heartbeat, executors for the watchers, weekly crons away from ``now``; watchers."""
    found = [
        JobDef(
            HEARTBEAT,
            "OPS",
            "SQL",
            "SELECT 1",
            schedule_type="INTERVAL",
            interval_seconds=10,
            description="every 10 s, as the demo's",
        )
    ]
    for i in range(EXECUTORS):
        found.append(JobDef(f"exec_{i:03d}", SCHEMAS[i % 3], "SQL", "SELECT 1"))
    for i in range(jobs - len(found)):
        hour = (now.hour + 6 + i % 12) % 24
        found.append(
            JobDef(
                f"job_{i:05d}",
                SCHEMAS[i % 3],
                "SQL",
                f"SELECT {i}",
                schedule_type="CRON",
                cron_expr=f"{i % 60} {hour} * * {i % 7}",
                description=f"weekly job {i}",
            )
        )
    ws = [
        WatcherDef(
            f"watch_{i:04d}",
            SCHEMAS[i % 3],
            "FILE",
            rf"^feed_{i:04d}_.*\.csv$",
            f"exec_{i % EXECUTORS:03d}",
            check_interval=60,
        )
        for i in range(watchers)
    ]
    return found, ws


def _conf(inst: Instance, values: dict[str, str]) -> None:
    lines = []
    for line in inst.conf_path.read_text().splitlines():
        key = line.lstrip("#").split("=")[0].strip()
        lines.append(f"{key} = {values[key]}" if "=" in line and key in values else line)
    inst.conf_path.write_text("\n".join(lines) + "\n")


def _certs(inst: Instance, home: Path) -> str:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = inst.etc / "ssl" / "REST"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca_file = home / f"{inst.name}.ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return str(ca_file)


def _ts(moment: datetime) -> str:
    return to_db(moment)


def _run_id(moment: datetime, seq: int = 0) -> int:
    return int(moment.timestamp() * 1000) * 1000 + seq


Rows = Iterator[tuple[object, ...]]
_LEDGER = (
    "CLAIM_ID, CONTENT_SHA256, FILE_NAME, FILE_SIZE, TARGET, LOADER_NAME, LOAD_STATUS, "
    "ROW_COUNT, RUN_ID, LOADED_AT"
)
_JMON_LOAD = "SAMPLE_AT, POOL_NAME, POOL_SIZE, BUSY, QUEUED, RUNS_IN_PERIOD"
_JOBLOG = "SAMPLE_AT, JOB_NAME, NEXT_RUN_AT, LAST_RUN_AT, LAST_STATE"
_LINES = "LOG_TS, SCHEMA_NAME, MSG_LEVEL, SOURCE, MESSAGE"


def _heartbeats(start: datetime, every: float, count: int) -> Rows:
    for i in range(count):
        q = start + timedelta(seconds=i * every)
        yield (
            _run_id(q),
            HEARTBEAT,
            "default",
            "OK",
            _ts(q),
            _ts(q + timedelta(milliseconds=3)),
            _ts(q + timedelta(milliseconds=9)),
            1,
            None,
            "bench-host",
            4242,
        )


def last_fires(jobs: list[JobDef], now: datetime) -> dict[str, datetime]:
    """Each weekly job's last fire before ``now`` (its trigger's, as jmon computes it)."""
    found = {}
    for j in jobs:
        trigger = job_trigger(j)
        assert trigger is not None
        fire = trigger.get_next_fire_time(None, now - timedelta(days=7))
        assert fire is not None and fire <= now, j
        found[j.name] = fire
    return found


def _weekly(jobs: list[JobDef], last: dict[str, datetime], weeks: int, rng: random.Random) -> Rows:
    """``weeks`` runs of each job, on its fires, the last one its last fire before now: a job
    whose last run were older would be a missed fire (or many) to jmon at its start."""
    for w in range(weeks - 1, -1, -1):
        for k, j in enumerate(jobs):
            q = last[j.name] - timedelta(days=7 * w)
            failed = rng.random() < 0.02
            yield (
                _run_id(q, k % 1000),
                j.name,
                "default",
                "FAILED" if failed else "OK",
                _ts(q),
                _ts(q),
                _ts(q + timedelta(seconds=2)),
                None if failed else 100,
                "failure: table locked by another session" if failed else None,
                "bench-host",
                4243,
            )


def _fire_time(start: datetime, fire: int, fires: int, k: int) -> datetime:
    return start + timedelta(days=fire * YEAR / fires, minutes=k % 1440)


def _executor_runs(watchers: list[WatcherDef], start: datetime, fires: int) -> Rows:
    for k, w in enumerate(watchers):
        for f in range(fires):
            q = _fire_time(start, f, fires, k) + timedelta(seconds=7)
            yield (
                _run_id(q, 500 + k % 500),
                w.executor_job,
                "default",
                "OK",
                _ts(q),
                _ts(q),
                _ts(q + timedelta(seconds=1)),
                10,
                None,
                "bench-host",
                4244,
            )


def _fires(watchers: list[WatcherDef], start: datetime, fires: int) -> Rows:
    for k, w in enumerate(watchers):
        for f in range(fires):
            q = _fire_time(start, f, fires, k) + timedelta(seconds=6)
            yield (
                _run_id(q, 500 + k % 500),
                w.name,
                "default",
                "OK",
                _ts(q),
                _ts(q),
                _ts(q),
                None,
                None,
                "bench-host",
                4244,
                f"feed_{k:04d}_{f}.csv",
                _run_id(q + timedelta(seconds=1), 500 + k % 500),
            )


def _lines(schema: str, start: datetime, per_day: int) -> Rows:
    for d in range(YEAR):
        for k in range(per_day):
            t = start + timedelta(days=d, seconds=k * 86400 / per_day)
            yield (
                _ts(t),
                schema,
                "ERROR" if k % 5 else "ALERT",
                f"JOB_{k % 97}",
                f"step {k} of day {d} failed: lock timeout on {schema}.T{k % 13}",
            )


def _ledger(start: datetime, per_day: int) -> Rows:
    for d in range(YEAR):
        for k in range(per_day):
            t = start + timedelta(days=d, seconds=k * 86400 / per_day)
            yield (
                f"L{d:08x}{k:016x}",
                f"{d:032x}{k:032x}",
                f"sales_{d}_{k}.csv",
                2048,
                "DWH.SALES",
                "sales",
                "LOADED",
                20,
                _run_id(t),
                _ts(t),
            )


def _pools(start: datetime, minutes: int, size: float) -> Rows:
    for m in range(minutes):
        t = _ts(start + timedelta(minutes=m / size))
        for pool, sz in (("default", 4), ("loader", 2), ("action", 2)):
            yield (t, pool, sz, m % sz, 0, 6 if pool == "default" else 1)


def _joblog(jobs: list[JobDef], start: datetime, minutes: int, size: float, weeks: int) -> Rows:
    for m in range(minutes):
        t = start + timedelta(minutes=m / size)
        yield (_ts(t), HEARTBEAT, _ts(t + timedelta(seconds=10)), _ts(t), "OK")
    for w in range(weeks):
        for k, j in enumerate(jobs):
            t = start + timedelta(days=7 * w, hours=2, seconds=k + 30)
            yield (_ts(t), j.name, _ts(t + timedelta(days=7)), _ts(t), "OK")


def _bulk(path: Path, table: str, columns: str, rows: Rows) -> int:
    """Insert ``rows`` with the secondary indexes of ``table`` dropped, then build them again."""
    model = DICTIONARY.table(table)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            )
        ]
        for name in names:
            conn.execute(f"DROP INDEX {name}")
        marks = ", ".join("?" for _ in columns.split(","))
        conn.execute("BEGIN")
        count = conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows).rowcount
        conn.execute("COMMIT")
        for index in model.indexes_at(DICTIONARY.version):
            conn.execute(index_ddl(model, index))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count
    finally:
        conn.close()


def synthesize(
    inst: Instance, jobs: list[JobDef], watchers: list[WatcherDef], size: float, now: datetime
) -> dict[str, int]:
    """A year (ending now) of what the instance writes; returns rows per table."""
    rng = random.Random(2031)
    db, counts = inst.db_dir, {}
    start = now - timedelta(days=YEAR)
    every = 10.0 / size
    log = _LOG.format(name="JOB_NAME")
    fire_log = _LOG.format(name="WATCHER_NAME") + ", WATCH_KEY, EXECUTOR_RUN_ID"
    beats = _heartbeats(start, every, int(YEAR * 86400 / every))
    counts["OPS.ADM_JOB_LOG"] = _bulk(db / "OPS.db", "ADM_JOB_LOG", log, beats)
    weeks, fires = max(1, int(52 * size)), max(1, int(100 * size))
    weekly = [j for j in jobs if j.name.startswith("job_")]
    last = last_fires(weekly, now)
    for schema in SCHEMAS:
        path = db / f"{schema}.db"
        mine = [w for w in watchers if w.schema == schema]
        runs = itertools.chain(
            _weekly([j for j in weekly if j.schema == schema], last, weeks, rng),
            _executor_runs(mine, start, fires),
        )
        counts[f"{schema}.ADM_JOB_LOG"] = _bulk(path, "ADM_JOB_LOG", log, runs)
        counts[f"{schema}.ADM_WATCHER_LOG"] = _bulk(
            path, "ADM_WATCHER_LOG", fire_log, _fires(mine, start, fires)
        )
        lines = _lines(schema, start, max(1, int(200 * size)))
        counts[f"{schema}.LOG_MESSAGES"] = _bulk(path, "LOG_MESSAGES", _LINES, lines)
        if schema == "DWH":
            ledger = _ledger(start, max(1, int(1000 * size)))
            counts["DWH.ADM_LOAD_LOG"] = _bulk(path, "ADM_LOAD_LOG", _LEDGER, ledger)
            errors = [
                (w.name, f"feed_{k}_bad.csv", _ts(start), _ts(now - timedelta(days=k)))
                for k, w in enumerate(mine[:50])
            ]
            with sqlite3.connect(path) as conn:
                conn.executemany(
                    "INSERT INTO ADM_WATCHER_EXEC_ERROR (WATCHER_NAME, WATCH_KEY, ERROR_COUNT, "
                    "FIRST_SEEN, LAST_SEEN, LAST_MESSAGE) VALUES (?, ?, 3, ?, ?, 'bad file')",
                    errors,
                )
    redsys = db / "REDSYS.db"
    minutes = int(YEAR * 1440 * size)
    counts["REDSYS.ADM_JMON_LOAD"] = _bulk(
        redsys, "ADM_JMON_LOAD", _JMON_LOAD, _pools(start, minutes, size)
    )
    counts["REDSYS.ADM_JMON_JOBLOG"] = _bulk(
        redsys, "ADM_JMON_JOBLOG", _JOBLOG, _joblog(weekly, start, minutes, size, weeks)
    )
    beat = start + timedelta(seconds=every * (int(YEAR * 86400 / every) - 1))
    status = [(HEARTBEAT, _run_id(beat), "OK", _ts(beat))]
    status += [
        (j.name, _run_id(last[j.name], k % 1000), "OK", _ts(last[j.name]))
        for k, j in enumerate(weekly)
    ]
    with sqlite3.connect(redsys) as conn:
        conn.executemany(
            "INSERT INTO ADM_JOB_STATUS (JOB_NAME, LAST_RUN_ID, LAST_STATE, LAST_QUEUED_AT, "
            "LAST_SEEN_AT) VALUES (?, ?, ?, ?, ?)",
            [(*row, row[3]) for row in status],
        )
    counts["REDSYS.ADM_JOB_STATUS"] = len(status)
    return counts


def build(
    home: Path,
    name: str,
    *,
    jobs: int = 10_000,
    watchers: int = 1_000,
    size: float = 1.0,
    fresh: bool = False,
    port_base: int | None = None,
) -> dict[str, object]:
    """Create and fill instance ``name`` under ``home``; return what a bench needs of it."""
    os.environ["REDHOME"] = str(home)
    inst = Instance(name, home)
    create_instance(inst, port_base=port_base)
    _conf(inst, {"rest_enabled": "true", "exa_password": "tu-secret", "gu_workers": "2"})
    ca = _certs(inst, home)
    now = datetime.now(UTC)
    defs = definitions(jobs, watchers, now)
    began = time.monotonic()
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        d.init()
        for schema in ("OPS", *SCHEMAS):
            d.ensure_schema(schema)
        d.apply_definitions(*defs)
    counts = {} if fresh else synthesize(inst, *defs, size, now)
    env = {**os.environ, **inst.environment()}
    token = subprocess.run(
        [str(BIN / "restctl"), "token", "add", "bench", "--role", "reader"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout.strip()
    info: dict[str, object] = {
        "instance": name,
        "home": str(home),
        "ca": ca,
        "token": token,
        "gu_port": inst.load_config().rest.gu_port,
        "rows": counts,
        "seconds": round(time.monotonic() - began, 1),
    }
    (home / f"{name}.bench.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--name", default="yr1")
    p.add_argument("--size", type=float, default=1.0)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--watchers", type=int, default=1_000)
    p.add_argument("--fresh", action="store_true", help="the definitions only, no history")
    p.add_argument("--port-base", type=int, default=None, help="the instance's first port")
    args = p.parse_args(argv)
    info = build(
        args.home,
        args.name,
        jobs=args.jobs,
        watchers=args.watchers,
        size=args.size,
        fresh=args.fresh,
        port_base=args.port_base,
    )
    rows = info["rows"]
    assert isinstance(rows, dict)
    for table, count in rows.items():
        print(f"{table:<28} {count:>10,}")
    total = sum(rows.values())
    print(f"instance {args.name} under {args.home}: {total:,} rows in {info['seconds']} s")
    print(f'next: eval "$(redsysctl env {args.name})" && redctl start')
    return 0


if __name__ == "__main__":
    sys.exit(main())
