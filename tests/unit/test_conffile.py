"""redctl config: changes keep the file's layout, are checked whole, backed up, audited, and
never show a secret."""

from __future__ import annotations

import difflib
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss.cli import redctl
from redpss.conffile import MASK, ConfFile, mask_text, resolve_key, set_text
from redpss.config import parse_config
from redpss.config.sections import key_specs
from redpss.errors import ConfigError
from redpss.instance import Instance


def _valid_value(spec: object) -> str | None:
    kind = getattr(spec, "kind")  # noqa: B009
    key = getattr(spec, "key")  # noqa: B009
    if key.endswith("_port") or "port_" in key or key == "dictionary" or key == "exa_certificate":
        return None  # ports must stay distinct; others need more keys (covered below)
    if kind is bool:
        return "false" if getattr(spec, "default") else "true"  # noqa: B009
    default = getattr(spec, "default")  # noqa: B009
    if kind is int:
        return str((default or 0) + 3)
    if kind is float:
        return str((default or 0) + 1.5)
    if key == "dictionary_purge_time":
        return "04:15"  # a time of day
    if kind is str:
        return "some-text"
    if hasattr(kind, "__members__"):
        return list(kind.__members__.values())[-1].value  # type: ignore[no-any-return]
    return None


def test_set_changes_one_line_of_the_template_for_every_key(
    make_instance: Callable[..., Instance],
) -> None:
    inst = make_instance("cf1")
    original = inst.conf_path.read_text()
    tried = 0
    for spec in key_specs():
        value = _valid_value(spec)
        if value is None or spec.secret:
            continue
        if spec.key in ("sendmail_smtp_user", "sendfile_sftp_host"):
            continue  # need another key (tested below)
        new = set_text(original, spec, value)
        changed = [
            d for d in difflib.ndiff(original.splitlines(), new.splitlines())
            if d.startswith(("+ ", "- "))
        ]  # fmt: skip
        assert len([d for d in changed if d.startswith("+ ")]) == 1, (spec, changed)
        assert len([d for d in changed if d.startswith("- ")]) <= 1, (spec, changed)
        assert f"{spec.key} = {value}" in new
        cfg = parse_config(new, path=inst.conf_path)
        got = getattr(
            getattr(cfg, {"DEFAULT": "default"}.get(spec.section, spec.section)), spec.key
        )
        shown = got.value if hasattr(got, "value") else got
        assert str(shown).lower() == value.lower() or float(shown) == float(value), spec
        tried += 1
    assert tried > 60


def test_set_keeps_inline_comments_and_adds_missing_keys_and_sections() -> None:
    text = "[DEFAULT]\nlog_level = INFO   # chatty\n\n[redsys]\nstop_grace = 30\n"
    new = set_text(text, resolve_key("log_level"), "DEBUG")
    assert "log_level = DEBUG   # chatty\n" in new
    new = set_text(new, resolve_key("redsys.jexec_timeout"), "60")
    assert new.endswith("stop_grace = 30\njexec_timeout = 60\n")
    new = set_text(new, resolve_key("rest.gu_workers"), "4")
    assert new.endswith("\n[rest]\ngu_workers = 4\n")
    with pytest.raises(ConfigError, match="would start a comment"):
        set_text(text, resolve_key("stop_grace"), "1 # x")
    with pytest.raises(ConfigError, match="one line"):
        set_text(text, resolve_key("stop_grace"), "1\n[x]")


def test_keys_resolve_like_the_file_reads_them() -> None:
    assert (resolve_key("stop_grace").section, resolve_key("gu_port").section) == ("redsys", "rest")
    assert resolve_key("log_level").section == "DEFAULT"  # the others inherit it
    assert resolve_key("REST.EXA_PASSWORD").section == "rest"
    with pytest.raises(ConfigError, match="did you mean: stop_grace") as err:
        resolve_key("stop_grase")
    assert getattr(err.value, "exit_code", 1) == 2


def test_mask_text_hides_literal_secrets_only() -> None:
    text = (
        "[DEFAULT]\nexa_password = topsecret # the DBA's\n[redsys]\npss_secret = file:secret\n"
        "sendmail_smtp_pass =hunter2\nsendmail_smtp_user = bob\n#sendmail_smtp_pass = x\n"
    )
    masked = mask_text(text)
    assert "topsecret" not in masked and "hunter2" not in masked
    assert f"exa_password = {MASK} # the DBA's" in masked
    assert "pss_secret = file:secret" in masked and "sendmail_smtp_user = bob" in masked


def test_refused_changes_save_nothing_and_changes_are_backed_up(
    make_instance: Callable[..., Instance],
) -> None:
    inst = make_instance("cf2")
    inst.conf_path.chmod(0o640)
    conf = ConfFile(inst)
    before = conf.read()
    with pytest.raises(ConfigError, match=r"line \d+: \[redsys\] stop_grace: expected a whole"):
        conf.set([("stop_grace", "lots")])
    with pytest.raises(ConfigError, match="sendmail_smtp_pass is required"):
        conf.set([("sendmail_smtp_user", "bob")])
    assert conf.read() == before and conf.backups() == []

    _, backup, changes = conf.set([("sendmail_smtp_user", "bob"), ("sendmail_smtp_pass", "pw1")])
    assert backup is not None and backup.path.read_text() == before
    assert changes == ["redsys.sendmail_smtp_pass: '' -> ********",
                       "redsys.sendmail_smtp_user: '' -> bob"]  # fmt: skip
    assert stat.S_IMODE(backup.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(inst.conf_path.stat().st_mode) == 0o640
    assert conf.set([("stop_grace", "10")])[1] is None  # unchanged: no backup

    # someone edits by hand meanwhile: nothing is saved over it
    current = conf.read()
    inst.conf_path.write_text(current.replace("stop_grace = 10", "stop_grace = 11"))
    with pytest.raises(ConfigError, match="changed by someone else"):
        conf.save(current.replace("stop_grace = 10", "stop_grace = 12"),
                  expected=current, command="test")  # fmt: skip

    # rollback puts the backup back and can itself be rolled back
    chosen, _, _ = conf.rollback(1)
    assert conf.read() == before and chosen.number == 1
    conf.rollback(1)
    assert "sendmail_smtp_pass = pw1" in conf.read()
    history = conf.backups()
    assert [b.command for b in history] == [
        "rollback 1", "rollback 1", "set redsys.sendmail_smtp_user redsys.sendmail_smtp_pass",
    ]  # fmt: skip
    assert all("pw1" not in json.dumps(b.changes) for b in history)
    with pytest.raises(ConfigError, match="no backup 9"):
        conf.rollback(9)


def test_redctl_config_commands(
    make_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    inst = make_instance("cf3")
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    base = ["--instance", "cf3"]
    assert redctl.main([*base, "config", "get", "redsys.stop_grace"]) == 0
    assert capsys.readouterr().out == "10\n"
    assert redctl.main([*base, "config", "set", "stop_grace", "20", "exa_password", "s3cr3t"]) == 0
    out = capsys.readouterr().out
    assert "redsys.stop_grace: 10 -> 20" in out and "s3cr3t" not in out
    assert redctl.main([*base, "config", "set", "stop_grace"]) == 2
    assert redctl.main([*base, "config", "set", "nokey", "1"]) == 2
    capsys.readouterr()
    assert redctl.main([*base, "--json", "config", "show", "--effective"]) == 0
    rows = {f"{r['section']}.{r['key']}": r for r in json.loads(capsys.readouterr().out)}
    assert rows["redsys.stop_grace"]["value"] == "20"
    assert rows["DEFAULT.exa_password"]["value"] == MASK
    assert rows["rest.exa_password"]["value"] == "" and rows["rest.exa_password"][
        "source"
    ].startswith("line")
    assert rows["redsys.jexec_timeout"]["source"] == "default"
    assert redctl.main([*base, "config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "s3cr3t" not in shown and "# red_params.conf of instance cf3" in shown
    assert redctl.main([*base, "config", "diff"]) == 0
    assert "+stop_grace = 20" in capsys.readouterr().out

    # edit: $EDITOR changes the draft; a refused text saves nothing (no terminal: exit 1)
    editor = tmp_path / "ed.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/^stop_grace = .*/stop_grace = $NEW/" "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("NEW", "25")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal
    assert redctl.main([*base, "config", "edit"]) == 0
    monkeypatch.setenv("NEW", "-x")
    assert redctl.main([*base, "config", "edit"]) == 1
    assert "stop_grace = 25" in inst.conf_path.read_text()
    assert redctl.main([*base, "config", "rollback"]) == 0
    assert "stop_grace = 20" in inst.conf_path.read_text()
    capsys.readouterr()
    assert redctl.main([*base, "--json", "config", "history"]) == 0
    assert [h["command"] for h in json.loads(capsys.readouterr().out)] == [
        "rollback 1", "edit", "set redsys.stop_grace DEFAULT.exa_password",
    ]  # fmt: skip

    audit = [json.loads(x) for x in (inst.log_dir / "audit.log").read_text().splitlines()]
    assert [(a["command"], a["exit_code"]) for a in audit] == [
        ("config set", 0), ("config set", 2), ("config set", 2), ("config edit", 0),
        ("config edit", 1), ("config rollback", 0),
    ]  # fmt: skip
    assert "s3cr3t" not in (inst.log_dir / "audit.log").read_text()


def test_a_secret_set_into_a_file_others_can_read_is_refused_at_once(
    make_instance: Callable[..., Instance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was written, open to every user, and the next start refused the file
    inst = make_instance("cf4")
    inst.conf_path.chmod(0o644)
    conf = ConfFile(inst)
    before = conf.read()
    with pytest.raises(ConfigError) as info:
        conf.set([("stop_grace", "20"), ("exa_password", "hunter2")])
    text = str(info.value)
    assert "refusing to save" in text and "nothing was saved" in text
    assert "[DEFAULT] exa_password" in text and "mode 0644" in text
    assert f"chmod 600 {inst.conf_path}" in text and "hunter2" not in text
    assert conf.read() == before and conf.backups() == []
    open_file = tmp_path / "pw"
    open_file.write_text("x\n")
    open_file.chmod(0o644)
    with pytest.raises(ConfigError, match=f"secret file {open_file} can be read"):
        conf.set([("exa_password", f"file:{open_file}")])

    monkeypatch.setenv("EXA_PW", "from-env")
    conf.set([("stop_grace", "20"), ("exa_password", "env:EXA_PW")])  # no secret in the file
    assert "stop_grace = 20" in conf.read()
    inst.conf_path.chmod(0o600)
    conf.set([("exa_password", "hunter2")])
    assert stat.S_IMODE(inst.conf_path.stat().st_mode) == 0o600
    # an open file that holds a secret already (start refuses it) may still be changed
    inst.conf_path.chmod(0o644)
    conf.set([("stop_grace", "30")])
    assert "stop_grace = 30" in conf.read()
