"""The command line tools in-process: help, usage errors, exit codes of what is not there yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.cli import redctl, redpss, redsysctl
from redpss.cli.redctl import COMMANDS

GUIDE_COMMANDS = [
    "version",
    "start",
    "stop",
    "abort",
    "restart",
    "start_trace",
    "status",
    "reload",
    "suspend",
    "resume",
    "show",
    "watch",
    "we_list_error",
    "we_reset_error",
    "start_db_job",
    "list_db_jobs",
    "toggle_db_job",
    "list_db_watcher",
    "toggle_db_watcher",
    "start_job",
    "preclone",
]


def test_redctl_help_lists_the_guide_commands_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        redctl.main(["-h"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "{" + ",".join(GUIDE_COMMANDS) + "," in out
    assert list(COMMANDS) == GUIDE_COMMANDS
    assert "-D, --debug" in out and "exit codes:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start_db_job"], "the following arguments are required: job"),
        (["toggle_db_watcher"], "the following arguments are required: watcher"),
        (["db", "bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_jobs_commands_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        redctl.main(["--instance", "tst1", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_redctl_without_instance_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    assert redctl.main(["status"]) == 1
    assert "redsysctl env NAME" in capsys.readouterr().err


def test_redctl_unknown_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redctl.main(["--instance", "nope1", "status"]) == 1
    assert "redsysctl create nope1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start-all", "tst1"], "start-all takes no instance"),
        (["create"], "create needs an instance name"),
        (["status", "tst1", "--port-base", "42000"], "go with create"),
        (["bogus"], "invalid choice"),
    ],
)
def test_redsysctl_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        redsysctl.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_redsysctl_create_refuses_bad_and_existing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "Bad-Name"]) == 1
    assert "bad instance name 'Bad-Name'" in capsys.readouterr().err
    assert redsysctl.main(["create", "tst1", "--port-base", "23000"]) == 0
    assert "instance tst1 created" in capsys.readouterr().out
    assert redsysctl.main(["create", "tst1"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert redsysctl.main(["list"]) == 0
    assert "tst1" in capsys.readouterr().out


def test_redpss_role_rejects_unknown_role() -> None:
    with pytest.raises(SystemExit) as info:
        redpss.main(["role", "nosuchrole", "--instance", "tst1"])
    assert info.value.code == 2


def test_redctl_start_stop_refused_for_an_instance_in_container_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # supervisord would start every role a second time, next to its container
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "tst2", "--port-base", "23100", "--compose"]) == 0
    capsys.readouterr()
    for command in ("start", "stop", "abort"):
        assert redctl.main(["--instance", "tst2", command]) == 1
        assert "container mode: redsysctl" in capsys.readouterr().err
    assert not (tmp_path / "env" / "tst2" / "tmp" / "supervisord.conf").exists()
    monkeypatch.setenv("REDPSS_CONTAINER", "1")
    assert redctl.main(["--instance", "tst2", "start"]) == 1
    assert "does not run inside a container" in capsys.readouterr().err


def test_redctl_status_of_created_but_stopped_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "tst1", "--port-base", "23000"]) == 0
    assert redctl.main(["--instance", "tst1", "status"]) == 3
    out = capsys.readouterr().out
    assert "instance tst1: STOPPED" in out
    assert redctl.main(["--instance", "tst1", "db", "init"]) == 0
    assert redctl.main(["--instance", "tst1", "db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert redctl.main(["--instance", "tst1", "version"]) == 0
    assert "dictionary_installed" in capsys.readouterr().out


def test_redctl_help_has_no_suppressed_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        redctl.main(["-h"])
    out = capsys.readouterr().out
    assert "SUPPRESS" not in out
    assert "    db " in out  # listed with a help text like config and audit


def test_redctl_usage_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    # the metavar was built from the guide's 21 commands only: db, config, log, audit and
    # kill were missing from -h and from every usage error
    parser = redctl.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = list(sub.choices or ())
    assert {"db", "config", "log", "audit", "kill"} <= set(names)
    with pytest.raises(SystemExit):
        redctl.main(["-h"])
    out = capsys.readouterr().out
    metavar = "{" + ",".join(names) + "}"
    assert metavar in out
    with pytest.raises(SystemExit) as info:
        redctl.main(["--instance", "tst1", "bogus"])
    assert info.value.code == 2
    assert metavar in capsys.readouterr().err


def test_usage_error_with_json_is_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    with pytest.raises(SystemExit) as info:
        redctl.main(["--json", "--instance", "tst1", "start_db_job"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["exit"] == 2 and "required: job" in doc["error"]
    assert captured.err == ""


def test_redctl_without_a_writable_redctl_log_says_so_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a user without rights on log/ (or a log/redctl.log that cannot be opened) got a
    # PermissionError traceback from every redctl command, `status` included
    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "tst1", "--port-base", "23000"]) == 0
    capsys.readouterr()
    (tmp_path / "env" / "tst1" / "log" / "redctl.log").mkdir()  # open() fails as for EACCES
    assert redctl.main(["--instance", "tst1", "status"]) == 3
    captured = capsys.readouterr()
    assert "instance tst1: STOPPED" in captured.out
    assert "redctl.log cannot be written" in captured.err
    assert "Traceback" not in captured.err


def test_a_dictionary_not_upgraded_says_run_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # list_db_jobs on a dictionary of version 5 said only "no such table: STA_JOB_STATUS"
    from redpss.dictionary.columns import JOB_STATUS_SINCE
    from redpss.dictionary.model import DICTIONARY, MIGRATIONS
    from redpss.dictionary.objects import Model
    from redpss.dictionary.sqlite import SqliteDictionary

    monkeypatch.setenv("REDHOME", str(tmp_path))
    assert redsysctl.main(["create", "tst1", "--port-base", "23000"]) == 0
    later = {"ADM_JOB_STATUS", "ADM_DEFINITION_LOG", "STA_JOB_STATUS"}
    old = Model(
        tuple(t for t in DICTIONARY.tables if t.name not in later),
        tuple(v for v in DICTIONARY.views if v.name not in later),
        MIGRATIONS[: JOB_STATUS_SINCE - 1],
    )
    with SqliteDictionary(tmp_path / "env" / "tst1" / "data" / "db", model=old) as dictionary:
        dictionary.init()
    capsys.readouterr()
    assert redctl.main(["--instance", "tst1", "list_db_jobs"]) == 1
    err = capsys.readouterr().err
    assert "no such table: STA_JOB_STATUS" in err
    assert f"at version {JOB_STATUS_SINCE - 1}, this redpss needs version" in err
    assert "run redctl db upgrade" in err
    assert redctl.main(["--instance", "tst1", "db", "upgrade"]) == 0
    assert redctl.main(["--instance", "tst1", "list_db_jobs"]) == 0
