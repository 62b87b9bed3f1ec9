"""The SQLite dictionary used by many processes at once: heartbeats, reads, concurrent init."""

from __future__ import annotations

import multiprocessing
import queue
import time
from pathlib import Path
from typing import Any

from redpss.dictionary import SCHEMA_VERSION, Dictionary, open_dictionary
from redpss.dictionary.sqlite import SqliteDictionary
from tests.unit.test_dictionary import _query, _register

# -- many processes ------------------------------------------------------------------------

HEARTBEATS = 200
WRITERS = 4


def _beat(db_dir: Path, role: str, results: Any) -> None:
    try:
        with open_dictionary("sqlite", db_dir=db_dir) as d:
            pid = multiprocessing.current_process().pid or 0
            _register(d, role, pid, interval=1.0)
            for _ in range(HEARTBEATS):
                assert d.heartbeat(role, pid=pid)
            d.role_stopped(role, pid=pid)
        results.put(("ok", role))
    except Exception as exc:
        results.put(("error", f"{role}: {exc!r}"))


def _read(db_dir: Path, stop: Any, results: Any) -> None:
    reads = 0
    try:
        with open_dictionary("sqlite", db_dir=db_dir) as d:
            while not stop.is_set():
                d.pss_status()
                reads += 1
        results.put(("ok" if reads else "error", f"reader read {reads} times"))
    except Exception as exc:
        results.put(("error", f"reader: {exc!r}"))


def _init(db_dir: Path, results: Any) -> None:
    try:
        with open_dictionary("sqlite", db_dir=db_dir) as d:
            results.put(("ok", d.init()))
    except Exception as exc:
        results.put(("error", repr(exc)))


def _collect(results: Any, count: int, deadline: float) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    while len(got) < count:
        got.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
    return got


def test_many_processes_heartbeat_while_one_reads(dic: Dictionary) -> None:
    assert isinstance(dic, SqliteDictionary)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    stop = ctx.Event()
    reader = ctx.Process(target=_read, args=(dic.db_dir, stop, results))
    writers = [
        ctx.Process(target=_beat, args=(dic.db_dir, f"role{i}", results)) for i in range(WRITERS)
    ]
    reader.start()
    for p in writers:
        p.start()
    deadline = time.monotonic() + 90
    try:
        got = _collect(results, WRITERS, deadline)
    finally:
        stop.set()
        try:
            got_reader = _collect(results, 1, time.monotonic() + 30)
        except queue.Empty:
            got_reader = [("error", "reader did not report")]
        for p in [reader, *writers]:
            p.join(timeout=30)
        results.close()
        results.join_thread()
    errors = [msg for kind, msg in got + got_reader if kind != "ok"]
    assert errors == []
    assert all(p.exitcode == 0 for p in [reader, *writers])
    status = dic.pss_status()
    assert [(s.role, s.state) for s in status] == [(f"role{i}", "STOPPED") for i in range(WRITERS)]


def test_concurrent_init_applies_each_migration_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_init, args=(tmp_path, results)) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        got = _collect(results, len(procs), time.monotonic() + 60)
    finally:
        for p in procs:
            p.join(timeout=30)
        results.close()
        results.join_thread()
    assert got == [("ok", SCHEMA_VERSION)] * len(procs)
    rows = _query(tmp_path / "REDSYS.db", "SELECT VERSION FROM ADM_VERSION_HISTORY")
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
