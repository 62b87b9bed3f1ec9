"""SENDFILE's pure parts: request checks, the dictionary's export area, the file writers."""

from __future__ import annotations

import csv
import errno
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from redpss.dictionary import open_dictionary
from redpss.dictionary.export import ExportColumn
from redpss.dictionary.sqlite.export import sqlite_kind
from redpss.errors import BadArgs, RemoteError
from redpss.export.writer import write_export
from redpss.roles.sendfile import check_target, not_written, sftp_dir
from redpss.wire.args import parse
from redpss.wire.ops import SendFile


def check_request(args: dict[str, Any]) -> SendFile:
    """What the server does with a ``send`` request before it reads a row."""
    req = parse(SendFile, args)
    check_target(req)
    if req.sftp is not None:
        sftp_dir(req.sftp.dir)
    return req


@pytest.fixture
def dictionary(tmp_path: Path) -> Any:
    d = open_dictionary("sqlite", db_dir=tmp_path / "db")
    d.init()
    d.ensure_schema("STAGE")
    with sqlite3.connect(tmp_path / "db" / "STAGE.db") as conn:
        conn.execute('CREATE TABLE "Odd ""Name""" (A INTEGER, "b c" TEXT, D BLOB, E BOOLEAN)')
        conn.executemany(
            'INSERT INTO "Odd ""Name""" VALUES (?, ?, ?, ?)',
            [(i, f"t{i}", bytes([i]), i % 2) for i in range(25)],
        )
        conn.execute("CREATE TABLE EMPTY (X REAL)")
    conn.close()
    return d


def test_rows_come_in_batches_with_real_names(dictionary: Any) -> None:
    batches = list(dictionary.export_rows("STAGE", 'odd "name"', batch_size=10))
    assert [len(rows) for _, rows in batches] == [10, 10, 5]
    assert batches[0][0] == ["A", "b c", "D", "E"]
    assert list(dictionary.export_rows("STAGE", "EMPTY")) == [(["X"], [])]
    picked = list(
        dictionary.export_rows("STAGE", 'Odd "Name"', columns=["B C", "a"], where={"A": 3})
    )
    assert picked == [(["b c", "A"], [("t3", 3)])]
    nulls = list(dictionary.export_rows("STAGE", 'Odd "Name"', where={"A": None}))
    assert nulls == [(["A", "b c", "D", "E"], [])]
    assert dictionary.export_objects("STAGE")[0] == "ADM_JOB_LOG" or dictionary.export_objects(
        "STAGE"
    )
    assert dictionary.export_columns("STAGE", "EMPTY") == [ExportColumn("X", "DOUBLE")]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"object_name": "x; DROP TABLE EMPTY"}, "does not exist"),
        ({"object_name": "EMPTY", "columns": ["X", "Y"]}, "column 'Y' does not exist"),
        ({"object_name": "EMPTY", "where": {"1=1 OR X": 1}}, "filter column"),
        ({"object_name": "EMPTY", "batch_size": 0}, "batch_size"),
    ],
)
def test_names_are_looked_up_never_interpolated(
    dictionary: Any, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        list(dictionary.export_rows("STAGE", **kwargs))


def test_sqlite_declared_types_map_to_kinds() -> None:
    assert [sqlite_kind(t) for t in ("BIGINT", "VARCHAR(20)", "DOUBLE", "BLOB", "BOOLEAN", "")] == [
        "INTEGER",
        "VARCHAR",
        "DOUBLE",
        "BINARY",
        "BOOLEAN",
        "VARCHAR",
    ]


def test_requests_are_checked() -> None:
    req = check_request({"schema": "S", "object": "T", "mail": {"to": "a@b.c"}})
    assert (req.format, req.delimiter, req.header) == ("csv", ",", True)
    assert req.mail is not None and (req.mail.to, req.mail.subject) == ("a@b.c", None)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"object": "T", "sftp": {}}, "'schema'"),
        ({"schema": "S", "object": "T"}, "exactly one target"),
        ({"schema": "S", "object": "T", "sftp": {}, "mail": {"to": "a@b.c"}}, "exactly one"),
        ({"schema": "S", "object": "T", "sftp": {}, "format": "xls"}, "'format'"),
        ({"schema": "S", "object": "T", "sftp": {}, "file_name": ".x"}, "'file_name'"),
        ({"schema": "S", "object": "T", "sftp": {"dir": "/abs"}}, "sftp.dir"),
        ({"schema": "S", "object": "T", "sftp": {"dir": "a/../b"}}, "sftp.dir"),
        ({"schema": "S", "object": "T", "sftp": {"host": "evil"}}, "'sftp'"),
        ({"schema": "S", "object": "T", "sftp": {}, "where": {"A": [1]}}, "'where.A'"),
        ({"schema": "S", "object": "T", "sftp": {}, "delimiter": '"'}, "'delimiter'"),
        ({"schema": "S", "object": "T", "sftp": {}, "sql": "x"}, "unknown"),
        ({"schema": "S", "object": "T", "sftp": {}, "columns": []}, "'columns'"),
        ({"schema": "S", "object": "T", "sftp": {}, "where": {"A": float("nan")}}, "'where.A'"),
        ({"schema": "S", "object": "T", "mail": {"to": "x"}}, "'mail.to'"),
    ]
    for bad, field in cases:
        with pytest.raises(BadArgs, match=field):
            check_request(bad)


def test_writers_stream_batches(dictionary: Any, tmp_path: Path) -> None:
    columns = dictionary.export_columns("STAGE", 'Odd "Name"')
    out = write_export(
        dictionary.export_rows("STAGE", 'Odd "Name"', batch_size=7),
        columns,
        tmp_path / "o.pq",
        fmt="parquet",
    )
    table = pq.read_table(out.path)
    assert out.rows == 25 == table.num_rows
    assert table.column("D").to_pylist()[3] == b"\x03"
    assert table.column("E").to_pylist()[:2] == [False, True]
    out = write_export(
        dictionary.export_rows("STAGE", 'Odd "Name"', batch_size=7),
        columns,
        tmp_path / "o.csv",
        fmt="csv",
        header=False,
    )
    with out.path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[3] == ["3", "t3", "03", "1"] and len(rows) == 25


def test_a_value_parquet_cannot_take_is_an_export_error(tmp_path: Path) -> None:
    batches = iter([(["N"], [(1,), ("not a number",)])])
    with pytest.raises(RemoteError) as exc:
        write_export(batches, [ExportColumn("N", "INTEGER")], tmp_path / "x.pq", fmt="parquet")
    assert exc.value.code == "export_failed" and "column N" in exc.value.message


# -- a disk that refuses the export (issue #14: it answered `internal`) ------------------------

_EXPORT = """
import json, os, resource, signal, sqlite3, sys
from pathlib import Path
from redpss.dictionary import open_dictionary
from redpss.errors import RemoteError
from redpss.instance import Instance, create_instance
from redpss.roles.base import RoleContext
from redpss.roles.sendfile import Sendfile
from redpss.wire.args import parse
from redpss.wire.ops import SendFile

inst = Instance("tst1", Path(sys.argv[1]))
create_instance(inst, port_base=22000)
d = open_dictionary("sqlite", db_dir=inst.db_dir)
d.init()
d.ensure_schema("STAGE")
with sqlite3.connect(inst.db_dir / "STAGE.db") as conn:
    conn.execute("CREATE TABLE BIG (A INTEGER, B TEXT)")
    rows = [(i, os.urandom(50).hex()) for i in range(5000)]  # Parquet cannot compress them
    conn.executemany("INSERT INTO BIG VALUES (?, ?)", rows)
conn.close()
role = Sendfile(RoleContext(inst, inst.load_config(), d))
role.work.mkdir(parents=True)
req = parse(SendFile, {"schema": "STAGE", "object": "BIG", "format": sys.argv[2],
                       "mail": {"to": ["ops@example.org"]}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
out = []
for limit in (64 << 10, resource.RLIM_INFINITY):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        role.op_send(req, None)
    except RemoteError as exc:
        out.append({"code": exc.code, "message": exc.message, "problems": role.health.problems(),
                    "left": [str(p) for p in role.work.rglob("*")]})
print(json.dumps(out))
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_the_disk_refuses_is_write_failed_and_named_until_one_is_written(
    tmp_path: Path, fmt: str
) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _EXPORT, str(tmp_path), fmt],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    refused, delivered = json.loads(out.stdout)
    assert refused["code"] == "write_failed", refused
    assert "cannot write the export in" in refused["message"]
    assert "nothing was sent, send it again later" in refused["message"]
    assert refused["problems"] == [refused["message"].split("; ")[0]]  # status: ALERT 1
    assert refused["left"] == []  # the torn export is gone
    # written the next time (its delivery fails here: no sendmail listens): the problem is over
    assert delivered["code"] == "mail_failed" and delivered["problems"] == []


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"),
         "disk_full"),  # pyarrow's, without errno
        (OSError(errno.EIO, "Input/output error"), "write_failed"),
    ],
)  # fmt: skip
def test_the_disk_s_refusal_has_the_codes_of_dbls(exc: OSError, code: str) -> None:
    error = not_written(exc, Path("/r/tmp/sendfile"))
    assert error.code == code
    if code == "disk_full":
        assert "no space left on the device" in error.message
