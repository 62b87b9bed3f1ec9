"""Real role processes: json2csv and parq2csv convert, a CSV loader loads, files end archived."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.landing import parse_loader, run_load
from tests.conftest import BIN, wait_for


@pytest.fixture
def inst(make_instance: Callable[..., Instance]) -> Iterator[Instance]:
    inst = make_instance("tst1")
    text = inst.conf_path.read_text()
    text = text.replace("#sched_file_quiet_period = 2", "sched_file_quiet_period = 0.2")
    text = text.replace("#landing_poll_interval = 1", "landing_poll_interval = 0.1")
    inst.conf_path.write_text(text)
    yield inst


def _role(inst: Instance, name: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(inst.environment())
    return subprocess.Popen(
        [str(BIN / "redpss"), "role", name],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_json_parquet_csv_end_as_rows_and_archived(inst: Instance) -> None:
    data = inst.home / "data"
    config = inst.load_config()
    assert config.redsys.sched_file_quiet_period == 0.2
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        dic.upsert_loader(
            parse_loader(
                "events",
                {
                    "pattern": r"^events_\d\.csv$",
                    "target": "DWH.EVENTS",
                    "columns": [
                        {"name": "ID", "type": "DECIMAL(9,0)"},
                        {"name": "CITY", "type": "VARCHAR(20)", "source": "addr.city"},
                    ],
                },
            )
        )
        procs = [_role(inst, "json2csv"), _role(inst, "parq2csv")]
        try:
            (data / "input" / "events_1.json").write_text(
                '{"id": 1, "addr": {"city": "Bonn"}}\n{"id": 2, "addr": {"city": "Ulm"}}\n'
            )
            table = pa.table({"id": [3, 4, 5], "addr": [{"city": "Jena"}] * 3})
            pq.write_table(table, data / "input" / "events_2.parquet")
            (data / "input" / "events_3.csv").write_text("ID,addr.city\n6,Kiel\n")

            def converted() -> bool:
                names = {p.name for p in (data / "input").iterdir()}
                return names == {"events_1.csv", "events_2.csv", "events_3.csv"}

            wait_for(converted, timeout=60, what="both converters published their CSV")
            loaded: list[tuple[int, int, int]] = []

            def load() -> bool:
                r = run_load(
                    instance=inst,
                    config=config,
                    dictionary=dic,
                    loader="events",
                    key=None,
                    run_id=len(loaded) + 1,
                    schema="DWH",
                )
                loaded.append((r.files, r.rows, r.errors))
                return sum(f for f, _, _ in loaded) >= 3

            wait_for(load, timeout=30, what="the three CSV files loaded")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                assert proc.wait(timeout=30) == 0
        totals = tuple(sum(x) for x in zip(*loaded, strict=True))
        assert totals == (3, 6, 0)
        assert dic.target_row_count("DWH", "EVENTS") == 6
        assert sorted(p.name for p in (data / "archive").iterdir()) == [
            "events_1.csv",
            "events_1.json",
            "events_2.csv",
            "events_2.parquet",
            "events_3.csv",
        ]
        assert list((data / "work").iterdir()) == [] and list((data / "input").iterdir()) == []
        status = {s.role: s.state for s in dic.pss_status()}
        assert status == {"json2csv": "STOPPED", "parq2csv": "STOPPED"}
