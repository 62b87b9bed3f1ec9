"""What the landing zone opens and takes back: regular files only, its own claims only.

(#15.2/3/7, #14.4/6; the same attempts with real processes are in tests/security and
tests/faults.)
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import redpss.landing.lifecycle as lifecycle
from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.loaders import parse_loader
from redpss.errors import FileRejected, LoadError
from redpss.instance import Instance
from redpss.landing import recover, run_load, sweep, zone_of
from redpss.landing.convert import convert_pending, recover_conversions
from redpss.landing.lifecycle import (
    LandingZone,
    claim,
    claim_key,
    issued,
    work_claims,
)
from redpss.landing.opened import Opened, open_regular
from redpss.landing.readers import read_rows

KEY = claim_key("unit tests")
ONE = parse_loader(
    "notes",
    {
        "pattern": r"^note",
        "target": "DWH.NOTES",
        "header": False,
        "columns": [{"name": "TEXT", "type": "VARCHAR(50)"}],
    },
)
HEADER = parse_loader(
    "ids",
    {"pattern": r"^id", "target": "DWH.IDS", "columns": [{"name": "ID", "type": "DECIMAL(9,0)"}]},
)


def _rows(path: Path, loader: Any = ONE) -> list[list[Any]]:
    return [list(r) for r in read_rows(path, loader, max_record=1 << 20)]


def _socket_file(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the socket file stays after the close


# -- opening -----------------------------------------------------------------------------------


def test_open_regular_reads_what_it_opened_even_when_the_name_is_swapped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    path = tmp_path / "note.csv"
    path.write_text("harmless\n")
    with open_regular(path) as opened:
        path.unlink()
        path.symlink_to(secret)  # swapped after the check: too late
        assert opened.size == len("harmless\n")
        assert _rows(opened.view) == [["harmless"]]
        assert _rows(opened.view) == [["harmless"]]  # every open starts at the beginning
    assert opened.fd == -1


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p, t: p.symlink_to(t), "symbolic link"),
        (lambda p, t: p.symlink_to("nowhere"), "symbolic link"),
        (lambda p, t: p.symlink_to(t.parent, target_is_directory=True), "symbolic link"),
        (lambda p, t: os.mkfifo(p), "FIFO"),
        (lambda p, t: _socket_file(p), "socket"),
        (lambda p, t: p.mkdir(), "directory"),
    ],
)
def test_open_regular_refuses_everything_but_a_regular_file(
    tmp_path: Path, make: Any, words: str
) -> None:
    target = tmp_path / "target.csv"
    target.write_text("x\n")
    path = tmp_path / "note.csv"
    make(path, target)
    with pytest.raises(FileRejected, match=words):
        open_regular(path)  # a FIFO would block here forever if it were opened


def test_open_regular_refuses_a_device_without_opening_it() -> None:
    with pytest.raises(FileRejected, match="character device"):
        open_regular(Path("/dev/zero"))


def test_open_regular_judges_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO swapped in between the lstat and the open is opened without waiting, and refused."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    plain = tmp_path / "note.csv"
    plain.write_text("x\n")
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags: real_open(fifo, flags))
    with pytest.raises(FileRejected, match="FIFO"):
        open_regular(plain)


def test_an_unreadable_file_is_refused_with_its_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "note.csv"
    path.write_text("x\n")
    path.chmod(0o600)

    def denied(p: Any, flags: int) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(p))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(FileRejected, match=r"not readable for the loader .*mode 0600"):
        open_regular(path)


# -- CSV text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True])  # the fast path, and deep in a big file
def test_a_nul_byte_is_refused_with_line_and_column(tmp_path: Path, big: bool) -> None:
    path = tmp_path / "note.csv"
    lead = [f"line {i}" for i in range(50000 if big else 1)]
    path.write_bytes(("\n".join(lead) + "\n").encode() + b"ab\x00cd\n")
    with pytest.raises(FileRejected, match="NUL byte at column 3") as caught:
        _rows(path)
    assert caught.value.line == len(lead) + 1


def test_a_utf8_bom_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "id.csv"
    path.write_bytes(b"\xef\xbb\xbfID\n1\n2\n")
    assert _rows(path, HEADER) == [[1], [2]]
    fixed = parse_loader(
        "fx",
        {
            "pattern": "x",
            "target": "S.T",
            "fixed_width": True,
            "header": False,
            "columns": [{"name": "A", "type": "VARCHAR(3)", "start": 1, "size": 3}],
        },
    )
    path.write_bytes(b"\xef\xbb\xbfabc\n")
    assert _rows(path, fixed) == [["abc"]]
    path.write_bytes(b"\xef\xbb\xbfabc\n")
    assert _rows(path) == [["abc"]]  # no header: the first value has no BOM either
    latin = parse_loader(
        "l1",
        {"pattern": "x", "target": "S.T", "header": False, "encoding": "latin-1",
         "columns": [{"name": "A", "type": "VARCHAR(9)"}]},
    )  # fmt: skip
    assert _rows(path, latin) == [["\xef\xbb\xbfabc"]]  # not UTF-8: those are three letters


# -- claims ------------------------------------------------------------------------------------


def test_only_claims_made_with_the_key_are_issued(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, KEY).ensure()
    long = "n" * 250 + ".csv"
    for name in ("note.csv", long, "ünï cødé.csv"):
        (zone.input / name).write_text("x\n")
        item = claim(zone, zone.input / name)
        assert item is not None and issued(zone, item)
    other = LandingZone(tmp_path, claim_key("another secret"))
    assert not any(issued(other, c) for c in work_claims(zone))
    (zone.work / "L0123456789abcdef01234567.note.csv").write_text("x\n")
    good = next(c for c in work_claims(zone) if c.name == "note.csv" and issued(zone, c))
    os.rename(good.path, zone.work / f"{good.claim_id}.renamed.csv")
    verdicts = {c.path.name: issued(zone, c) for c in work_claims(zone)}
    assert sorted(verdicts.values()) == [False, False, True, True]


@pytest.fixture
def dic(tmp_path: Path) -> Any:
    with open_dictionary("sqlite", db_dir=tmp_path / "db") as d:
        d.init()
        d.upsert_loader(ONE)
        yield d


def _load(inst: Instance, dic: Dictionary, key: str | None = None) -> Any:
    config = inst.load_config()
    return run_load(
        instance=inst, config=config, dictionary=dic, loader="notes", key=key, run_id=1,
        schema="DWH",
    )  # fmt: skip


def test_recover_rejects_what_it_did_not_issue(make_instance: Any, dic: Dictionary) -> None:
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    (zone.input / "note_1.csv").write_text("one\n")
    mine = claim(zone, zone.input / "note_1.csv")
    assert mine is not None
    (zone.work / "L0123456789abcdef01234567.note_2.csv").write_text("planted\n")
    (zone.work / f"{mine.claim_id}.note_3.csv").write_text("borrowed\n")
    done = recover(inst, dic)
    assert sorted(d.split(":")[0] for d in done) == [
        "rejected L0123456789abcdef01234567.note_2.csv",
        f"rejected {mine.claim_id}.note_3.csv",
        f"requeued note_1.csv (claim {mine.claim_id} was not committed)",
    ]
    assert sorted(p.name for p in zone.input.iterdir()) == ["note_1.csv"]
    assert sorted(p.name for p in zone.error.glob("*.error.json")) == [
        "note_2.csv.error.json",
        "note_3.csv.error.json",
    ]
    assert not any(zone.work.iterdir())


def test_recover_conversions_rejects_what_it_did_not_issue(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, KEY).ensure()
    (zone.work / "J0123456789abcdef01234567.x.json").write_text("{}\n")
    assert recover_conversions(zone, "JSON")[0].startswith("rejected x.json")
    assert (zone.error / "x.json").exists() and not any(zone.input.iterdir())


def test_a_converter_refuses_links_and_fifos(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path, KEY).ensure()
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": 1}\n')
    (zone.input / "a.json").symlink_to(secret)
    os.mkfifo(zone.input / "b.json")
    done = convert_pending(
        zone, "JSON", in_suffix=".json", out_suffix=".csv", quiet_period=0, max_record=1 << 20
    )
    assert sorted(done) == [
        "rejected a.json: a symbolic link (the landing zone never follows links)",
        "rejected b.json: a FIFO (named pipe), not a regular file",
    ]
    assert not any(zone.input.iterdir())


# -- an error folder that cannot take the file ------------------------------------------------


def test_a_rejected_file_error_cannot_take_goes_back_to_input(
    make_instance: Any, dic: Dictionary, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    (zone.input / "note_bad.csv").write_text("a\nb,c\n")
    (zone.input / "note_ok.csv").write_text("fine\n")
    real = lifecycle._write_atomic

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(lifecycle, "_write_atomic", full)
    with pytest.raises(LoadError, match=r"'note_bad.csv' rejected .*2 fields.* error/ cannot take "
                       r"it: No space left on device; put back into input/"):  # fmt: skip
        _load(inst, dic, key="note_bad.csv")
    assert (zone.input / "note_bad.csv").read_text() == "a\nb,c\n"
    assert not any(zone.work.iterdir()) and not any(zone.error.iterdir())
    # sweep: a file no loader matches, same fault
    (zone.input / "orphan.xml").write_text("<x/>")
    config = inst.load_config()
    quick = dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    done = sweep(inst, dataclasses.replace(config, redsys=quick), dic)
    assert any("orphan.xml" in d and "error/ cannot take it" in d for d in done)
    assert (zone.input / "orphan.xml").exists() and not any(zone.work.iterdir())
    monkeypatch.setattr(lifecycle, "_write_atomic", real)
    result = _load(inst, dic, key="note_bad.csv")
    assert result.errors == 1 and (zone.error / "note_bad.csv.error.json").exists()


def test_a_failing_move_into_error_leaves_no_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LandingZone(tmp_path, KEY).ensure()
    (zone.input / "note.csv").write_text("x\n")
    item = claim(zone, zone.input / "note.csv")
    assert item is not None

    def broken(src: Path, folder: Path, name: str, claim_id: str) -> Path:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lifecycle, "_place", broken)
    with pytest.raises(OSError, match="Read-only"):
        lifecycle.reject(zone, item, "bad", loader=None)
    assert not any(zone.error.iterdir()) and item.path.exists()


def test_opened_closes_once(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_text("x")
    opened = open_regular(path)
    assert isinstance(opened, Opened) and opened.view.read_text() == "x"
    opened.close()
    opened.close()


# -- at size -----------------------------------------------------------------------------------


def test_complete_names_oldest_first_with_signatures(tmp_path: Path) -> None:
    for i, name in enumerate(("b.csv", "a.csv", "c.txt", ".hidden.csv", "d.csv.part")):
        (tmp_path / name).write_text("x" * i)
        os.utime(tmp_path / name, (1000 - i, 1000 - i))
    (tmp_path / "folder.csv").mkdir()
    due = lifecycle.complete_names(
        tmp_path, lambda n: n.endswith(".csv"), quiet_period=0, marker=False
    )
    # oldest change first: the ctime (set when written), not the mtime set back by utime
    assert [(d.name, d.size) for d in due] == [("b.csv", 0), ("a.csv", 1)]
    assert due[1].mtime_ns == 999 * 10**9


def test_a_run_holds_one_connection_and_lets_it_go(make_instance: Any, dic: Dictionary) -> None:
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    for i, body in enumerate(("one\n", "a\nb,c\n", "three\n")):
        (zone.input / f"note_{i}.csv").write_text(body)
    config = inst.load_config()
    quick = dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    result = run_load(
        instance=inst, config=dataclasses.replace(config, redsys=quick), dictionary=dic,
        loader="notes", key=None, run_id=1, schema="DWH",
    )  # fmt: skip
    assert (result.files, result.errors, result.rows) == (2, 1, 2)  # a rollback between
    assert dic._held() == {}  # type: ignore[attr-defined]


def test_sweep_looks_for_expired_files_every_so_often(make_instance: Any, dic: Dictionary) -> None:
    inst = make_instance("tst1")
    config = inst.load_config()
    old = dataclasses.replace(config.redsys, landing_archive_retention=-1.0)
    config = dataclasses.replace(config, redsys=old)
    zone = zone_of(inst, config)
    (zone.archive / "a.csv").write_text("x")
    assert sweep(inst, config, dic) == ["deleted 1 archived and 0 rejected file(s) past retention"]
    (zone.archive / "b.csv").write_text("x")
    assert sweep(inst, config, dic) == []  # not again within PURGE_EVERY
    assert (zone.archive / "b.csv").exists()


def test_sweep_leaves_the_converters_originals_to_their_own_retention(
    make_instance: Any, dic: Dictionary
) -> None:
    inst = make_instance("tst1")
    config = inst.load_config()
    old = dataclasses.replace(config.redsys, landing_archive_retention=-1.0)
    config = dataclasses.replace(config, redsys=old)
    zone = zone_of(inst, config)
    for name in ("a.csv", "b.json", "c.parquet"):
        (zone.archive / name).write_text("x")
    sweep(inst, config, dic)
    assert sorted(p.name for p in zone.archive.iterdir()) == ["b.json", "c.parquet"]


def test_a_hard_link_and_a_sparse_file_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    linked = tmp_path / "note.csv"
    os.link(secret, linked)
    with pytest.raises(FileRejected, match="hard link: the file has 2 names"):
        open_regular(linked)
    sparse = tmp_path / "sparse.csv"
    with sparse.open("wb") as f:
        f.write(b"a\n")
        f.truncate(1 << 30)  # a gigabyte of nothing
    with pytest.raises(FileRejected, match="sparse file"):
        open_regular(sparse)
    dense = tmp_path / "dense.csv"
    dense.write_bytes(b"a\n" * 100_000)
    with open_regular(dense) as opened:
        assert opened.size == 200_000


def test_a_kept_connection_follows_a_replaced_schema_file(
    make_instance: Any, dic: Dictionary
) -> None:
    """A loading thread keeps its connection between runs, but never writes into a file that
    is gone: a schema file replaced meanwhile (another inode) gets a new connection."""
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    (zone.input / "note_1.csv").write_text("one\n")
    assert _load(inst, dic, key="note_1.csv").files == 1
    path = dic.db_dir / "DWH.db"  # type: ignore[attr-defined]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)  # an operator starts the schema anew
    (zone.input / "note_2.csv").write_text("two\n")
    assert _load(inst, dic, key="note_2.csv").files == 1
    assert dic.target_row_count("DWH", "NOTES") == 1  # in the new file, not the old one


def test_close_closes_what_the_loading_threads_kept(make_instance: Any, tmp_path: Path) -> None:
    import threading

    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    dic = open_dictionary("sqlite", db_dir=tmp_path / "db2")
    dic.init()
    dic.upsert_loader(ONE)
    for i in range(4):
        (zone.input / f"note_{i}.csv").write_text(f"{i}\n")

    def load(i: int) -> None:
        assert _load(inst, dic, key=f"note_{i}.csv").files == 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = list(dic._loading().kept)  # type: ignore[attr-defined]
    assert len(kept) == 4  # one per thread
    dic.close()
    for conn in kept:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert dic.target_row_count("DWH", "NOTES") == 4


def test_names_that_are_not_utf8_load_and_reject_like_any_other(
    make_instance: Any, dic: Dictionary
) -> None:
    """An sFTP client may send any bytes as a name: such a file loads or goes to error/ with a
    sidecar, the ledger and the messages show the odd bytes as \\xNN."""
    inst = make_instance("tst1")
    config = inst.load_config()
    quick = dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    config = dataclasses.replace(config, redsys=quick)
    zone = zone_of(inst, config)
    raw = os.fsencode(zone.input)
    with open(os.path.join(raw, b"note_ok\xfe.csv"), "w") as f:
        f.write("fine\n")
    with open(os.path.join(raw, b"note_bad\xff.csv"), "w") as f:
        f.write("a\nb,c\n")
    with open(os.path.join(raw, b"orphan\xfd.txt"), "w") as f:
        f.write("x\n")
    result = run_load(
        instance=inst, config=config, dictionary=dic, loader="notes", key=None, run_id=1,
        schema="DWH",
    )  # fmt: skip
    assert (result.files, result.errors) == (1, 1)
    assert "note_bad\\xff.csv (line 2: 2 fields" in result.message
    assert [e.file_name for e in dic.load_ledger()] == ["note_ok\\xfe.csv"]
    side = json.loads(Path(os.fsdecode(os.path.join(os.fsencode(zone.error),
                      b"note_bad\xff.csv.error.json"))).read_text())  # fmt: skip
    assert side["file"] == "note_bad\\xff.csv"
    assert sweep(inst, config, dic) == ["rejected orphan\\xfd.txt: no loader matches"]
    assert not any(zone.input.iterdir()) and not any(zone.work.iterdir())
    assert not [p for p in zone.error.iterdir() if p.name.endswith(".tmp")]


def test_a_long_name_is_cut_at_a_character_and_still_known_to_the_ledger() -> None:
    name = "é" * 200 + "\udcff.csv"  # 400 bytes of UTF-8, then a byte that is not UTF-8
    stored = lifecycle.stored_name(name)
    assert len(stored.encode("utf-8", "surrogateescape")) <= 229
    assert name.startswith(stored) and stored.endswith("é")
    assert lifecycle.same_name(lifecycle.display_name(name), stored)
    assert not lifecycle.same_name(lifecycle.display_name("x" + name), stored)
    assert lifecycle.same_name("note.csv", "note.csv")
    assert not lifecycle.same_name("note.csv.old", "note.csv")


def test_import_positions_read_a_header_behind_a_bom(tmp_path: Path) -> None:
    from redpss.landing.readers import import_positions

    two = parse_loader(
        "two",
        {
            "pattern": "x",
            "target": "S.T",
            "columns": [{"name": "B", "type": "VARCHAR(9)"}, {"name": "A", "type": "VARCHAR(9)"}],
        },
    )
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbfA,B\n1,2\n")
    assert import_positions(path, two) == [2, 1]
