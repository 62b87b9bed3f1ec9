"""red_params.conf: typed values, and every bad file refused with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.config import LogLevel, load_config, parse_config
from redpss.config.sections import Dictionary
from redpss.errors import ConfigError
from redpss.instance import template_text
from redpss.secret import Secret

PORTS = dict(
    instance="tst1",
    port_sched=41000,
    port_sendmail=41001,
    port_sendfile=41002,
    port_dbls=41003,
    port_jexec=41004,
    port_cfi=41005,
    port_mail2csv=41006,
    port_gu=41007,
    port_pasv_start=41010,
    port_pasv_end=41019,
)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A valid red_params.conf from the shipped template, with its secret file."""
    (tmp_path / "secret").write_text("s3cret-token\n")
    (tmp_path / "cfi_password").write_text("ftp-pass\n")
    path = tmp_path / "red_params.conf"
    path.write_text(template_text("red_params.conf").format(**PORTS))
    return path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def refused(path: Path, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_template_parses_into_typed_values(conf: Path) -> None:
    cfg = load_config(conf)
    assert cfg.default.dictionary is Dictionary.SQLITE
    assert cfg.redsys.sched_service_port == 41000
    assert cfg.redsys.sched_default_pool_size == 4
    assert cfg.redsys.cfi_enabled is True
    assert cfg.redsys.heartbeat_interval == 5.0
    assert cfg.redsys.pss_secret.reveal() == "s3cret-token"
    assert cfg.rest.rest_enabled is False
    assert cfg.redinfo.log_level is LogLevel.INFO


def test_unknown_key_is_refused_with_line_and_key(conf: Path) -> None:
    edit(conf, "sched_default_pool_size = 4", "sched_default_pool_size = 4\nsched_pool = 3")
    msg = refused(conf)
    assert f"{conf}, line {line_of(conf, 'sched_pool =')}: [redsys] unknown key 'sched_pool'" in msg


def test_string_where_a_number_is_expected(conf: Path) -> None:
    edit(conf, "sched_loader_pool_size = 2", "sched_loader_pool_size = two")
    msg = refused(conf)
    line = line_of(conf, "sched_loader_pool_size")
    assert (
        f"line {line}: [redsys] sched_loader_pool_size: expected a whole number, got 'two'" in msg
    )


def test_bad_bool_and_enum_are_named(conf: Path) -> None:
    edit(conf, "cfi_enabled = true", "cfi_enabled = perhaps")
    edit(conf, "sendmail_smtp_encr = STARTTLS", "sendmail_smtp_encr = SSL")
    msg = refused(conf)
    assert "cfi_enabled: expected true or false, got 'perhaps'" in msg
    assert "sendmail_smtp_encr: expected one of STARTTLS, PLAIN, got 'SSL'" in msg


def test_missing_password_for_exasol_is_refused(conf: Path) -> None:
    edit(conf, "dictionary = sqlite", "dictionary = exasol")
    edit(conf, "exa_connection =", "exa_connection = exa01:8563")
    msg = refused(conf)
    assert (
        f"line {line_of(conf, 'exa_password =')}: [DEFAULT] exa_password is required "
        "when dictionary = exasol" in msg
    )


def test_missing_smtp_password_when_user_set(conf: Path) -> None:
    edit(conf, "sendmail_smtp_user =", "sendmail_smtp_user = relayuser")
    assert "[redsys] sendmail_smtp_pass is required when sendmail_smtp_user is set" in refused(conf)


def test_missing_secret_file_is_named(conf: Path) -> None:
    (conf.parent / "secret").unlink()
    msg = refused(conf)
    assert (
        f"line {line_of(conf, 'pss_secret =')}: [redsys] pss_secret: cannot read secret file "
        f"{conf.parent / 'secret'}" in msg
    )


def test_missing_required_key(conf: Path) -> None:
    edit(conf, "dbls_port = 41003\n", "")
    assert "[redsys] dbls_port is required but not set" in refused(conf)


def test_all_problems_reported_at_once(conf: Path) -> None:
    edit(conf, "gu_workers = 2", "gu_workers = many\nbogus = 1")
    edit(conf, "log_retention = 30", "log_retention = long")
    msg = refused(conf)
    assert "gu_workers" in msg and "bogus" in msg and "log_retention" in msg


def test_secret_from_environment_and_masked(conf: Path) -> None:
    edit(conf, "dictionary = sqlite", "dictionary = exasol")
    edit(conf, "exa_connection =", "exa_connection = exa01:8563")
    edit(conf, "exa_password =", "exa_password = env:RED_EXA_PW")
    cfg = load_config(conf, env={"RED_EXA_PW": "hunter2"})
    assert cfg.default.exa_password.reveal() == "hunter2"
    assert "hunter2" not in repr(cfg)
    assert repr(Secret("x")) == "Secret('********')"
    msg = refused(conf, env={})
    assert "exa_password: environment variable RED_EXA_PW is not set" in msg


def test_rest_inherits_log_level_from_default(conf: Path) -> None:
    lines = [line for line in conf.read_text().splitlines() if line != "log_level = INFO"]
    text = "\n".join(lines).replace("[DEFAULT]\n", "[DEFAULT]\nlog_level = DEBUG\n", 1)
    conf.write_text(text)
    cfg = load_config(conf)
    assert cfg.rest.log_level is LogLevel.DEBUG
    assert cfg.redinfo.log_level is LogLevel.DEBUG


def test_duplicate_port_and_key(conf: Path) -> None:
    edit(conf, "jexec_port = 41004", "jexec_port = 41003")
    assert "jexec_port: port 41003 is already used by dbls_port" in refused(conf)
    edit(conf, "jexec_port = 41003", "jexec_port = 41004\njexec_port = 41004")
    assert "jexec_port is set twice" in refused(conf)


def test_unknown_section_and_unreadable_file(conf: Path, tmp_path: Path) -> None:
    edit(conf, "[redinfo]", "[redinf]")
    assert "unknown section [redinf]" in refused(conf)
    missing = tmp_path / "nope.conf"
    assert f"{missing}: cannot read configuration" in refused(missing)


def test_line_that_is_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x.conf, line 2: cannot read this line"):
        parse_config("[redsys]\nthis is not ini\n", path=tmp_path / "x.conf")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_log_retention_below_one_day_is_refused(conf: Path, value: str) -> None:
    # issue #14: 0 was accepted and the purge emptied log/ of the running instance
    edit(conf, "log_retention = 30", f"log_retention = {value}")
    message = refused(conf)
    line = line_of(conf, "log_retention =")
    assert f"line {line}: [redsys] log_retention must be at least 1 (days), not {value}" in message
