"""The result of one statement of the emulated Exasol (:mod:`tests.unit.exasol_emulator`)."""

from __future__ import annotations

from typing import Any

__all__ = ["EmulatedStatement"]


class EmulatedStatement:
    """What ``pyexasol.ExaStatement`` offers that the backend uses."""

    def __init__(self, rows: list[tuple[Any, ...]], count: int, *, rows_back: bool = False) -> None:
        self._rows, self._count = rows, count
        self._next = 0
        self.result_type = "resultSet" if rows_back else "rowCount"

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rows not fetched yet (values converted as pyexasol returns them)."""
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        """The next ``size`` rows."""
        rows = self._rows[self._next : self._next + size]
        self._next += len(rows)
        return rows

    def fetchval(self) -> Any:
        """The first column of the next row, or None."""
        rows = self.fetchmany(1)
        return rows[0][0] if rows else None

    def rowcount(self) -> int:
        """Rows affected (DML) or selected (queries)."""
        return self._count

    def close(self) -> None:
        """Drop the rows not fetched (pyexasol closes the result set)."""
        self._next = len(self._rows)
