"""Which files a mail may carry: only from the attachment folders, never through a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redpss.config.checks import attach_dir_problems, attach_dirs
from redpss.errors import BadArgs, ConfigError
from redpss.mail.attach import AttachFolders

pytestmark = pytest.mark.unit


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for sub in ("etc", "data/db", "data/export/daily", "log", "spool", "tmp/sendfile"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "etc" / "secret").write_text("s3cret\n")
    (tmp_path / "data" / "export" / "daily" / "sales.csv").write_text("a,b\n")
    return tmp_path


def folders(home: Path, text: str = "data/export, tmp/sendfile") -> AttachFolders:
    f = AttachFolders(home, attach_dirs(text))
    f.prepare()
    return f


def test_a_file_below_a_folder_is_read(home: Path) -> None:
    f = folders(home)
    for value in ("data/export/daily/sales.csv", str(home / "data/export/daily/sales.csv")):
        got = f.read(value, "'a'", limit=100)
        assert (got.name, got.data) == ("sales.csv", b"a,b\n")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("etc/secret", "not in a folder"),
        ("data/db/REDSYS.db", "not in a folder"),
        ("data/export/../../etc/secret", "not in a folder"),
        ("data/export", "not in a folder"),  # the folder itself is not a file
        ("../etc/passwd", "outside the instance"),
        ("/etc/passwd", "outside the instance"),
        ("data/export/none.csv", "does not exist"),
        ("data/export/daily", "not a regular file"),
        ("", "must be the path"),
        ("data/export/a\0b", "must be the path"),
    ],
)
def test_what_is_refused(home: Path, value: str, needle: str) -> None:
    with pytest.raises(BadArgs, match=needle) as info:
        folders(home).read(value, "'attachments[0]'", limit=100)
    assert "'attachments[0]'" in str(info.value)


def test_no_link_is_followed_below_a_folder(home: Path) -> None:
    export = home / "data" / "export"
    (export / "leak.txt").symlink_to(home / "etc" / "secret")
    (export / "etcdir").symlink_to(home / "etc")
    (export / "daily" / "up").symlink_to(export)
    os.link(home / "etc" / "secret", export / "hard.txt")
    f = folders(home)
    for value in ("data/export/leak.txt", "data/export/etcdir/secret", "data/export/daily/up/x"):
        with pytest.raises(BadArgs, match="symbolic link"):
            f.read(value, "'a'", limit=100)
    with pytest.raises(BadArgs, match="hard links"):
        f.read("data/export/hard.txt", "'a'", limit=100)


def test_a_fifo_is_refused_without_blocking(home: Path) -> None:
    os.mkfifo(home / "data" / "export" / "pipe")
    with pytest.raises(BadArgs, match="not a regular file"):
        folders(home).read("data/export/pipe", "'a'", limit=100)


def test_the_limit_is_kept_while_reading(home: Path) -> None:
    (home / "data" / "export" / "big.bin").write_bytes(b"x" * 101)
    with pytest.raises(BadArgs, match="larger than"):
        folders(home).read("data/export/big.bin", "'a'", limit=100)


def test_a_configured_folder_that_is_a_link_into_etc_is_refused_at_start(home: Path) -> None:
    (home / "data" / "out").symlink_to(home / "etc")
    with pytest.raises(ConfigError, match="sendmail_attach_dirs: data/out"):
        folders(home, "data/out")
    (home / "data" / "all").symlink_to(home)
    with pytest.raises(ConfigError, match="data/all"):
        folders(home, "data/all")
    # a link to a folder of its own is the operator's choice
    (home / "outside").mkdir()
    (home / "data" / "elsewhere").symlink_to(home / "outside")
    folders(home, "data/elsewhere")
    assert not (home / "cust" / "mails").exists()
    folders(home, "cust/mails")
    assert (home / "cust" / "mails").is_dir()  # made at start


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data", "would let mails carry"),
        ("etc/ssl", "would let mails carry"),
        ("log/DB", "would let mails carry"),
        ("spool", "would let mails carry"),
        ("tmp", "would let mails carry"),
        ("data/db", "would let mails carry"),
        (".", "below $REDENV_HOME"),
        ("/srv/x", "below $REDENV_HOME"),
        ("data/../etc", "below $REDENV_HOME"),
    ],
)
def test_config_refuses_folders_that_hold_the_instance(text: str, needle: str) -> None:
    (problem,) = attach_dir_problems(f"data/export, {text}")
    assert needle in problem and repr(text) in problem


def test_config_takes_folders_of_their_own() -> None:
    assert attach_dir_problems("data/export, tmp/sendfile, cust/mails/") == []
    assert attach_dirs(" data/export ,tmp/sendfile/,, ") == ("data/export", "tmp/sendfile")
