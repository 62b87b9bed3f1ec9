"""#14.7: writers of one SQLite schema file wait for each other instead of failing.

Two loads into one schema at once lost a file to "database is locked": the first load holds
the write lock while it reads its file, longer than the busy timeout of the second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from redpss.dictionary import open_dictionary
from redpss.dictionary.landing import LedgerEntry
from redpss.dictionary.loaders import parse_loader

F = parse_loader(
    "f", {"pattern": "^f", "target": "OPS.F", "columns": [{"name": "ID", "type": "DECIMAL(18,0)"}]}
)
G = parse_loader(
    "g", {"pattern": "^g", "target": "OPS.G", "columns": [{"name": "ID", "type": "DECIMAL(18,0)"}]}
)


def slow_rows(seconds: float, started: threading.Event) -> Iterator[tuple[int]]:
    """The rows of a big file: reading them takes ``seconds`` (the write lock is held)."""
    started.set()
    for i in range(10):
        time.sleep(seconds / 10)
        yield (i,)


def test_two_loads_into_one_schema_wait_for_each_other(tmp_path: Path) -> None:
    with open_dictionary("sqlite", db_dir=tmp_path / "db", busy_timeout=0.3) as d:
        d.init()
        d.ensure_target_table(F)
        d.ensure_target_table(G)
        started = threading.Event()
        errors: list[BaseException] = []

        def first() -> None:
            try:
                rows = slow_rows(1.0, started)  # three times the busy timeout
                entry = LedgerEntry("C1", "a" * 64, "f1.csv", 10, "OPS.F", "f", 1)
                d.load_rows(F, rows, entry=entry)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=first)
        t.start()
        assert started.wait(5)
        entry = LedgerEntry("C2", "b" * 64, "g1.csv", 4, "OPS.G", "g", 2)
        out = d.load_rows(G, iter([(1,), (2,)]), entry=entry)
        t.join()
        assert errors == []
        assert out.rows == 2
