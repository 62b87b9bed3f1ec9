"""The SQL half of the Exasol emulator: set-up objects, the rewrite of Exasol syntax trees,
the statements handled without DuckDB, and timestamps as Exasol renders them.

:mod:`tests.unit.exasol_emulator` documents what is emulated and what is not; this module
does it on sqlglot trees (read with the Exasol dialect, written with DuckDB's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlglot
from sqlglot import exp
from sqlglot.dialects.exasol import Exasol
from sqlglot.errors import ErrorLevel
from sqlglot.generators.exasol import ExasolGenerator

from tests.unit.exasol_emulator_privs import Access, access_of

LENGTH_CHECK = "length("
"""In the text of the CHECK constraint that stands for the length of a VARCHAR(n)."""

_USER_SCHEMAS = "NOT internal AND schema_name NOT IN ('main', 'SYS', 'pg_catalog')"
_EXA_TYPE = """CASE
    WHEN t.EXA_TYPE IS NOT NULL THEN t.EXA_TYPE
    WHEN c.data_type LIKE 'DECIMAL%' THEN replace(c.data_type, ' ', '')
    WHEN c.data_type IN ('BIGINT', 'INTEGER', 'HUGEINT', 'SMALLINT') THEN 'DECIMAL(18,0)'
    WHEN c.data_type IN ('DOUBLE', 'FLOAT') THEN 'DOUBLE'
    WHEN c.data_type = 'VARCHAR' THEN 'VARCHAR(2000000) UTF8'
    WHEN c.data_type = 'TIMESTAMP_MS' THEN 'TIMESTAMP'
    WHEN c.data_type LIKE 'TIMESTAMP%' THEN 'TIMESTAMP(6)'
    ELSE c.data_type END"""

SETUP = (
    "CREATE TABLE main.DUAL (DUMMY VARCHAR(1))",
    "INSERT INTO main.DUAL VALUES (NULL)",
    "CREATE SCHEMA SYS",
    "CREATE TABLE SYS.EMU_COLUMN_TYPES (SCHEMA_NAME VARCHAR, TABLE_NAME VARCHAR, "
    "COLUMN_NAME VARCHAR, EXA_TYPE VARCHAR, PRIMARY KEY (SCHEMA_NAME, TABLE_NAME, COLUMN_NAME))",
    "CREATE TABLE SYS.EMU_SCRIPTS (SCRIPT_SCHEMA VARCHAR, SCRIPT_NAME VARCHAR, "
    "SCRIPT_LANGUAGE VARCHAR, SCRIPT_TEXT VARCHAR, PRIMARY KEY (SCRIPT_SCHEMA, SCRIPT_NAME))",
    "CREATE TABLE SYS.EMU_CONNECTIONS (CONNECTION_NAME VARCHAR PRIMARY KEY, "
    "CONNECTION_STRING VARCHAR)",
    "CREATE VIEW SYS.EXA_DBA_CONNECTIONS AS SELECT CONNECTION_NAME, CONNECTION_STRING, "
    "'EMULATED' AS CREATED FROM SYS.EMU_CONNECTIONS",
    # TO_CHAR without a format: a DOUBLE's text on Exasol is unverified (exponent? '.0'?), so
    # the emulator refuses it and the backend converts to DECIMAL first
    # CONVERT_TZ(ts, from, to, options): DuckDB (ICU) takes an ambiguous local time (the hour
    # repeated in autumn) as standard time, which is AMBIGUOUS ST; DST takes the earlier
    # instant, NULLIFY gives NULL, REJECT fails (only one-hour shifts are told apart)
    "CREATE MACRO exa_emu_ambiguous(ts, src) AS "
    "CAST(timezone(src, timezone(src, ts) - INTERVAL 1 HOUR) AS TIMESTAMP) = ts",
    "CREATE MACRO exa_emu_convert_tz(ts, src, dst, opts) AS CAST(timezone(dst, CASE "
    "WHEN NOT exa_emu_ambiguous(ts, src) THEN timezone(src, ts) "
    "WHEN upper(opts) LIKE '%AMBIGUOUS DST%' THEN timezone(src, ts) - INTERVAL 1 HOUR "
    "WHEN upper(opts) LIKE '%AMBIGUOUS NULLIFY%' THEN NULL "
    "WHEN upper(opts) LIKE '%AMBIGUOUS REJECT%' THEN "
    "error('data exception - ambiguous timestamp in the source time zone') "
    "ELSE timezone(src, ts) END) AS TIMESTAMP)",
    "CREATE MACRO exa_emu_to_char(x) AS CASE WHEN typeof(x) IN ('DOUBLE', 'FLOAT') THEN "
    "error('TO_CHAR of a DOUBLE without a format model: its text on Exasol is unverified; "
    "CAST to DECIMAL first') ELSE CAST(x AS VARCHAR) END",
    f"CREATE VIEW SYS.EXA_ALL_SCHEMAS AS SELECT schema_name AS SCHEMA_NAME, "
    f"'EMULATED' AS SCHEMA_OWNER, comment AS SCHEMA_COMMENT FROM duckdb_schemas() "
    f"WHERE {_USER_SCHEMAS}",
    f"CREATE VIEW SYS.EXA_ALL_TABLES AS SELECT schema_name AS TABLE_SCHEMA, "
    f"table_name AS TABLE_NAME, 'EMULATED' AS TABLE_OWNER, estimated_size AS TABLE_ROW_COUNT, "
    f"comment AS TABLE_COMMENT FROM duckdb_tables() WHERE {_USER_SCHEMAS}",
    f"CREATE VIEW SYS.EXA_ALL_VIEWS AS SELECT schema_name AS VIEW_SCHEMA, "
    f"view_name AS VIEW_NAME, 'EMULATED' AS VIEW_OWNER, sql AS VIEW_TEXT, "
    f"comment AS VIEW_COMMENT FROM duckdb_views() WHERE {_USER_SCHEMAS}",
    "CREATE VIEW SYS.EXA_ALL_OBJECTS AS "
    "SELECT TABLE_NAME AS OBJECT_NAME, 'TABLE' AS OBJECT_TYPE, TABLE_SCHEMA AS ROOT_NAME, "
    "'SCHEMA' AS ROOT_TYPE FROM SYS.EXA_ALL_TABLES UNION ALL "
    "SELECT VIEW_NAME, 'VIEW', VIEW_SCHEMA, 'SCHEMA' FROM SYS.EXA_ALL_VIEWS UNION ALL "
    "SELECT SCHEMA_NAME, 'SCHEMA', NULL, NULL FROM SYS.EXA_ALL_SCHEMAS UNION ALL "
    "SELECT SCRIPT_NAME, 'SCRIPT', SCRIPT_SCHEMA, 'SCHEMA' FROM SYS.EMU_SCRIPTS",
    f"CREATE VIEW SYS.EXA_ALL_COLUMNS AS SELECT c.schema_name AS COLUMN_SCHEMA, "
    f"c.table_name AS COLUMN_TABLE, "
    f"CASE WHEN v.view_name IS NULL THEN 'TABLE' ELSE 'VIEW' END AS COLUMN_OBJECT_TYPE, "
    f"c.column_name AS COLUMN_NAME, {_EXA_TYPE} AS COLUMN_TYPE, "
    f"c.column_index AS COLUMN_ORDINAL_POSITION, c.is_nullable AS COLUMN_IS_NULLABLE, "
    f"c.column_default AS COLUMN_DEFAULT, "
    f"coalesce(c.column_default LIKE 'nextval(%', FALSE) AS COLUMN_IDENTITY, "
    f"c.comment AS COLUMN_COMMENT "
    f"FROM duckdb_columns() c "
    f"LEFT JOIN duckdb_views() v ON v.schema_name = c.schema_name "
    f"AND v.view_name = c.table_name "
    f"LEFT JOIN SYS.EMU_COLUMN_TYPES t ON t.SCHEMA_NAME = upper(c.schema_name) "
    f"AND t.TABLE_NAME = upper(c.table_name) AND t.COLUMN_NAME = upper(c.column_name) "
    f"WHERE NOT c.internal AND c.schema_name NOT IN ('main', 'SYS', 'pg_catalog')",
    "CREATE VIEW SYS.EXA_ALL_SCRIPTS AS SELECT SCRIPT_SCHEMA, SCRIPT_NAME, "
    "'EMULATED' AS SCRIPT_OWNER, SCRIPT_LANGUAGE, SCRIPT_TEXT FROM SYS.EMU_SCRIPTS",
)

STORE_CONNECTION = "INSERT OR REPLACE INTO SYS.EMU_CONNECTIONS VALUES (upper(?), ?)"
STORE_SCRIPT = "INSERT OR REPLACE INTO SYS.EMU_SCRIPTS VALUES (upper(?), upper(?), ?, ?)"
COLUMN_TYPES = (
    f"SELECT upper(c.column_name), {_EXA_TYPE}, c.data_type FROM duckdb_columns() c "
    f"LEFT JOIN SYS.EMU_COLUMN_TYPES t ON t.SCHEMA_NAME = upper(c.schema_name) "
    f"AND t.TABLE_NAME = upper(c.table_name) AND t.COLUMN_NAME = upper(c.column_name) "
    f"WHERE upper(c.schema_name) = ? AND upper(c.table_name) = ? ORDER BY c.column_index"
)
TABLE_EXISTS = (
    "SELECT 1 FROM duckdb_tables() WHERE upper(schema_name) = ? AND upper(table_name) = ?"
)
_FORGET_TYPES = "DELETE FROM SYS.EMU_COLUMN_TYPES WHERE SCHEMA_NAME = '{s}' AND TABLE_NAME = '{t}'"
_FORGET_SCHEMA = "DELETE FROM SYS.EMU_COLUMN_TYPES WHERE SCHEMA_NAME = '{s}'"
_RECORD_TYPES = "INSERT OR REPLACE INTO SYS.EMU_COLUMN_TYPES VALUES "
_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600}

# statements the emulator handles itself (no SQL for sqlglot, or not for DuckDB)
SESSION_RE = re.compile(r"\s*ALTER\s+SESSION\s+SET\s+(\w+)\s*=\s*(.+?)\s*;?\s*$", re.I | re.S)
SCRIPT_RE = re.compile(
    r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:(\w+)\s+)?(?:SCALAR\s+|SET\s+)?SCRIPT\s+"
    r"(?:(\w+)\.)?(\w+)",
    re.I,
)
OPEN_SCHEMA_RE = re.compile(r'\s*OPEN\s+SCHEMA\s+("?\w+"?)\s*;?\s*$', re.I)
CONNECTION_RE = re.compile(
    r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?CONNECTION\s+(\w+)\s+TO\s+'((?:[^']|'')*)'", re.I
)
GRANT_RE = re.compile(r"\s*GRANT\s", re.I)
REFUSED_RE = re.compile(r"\s*(EXECUTE\s+SCRIPT|IMPORT|EXPORT)\s", re.I)
TX_RE = re.compile(r"\s*(COMMIT|ROLLBACK)(\s+WORK)?\s*;?\s*$", re.I)


# Exasol's reserved words (EXA_SQL_KEYWORDS WHERE RESERVED) as sqlglot's Exasol generator
# lists them from Exasol's documentation
RESERVED = frozenset(k.upper() for k in ExasolGenerator.RESERVED_KEYWORDS)
PSEUDO_COLUMNS = frozenset(
    [
        "CURRENT_DATE",
        "CURRENT_SCHEMA",
        "CURRENT_SESSION",
        "CURRENT_STATEMENT",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DBTIMEZONE",
        "LOCALTIMESTAMP",
        "SESSIONTIMEZONE",
        "SYSDATE",
        "SYSTIMESTAMP",
        "USER",
    ]
)


class ExasolNullHigh(Exasol):
    """sqlglot's Exasol dialect, with NULL the largest value in ORDER BY (Exasol's "NULL HIGH"
    default, as Teiid's Exasol translator documents; sqlglot says "nulls are last"): a plain
    ``DESC`` then sorts NULL first, and an explicit ``NULLS LAST`` reaches DuckDB."""

    NULL_ORDERING = "nulls_are_large"


def setup_statements() -> tuple[str, ...]:
    """What a new emulated database runs first."""
    return SETUP


NO_ACCESS = Access()


@dataclass(frozen=True)
class Translation:
    """The DuckDB statements for one Exasol statement."""

    before: tuple[str, ...]
    statement: str
    after: tuple[str, ...]
    kind: str
    """``query`` (rows), ``dml`` (a row count) or ``other``."""
    creates: tuple[str, str] | None = None
    """``CREATE TABLE IF NOT EXISTS`` of (schema, table): ``after`` only when it is new."""
    target: str | None = None
    """The table a DML statement writes, ``SCHEMA.TABLE``."""
    clock: bool = False
    """The statement reads the clock: the connection sets ``exa_emu_now`` (UTC) first."""
    access: Access = NO_ACCESS
    """The privileges it needs (tests/unit/exasol_emulator_privs.py)."""


@dataclass(frozen=True)
class Context:
    """What a translation depends on besides the text: the database and the session."""

    db_timezone: str
    session_timezone: str
    version: tuple[int, int]
    """The emulated Exasol release (major, minor)."""
    tolerated: frozenset[str] = frozenset()
    """Reserved words taken as unquoted identifiers all the same."""


TIMESTAMP_PRECISION_SINCE = (8, 32)
"""``TIMESTAMP(p)``: Exasol changelog 13409 (8.32.0); a syntax error before."""

_CACHE: dict[tuple[str, Context], Translation] = {}
_CACHE_SIZE = 5000


def translate(query: str, context: Context) -> Translation:
    """The translation of ``query``; SqlglotError or ValueError when there is none (a reserved
    word as an identifier is one, unless tolerated; so is ``TIMESTAMP(p)`` before 8.32)."""
    key = (query, context)
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) > _CACHE_SIZE:  # texts with literals rarely repeat: keep it bounded
            _CACHE.clear()
        found = _CACHE[key] = _translate(query, context)
    return found


def _check_version(tree: exp.Expr, version: tuple[int, int]) -> None:
    """Before 8.32 a TIMESTAMP has no precision and holds milliseconds: ``TIMESTAMP(p)`` is a
    syntax error there (changelog 13409). A literal with more than three fractional digits is
    refused too: what 7.1 does with one is unverified, so the backend must not write one."""
    if version >= TIMESTAMP_PRECISION_SINCE:
        return
    where = f"Exasol {version[0]}.{version[1]}"
    for node in tree.find_all(exp.DataType):
        if node.is_type(exp.DataType.Type.TIMESTAMP) and node.expressions:
            raise ValueError(
                f"syntax error: TIMESTAMP({node.expressions[0].name}) does not exist on {where} "
                "(a TIMESTAMP precision exists from 8.32, changelog 13409)"
            )
    for cast in tree.find_all(exp.Cast):
        text = cast.this
        if cast.to.is_type(exp.DataType.Type.TIMESTAMP) and isinstance(text, exp.Literal):
            fraction = re.search(r"\.(\d+)$", text.this)
            if fraction and len(fraction.group(1)) > 3:
                raise ValueError(
                    f"TIMESTAMP '{text.this}' has more fractional digits than a TIMESTAMP of "
                    f"{where} keeps (milliseconds); not emulated"
                )


def _translate(query: str, context: Context) -> Translation:
    trees = [t for t in sqlglot.parse(query, read=ExasolNullHigh) if t is not None]
    if len(trees) != 1:
        raise ValueError(f"expected one statement, got {len(trees)}")
    tree = trees[0]
    if word := reserved_word(tree, context.tolerated):
        raise ValueError(
            f"syntax error, unexpected {word}: a reserved word of Exasol is no identifier "
            f'unless quoted ("{word}")'
        )
    _check_version(tree, context.version)
    access = access_of(tree)
    _rewrite_expressions(tree, context.db_timezone, context.session_timezone)
    before: list[str] = []
    after: list[str] = []
    creates = None
    if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "TABLE":
        creates = _create_table(tree, before, after)
    elif isinstance(tree, exp.Alter):
        _alter_table(tree, after)
    elif isinstance(tree, exp.Drop):
        _drop(tree, after)
    target = None
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        kind = "dml"
        table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        target = ".".join(_names(table)) if isinstance(table, exp.Table) else None
    else:
        kind = "query" if isinstance(tree, exp.Query) else "other"
    statement = tree.sql("duckdb", unsupported_level=ErrorLevel.RAISE)
    clock = CLOCK_VARIABLE in statement
    return Translation(tuple(before), statement, tuple(after), kind, creates, target, clock, access)


def reserved_word(tree: exp.Expr, tolerated: frozenset[str] = frozenset()) -> str | None:
    """The first unquoted identifier of ``tree`` that is a reserved word of Exasol, if any.

    Exasol refuses them (``syntax error``); sqlglot and DuckDB take them. Functions without
    parentheses (``SYSTIMESTAMP``, ``DBTIMEZONE``, …) are no identifiers.
    """
    for ident in tree.find_all(exp.Identifier):
        name = ident.name.upper()
        if ident.quoted or name not in RESERVED or name in tolerated:
            continue
        if isinstance(ident.parent, exp.Column) and name in PSEUDO_COLUMNS:
            continue
        return name
    return None


def _rewrite_expressions(tree: exp.Expr, db_timezone: str, session_timezone: str) -> None:
    for literal in list(tree.find_all(exp.Literal)):
        if literal.is_string and literal.this == "":
            literal.replace(exp.Null())
    # outermost first: a chain a || b || c becomes one concat (nesting them is slow to bind)
    for node in list(tree.find_all(exp.DPipe, exp.Concat, bfs=True)):
        if isinstance(node.parent, exp.DPipe | exp.Concat):
            continue  # inside a chain: its leaves go into the chain's concat
        concat = exp.Anonymous(this="concat", expressions=_operands(node))
        node.replace(exp.Nullif(this=concat, expression=exp.Literal.string("")))
    _rewrite_time(tree, db_timezone, session_timezone)
    for node in list(tree.find_all(exp.ToChar)):
        if node.args.get("format") is None:
            node.replace(exp.Anonymous(this="exa_emu_to_char", expressions=[node.this]))


def _operands(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.DPipe):
        return _operands(node.this) + _operands(node.expression)
    if isinstance(node, exp.Concat):
        return [part for e in node.expressions for part in _operands(e)]
    return [node]


DEFAULT_TIME_ZONE_BEHAVIOR = "INVALID SHIFT AMBIGUOUS ST"
"""What CONVERT_TZ without its fourth argument does here. On Exasol the session's
TIME_ZONE_BEHAVIOR decides (ALTER SESSION); which value is its default was not found in the
documentation: ST is assumed. Any of them misreads one of the two passes of the repeated hour."""

CLOCK_VARIABLE = "exa_emu_now"
"""The DuckDB variable that holds the emulated database's clock, in UTC, for one statement."""


def _now_utc() -> exp.Expression:
    value = exp.Anonymous(this="getvariable", expressions=[exp.Literal.string(CLOCK_VARIABLE)])
    return exp.Cast(this=value, to=exp.DataType.build("TIMESTAMP"))


def _rewrite_time(tree: exp.Expr, db_timezone: str, session_timezone: str) -> None:
    # POSIX_TIME() is the current moment in seconds since 1970-01-01 UTC, whatever the zones
    for call in list(tree.find_all(exp.Anonymous)):
        if call.name.upper() == "POSIX_TIME" and not call.expressions:
            call.replace(exp.Anonymous(this="epoch", expressions=[_now_utc()]))
    for systimestamp in list(tree.find_all(exp.Systimestamp)):
        systimestamp.replace(_now_in(db_timezone))
    for current in list(tree.find_all(exp.CurrentTimestamp)):
        current.replace(_now_in(session_timezone))
    for column in list(tree.find_all(exp.Column)):
        name = column.this
        if column.table or not isinstance(name, exp.Identifier) or name.quoted:
            continue
        if name.this.upper() == "DBTIMEZONE":
            column.replace(exp.Literal.string(db_timezone))
        elif name.this.upper() == "SESSIONTIMEZONE":
            column.replace(exp.Literal.string(session_timezone))
    for convert in list(tree.find_all(exp.ConvertTimezone)):
        options = convert.args.get("options") or exp.Literal.string(DEFAULT_TIME_ZONE_BEHAVIOR)
        args = [convert.args["timestamp"], convert.args["source_tz"], convert.args["target_tz"]]
        convert.replace(exp.Anonymous(this="exa_emu_convert_tz", expressions=[*args, options]))
    for node in list(tree.find_all(exp.DateDiff)):
        unit = node.args.get("unit")
        factor = _SECONDS.get(str(unit.name).upper()) if unit is not None else None
        if factor is None:
            continue
        diff = exp.Sub(this=_epoch(node.this), expression=_epoch(node.expression))
        node.replace(exp.Paren(this=exp.Div(this=diff, expression=exp.Literal.number(factor))))


def _now_in(zone: str) -> exp.Expression:
    instant = exp.Anonymous(this="timezone", expressions=[exp.Literal.string("UTC"), _now_utc()])
    local = exp.Anonymous(this="timezone", expressions=[exp.Literal.string(zone), instant])
    return exp.Cast(this=local, to=exp.DataType.build("TIMESTAMP"))


def _epoch(value: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="epoch", expressions=[value])


def _names(table: exp.Table) -> tuple[str, str]:
    return table.db.upper(), table.name.upper()


def _create_table(tree: exp.Create, before: list[str], after: list[str]) -> tuple[str, str] | None:
    schema_node = tree.this
    if not isinstance(schema_node, exp.Schema) or not isinstance(schema_node.this, exp.Table):
        return None  # CREATE TABLE … AS SELECT: DuckDB's types are reported
    schema, table = _names(schema_node.this)
    after.append(_FORGET_TYPES.format(s=schema, t=table))
    types: list[str] = []
    for column in schema_node.find_all(exp.ColumnDef):
        _column(column, schema, table, before, types, check_length=True)
    if types:
        after.append(_RECORD_TYPES + ", ".join(types))
    return (schema, table) if tree.args.get("exists") else None


def _alter_table(tree: exp.Alter, after: list[str]) -> None:
    if not isinstance(tree.this, exp.Table):
        return
    schema, table = _names(tree.this)
    types: list[str] = []
    for column in tree.find_all(exp.ColumnDef):
        _column(column, schema, table, [], types, check_length=False)
    if types:
        after.append(_RECORD_TYPES + ", ".join(types))


def _drop(tree: exp.Drop, after: list[str]) -> None:
    kind = str(tree.args.get("kind")).upper()
    if kind == "TABLE" and isinstance(tree.this, exp.Table):
        schema, table = _names(tree.this)
        after.append(_FORGET_TYPES.format(s=schema, t=table))
    elif kind == "SCHEMA" and isinstance(tree.this, exp.Table | exp.Identifier):
        after.append(_FORGET_SCHEMA.format(s=tree.this.name.upper()))


def _column(
    column: exp.ColumnDef,
    schema: str,
    table: str,
    before: list[str],
    types: list[str],
    *,
    check_length: bool,
) -> None:
    kind = column.args.get("kind")
    name = column.name.upper()
    if not isinstance(kind, exp.DataType):
        return
    exa_type = _exa_type(kind)
    types.append(f"('{schema}', '{table}', '{name}', '{exa_type}')")
    if kind.is_type(exp.DataType.Type.TIMESTAMP):
        precision = int(kind.expressions[0].name) if kind.expressions else 3
        ms, us = exp.DataType.Type.TIMESTAMP_MS, exp.DataType.Type.TIMESTAMP
        column.set("kind", exp.DataType(this=ms if precision <= 3 else us))
    constraints = column.args.get("constraints") or []
    if check_length and kind.is_type(exp.DataType.Type.VARCHAR) and kind.expressions:
        size = int(kind.expressions[0].name)
        check = exp.CheckColumnConstraint(
            this=exp.LTE(
                this=exp.Anonymous(
                    this="length", expressions=[exp.column(column.name, quoted=True)]
                ),
                expression=exp.Literal.number(size),
            )
        )
        constraints.append(exp.ColumnConstraint(kind=check))
    for constraint in list(constraints):
        if isinstance(constraint.args.get("kind"), exp.AutoIncrementColumnConstraint):
            sequence = f'"{schema}"."EXA_EMU_{table}_{name}_SEQ"'
            before.append(f"CREATE SEQUENCE IF NOT EXISTS {sequence}")
            nextval = exp.Anonymous(this="nextval", expressions=[exp.Literal.string(sequence)])
            default = exp.DefaultColumnConstraint(this=nextval)
            constraints.remove(constraint)
            constraints.append(exp.ColumnConstraint(kind=default))
    column.set("constraints", constraints)


def _exa_type(kind: exp.DataType) -> str:
    text = kind.sql("exasol").replace(" ", "").upper()
    if kind.is_type(exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR):
        return f"{text} UTF8"
    return text


def format_timestamp(value: datetime, fmt: str) -> str:
    """``value`` as Exasol renders it with NLS_TIMESTAMP_FORMAT ``fmt`` (the ISO ones)."""
    m = re.fullmatch(r"YYYY-MM-DD HH24:MI:SS(?:\.FF(\d))?", fmt.upper())
    if not m:
        raise ValueError(f"the emulator renders ISO timestamp formats only, not {fmt!r}")
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    digits = int(m.group(1) or 0)
    if digits:
        text += "." + f"{value.microsecond:06d}000"[:digits]
    return text
