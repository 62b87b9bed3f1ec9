"""The kinds of objects the dictionary model is made of: columns, tables, views, migrations.

:mod:`redpss.dictionary.model` holds the model itself (every object of the dictionary) as data
built from these classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["REDSYS", "TARGET"]
"""Where an object lives: the REDSYS schema, or every target schema."""

_TYPE_RE = re.compile(r"^(VARCHAR|DECIMAL|DOUBLE|TIMESTAMP|BOOLEAN)(?:\((\d+)(?:,(\d+))?\))?$")


@dataclass(frozen=True)
class GenericType:
    """A parsed generic column type: ``VARCHAR(200)`` → base VARCHAR, size 200."""

    base: str
    size: int | None = None
    scale: int | None = None


def parse_type(type_: str) -> GenericType:
    """Parse a generic type string of the model; raises ValueError for an unknown type."""
    match = _TYPE_RE.match(type_)
    if match is None:
        raise ValueError(f"unknown generic column type {type_!r}")
    base, size, scale = match.groups()
    return GenericType(base, int(size) if size else None, int(scale) if scale else None)


@dataclass(frozen=True)
class Column:
    """One column: generic type, nullability, optional default literal and allowed values."""

    name: str
    type: str
    nullable: bool = True
    comment: str = ""
    default: str | None = None
    values: tuple[str, ...] = ()
    identity: bool = False
    since: int = 1


@dataclass(frozen=True)
class Index:
    """An index added by migration ``since`` to a table that may exist already (a plain tuple
    of columns in ``Table.indexes`` is an index of version 1). Only SQLite builds them: Exasol
    makes its own."""

    columns: tuple[str, ...]
    since: int = 1


@dataclass(frozen=True)
class Table:
    """A table of the dictionary, with its keys, indexes and the roles that write it."""

    name: str
    scope: Scope
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...] | Index, ...] = ()
    writers: str = ""

    def columns_at(self, version: int) -> tuple[Column, ...]:
        """The columns this table has at dictionary version ``version``."""
        return tuple(c for c in self.columns if c.since <= version)

    def indexes_at(self, version: int) -> tuple[Index, ...]:
        """The indexes this table has at dictionary version ``version``."""
        found = (i if isinstance(i, Index) else Index(i) for i in self.indexes)
        return tuple(i for i in found if i.since <= version)


@dataclass(frozen=True)
class View:
    """A view over one table: every column of ``base`` plus ``extra`` computed columns.

    The computed columns' definitions are dialect-specific and live in the backend.
    """

    name: str
    scope: Scope
    base: str
    comment: str
    extra: tuple[Column, ...] = ()


@dataclass(frozen=True)
class Migration:
    """One dictionary version: what it creates in REDSYS and in every target schema.

    ``rebuild`` names existing tables whose allowed values (``Column.values``) grew: a backend
    that checks them in the table (SQLite's CHECK constraints, which cannot be altered)
    rebuilds those tables with their rows; one that checks them in redpss (Exasol) has
    nothing to do.
    """

    version: int
    description: str
    redsys: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    rebuild: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    """The whole dictionary: tables, views and the ordered migrations."""

    tables: tuple[Table, ...]
    views: tuple[View, ...]
    migrations: tuple[Migration, ...]
    by_name: dict[str, Table | View] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: dict[str, Table | View] = {t.name: t for t in self.tables}
        names.update({v.name: v for v in self.views})
        object.__setattr__(self, "by_name", names)
        versions = [m.version for m in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"migration versions must be 1..n in order, got {versions}")
        for migration in self.migrations:
            for name in migration.redsys + migration.target:
                if name not in names:
                    raise ValueError(f"migration {migration.version} names unknown {name}")
            for name in migration.rebuild:
                if not isinstance(names.get(name), Table):
                    raise ValueError(f"migration {migration.version} rebuilds unknown {name}")
        for table in self.tables:
            known = {c.name for c in table.columns}
            for index in table.indexes_at(self.version):
                if not set(index.columns) <= known:
                    raise ValueError(f"an index of {table.name} names unknown {index.columns}")
            for column in table.columns:
                if column.since > 1 and not column.nullable and column.default is None:
                    raise ValueError(
                        f"{table.name}.{column.name} is added by migration {column.since}: "
                        "it must be nullable or have a default"
                    )

    @property
    def version(self) -> int:
        """The newest version: what ``init`` and ``upgrade`` bring a dictionary to."""
        return self.migrations[-1].version if self.migrations else 0

    def table(self, name: str) -> Table:
        """The table called ``name``; KeyError when it is not a table."""
        obj = self.by_name[name]
        if not isinstance(obj, Table):
            raise KeyError(name)
        return obj
