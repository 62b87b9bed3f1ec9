"""Every SQL statement the Exasol backend can send parses with sqlglot's Exasol dialect.

Statements are the ``*_SQL`` templates of the ``redpss.dictionary.exasol`` modules (rendered
with the sample values below) and the DDL generated from the model. A statement sqlglot only
takes as an opaque "Command" must be of a kind listed in ``COMMANDS`` (syntax sqlglot lacks)
and match its pattern there. A module of the package with SQL text outside a ``*_SQL``
constant fails too, so nothing escapes these checks.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
import sqlglot

import redpss.dictionary.exasol as exasol_pkg
from redpss.dictionary.exasol.ddl import epoch_seconds, migration_statements, status_select
from redpss.dictionary.exasol.dialect import Dialect
from redpss.dictionary.exasol.session import ExaSettings, Session
from redpss.dictionary.exasol.sqltext import literal, placeholders, render
from redpss.dictionary.model import DICTIONARY

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)

# one sample per placeholder name: a value, or for !r fragments a piece of generated SQL
SAMPLES: dict[str, object] = {
    "schema": "STAGE",
    "table": "SALES",
    "role": "sched",
    "pid": 4711,
    "host": "host1",
    "now": NOW,
    "interval": 5.0,
    "version": "0.1.0",
    "state": "RUNNING",
    "started": NOW,
    "restarts": 2,
    "last_exit": "pid 1 exited",
    "info": None,
    "problems": "serve loop is not running",
    "exit_info": "stopped",
    "columns": 'ROLE, "STATE"',
    "select": "SELECT 'a' AS ROLE, 'b' AS \"STATE\" FROM DUAL",
    "ts": NOW,
    "level": "ERROR",
    "source": "LOAD_SALES",
    "message": "it's broken",
    "limit": 100,
    "description": "initial dictionary",
    "applied_at": NOW,
    "applied_by": "0.1.0",
    "fmt": "YYYY-MM-DD HH24:MI:SS.FF6",
    "seconds": 30,
    # the identity stamp (redctl preclone)
    "instance": "tst1",
    "stamp": "5f0c9d4e8a1b4c2d9e7f6a5b4c3d2e1f",
    # jobs
    "row_text": "COALESCE(HASH_MD5(CAST(JOB_NAME AS VARCHAR(2000000))), '-') || "
    "COALESCE(HASH_MD5(CAST(ACTIVE AS VARCHAR(2000000))), '-')",
    "key": "JOB_NAME",
    "name": "LOAD_SALES",
    "kind": "SQL",
    "action": "DELETE FROM T WHERE X = 'it''s'",
    "pool": "default",
    "schedule_type": "INTERVAL",
    "interval_seconds": 60,
    "cron_expr": None,
    "active": True,
    "timeout_seconds": None,
    "max_parallel": 1,
    "misfire_policy": "RUN_ONCE",
    "watch_text": "SELECT MAX(ID) FROM T",
    "executor_job": "LOAD_SALES",
    "check_interval": 60,
    "run_id": 17,
    "queued": NOW,
    "ended": None,
    "row_count": 42,
    "extra_set": ", WATCH_KEY = COALESCE('a.csv', T.WATCH_KEY)",
    "extra_values": ", 'a.csv', NULL",
    "where": "1 = 1 AND JOB_NAME = 'x' AND \"STATE\" IN ('OK', 'FAILED')",
    # runs per hour (the /ui charts)
    "hour": "DATE_TRUNC('hour', COALESCE(ENDED_AT, STARTED_AT, QUEUED_AT))",
    "value": "SUM(ROW_COUNT)",
    # the purge (redpss/dictionary/exasol/purge.py)
    "time": '"QUEUED_AT"',
    "bound": "TIMESTAMP '2026-11-23 12:00:00.123456'",
    "watcher": "W_SALES",
    "at": NOW,
    "names": "'default', 'loader'",
    # job status (STA_JOB_STATUS)
    "seen": NOW,
    "next_run": NOW,
    "error": "job x: cron expression 'x': wrong number of fields",
    "rows": "(TIMESTAMP '2026-11-23 12:00:00.123456', 'default', 4, 1, 0, 9), "
    "(TIMESTAMP '2026-11-23 12:00:00.123456', 'loader', 2, 0, 0, 3)",
    # landing
    "values": "'sales', '^sales', 'DWH', 'SALES', 'CSV', TRUE, NULL",
    "created": NOW,
    "body": '"ID" DECIMAL(18,0), "NAME" VARCHAR(20), "DAY" DATE, "TS" TIMESTAMP(6)',
    "claim": "L20261123T120000-1a2b3c",
    "sha": "ab" * 32,
    "target": "DWH.SALES",
    "limit_clause": " LIMIT 10",
    "url": "ftp://cfihost:2121/work/",
    "user": "redcfi",
    "password": "s3'cret",
    "file": "L20261123T120000-1a2b3c.sales.csv",
    "csv_cols": "1, 2, 3 FORMAT='YYYY-MM-DD'",
    "public_key": " PUBLIC KEY 'sha256//YHistZoLhU9+FKoSEHHbNGtC/Ee4KT75DDBO+s5OG8o='",
    # export
    "filters": " WHERE \"NAME\" = 'it''s' AND \"DAY\" IS NULL",
    "options": " ENCODING = 'UTF-8' COLUMN SEPARATOR = ';' COLUMN DELIMITER = '\"' SKIP = 1",
}

# statements sqlglot's Exasol dialect does not model; each checked by its documented shape
COMMANDS: dict[str, re.Pattern[str]] = {
    "ALTER SESSION": re.compile(r"ALTER SESSION SET [A-Z_]+ = ('[^']*'|\d+)"),
    "CREATE OR REPLACE LUA": re.compile(
        r"CREATE OR REPLACE LUA (SCALAR |SET )?SCRIPT [A-Z_]+\.[A-Z_]+ ?\(.*", re.S
    ),
    # IMPORT … FROM CSV AT '<url>' [USER … IDENTIFIED BY …] [PUBLIC KEY '…'] FILE '<name>'
    # [(csv_cols)] [opts]
    "IMPORT INTO": re.compile(
        r"IMPORT INTO (\"[^\"]+\"|[A-Z_]+)\.(\"[^\"]+\"|[A-Z_]+)( \([^)]*\))? FROM CSV AT '[^']*'"
        r"( USER '(?:[^']|'')*' IDENTIFIED BY '(?:[^']|'')*')?( PUBLIC KEY 'sha256//[^']+')?"
        r" FILE '(?:[^']|'')*'"
        r"( \(\d+( FORMAT='[^']+')?(, \d+( FORMAT='[^']+')?)*\))?"
        r"( (ENCODING|COLUMN SEPARATOR|COLUMN DELIMITER|ROW SEPARATOR|NULL) = '(?:[^']|'')*'"
        r"| SKIP = \d+)*"
    ),
}

SQL_START = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|ALTER|DROP|GRANT|IMPORT|EXPORT|COMMIT|"
    r"ROLLBACK|OPEN|TRUNCATE|EXECUTE)\b"
)
GENERATORS = {"ddl.py"}  # build SQL from the model; checked through their output below


def _modules() -> list[object]:
    return [
        importlib.import_module(f"{exasol_pkg.__name__}.{m.name}")
        for m in pkgutil.iter_modules(exasol_pkg.__path__)
    ]


def _templates() -> list[tuple[str, str]]:
    found = []
    for module in _modules():
        for name, value in vars(module).items():
            if name.endswith("_SQL") and isinstance(value, str):
                found.append((f"{module.__name__.rsplit('.', 1)[-1]}.{name}", value))  # type: ignore[attr-defined]
    return found


DIALECTS = (Dialect.of("7.1.30"), Dialect.of("8.32.0"))


def _ddl() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    scopes: tuple[tuple[Literal["REDSYS", "TARGET"], str], ...] = (
        ("REDSYS", "REDSYS"),
        ("TARGET", "STAGE"),
    )
    for dialect in DIALECTS:
        for migration in DICTIONARY.migrations:
            for scope, schema in scopes:
                statements = migration_statements(
                    DICTIONARY, migration.version, schema, scope, dialect
                )
                found.extend(
                    (f"{dialect} migration {migration.version} {schema} #{i}", sql)
                    for i, sql in enumerate(statements)
                )
    at = epoch_seconds(literal(NOW))
    found.append(("status at a time", status_select(DICTIONARY, DICTIONARY.version, at)))
    found.extend((f"session setup #{i}", s) for i, s in enumerate(Session.setup_statements()))
    return found


def check_parses(sql: str) -> None:
    """Parse ``sql`` with sqlglot's Exasol dialect; an opaque Command only if allowed."""
    kind = next((k for k in COMMANDS if sql.lstrip().upper().startswith(k)), None)
    try:
        tree = sqlglot.parse_one(sql, read="exasol")
    except sqlglot.errors.ParseError:
        if kind is None:  # sqlglot has no IMPORT at all: a known command is checked by shape
            raise
        tree = sqlglot.exp.Command(this=kind)
    if isinstance(tree, sqlglot.exp.Command):
        assert kind is not None, f"sqlglot cannot parse this, and it is no known command:\n{sql}"
        assert COMMANDS[kind].fullmatch(sql.strip()), f"malformed {kind} statement:\n{sql}"


def test_templates_are_found() -> None:
    names = [n for n, _ in _templates()]
    assert "status.HEARTBEAT_SQL" in names and "core.INSERT_VERSION_SQL" in names
    assert len(_ddl()) > 20


@pytest.mark.parametrize(("name", "template"), _templates(), ids=lambda v: str(v)[:40])
def test_template_parses(name: str, template: str) -> None:
    missing = [p for p, _ in placeholders(template) if p not in SAMPLES]
    assert not missing, f"{name}: add a sample for {missing} to SAMPLES"
    check_parses(render(template, SAMPLES))


@pytest.mark.parametrize(("name", "sql"), _ddl(), ids=lambda v: str(v)[:40])
def test_generated_ddl_parses(name: str, sql: str) -> None:
    check_parses(sql)


def test_a_typo_fails() -> None:
    """The check catches what it is for (or this file tests nothing)."""
    with pytest.raises((sqlglot.errors.ParseError, AssertionError)):
        check_parses("SELECT ROLE FROM REDSYS.ADM_PSS_STATUS WHERE ROLE = = 'x'")
    with pytest.raises((sqlglot.errors.ParseError, AssertionError)):
        check_parses("CRATE TABLE REDSYS.X (A DECIMAL(9,0))")
    with pytest.raises((sqlglot.errors.ParseError, AssertionError)):
        check_parses("INSERT INTO REDSYS.X (A, B) VALUES (1, 2")
    with pytest.raises((sqlglot.errors.ParseError, AssertionError)):
        check_parses("UPDATE REDSYS.X SET A = WHERE B = 1")
    with pytest.raises(AssertionError):
        check_parses("ALTER SESSION SET TIME_ZONE = UTC")  # a Command, but malformed


def test_no_sql_outside_templates() -> None:
    """Every SQL text of the package is a ``*_SQL`` constant or generated by ddl.py."""
    offenders = []
    for path in Path(exasol_pkg.__path__[0]).glob("*.py"):
        if path.name in GENERATORS:
            continue
        tree = ast.parse(path.read_text())
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("_SQL") for t in node.targets
            ):
                allowed.update(id(n) for n in ast.walk(node.value))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in allowed
                and SQL_START.match(node.value)
                and not _is_docstring(tree, node)
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, "SQL outside a *_SQL constant:\n" + "\n".join(offenders)


def _is_docstring(tree: ast.Module, node: ast.Constant) -> bool:
    docstrings = {
        id(body[0].value)
        for parent in ast.walk(tree)
        if isinstance(body := getattr(parent, "body", None), list)
        and body
        and isinstance(body[0], ast.Expr)
    }
    return id(node) in docstrings


def test_settings_never_show_the_password() -> None:
    settings = ExaSettings(dsn="exa1:8563", user="REDSYS", password="s3cret")
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(Session(settings))
