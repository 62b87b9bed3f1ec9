"""Fixtures of the unit tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.dictionary import Dictionary, open_dictionary
from tests.unit.exasol_emulator import EmulatedDatabase
from tests.unit.exasol_support import emulated_dictionary


@pytest.fixture
def dic(tmp_path: Path) -> Iterator[Dictionary]:
    """An initialised SQLite dictionary in a temporary directory."""
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        d.init()
        yield d


@pytest.fixture(scope="session")
def exa_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An emulated database with REDSYS initialised, saved once for ``exa_db`` to copy."""
    path = tmp_path_factory.mktemp("exasol") / "initialised.duckdb"
    db = EmulatedDatabase()
    try:
        with emulated_dictionary(db) as d:
            d.init()
        db.save(path)
    finally:
        db.close()
    return path


@pytest.fixture
def exa_db(exa_template: Path) -> Iterator[EmulatedDatabase]:
    """An emulated Exasol database (tests/unit/exasol_emulator.py: not Exasol) with REDSYS
    initialised (a copy: initialising costs more than copying)."""
    db = EmulatedDatabase(copy_of=exa_template)
    yield db
    db.close()


@pytest.fixture
def empty_exa_db() -> Iterator[EmulatedDatabase]:
    """An empty emulated Exasol database."""
    db = EmulatedDatabase()
    yield db
    db.close()


@pytest.fixture
def exa_dic(exa_db: EmulatedDatabase) -> Iterator[Dictionary]:
    """The Exasol dictionary backend on ``exa_db`` (initialised)."""
    with emulated_dictionary(exa_db) as d:
        d.init()
        yield d


@pytest.fixture(params=["sqlite", "exasol-emulated"])
def any_dic(request: pytest.FixtureRequest) -> Dictionary:
    """Each backend in turn: SQLite, then Exasol on the emulated database."""
    name = "dic" if request.param == "sqlite" else "exa_dic"
    found: Dictionary = request.getfixturevalue(name)
    return found
