"""The landing zone's area on Exasol: loaders, target tables, rows and the per-schema ledger.

A load is one transaction: the duplicate check in the target schema's ``ADM_LOAD_LOG``, the
rows through pyexasol's HTTP transport (``IMPORT … FROM CSV`` fed by this process, compressed
as the connection is), the ledger row, ``COMMIT``.

**A load never runs twice inside the session.** The rows are a one-shot iterator: the session
retries a unit after a broken connection, and a second run would import nothing and write a
LOADED ledger row — a file archived without its rows. So once the rows were handed over, a
retried unit first looks for its own ledger row (the connection broke after the database
committed: the load is done) and otherwise raises DictionaryError; the landing zone then puts
the file back into ``input/`` to be loaded again later. A failing import is translated once:
the reader's own error (FileRejected, a vanished file) is raised as it was, a value the
database refuses (``ETL-3…`` conversion errors) is FileRejected, anything else — the
connection above all — is DictionaryError, never retried here.

Values are converted for the transport in :mod:`~redpss.dictionary.exasol.csvload`, which
also builds the IMPORT of a large file from cfisrv (not wired into loads: see there).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from redpss.dictionary.base import check_schema_name
from redpss.dictionary.exasol.core import ExasolCore, utcnow
from redpss.dictionary.exasol.csvload import Feed, cfi_import_sql, csv_cols, exasol_column_type
from redpss.dictionary.exasol.jobs import check_allowed
from redpss.dictionary.exasol.session import Tx, _classify, error_text
from redpss.dictionary.exasol.sqltext import from_db, ident, literal, literals
from redpss.dictionary.landing import (
    DUPLICATE,
    LOADED,
    ImportSource,
    LandingStore,
    LedgerEntry,
    LoadOutcome,
)
from redpss.dictionary.loaders import Loader, LoaderColumn
from redpss.dictionary.rows import (
    COLUMN_COLUMNS,
    LEDGER_COLUMNS,
    LOADER_COLUMNS,
    as_int,
    check_loader,
    column_from,
    ledger_from,
    loader_from,
    loader_values,
)
from redpss.errors import DictionaryError, FileRejected

__all__ = ["ExasolLanding"]

# conversion errors of IMPORT (a value the column cannot take): the file's fault, not ours
_DATA_ERROR_RE = re.compile(r"\bETL-3\d{3}\b|Transformation of value")
# the database refused the certificate of the transport or of cfisrv (ETL-5106 "error occured
# while … external connection" with curl's reason): not the database being away — retrying
# cannot help until the certificates are set up, so the file is refused with that reason
_CERTIFICATE_ERROR_RE = re.compile(
    r"\bETL-5\d{3}\b.*(certificate|public key|SSL_ERROR_SSL|CERTIFICATE_VERIFY)", re.I | re.S
)


def refused(text: str, what: str) -> FileRejected | None:
    """The FileRejected of a load the database refused for a reason that is not the database
    being away: a value (``ETL-3…``), or a certificate (``ETL-5…`` naming one); else None."""
    if _DATA_ERROR_RE.search(text):
        return FileRejected(f"the database refused a value: {text}")
    if _CERTIFICATE_ERROR_RE.search(text):
        return FileRejected(
            f"the database refused the TLS certificate of {what} — not the file's fault, and "
            "retrying cannot help: set up the certificates (docs/dictionary.md, 'The IMPORT "
            f"from cfisrv'), then move the file back to data/input: {text}"
        )
    return None


LOADER_CREATED_SQL = "SELECT CREATED_AT FROM REDSYS.ADM_LOADER WHERE LOADER_NAME = {name}"
DELETELOADER_COLUMNS_SQL = "DELETE FROM REDSYS.ADM_LOADER_COLUMN WHERE LOADER_NAME = {name}"
DELETE_LOADER_SQL = "DELETE FROM REDSYS.ADM_LOADER WHERE LOADER_NAME = {name}"
INSERT_LOADER_SQL = (
    "INSERT INTO REDSYS.ADM_LOADER ({columns!r}, CREATED_AT, CHANGED_AT) "
    "VALUES ({values!r}, {created}, {now})"
)
INSERTLOADER_COLUMNS_SQL = "INSERT INTO REDSYS.ADM_LOADER_COLUMN ({columns!r}) VALUES {rows!r}"
LOADERS_SQL = "SELECT {columns!r} FROM REDSYS.ADM_LOADER WHERE {where!r} ORDER BY LOADER_NAME"
LOADER_COLUMNS_SQL = (
    "SELECT {columns!r} FROM REDSYS.ADM_LOADER_COLUMN WHERE LOADER_NAME IN "
    "(SELECT LOADER_NAME FROM REDSYS.ADM_LOADER WHERE {where!r}) ORDER BY LOADER_NAME, COL_POS"
)
TABLE_COLUMNS_SQL = (
    "SELECT COLUMN_NAME FROM SYS.EXA_ALL_COLUMNS WHERE COLUMN_SCHEMA = {schema} "
    "AND COLUMN_TABLE = {table} ORDER BY COLUMN_ORDINAL_POSITION"
)
CREATE_TARGET_SQL = "CREATE TABLE IF NOT EXISTS {schema!q}.{table!q} ({body!r})"
LEDGER_CLAIM_SQL = (
    "SELECT {columns!r} FROM {schema!q}.ADM_LOAD_LOG WHERE CLAIM_ID = {claim} LIMIT 1"
)
LEDGER_CONTENT_SQL = (
    "SELECT {columns!r} FROM {schema!q}.ADM_LOAD_LOG WHERE CONTENT_SHA256 = {sha} "
    "AND TARGET = {target} AND LOAD_STATUS = 'LOADED' ORDER BY LOADED_AT LIMIT 1"
)
LEDGER_INSERT_SQL = "INSERT INTO {schema!q}.ADM_LOAD_LOG ({columns!r}) VALUES ({values!r})"
LEDGER_SQL = (
    "SELECT {columns!r} FROM {schema!q}.ADM_LOAD_LOG ORDER BY LOADED_AT DESC{limit_clause!r}"
)
LEDGER_SCHEMAS_SQL = (
    "SELECT DISTINCT SCHEMA_NAME FROM REDSYS.ADM_VERSION_HISTORY "
    "WHERE SCHEMA_NAME <> 'REDSYS' AND VERSION >= 2 ORDER BY SCHEMA_NAME"
)
TARGET_EXISTS_SQL = (
    "SELECT COUNT(*) FROM SYS.EXA_ALL_TABLES WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = {table}"
)
TARGET_COUNT_SQL = "SELECT COUNT(*) FROM {schema!q}.{table!q}"


class ExasolLanding(ExasolCore, LandingStore):
    """Loader definitions in REDSYS; target tables and their ledger in the target schema."""

    # -- loader definitions ------------------------------------------------------------------

    def upsert_loader(self, loader: Loader) -> bool:
        """Create or replace ``loader`` and its column mapping in one transaction."""
        check_loader(loader)
        check_allowed(self.model, "ADM_LOADER", {
            "FILE_FORMAT": loader.format, "MARKER": loader.marker,
            "DUPLICATE_POLICY": loader.duplicates, "LOAD_METHOD": loader.method,
        })  # fmt: skip
        names = [c.name for c in loader.columns]
        if len(set(names)) != len(names):  # UNIQUE (LOADER_NAME, COL_NAME) in SQLite
            raise DictionaryError(f"loader {loader.name}: a column name appears twice")
        now = utcnow()
        rows = ", ".join(
            "(" + literals([loader.name, pos, c.name, c.type, c.source, c.source_pos, c.format,
                            c.fbv_start, c.fbv_size]) + ")"
            for pos, c in enumerate(loader.columns, start=1)
        )  # fmt: skip

        def unit(tx: Tx) -> bool:
            old = tx.rows(LOADER_CREATED_SQL, name=loader.name)
            tx.execute(DELETELOADER_COLUMNS_SQL, name=loader.name)
            tx.execute(DELETE_LOADER_SQL, name=loader.name)
            values = tx.literals(loader_values(loader))
            tx.execute(
                INSERT_LOADER_SQL, columns=LOADER_COLUMNS, values=values,
                created=from_db(old[0][0]) if old else now, now=now,
            )  # fmt: skip
            if rows:
                tx.execute(INSERTLOADER_COLUMNS_SQL, columns=COLUMN_COLUMNS, rows=rows)
            return not old

        return self.tx(unit, what=f"saving loader {loader.name}")

    def _read_loaders(self, where: str) -> list[Loader]:
        def unit(tx: Tx) -> list[Loader]:
            found = tx.rows(LOADERS_SQL, columns=LOADER_COLUMNS, where=where)
            cols: dict[str, list[LoaderColumn]] = {}
            for c in tx.rows(LOADER_COLUMNS_SQL, columns=COLUMN_COLUMNS, where=where):
                cols.setdefault(c[0], []).append(column_from(c))
            return [loader_from(r, cols.get(r[0], [])) for r in found]

        return self.tx(unit, what="reading loaders")

    def loader(self, name: str) -> Loader | None:
        """The loader called ``name``, or None."""
        found = self._read_loaders(f"LOADER_NAME = {literal(name)}")
        return found[0] if found else None

    def loaders(self, *, active_only: bool = False) -> list[Loader]:
        """Every loader (or the active ones), sorted by name."""
        return self._read_loaders("ACTIVE = TRUE" if active_only else "1 = 1")

    def delete_loader(self, name: str) -> bool:
        """Delete loader ``name`` and its columns; True when it existed."""

        def unit(tx: Tx) -> bool:
            tx.execute(DELETELOADER_COLUMNS_SQL, name=name)
            return bool(tx.execute(DELETE_LOADER_SQL, name=name))

        return self.tx(unit, what=f"deleting loader {name}")

    # -- target tables and rows --------------------------------------------------------------

    def ensure_target_table(self, loader: Loader) -> None:
        """Create the schema and ``loader.target`` when missing; check an existing table."""
        check_schema_name(loader.schema)
        if self.schema_version(loader.schema) != self.model.version:
            self.ensure_schema(loader.schema)

        def unit(tx: Tx) -> None:
            body = ", ".join(
                f"{ident(c.name)} {exasol_column_type(c.type, tx.dialect)}" for c in loader.columns
            )
            where = {"schema": loader.schema, "table": loader.table}
            have = [str(r[0]).upper() for r in tx.rows(TABLE_COLUMNS_SQL, **where)]
            if not have:
                tx.execute(CREATE_TARGET_SQL, body=body, **where)
                return
            missing = [c.name for c in loader.columns if c.name not in have]
            if missing:
                raise DictionaryError(
                    f"{loader.target} exists without column(s) {', '.join(missing)} "
                    f"of loader {loader.name}"
                )

        self.tx(unit, what=f"target table {loader.target}")

    def load_rows(
        self,
        loader: Loader,
        rows: Iterable[Sequence[object]],
        *,
        entry: LedgerEntry,
    ) -> LoadOutcome:
        """Rows and ledger row in one transaction, never retried once the rows were read."""
        schema = check_schema_name(loader.schema)
        feed = Feed(rows, loader, self.session.dialect)
        handed_over = False

        def unit(tx: Tx) -> LoadOutcome:
            nonlocal handed_over
            done = tx.rows(LEDGER_CLAIM_SQL, columns=LEDGER_COLUMNS, schema=schema,
                           claim=entry.claim_id)  # fmt: skip
            if done:  # a retry after the database committed: the load is complete
                mine = ledger_from(done[0], from_db)
                if mine.status == LOADED:
                    return LoadOutcome(LOADED, mine.row_count)
                return LoadOutcome(DUPLICATE, 0, self._first_loaded(tx, schema, entry))
            if handed_over:
                raise DictionaryError(
                    f"load of {entry.file_name} into {loader.target}: the connection broke "
                    "after the rows were sent; nothing was committed, the file is loaded again"
                )
            previous = None
            if loader.duplicates != "LOAD":
                previous = self._first_loaded(tx, schema, entry)
            if previous is not None:
                if loader.duplicates == "SKIP":
                    self._ledger_insert(tx, schema, entry, DUPLICATE, 0)
                return LoadOutcome(DUPLICATE, 0, previous)
            handed_over = True
            self._import(tx, loader, feed, entry)
            self._ledger_insert(tx, schema, entry, LOADED, feed.count)
            return LoadOutcome(LOADED, feed.count)

        return self.tx(unit, what=f"load of {entry.file_name} into {loader.target}")

    def _import(self, tx: Tx, loader: Loader, feed: Feed, entry: LedgerEntry) -> None:
        params = {"columns": feed.names, "csv_cols": csv_cols(loader.columns, tx.dialect)}
        try:
            tx.conn.import_from_iterable(  # type: ignore[attr-defined]
                feed, (loader.schema, loader.table), import_params=params
            )
        except Exception as exc:
            if feed.failure is not None:
                raise feed.failure from None  # the reader's: FileRejected, a vanished file
            errors = list(getattr(exc, "exceptions", None) or [exc])
            text = "; ".join(error_text(e) for e in errors)
            if rejection := refused(text, "pyexasol's HTTP transport"):
                raise rejection from exc
            broken = any(_classify(e) == "broken" for e in errors)
            if broken or getattr(tx.conn, "is_closed", False):
                self.session.drop()
            raise DictionaryError(
                f"load of {entry.file_name} into {loader.target} failed, nothing was "
                f"committed: {text}"
            ) from exc

    def load_file(
        self,
        loader: Loader,
        *,
        file_name: str,
        positions: Sequence[int],
        source: ImportSource,
        entry: LedgerEntry,
    ) -> LoadOutcome:
        """The database reads ``file_name`` from cfisrv (``IMPORT … FROM CSV AT``), the ledger
        row in the same transaction. The file stays in ``work/`` until then, so a unit run
        again after a broken connection simply imports again (its own ledger row first)."""
        schema = check_schema_name(loader.schema)

        def unit(tx: Tx) -> LoadOutcome:
            done = tx.rows(LEDGER_CLAIM_SQL, columns=LEDGER_COLUMNS, schema=schema,
                           claim=entry.claim_id)  # fmt: skip
            if done:
                mine = ledger_from(done[0], from_db)
                if mine.status == LOADED:
                    return LoadOutcome(LOADED, mine.row_count)
                return LoadOutcome(DUPLICATE, 0, self._first_loaded(tx, schema, entry))
            previous = None
            if loader.duplicates != "LOAD":
                previous = self._first_loaded(tx, schema, entry)
            if previous is not None:
                if loader.duplicates == "SKIP":
                    self._ledger_insert(tx, schema, entry, DUPLICATE, 0)
                return LoadOutcome(DUPLICATE, 0, previous)
            sql = cfi_import_sql(
                loader, url=source.url, user=source.user, password=source.password,
                file_name=file_name, dialect=tx.dialect, positions=positions,
                public_key=source.public_key,
            )  # fmt: skip
            try:
                count = tx.statement(sql)
            except Exception as exc:
                if rejection := refused(error_text(exc), f"cfisrv at {source.url}"):
                    raise rejection from exc
                raise
            self._ledger_insert(tx, schema, entry, LOADED, count)
            return LoadOutcome(LOADED, count)

        return self.tx(unit, what=f"import of {entry.file_name} into {loader.target} from cfisrv")

    @staticmethod
    def _first_loaded(tx: Tx, schema: str, entry: LedgerEntry) -> LedgerEntry | None:
        found = tx.rows(
            LEDGER_CONTENT_SQL, columns=LEDGER_COLUMNS, schema=schema,
            sha=entry.content_sha256, target=entry.target,
        )  # fmt: skip
        return ledger_from(found[0], from_db) if found else None

    @staticmethod
    def _ledger_insert(tx: Tx, schema: str, entry: LedgerEntry, status: str, rows: int) -> None:
        values = [
            entry.claim_id, entry.content_sha256, entry.file_name, entry.file_size, entry.target,
            entry.loader, entry.run_id, status, rows, utcnow(),
        ]  # fmt: skip
        tx.execute(
            LEDGER_INSERT_SQL, schema=schema, columns=LEDGER_COLUMNS, values=tx.literals(values)
        )

    def target_row_count(self, schema: str, table: str) -> int:
        """Rows in ``schema.table``; 0 when the schema or table does not exist."""
        check_schema_name(schema)

        def unit(tx: Tx) -> int:
            if not as_int(tx.value(TARGET_EXISTS_SQL, schema=schema, table=table)):
                return 0
            return as_int(tx.value(TARGET_COUNT_SQL, schema=schema, table=table))

        return self.tx(unit, what=f"counting {schema}.{table}")

    # -- the ledger --------------------------------------------------------------------------

    def _ledger(self, template: str, limit: int | None, **params: object) -> list[LedgerEntry]:
        def unit(tx: Tx) -> list[LedgerEntry]:
            if not self._version_in(tx, "REDSYS"):
                return []
            found: list[LedgerEntry] = []
            for (schema,) in tx.rows(LEDGER_SCHEMAS_SQL):
                rows = tx.rows(template, columns=LEDGER_COLUMNS, schema=schema, **params)
                found.extend(ledger_from(r, from_db) for r in rows)
            return found

        found = self.tx(unit, what="reading the load ledger")
        found.sort(key=lambda e: (e.loaded_at or utcnow(), e.claim_id), reverse=True)
        return found if limit is None else found[:limit]

    def find_claim(self, claim_id: str) -> LedgerEntry | None:
        """The ledger row of ``claim_id`` in any schema, or None."""
        found = self._ledger(LEDGER_CLAIM_SQL, 1, claim=claim_id)
        return found[0] if found else None

    def find_content(self, content_sha256: str, target: str) -> LedgerEntry | None:
        """The first LOADED row of this content into ``target``, or None."""
        schema = target.partition(".")[0]
        if schema not in self.schemas():
            return None
        found = self.tx(
            lambda tx: tx.rows(
                LEDGER_CONTENT_SQL, columns=LEDGER_COLUMNS, schema=schema, sha=content_sha256,
                target=target,
            ),
            what="reading the load ledger",
        )  # fmt: skip
        return ledger_from(found[0], from_db) if found else None

    def load_ledger(self, limit: int | None = 100) -> list[LedgerEntry]:
        """``REDSYS.ADM_LOAD_LEDGER``: the union of every schema's ``ADM_LOAD_LOG``."""
        clause = "" if limit is None else f" LIMIT {int(limit)}"
        return self._ledger(LEDGER_SQL, limit, limit_clause=clause)
