"""The Exasol dictionary's core: the session, DDL from the model, migrations, schemas.

REDSYS is the schema ``REDSYS``; a target schema is an Exasol schema of its own name holding
the per-schema objects (run logs, LOG_MESSAGES, the load ledger). There is one
``REDSYS.ADM_VERSION_HISTORY`` keyed by schema; a target schema is one of ours when it has
rows there. A migration runs in one transaction (Exasol's DDL is transactional): it is
applied whole or not at all, and two processes migrating at once conflict, one is rolled back,
retries and finds the work done.

The area mixins (status, jobs, landing, export) build on :class:`ExasolCore` the way the
SQLite ones do; roles never see which backend they talk to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from redpss import __version__
from redpss.dictionary.base import Dictionary, check_schema_name
from redpss.dictionary.columns import REDSYS
from redpss.dictionary.exasol.ddl import migration_statements, table_ddl
from redpss.dictionary.exasol.session import ExaSettings, Session, Tx
from redpss.dictionary.model import DICTIONARY
from redpss.dictionary.objects import Model, Scope
from redpss.errors import DictionaryError, MigrationError

T = TypeVar("T")


CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS {schema!q}"
TABLE_EXISTS_SQL = (
    "SELECT COUNT(*) FROM SYS.EXA_ALL_TABLES WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {table}"
)
SCHEMA_VERSION_SQL = (
    "SELECT MAX(VERSION) FROM REDSYS.ADM_VERSION_HISTORY WHERE SCHEMA_NAME = {schema}"
)
INSERT_VERSION_SQL = (
    "INSERT INTO REDSYS.ADM_VERSION_HISTORY "
    "(SCHEMA_NAME, VERSION, DESCRIPTION, APPLIED_AT, APPLIED_BY) "
    "VALUES ({schema}, {version}, {description}, {applied_at}, {applied_by})"
)
SCHEMAS_SQL = (
    "SELECT DISTINCT SCHEMA_NAME FROM REDSYS.ADM_VERSION_HISTORY "
    "WHERE SCHEMA_NAME <> 'REDSYS' ORDER BY SCHEMA_NAME"
)

_VERSION_TABLE = "ADM_VERSION_HISTORY"


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class ExasolCore(Dictionary):
    """Session, migrations and schemas; the area mixins of this package build on it."""

    def __init__(
        self,
        settings: ExaSettings,
        *,
        model: Model = DICTIONARY,
        session: Session | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.session = session if session is not None else Session(settings)
        self._ready: set[str] = set()
        self._existing: set[str] = set()
        """Target schemas seen to exist (a log line checks once, not every time)."""
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ExasolDictionary(dsn={self.settings.dsn!r}, user={self.settings.user!r})"

    def tx(self, unit: Callable[[Tx], T], *, what: str) -> T:
        """Run ``unit`` in one transaction, with reconnect and retry (see session).

        A failure in a dictionary that was never initialised (its objects are not found) says
        "run redctl db init", as on SQLite, instead of the database's text.
        """
        try:
            return self.session.transaction(unit, what=what)
        except MigrationError:
            raise
        except DictionaryError as exc:
            if type(exc.__cause__).__name__ != "ExaQueryError" or self._initialised():
                raise  # not an SQL error (the database is away …), or a real one
            raise DictionaryError(
                f"{what}: the dictionary at {self.settings.dsn} is not initialised; "
                "run redctl db init"
            ) from exc

    def _initialised(self) -> bool:
        try:
            version = self.session.transaction(
                lambda tx: self._version_in(tx, REDSYS), what="reading the dictionary version"
            )
            return bool(version)
        except DictionaryError:
            return True  # cannot tell: keep the original error

    # -- migrations --------------------------------------------------------------------------

    @staticmethod
    def _version_in(tx: Tx, schema: str) -> int:
        if not tx.value(TABLE_EXISTS_SQL, schema=REDSYS, table=_VERSION_TABLE):
            return 0
        return int(tx.value(SCHEMA_VERSION_SQL, schema=schema) or 0)

    def _migrate(self, schema: str, scope: Scope) -> list[str]:
        def unit(tx: Tx) -> list[str]:
            done: list[str] = []
            tx.execute(CREATE_SCHEMA_SQL, schema=REDSYS)
            if schema != REDSYS:
                tx.execute(CREATE_SCHEMA_SQL, schema=schema)
            tx.statement(table_ddl(self.model.table(_VERSION_TABLE), REDSYS, 1, tx.dialect))
            current = self._version_in(tx, schema)
            if current > self.model.version:
                raise MigrationError(
                    f"{schema} is at dictionary version {current}, newer than this redpss "
                    f"({self.model.version}); upgrade redpss"
                )
            for migration in self.model.migrations[current:]:
                ddl = migration_statements(self.model, migration.version, schema, scope, tx.dialect)
                for statement in ddl:
                    tx.statement(statement)
                tx.execute(
                    INSERT_VERSION_SQL,
                    schema=schema,
                    version=migration.version,
                    description=migration.description,
                    applied_at=utcnow(),
                    applied_by=__version__,
                )
                done.append(f"{schema}: version {migration.version}: {migration.description}")
            return done

        try:
            return self.tx(unit, what=f"migrating {schema}")
        except MigrationError:
            raise
        except DictionaryError as exc:
            raise MigrationError(f"migrating {schema} failed, nothing applied: {exc}") from exc

    def init(self) -> int:
        """Create or migrate REDSYS to the newest version; idempotent; return the version."""
        self._migrate(REDSYS, "REDSYS")
        return self.version()

    def upgrade(self) -> list[str]:
        """Apply pending migrations to REDSYS and every target schema; return what ran."""
        if self.version() == 0:
            raise MigrationError(
                f"the dictionary at {self.settings.dsn} is not initialised; run redctl db init"
            )
        done = self._migrate(REDSYS, "REDSYS")
        for schema in self.schemas():
            done.extend(self._migrate(schema, "TARGET"))
        return done

    def database(self) -> str:
        """Which database this is: ``Exasol 8.32.0 at host:8563`` (asks it when not known);
        DictionaryError for an Exasol older than 7.1."""
        return f"{self.session.dialect} at {self.settings.dsn}"

    def version(self) -> int:
        """Return the REDSYS dictionary version; 0 when it is not initialised."""
        return self.schema_version(REDSYS)

    def schema_version(self, schema: str) -> int:
        """Return the dictionary version of ``schema`` (0: not created)."""
        return self.tx(lambda tx: self._version_in(tx, schema), what=f"version of {schema}")

    def ensure_schema(self, schema: str) -> None:
        """Create or migrate the objects of target schema ``schema``."""
        self._migrate(check_schema_name(schema), "TARGET")

    def ensure_ready(self, schema: str) -> str:
        """``schema``, created or migrated once per process."""
        check_schema_name(schema)
        if schema not in self._ready:
            with self._ready_lock:
                if schema not in self._ready:
                    self.ensure_schema(schema)
                    self._ready.add(schema)
        return schema

    def schemas(self) -> list[str]:
        """The target schemas this dictionary created, sorted."""

        def unit(tx: Tx) -> list[str]:
            if not tx.value(TABLE_EXISTS_SQL, schema=REDSYS, table=_VERSION_TABLE):
                return []
            return [str(r[0]) for r in tx.rows(SCHEMAS_SQL)]

        return self.tx(unit, what="listing target schemas")

    # -- database-side scripts ---------------------------------------------------------------

    def install_scripts(self, statements: list[str]) -> int:
        """Run the ``CREATE … SCRIPT`` statements in one transaction; return how many."""

        def unit(tx: Tx) -> int:
            for statement in statements:
                tx.statement(statement)
            return len(statements)

        return self.tx(unit, what="installing the database-side scripts")

    def close(self) -> None:
        """Close every connection of this dictionary."""
        self.session.close()
