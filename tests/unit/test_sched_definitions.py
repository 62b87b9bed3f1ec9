"""redctl db apply / export: every problem named with file, table and key; round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.dictionary.sqlite import SqliteDictionary
from redpss.errors import DefinitionsError
from redpss.sched.definitions import apply_file, export_text, parse_definitions

GOOD = """
[job.load]
schema = "dwh"
kind = "sql"
action = "SELECT 1"
interval = 60
timeout = 30

[job.nightly]
schema = "DWH"
kind = "CMD"
action = "export.sh --all"
cron = "0 2 * * *"
misfire = "skip"

[watcher.files]
schema = "DWH"
kind = "FILE"
pattern = '^in_.*\\.csv$'
interval = 5
executor = "load"
"""


def test_good_file_parses_into_definitions() -> None:
    defs = parse_definitions(GOOD, path="d.toml", known_jobs=set())
    jobs = {j.name: j for j in defs.jobs}
    assert jobs["load"].schema == "DWH" and jobs["load"].kind == "SQL"
    assert jobs["load"].schedule_type == "INTERVAL" and jobs["load"].timeout_seconds == 30
    assert jobs["nightly"].schedule_type == "CRON" and jobs["nightly"].misfire_policy == "SKIP"
    assert defs.watchers[0].watch_text == r"^in_.*\.csv$"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[job.a]\nschema="D"\nkind="SQL"\naction="x"\ninterval=5\ncron="* * * * *"',
            "d.toml: [job.a] interval and cron exclude each other",
        ),
        (
            '[job.a]\nschema="D"\nkind="SQL"\naction="x"\nintervall=5',
            "d.toml: [job.a] unknown key 'intervall'",
        ),
        (
            '[job.a]\nschema="D"\nkind="SQL"\naction="x"\ninterval="5"',
            "d.toml: [job.a] interval: expected int, got '5'",
        ),
        (
            '[job.a]\nschema="D"\nkind="SQL"\naction="x"\nactive=1',
            "d.toml: [job.a] active: expected bool, got 1",
        ),
        ('[job.a]\nschema="D"\nkind="SQL"', "d.toml: [job.a] action: required"),
        (
            '[job.a]\nschema="D"\nkind="SQL"\naction="x"\ninterval=0',
            "interval must be a positive number of seconds",
        ),
        (
            '[job.a]\nschema="D"\nkind="LOAD"\naction="nosuch"',
            "d.toml: [job.a] action: loader 'nosuch' does not exist",
        ),
        (
            '[watcher.w]\nschema="D"\nkind="FILE"\nquery="x"\nexecutor="j"',
            "d.toml: [watcher.w] a FILE watcher takes pattern, not query",
        ),
        ("[jobs.a]\nx=1", "d.toml: unknown table [jobs]"),
        ("[job.a\n", "d.toml: not valid TOML"),
    ],
)
def test_bad_files_name_file_table_and_key(text: str, message: str) -> None:
    with pytest.raises(DefinitionsError) as info:
        parse_definitions(text, path="d.toml", known_jobs={"j"})
    assert message in str(info.value)


def test_apply_checks_everything_before_changing_anything(tmp_path: Path) -> None:
    with SqliteDictionary(tmp_path / "db") as d:
        d.init()
        bad = tmp_path / "bad.toml"
        bad.write_text(GOOD + '\n[job.broken]\nschema="D"\nkind="SQL"\naction="x"\npool="p"\n')
        with pytest.raises(DefinitionsError, match=r"\[job.broken\] job broken: pool 'p'"):
            apply_file(d, bad)
        assert d.jobs() == []
        good = tmp_path / "good.toml"
        good.write_text(GOOD)
        apply_file(d, good)
        assert [j.name for j in d.jobs()] == ["load", "nightly"]
        exported = tmp_path / "export.toml"
        exported.write_text(export_text(d))
        again = parse_definitions(exported.read_text(), path="e", known_jobs=set())
        assert {j.name: j.cron_expr for j in again.jobs} == {"load": None, "nightly": "0 2 * * *"}
        assert again.watchers[0].executor_job == "load"
