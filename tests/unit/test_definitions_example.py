"""The shipped example of definitions is valid."""

from __future__ import annotations

from redpss.instance import template_text
from redpss.sched.definitions import parse_definitions


def test_shipped_example_parses() -> None:
    defs = parse_definitions(
        template_text("definitions.example.toml"), path="example", known_jobs=set()
    )
    assert {j.name for j in defs.jobs} == {"refresh_marts", "nightly_export", "load_sales"}
    assert {w.name for w in defs.watchers} == {"sales_files", "new_batch"}
    assert [loader.name for loader in defs.loaders] == ["sales"]
