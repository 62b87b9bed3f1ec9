"""Fixtures of the unit tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.dictionary import Dictionary, open_dictionary


@pytest.fixture
def dic(tmp_path: Path) -> Iterator[Dictionary]:
    """An initialised SQLite dictionary in a temporary directory."""
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        d.init()
        yield d
