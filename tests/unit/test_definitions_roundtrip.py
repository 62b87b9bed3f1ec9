"""db export writes jobs, watchers and loaders so that db apply on a fresh instance restores
them; db remove refuses what another definition needs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.cli import redctl
from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.loaders import (
    DUPLICATE_POLICIES,
    FORMATS,
    MARKERS,
    Loader,
    LoaderColumn,
    parse_loader,
)
from redpss.errors import DefinitionsError
from redpss.instance import Instance
from redpss.sched.control import NotFound
from redpss.sched.definitions import apply_file, export_text, loader_table, remove_definition

IDENT = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda s: not s.startswith("ADM_") and s not in ("REDSYS", "LOG_MESSAGES")
)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
TYPES = st.sampled_from(["VARCHAR(100)", "CHAR(3)", "DECIMAL(18,2)", "DECIMAL(9,0)", "DOUBLE",
                         "DATE", "TIMESTAMP", "BOOLEAN"])  # fmt: skip
ONE_CHAR = st.sampled_from([",", ";", "\t", "|", "'", '"'])
SMALL = st.none() | st.integers(min_value=1, max_value=10_000)


@st.composite
def loaders(draw: st.DrawFn) -> Loader:
    fmt = draw(st.sampled_from(FORMATS))
    fixed = fmt == "CSV" and draw(st.booleans())
    names = draw(st.lists(IDENT, min_size=1, max_size=5, unique=True))
    columns = tuple(
        LoaderColumn(
            name=n, type=draw(TYPES), source=draw(st.none() | TEXT.filter(bool)),
            source_pos=draw(SMALL), format=draw(st.none() | TEXT.filter(bool)),
            fbv_start=draw(st.integers(1, 500)) if fixed else draw(SMALL),
            fbv_size=draw(st.integers(1, 500)) if fixed else draw(SMALL),
        )
        for n in names
    )  # fmt: skip
    return Loader(
        name=draw(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,30}", fullmatch=True)),
        pattern=draw(st.sampled_from([r"^sales_\d{8}\.csv$", "x", r"(a|b)+\.json", ".*"])),
        schema=draw(IDENT), table=draw(IDENT), columns=columns, format=fmt,
        encoding=draw(st.sampled_from(["utf-8", "latin-1", "cp1252"])),
        delimiter=draw(ONE_CHAR), quote=draw(st.none() | ONE_CHAR),
        header=draw(st.booleans()), null_string=draw(TEXT), date_format=draw(TEXT),
        timestamp_format=draw(TEXT), fixed_width=fixed, marker=draw(st.sampled_from(MARKERS)),
        duplicates=draw(st.sampled_from(DUPLICATE_POLICIES)), active=draw(st.booleans()),
        description=draw(st.none() | TEXT),
    )  # fmt: skip


@given(loaders())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_loader_table_reads_back_equal(loader: Loader) -> None:
    assert parse_loader(loader.name, loader_table(loader)) == loader


DEFS = """
[loader.sales]
pattern = '^sales_\\d{8}\\.csv$'
target = "DWH.SALES"
delimiter = ";"
quote = ""
null = "NULL"
marker = ".done"
duplicates = "error"
description = "daily sales"
columns = [
  { name = "ID", type = "DECIMAL(18,0)" },
  { name = "AMOUNT", type = "DECIMAL(12,2)", source = "amount" },
  { name = "DAY", type = "DATE", format = "%d.%m.%Y", pos = 3 },
]

[job.load_sales]
schema = "DWH"
kind = "LOAD"
action = "sales"
pool = "loader"

[job.nightly]
schema = "DWH"
kind = "SQL"
action = "SELECT 1"
cron = "0 2 * * *"
timeout = 600
misfire = "SKIP"
active = false
description = "the nightly one"

[watcher.sales_files]
schema = "DWH"
kind = "FILE"
pattern = '^sales_'
interval = 5
executor = "load_sales"

[watcher.changes]
schema = "DWH"
kind = "SQL"
query = "SELECT 1"
interval = 30
executor = "nightly"
"""


def test_export_then_apply_on_a_fresh_instance_round_trips(
    any_dic: Dictionary, tmp_path: Path
) -> None:
    source = tmp_path / "defs.toml"
    source.write_text(DEFS)
    apply_file(any_dic, source)
    exported = export_text(any_dic)
    assert "[loader.sales]" in exported
    backup = tmp_path / "backup.toml"
    backup.write_text(exported)
    with open_dictionary("sqlite", db_dir=tmp_path / "fresh") as fresh:
        fresh.init()
        applied = apply_file(fresh, backup)  # failed before: loader 'sales' does not exist
        assert (len(applied.jobs), len(applied.watchers), len(applied.loaders)) == (2, 2, 1)
        assert export_text(fresh) == exported
        assert fresh.loader("sales") == any_dic.loader("sales")

        def plain(d: Dictionary) -> list[object]:
            return [dataclasses.replace(j, changed_at=None) for j in d.jobs()]

        assert plain(fresh) == plain(any_dic)


def test_remove_refuses_what_another_definition_needs(dic: Dictionary, tmp_path: Path) -> None:
    source = tmp_path / "defs.toml"
    source.write_text(DEFS)
    apply_file(dic, source)
    with pytest.raises(DefinitionsError, match=r"executor of watcher.*sales_files"):
        remove_definition(dic, "job", "load_sales")
    with pytest.raises(DefinitionsError, match=r"loaded by job.*load_sales"):
        remove_definition(dic, "loader", "sales")
    with pytest.raises(NotFound, match="did you mean: sales"):
        remove_definition(dic, "loader", "sale")
    with pytest.raises(NotFound, match="did you mean: nightly"):
        remove_definition(dic, "job", "nightl")
    text = remove_definition(dic, "watcher", "sales_files")
    removed = [
        remove_definition(dic, "job", "load_sales"),
        remove_definition(dic, "loader", "sales"),
    ]
    assert [w.name for w in dic.watchers()] == ["changes"]
    assert dic.loaders() == [] and [j.name for j in dic.jobs()] == ["nightly"]
    # what remove printed puts it all back
    back = tmp_path / "back.toml"
    back.write_text("\n".join([removed[1], removed[0], text]))
    apply_file(dic, back)
    assert {w.name for w in dic.watchers()} == {"changes", "sales_files"}
    assert dic.loader("sales") is not None


def test_redctl_db_export_apply_remove(
    make_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    one, two = make_instance("rt1"), make_instance("rt2")
    monkeypatch.setenv("REDHOME", str(one.redhome))
    defs, backup = tmp_path / "defs.toml", tmp_path / "backup.toml"
    defs.write_text(DEFS)
    for inst in (one, two):
        assert redctl.main(["--instance", inst.name, "db", "init"]) == 0
    assert redctl.main(["--instance", "rt1", "db", "apply", str(defs)]) == 0
    assert redctl.main(["--instance", "rt1", "db", "export", str(backup)]) == 0
    assert redctl.main(["--instance", "rt2", "db", "apply", str(backup)]) == 0
    capsys.readouterr()
    assert redctl.main(["--instance", "rt2", "db", "export"]) == 0
    assert capsys.readouterr().out == backup.read_text()
    assert redctl.main(["--instance", "rt2", "db", "remove", "loader", "sales"]) == 1
    assert "loaded by job(s) load_sales" in capsys.readouterr().err
    assert redctl.main(["--instance", "rt2", "--json", "db", "remove", "job", "nightly"]) == 1
    refused = json.loads(capsys.readouterr().out)  # --json: the error is JSON on stdout
    assert refused["exit"] == 1 and "executor" in refused["error"]
    assert redctl.main(["--instance", "rt2", "db", "remove", "watcher", "changes"]) == 0
    assert "[watcher.changes]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        redctl.main(["--instance", "rt2", "db", "remove", "table", "x"])
    assert usage.value.code == 2
    audit = [json.loads(x) for x in (two.log_dir / "audit.log").read_text().splitlines()]
    assert [(a["command"], a["exit_code"]) for a in audit] == [
        ("db init", 0), ("db apply", 0), ("db remove", 1), ("db remove", 1), ("db remove", 0),
    ]  # fmt: skip
