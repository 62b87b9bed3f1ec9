"""The SQLite dictionary used by many processes at once: heartbeats, reads, concurrent init."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from redpss.dictionary import SCHEMA_VERSION, Dictionary, open_dictionary
from redpss.dictionary.sqlite import SqliteDictionary
from redpss.errors import DictionaryError
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


# -- the connections an idle role keeps ----------------------------------------------------


def _counting_opens(d: SqliteDictionary) -> list[Path]:
    """Record every connection ``d`` opens (the spy of one method of the backend)."""
    opened: list[Path] = []
    original = d._open

    def spy(path: Path, *, create: bool = False) -> sqlite3.Connection:
        opened.append(path)
        return original(path, create=create)

    d._open = spy  # type: ignore[method-assign]
    return opened


def test_heartbeats_and_stamp_looks_reuse_one_connection_per_thread(tmp_path: Path) -> None:
    # opening reads the schema and the last close checkpoints the WAL: per heartbeat of every
    # role, that was the largest cost of an idle instance
    with SqliteDictionary(tmp_path) as d:
        d.init()
        _register(d, "dbls", 7)
        opened = _counting_opens(d)
        for i in range(5):
            assert d.heartbeat("dbls", pid=7, info=f"beat {i}")
            d.definitions_stamp()
        assert len(opened) == 1
        other = threading.Thread(target=lambda: d.heartbeat("dbls", pid=7, info="thread"))
        other.start()
        other.join()
        assert len(opened) == 2  # a thread of its own, a connection of its own
        # between calls the kept connection holds no lock: another process writes at once
        with closing(sqlite3.connect(tmp_path / "REDSYS.db", timeout=0)) as conn:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("UPDATE ADM_PSS_STATUS SET INFO = 'outside'")
            conn.execute("COMMIT")
        assert d.pss_status()[0].info == "outside"  # (a reading call: its own connection)
        opened.clear()
        assert d.heartbeat("dbls", pid=7, info="kept")
        assert opened == []
        d.close()
        assert d.heartbeat("dbls", pid=7, info="after close")
        assert len(opened) == 1


def test_a_kept_connection_follows_a_replaced_file_and_survives_an_error(tmp_path: Path) -> None:
    path = tmp_path / "REDSYS.db"
    with SqliteDictionary(tmp_path, busy_timeout=0.2) as d:
        d.init()
        _register(d, "dbls", 7)
        assert d.heartbeat("dbls", pid=7, info="old file")
        # the file is replaced (a restore): the next heartbeat goes to the new file
        copy = tmp_path / "copy.db"
        with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(copy)) as dst:
            src.backup(dst)
        os.replace(copy, path)
        assert d.heartbeat("dbls", pid=7, info="new file")
        assert _query(path, "SELECT INFO FROM ADM_PSS_STATUS") == [("new file",)]
        # the dictionary locked by another process: this heartbeat fails, the next one works
        with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as lock:
            lock.execute("BEGIN EXCLUSIVE")
            with pytest.raises(DictionaryError, match="locked"):
                d.heartbeat("dbls", pid=7, info="while locked")
            lock.execute("ROLLBACK")
        assert d.heartbeat("dbls", pid=7, info="unlocked")
        assert _query(path, "SELECT INFO FROM ADM_PSS_STATUS") == [("unlocked",)]


def _open_files(name: str) -> int:
    """How many file descriptors of this process point at a file called ``name``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").endswith(f"/{name}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return count


def test_the_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    # sched answers each wire connection in a new thread: its kept connections must not pile up
    with SqliteDictionary(tmp_path) as d:
        d.init()
        _register(d, "sched", 7)
        before = _open_files("REDSYS.db")
        for i in range(20):
            one = threading.Thread(target=d.heartbeat, args=("sched",), kwargs={"pid": 7})
            one.start()
            one.join()
            # one kept connection (the last thread's), and at most one descriptor whose close
            # SQLite defers while another connection of the process has the file locked
            assert _open_files("REDSYS.db") <= before + 2, f"after thread {i}"
        d.close()
        assert _open_files("REDSYS.db") == before
