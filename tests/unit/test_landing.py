"""The landing zone: lifecycle, loader definitions, the ledger, run_load and the bad-input list."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redpss.config import Config
from redpss.dictionary import Dictionary, open_dictionary
from redpss.errors import LoadError
from redpss.instance import Instance
from redpss.landing import (
    LoadResult,
    complete_files,
    parse_loader,
    recover,
    run_load,
    sweep,
    zone_of,
)
from redpss.landing.lifecycle import (
    LandingZone,
    archive,
    claim,
    claim_key,
    reject,
    work_claims,
)
from redpss.landing.opened import Opened

KEY = claim_key("unit tests")

MakeInstance = Callable[..., Instance]

COLUMNS = [
    {"name": "ID", "type": "DECIMAL(18,0)"},
    {"name": "NAME", "type": "VARCHAR(20)"},
    {"name": "AMOUNT", "type": "DECIMAL(10,2)"},
    {"name": "DAY", "type": "DATE"},
]


@dataclasses.dataclass
class Env:
    inst: Instance
    config: Config
    dic: Dictionary
    zone: LandingZone

    def add(self, name: str, **table: Any) -> None:
        table.setdefault("columns", COLUMNS)
        self.dic.upsert_loader(parse_loader(name, table))

    def drop(self, name: str, data: bytes | str) -> Path:
        path = self.zone.input / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def load(self, loader: str, key: str | None = None, run_id: int = 1) -> LoadResult:
        return run_load(
            instance=self.inst,
            config=self.config,
            dictionary=self.dic,
            loader=loader,
            key=key,
            run_id=run_id,
            schema="DWH",
        )

    def sidecar(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.zone.error / f"{name}.error.json").read_text())
        return doc

    def rows(self, table: str = "SALES") -> int:
        return self.dic.target_row_count("DWH", table)


@pytest.fixture(params=["sqlite", "exasol-emulated"])
def env(make_instance: MakeInstance, request: pytest.FixtureRequest) -> Iterator[Env]:
    """An instance with a landing zone; its dictionary is each backend in turn (Exasol: on
    the emulated database of tests/unit/exasol_emulator.py)."""
    inst = make_instance("tst1")
    config = inst.load_config()
    config = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    )
    zone = zone_of(inst, inst.load_config())
    if request.param != "sqlite":
        yield Env(inst, config, request.getfixturevalue("exa_dic"), zone)
        return
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        yield Env(inst, config, dic, zone)


GOOD = "ID,NAME,AMOUNT,DAY\n1,anna,12.50,2030-01-02\n2,bob,,2030-01-03\n"


# -- definitions ---------------------------------------------------------------------------


def test_parse_loader_defaults_and_normalises() -> None:
    ldr = parse_loader(
        "sales", {"pattern": r"^s_.*\.csv$", "target": "dwh.sales", "columns": COLUMNS}
    )
    assert (ldr.schema, ldr.table, ldr.format, ldr.duplicates, ldr.marker) == (
        "DWH",
        "SALES",
        "CSV",
        "SKIP",
        "NONE",
    )
    assert ldr.columns[2].type == "DECIMAL(10,2)" and ldr.matches("s_1.csv")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"target": "DWH.S", "columns": COLUMNS}, "'pattern' is required"),
        ({"pattern": "(", "target": "DWH.S", "columns": COLUMNS}, "'pattern' is not a valid"),
        ({"pattern": "x", "target": "S", "columns": COLUMNS}, "'target' must be SCHEMA.TABLE"),
        ({"pattern": "x", "target": "REDSYS.S", "columns": COLUMNS}, "'target'"),
        ({"pattern": "x", "target": "D.ADM_JOBS", "columns": COLUMNS}, "dictionary object"),
        ({"pattern": "x", "target": "D.S", "columns": []}, "'columns' must list"),
        ({"pattern": "x", "target": "D.S", "columns": [{"name": "A", "type": "TEXT"}]}, "'type'"),
        ({"pattern": "x", "target": "D.S", "columns": [{"name": "A"}]}, "'type' is required"),
        ({"pattern": "x", "target": "D.S", "columns": COLUMNS, "format": "XML"}, "'format'"),
        ({"pattern": "x", "target": "D.S", "columns": COLUMNS, "delimiter": ";;"}, "'delimiter'"),
        ({"pattern": "x", "target": "D.S", "columns": COLUMNS, "encoding": "klingon"}, "encoding"),
        ({"pattern": "x", "target": "D.S", "columns": COLUMNS, "colour": "red"}, "'colour'"),
        ({"pattern": "x", "target": "D.S", "columns": COLUMNS, "header": "yes"}, "'header'"),
        (
            {"pattern": "x", "target": "D.S", "columns": COLUMNS, "fixed_width": True},
            "'start' and 'size'",
        ),
        (
            {
                "pattern": "x",
                "target": "D.S",
                "columns": [*COLUMNS, {"name": "id", "type": "DATE"}],
            },
            "ID appears twice",
        ),
    ],
)
def test_parse_loader_names_the_bad_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(key)):
        parse_loader("sales", table)


def test_loader_round_trips_through_the_dictionary(env: Env) -> None:
    ldr = parse_loader(
        "fw",
        {
            "pattern": "x",
            "target": "DWH.FW",
            "fixed_width": True,
            "quote": "",
            "marker": ".done",
            "columns": [{"name": "A", "type": "CHAR(3)", "start": 1, "size": 3}],
        },
    )
    assert env.dic.upsert_loader(ldr) is True
    assert env.dic.upsert_loader(ldr) is False
    assert env.dic.loader("fw") == ldr
    assert [x.name for x in env.dic.loaders()] == ["fw"]
    assert env.dic.delete_loader("fw") and env.dic.loader("fw") is None


# -- lifecycle -----------------------------------------------------------------------------


def test_complete_files_quiet_period_marker_and_non_data(tmp_path: Path) -> None:
    for name in ("a.csv", ".hidden.csv", "b.csv.part", "c.csv.filepart", "d.csv.done", "e.txt"):
        (tmp_path / name).write_text("x")
    every = re.compile(r"\.csv$")
    assert complete_files(tmp_path, every, quiet_period=60, marker=False) == []
    assert [p.name for p in complete_files(tmp_path, every, quiet_period=0, marker=False)] == [
        "a.csv"
    ]
    assert complete_files(tmp_path, every, quiet_period=0, marker=True) == []
    (tmp_path / "a.csv.ok").write_text("")
    assert [p.name for p in complete_files(tmp_path, every, quiet_period=60, marker=True)] == [
        "a.csv"
    ]
    # an old mtime set by the sender does not make a fresh file complete: ctime counts
    os.utime(tmp_path / "a.csv", (0, 0))
    assert complete_files(tmp_path, every, quiet_period=60, marker=False) == []


def test_claim_and_finish_never_overwrite(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, KEY).ensure()
    names = ["with space.csv", "ünïcødé.csv", "-rf.csv", "--help.csv"]
    for round_ in range(2):  # the same names twice: collisions in archive/ and error/
        for name in names:
            (zone.input / name).write_text(f"{name} {round_}")
            item = claim(zone, zone.input / name)
            assert item is not None and item.name == name
            assert claim(zone, zone.input / name) is None  # already gone
            if name.startswith("-"):
                reject(zone, item, "bad", loader="x", line=3)
            else:
                archive(zone, item)
    assert sorted(p.read_text() for p in zone.archive.iterdir()) == sorted(
        f"{n} {r}" for n in names[:2] for r in range(2)
    )
    errors = sorted(p.name for p in zone.error.iterdir())
    assert len(errors) == 8 and "-rf.csv" in errors and "-rf.csv.error.json" in errors
    assert list(zone.work.iterdir()) == [] and list(zone.input.iterdir()) == []
    doc = json.loads((zone.error / "-rf.csv.error.json").read_text())
    assert doc["reason"] == "bad" and doc["line"] == 3 and doc["loader"] == "x"


# -- run_load: the good path ---------------------------------------------------------------


def test_csv_file_is_loaded_once_and_archived(env: Env) -> None:
    env.add("sales", pattern=r"^sales_\d+\.csv$", target="DWH.SALES")
    env.drop("sales_1.csv", GOOD)
    env.drop("other.csv", GOOD)
    result = env.load("sales")
    assert (result.files, result.rows, result.duplicates, result.errors) == (1, 2, 0, 0)
    assert env.rows() == 2 and (env.zone.archive / "sales_1.csv").exists()
    assert (env.zone.input / "other.csv").exists()
    (ledger,) = env.dic.load_ledger()
    assert (ledger.file_name, ledger.target, ledger.row_count, ledger.status) == (
        "sales_1.csv",
        "DWH.SALES",
        2,
        "LOADED",
    )
    # the same content again: archived as a duplicate, not loaded twice
    env.drop("sales_2.csv", GOOD)
    result = env.load("sales", key="sales_2.csv")
    assert (result.files, result.duplicates) == (0, 1) and env.rows() == 2
    assert (env.zone.archive / "sales_2.csv").exists()


def test_foreign_upload_is_archived_when_the_kernel_refuses_the_hard_link(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fs.protected_hardlinks: an sFTP user's 0644 upload cannot be hard-linked by redsys
    link = os.link

    def refuse(src: str | Path, dst: str | Path, **kwargs: bool) -> None:
        if Path(src).parent == env.zone.work:
            raise PermissionError(1, "Operation not permitted")
        link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", refuse)
    env.add("sales", pattern=r"^sales_\d+\.csv$", target="DWH.SALES")
    (env.zone.archive / "sales_1.csv").write_text("an earlier file of that name")
    env.drop("sales_1.csv", GOOD)
    assert env.load("sales").rows == 2
    assert (env.zone.archive / "sales_1.csv").read_text() == "an earlier file of that name"
    (kept,) = [p for p in env.zone.archive.iterdir() if p.name != "sales_1.csv"]
    assert kept.name.startswith("sales_1.csv.L") and kept.read_text() == GOOD
    assert list(env.zone.work.iterdir()) == [] and list(env.zone.input.iterdir()) == []


def test_duplicate_policies_load_and_error(env: Env) -> None:
    env.add("again", pattern=r"^a_", target="DWH.SALES", duplicates="load")
    env.add("strict", pattern=r"^s_", target="DWH.OTHER", duplicates="error")
    for prefix, loader in (("a_", "again"), ("s_", "strict")):
        for n in (1, 2):
            env.drop(f"{prefix}{n}.csv", GOOD)
            env.load(loader, key=f"{prefix}{n}.csv")
    assert env.rows("SALES") == 4
    assert env.rows("OTHER") == 2
    assert "same content as 's_1.csv'" in env.sidecar("s_2.csv")["reason"]


def test_json_parquet_fixed_width_and_options(env: Env) -> None:
    env.add("j", pattern=r"\.json$", target="DWH.J", format="JSON", columns=[
        {"name": "ID", "type": "DECIMAL(9,0)"},
        {"name": "CITY", "type": "VARCHAR(10)", "source": "addr.city"},
    ])  # fmt: skip
    env.drop("a.json", '{"id": 1, "addr": {"city": "Bonn"}}\n{"id": 2, "addr": {"city": null}}\n')
    env.drop("b.json", '[{"id": 3, "addr": {"city": "Köln"}},\n {"id": 4, "addr": {}}]')
    assert env.load("j").rows == 4
    env.add("p", pattern=r"\.parquet$", target="DWH.P", format="PARQUET", columns=[
        {"name": "ID", "type": "DECIMAL(9,0)"}, {"name": "TS", "type": "TIMESTAMP"},
    ])  # fmt: skip
    table = pa.table({"id": [1, 2], "ts": pa.array([0, 1_000_000], pa.timestamp("us"))})
    pq.write_table(table, env.zone.input / "x.parquet")
    assert env.load("p").rows == 2
    env.add("f", pattern=r"\.dat$", target="DWH.F", fixed_width=True, header=False, columns=[
        {"name": "CODE", "type": "CHAR(3)", "start": 1, "size": 3},
        {"name": "DAY", "type": "DATE", "start": 4, "size": 10, "format": "%d.%m.%Y"},
    ])  # fmt: skip
    env.drop("x.dat", "ABC02.01.2030\nXY 03.01.2030\n")
    assert env.load("f").rows == 2
    env.add("semi", pattern=r"\.txt$", target="DWH.T", delimiter=";", encoding="latin-1",
            null="NULL", header=False, columns=[
                {"name": "A", "type": "VARCHAR(5)"}, {"name": "B", "type": "BOOLEAN"}])  # fmt: skip
    env.drop("x.txt", "é;yes\nNULL;0\n".encode("latin-1"))
    assert env.load("semi").rows == 2
    assert env.dic.target_row_count("DWH", "T") == 2


# -- the bad-input list --------------------------------------------------------------------


def _parquet_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"ID": list(range(1000))}), sink)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        (
            "bad_cols.csv",
            "ID,NAME,AMOUNT,DAY\n1,a,1.00,2030-01-01\n2,b,1.00\n",
            "3 fields, expected 4",
        ),
        ("bad_enc.csv", b"ID,NAME,AMOUNT,DAY\n1,\xe9t\xe9,1,2030-01-01\n", "not valid utf-8"),
        ("empty.csv", b"", "empty file"),
        ("bad_type.csv", "ID,NAME,AMOUNT,DAY\nx,a,1,2030-01-01\n", "column ID"),
        (
            "long.csv",
            "ID,NAME,AMOUNT,DAY\n1,a,1.00,2030-01-01\n" + "x" * 3000 + "\n",
            "longer than",
        ),
        ("bad.json", '{"ID": 1}\n{"ID": 2\n{"ID": 3}\n', "invalid JSON"),
        ("bad.parquet", _parquet_bytes()[:-100], "Parquet"),
    ],
)
def test_bad_input_goes_to_error_with_a_reason(
    env: Env, name: str, data: bytes | str, reason: str
) -> None:
    fmt = {"json": "JSON", "parquet": "PARQUET"}.get(name.rsplit(".", 1)[1], "CSV")
    cols = COLUMNS if fmt == "CSV" else [{"name": "ID", "type": "DECIMAL(9,0)"}]
    env.add("l", pattern=re.escape(name), target="DWH.SALES" if fmt == "CSV" else "DWH.X",
            format=fmt, columns=cols)  # fmt: skip
    env.config = dataclasses.replace(
        env.config, redsys=dataclasses.replace(env.config.redsys, landing_max_record=2048)
    )
    env.drop(name, data)
    result = env.load("l")
    assert (result.files, result.errors) == (0, 1)
    assert reason.lower() in env.sidecar(name)["reason"].lower()
    assert (env.zone.error / name).exists() and list(env.zone.work.iterdir()) == []
    assert env.dic.load_ledger() == []
    assert "rejected" in env.dic.all_log_messages()[0].message
    if name == "bad.json":
        assert env.sidecar(name)["line"] == 2


def test_vanished_two_loaders_no_loader_and_symlinks(env: Env, tmp_path: Path) -> None:
    env.add("one", pattern=r"^both", target="DWH.SALES")
    env.add("two", pattern=r"\.csv$", target="DWH.SALES")
    env.drop("both.csv", GOOD)
    assert env.load("one").errors == 1
    assert "more than one loader: one, two" in env.sidecar("both.csv")["reason"]
    # a link is refused wherever it points (out of the tree, or into it); its target untouched
    outside = tmp_path / "secret.csv"
    outside.write_text(GOOD)
    (env.zone.input / "link.csv").symlink_to(outside)
    (env.zone.archive / "old.csv").write_text(GOOD)
    (env.zone.input / "inside.csv").symlink_to("../archive/old.csv")
    assert env.load("two").errors == 2
    for name in ("link.csv", "inside.csv"):
        assert "symbolic link" in env.sidecar(name)["reason"]
        assert (env.zone.error / name).is_symlink()
    assert outside.read_text() == GOOD and env.dic.target_row_count("DWH", "SALES") == 0
    # no loader: sweep rejects it
    env.drop("orphan.xml", "<x/>")
    assert sweep(env.inst, env.config, env.dic) == ["rejected orphan.xml: no loader matches"]
    assert env.sidecar("orphan.xml")["reason"] == "no loader matches the file name"


def test_file_vanishing_while_claimed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import redpss.landing as landing

    env.add("two", pattern=r"\.csv$", target="DWH.SALES")
    env.drop("gone.csv", GOOD)
    env.drop("kept.csv", GOOD.replace("1,", "7,"))
    real = landing.opened.open_regular

    def vanish(path: Path) -> Opened:
        if path.name.endswith("gone.csv"):
            path.unlink()  # gone between the claim and the open
            return real(path)
        opened = real(path)
        path.unlink()  # gone after the open: what was opened is still read
        return opened

    monkeypatch.setattr(landing, "open_regular", vanish)
    result = env.load("two")
    assert (result.errors, result.files) == (1, 1)
    (sidecar,) = env.zone.error.glob("gone.csv.*.error.json")
    assert "vanished" in json.loads(sidecar.read_text())["reason"]
    assert env.dic.target_row_count("DWH", "SALES") == 2


def test_run_failures_raise_load_error(env: Env) -> None:
    with pytest.raises(LoadError, match="no loader called 'nope'"):
        env.load("nope")
    env.add("off", pattern="x", target="DWH.SALES", active=False)
    with pytest.raises(LoadError, match="not active"):
        env.load("off")
    env.add("on", pattern="x", target="DWH.SALES")
    with pytest.raises(LoadError, match="not a file name"):
        env.load("on", key="../x")
    with pytest.raises(LoadError, match="does not match"):
        env.load("on", key="y")


def test_recover_archives_committed_and_requeues_the_rest(env: Env) -> None:
    env.add("sales", pattern=r"\.csv$", target="DWH.SALES")
    env.drop("a.csv", GOOD)
    env.drop("b.csv", GOOD.replace("anna", "carl"))
    env.load("sales", key="a.csv")
    # simulate a crash after commit (a.csv back in work/ under its claim) and before load (b)
    (ledger,) = env.dic.load_ledger()
    os.rename(env.zone.archive / "a.csv", env.zone.work / f"{ledger.claim_id}.a.csv")
    b = claim(env.zone, env.zone.input / "b.csv")
    assert b is not None
    done = recover(env.inst, env.dic)
    assert len(done) == 2 and list(work_claims(env.zone)) == []
    assert (env.zone.archive / "a.csv").exists() and (env.zone.input / "b.csv").exists()
    assert env.load("sales").files == 1 and env.rows() == 4


def test_sweep_deletes_past_retention(env: Env) -> None:
    (env.zone.archive / "old.csv").write_text("x")
    cfg = dataclasses.replace(env.config.redsys, landing_archive_retention=-1.0)
    config = dataclasses.replace(env.config, redsys=cfg)
    assert "deleted 1 archived" in sweep(env.inst, config, env.dic)[-1]
    assert not (env.zone.archive / "old.csv").exists()


def test_quiet_period_waits_for_a_growing_file(env: Env) -> None:
    env.add("sales", pattern=r"\.csv$", target="DWH.SALES")
    cfg = dataclasses.replace(env.config.redsys, sched_file_quiet_period=30.0)
    env.config = dataclasses.replace(env.config, redsys=cfg)
    env.drop("fresh.csv", GOOD)
    assert env.load("sales").files == 0 and (env.zone.input / "fresh.csv").exists()
    past = time.time() - 60
    os.utime(env.zone.input / "fresh.csv", (past, past))
    assert env.load("sales").files == 0  # ctime is still fresh
