"""Issue 15 item 6: what holds a secret is created private, and start refuses it readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.config import load_config
from redpss.config.secrets import exposed_secrets, require_private_secrets
from redpss.dictionary import open_dictionary
from redpss.errors import ConfigError
from redpss.instance import Instance, create_instance, narrow_private_modes

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def inst(tmp_path: Path) -> Instance:
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=22000)
    return inst


def test_create_makes_secrets_and_config_private(inst: Instance) -> None:
    for name in ("secret", "cfi_password", "red_params.conf"):
        assert mode(inst.etc / name) == 0o600, name
    assert mode(inst.etc) == 0o750 and mode(inst.db_dir) == 0o750
    assert exposed_secrets(inst.load_config()) == []


def test_dictionary_files_are_made_0640(tmp_path: Path) -> None:
    dictionary = open_dictionary("sqlite", db_dir=tmp_path / "db")
    dictionary.init()
    dictionary.ensure_schema("STAGE")
    files = sorted((tmp_path / "db").iterdir())
    assert {p.name for p in files} >= {"REDSYS.db", "STAGE.db"}
    for path in files:  # -wal and -shm take the mode of their database
        assert mode(path) == 0o640, path.name
    assert mode(tmp_path / "db") == 0o750


@pytest.mark.parametrize("bits", [0o644, 0o604, 0o602, 0o666])
def test_a_secret_file_others_can_read_or_write_is_named(inst: Instance, bits: int) -> None:
    secret = inst.etc / "secret"
    secret.chmod(bits)
    (problem,) = exposed_secrets(inst.load_config())
    assert "[redsys] pss_secret" in problem and str(secret) in problem
    assert f"mode {bits:04o}" in problem and f"chmod 600 {secret}" in problem
    with pytest.raises(ConfigError, match="refusing to start"):
        require_private_secrets(inst.load_config())


def test_group_may_read_a_secret(inst: Instance) -> None:
    (inst.etc / "cfi_password").chmod(0o640)
    inst.conf_path.chmod(0o640)
    assert exposed_secrets(inst.load_config()) == []


def test_a_literal_secret_in_a_readable_config_is_named(inst: Instance) -> None:
    text = inst.conf_path.read_text().replace("exa_password =\n", "exa_password = hunter2\n")
    inst.conf_path.write_text(text)
    assert exposed_secrets(load_config(inst.conf_path)) == []  # still 0600
    inst.conf_path.chmod(0o644)
    (problem,) = exposed_secrets(load_config(inst.conf_path))
    assert "[rest] exa_password" in problem and "hunter2" not in problem
    assert f"chmod 600 {inst.conf_path}" in problem


def test_a_readable_config_without_literal_secrets_is_fine(inst: Instance) -> None:
    inst.conf_path.chmod(0o644)
    assert exposed_secrets(inst.load_config()) == []


def test_an_env_secret_has_no_file_to_check(inst: Instance) -> None:
    text = inst.conf_path.read_text().replace("pss_secret = file:secret", "pss_secret = env:S")
    inst.conf_path.write_text(text)
    inst.conf_path.chmod(0o644)
    cfg = load_config(inst.conf_path, env={"S": "from-env"})
    assert cfg.redsys.pss_secret.source == "env:S"
    assert exposed_secrets(cfg) == []


def _as_an_older_version_left_it(inst: Instance) -> None:
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    dictionary.init()
    dictionary.ensure_schema("STAGE")
    inst.etc.chmod(0o755)
    inst.db_dir.chmod(0o755)
    for path in inst.db_dir.iterdir():
        path.chmod(0o644)


def test_an_older_instance_is_narrowed_once_with_one_line(
    inst: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    # instances created before 0640/0750 kept a dictionary every user of the host could copy
    _as_an_older_version_left_it(inst)
    (inst.db_dir / "notes.txt").write_text("x")
    (inst.db_dir / "notes.txt").chmod(0o600)  # already narrower: left as it is
    (inst.db_dir / "link.db").symlink_to(inst.conf_path)  # never followed
    inst.conf_path.chmod(0o644)
    with caplog.at_level("WARNING", logger="redpss.instance"):
        changed = narrow_private_modes(inst)
    assert "data/db 0755->0750" in changed and "etc 0755->0750" in changed
    assert "data/db/REDSYS.db 0644->0640" in changed
    assert mode(inst.etc) == 0o750 and mode(inst.db_dir) == 0o750
    for path in inst.db_dir.iterdir():
        if path.name == "notes.txt":
            assert mode(path) == 0o600
        elif not path.is_symlink():
            assert mode(path) == 0o640, path.name
    assert mode(inst.conf_path) == 0o644  # the symlink's target is not touched
    (line,) = [r.getMessage() for r in caplog.records]
    assert "narrowed" in line and "data/db/STAGE.db 0644->0640" in line
    caplog.clear()
    assert narrow_private_modes(inst) == []  # once
    assert caplog.records == []


def test_db_upgrade_narrows_an_older_instance(inst: Instance) -> None:
    from redpss import control

    _as_an_older_version_left_it(inst)
    control.db_upgrade(inst, inst.load_config())
    assert mode(inst.db_dir) == 0o750 and mode(inst.db_dir / "REDSYS.db") == 0o640
