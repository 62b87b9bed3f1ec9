"""MAIL2CMD's pure parts: the allow-lists, safe attachment names, saving without overwriting."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.errors import ConfigError
from redpss.roles.mail2cmd import Rule, Senders, parse_commands, safe_filename, save_file


def test_commands_are_parsed_and_checked() -> None:
    rules = parse_commands(" reload:reload.sh , UPLOAD:sub/import.sh:save,")
    assert rules == {
        "RELOAD": Rule("RELOAD", "reload.sh", save=False),
        "UPLOAD": Rule("UPLOAD", "sub/import.sh", save=True),
    }
    assert parse_commands("") == {}
    for bad in ("RUN:../x.sh", "RUN:/bin/sh", "RUN:", "R N:x.sh", "RUN:x.sh:shell", "A:x,a:y"):
        with pytest.raises(ConfigError, match="mail2cmd_commands"):
            parse_commands(bad)


def test_senders_match_addresses_and_domains() -> None:
    senders = Senders.parse("Ops@Example.com, @dwh.example.com")
    assert senders.allows("ops@example.COM")
    assert senders.allows("anyone@DWH.example.com")
    assert not senders.allows("ops@example.org")
    assert not senders.allows("x@sub.dwh.example.com")
    assert not senders.allows("")
    for bad in ("not an address", "a@b@c", "@", "@a@b"):
        with pytest.raises(ConfigError, match="mail2cmd_allowed_senders"):
            Senders.parse(bad)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\temp\\x y.csv", "x_y.csv"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        (None, "attachment"),
        ("ünï cödé.txt", "n_c_d_.txt"),
        ("-rf", "rf"),
    ],
)
def test_attachment_names_are_made_safe(name: str | None, safe: str) -> None:
    assert safe_filename(name) == safe


def test_save_never_overwrites(tmp_path: Path) -> None:
    first = save_file(tmp_path, "a.csv", b"1")
    second = save_file(tmp_path, "a.csv", b"2")
    third = save_file(tmp_path, "noext", b"3")
    fourth = save_file(tmp_path, "noext", b"4")
    assert [p.name for p in (first, second, third, fourth)] == [
        "a.csv",
        "a-1.csv",
        "noext",
        "noext-1",
    ]
    assert [p.read_bytes() for p in (first, second)] == [b"1", b"2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-1.csv", "a.csv", "noext", "noext-1"]
