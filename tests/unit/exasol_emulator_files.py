"""``IMPORT … FROM CSV AT 'ftp://…' … FILE …`` of the emulated Exasol: a file server it reads.

A test registers a :class:`FileServer` (a folder standing for cfisrv's ``work/``, its user and
password, the pin of its self-signed certificate) under its URL in
``EmulatedDatabase.file_servers``; the statement then reads the file from that folder, as
Exasol reads it from the server, and inserts it as :func:`~tests.unit.exasol_emulator_import.
import_rows` does (formats, ``ETL-3050``). The certificate rules, by version (changelogs 16273
and 25090; pyexasol's changelog 1.0.0):

- before 8.32 a file connection's certificate is not verified, and ``PUBLIC KEY`` is a syntax
  error;
- from 8.32 ``PUBLIC KEY 'sha256//…'`` is verified when given; from 2025.1 verification is the
  default, so a self-signed certificate without its pin is refused — with ``ETL-5106`` and
  curl's reason, as the database reports a failing external connection;
- ``ftps://`` is implicit TLS, which a server of explicit TLS (cfisrv) does not speak: refused.

Options read: ``SKIP``, ``COLUMN SEPARATOR``, ``COLUMN DELIMITER``, ``NULL``; ``ENCODING`` is
taken as the file's encoding. Not emulated: ``#`` comment lines, ROW SEPARATOR, ERRORS INTO.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.unit.exasol_emulator_import import import_rows

if TYPE_CHECKING:
    from tests.unit.exasol_emulator import EmulatedConnection

__all__ = ["IMPORT_FILE_RE", "FileServer", "import_file"]

IMPORT_FILE_RE = re.compile(
    r"\s*IMPORT\s+INTO\s+(?P<schema>\"[^\"]+\"|\w+)\.(?P<table>\"[^\"]+\"|\w+)\s*"
    r"\((?P<columns>[^)]*)\)\s+FROM\s+CSV\s+AT\s+'(?P<url>[^']*)'"
    r"(?:\s+USER\s+'(?P<user>(?:[^']|'')*)'\s+IDENTIFIED\s+BY\s+'(?P<password>(?:[^']|'')*)')?"
    r"(?:\s+PUBLIC\s+KEY\s+'(?P<pin>[^']*)')?"
    r"\s+FILE\s+'(?P<file>(?:[^']|'')*)'\s*(?:\((?P<cols>[^)]*)\))?(?P<options>.*)$",
    re.I | re.S,
)
_OPTION_RE = re.compile(
    r"(ENCODING|COLUMN SEPARATOR|COLUMN DELIMITER|NULL)\s*=\s*'((?:[^']|'')*)'|SKIP\s*=\s*(\d+)",
    re.I,
)


@dataclass
class FileServer:
    """A server the emulated database reads files from (module doc)."""

    root: Path
    user: str
    password: str = field(repr=False)
    pin: str
    """``sha256//…`` of its certificate's public key (self-signed)."""


def _text(value: str | None) -> str:
    return (value or "").replace("''", "'")


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.upper()


def _refuse(conn: EmulatedConnection, query: str, url: str, why: str) -> Exception:
    return conn._error(
        query, "42636", f"ETL-5106: Following error occured while reading data from external "
        f"connection [{url} failed. [{why}]]"
    )  # fmt: skip


def import_file(conn: EmulatedConnection, query: str, m: re.Match[str]) -> int:
    """Run the IMPORT ``m`` matched (``IMPORT_FILE_RE``); the number of rows imported."""
    version = conn.db.version
    url, pin = m["url"], m["pin"]
    if pin is not None and version < (8, 32):
        raise conn._error(query, "42000", "syntax error, unexpected PUBLIC_ KEY_ (before 8.32)")
    server = next((s for u, s in conn.db.file_servers.items() if url.startswith(u)), None)
    if url.lower().startswith("ftps://"):
        raise _refuse(conn, query, url, "SSL connect error: the server speaks explicit TLS")
    if server is None:
        raise _refuse(conn, query, url, "Couldn't connect to server")
    if pin is not None and pin != server.pin:
        raise _refuse(conn, query, url, "SSL: public key does not match pinned public key")
    if pin is None and version >= (2025, 1):
        raise _refuse(conn, query, url, "SSL certificate problem: self-signed certificate")
    if (_text(m["user"]), _text(m["password"])) != (server.user, server.password):
        raise _refuse(conn, query, url, "Access denied: 530")
    options: dict[str, str] = {}
    skip = 0
    for name, value, lines in _OPTION_RE.findall(m["options"] or ""):
        if lines:
            skip = int(lines)
        else:
            options[name.upper()] = value.replace("''", "'")
    path = server.root / url[len(next(u for u in conn.db.file_servers if url.startswith(u))) :]
    path = path / _text(m["file"])
    try:
        text = path.read_text(encoding=options.get("ENCODING", "UTF-8"))
    except OSError as exc:
        raise _refuse(conn, query, url, f"file not found: {exc.strerror}") from None
    null = options.get("NULL")
    reader = csv.reader(
        text.splitlines(),
        delimiter=options.get("COLUMN SEPARATOR", ","),
        quotechar=options.get("COLUMN DELIMITER", '"'),
    )
    rows = [
        [None if null is not None and f == null else f for f in record]
        for n, record in enumerate(reader)
        if n >= skip
    ]
    columns = [_unquote(c.strip()) for c in m["columns"].split(",")]
    cols = [c.strip() for c in (m["cols"] or "").split(",") if c.strip()]
    params = {"columns": columns, "csv_cols": cols or None}
    import_rows(conn, rows, (_unquote(m["schema"]), _unquote(m["table"])), params)
    return len(rows)
