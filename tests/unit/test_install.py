"""redsysctl install, versioned builds, repair, the switch's files, redctl version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss import buildinfo, install, switch
from redpss.cli import redctl, redsysctl
from redpss.errors import InstanceError
from redpss.instance import Instance, broken_instances, shell_env

ROOT = Path(__file__).resolve().parents[2]


def source_tree(tmp_path: Path, name: str = "src", *, extra: str = "") -> Path:
    """A copy of this redpss as a source tree (no git: its id is a hash of its files)."""
    src = tmp_path / name
    shutil.copytree(ROOT / "redpss", src / "redpss", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    if extra:
        with (src / "redpss" / "cli" / "redctl.py").open("a") as fh:
            fh.write(extra)
    return src


def run(
    tool: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120,
                          env=env or dict(os.environ), cwd=tool.parent, check=False)  # fmt: skip


def test_install_lays_out_redhome_and_its_tools_run(tmp_path: Path) -> None:
    home = tmp_path / "redsys"
    report = install.install(home)
    assert {p.name for p in home.iterdir()} >= {"bin", "etc", "lib", "log", "tmp", "env"}
    assert sorted(p.name for p in report.tools) == sorted(install.HOST_TOOLS)
    assert report.current is None  # a checkout stays live: no build is copied
    env = {**os.environ, "REDHOME": str(home), "PYTHONPATH": "/nonexistent"}
    out = run(home / "bin" / "redsysctl", "list", env=env)
    assert out.returncode == 0, out.stderr
    bad = run(home / "bin" / "redctl", "nosuch", env=env)
    assert bad.returncode == 2 and bad.stderr.splitlines()[-1].startswith("redctl: error:")
    assert install.install(home).created == []  # idempotent


def test_builds_are_versioned_checked_and_coexist(tmp_path: Path) -> None:
    home = tmp_path / "redsys"
    one = install.install(home, source_tree(tmp_path, "one"))
    assert one.build is not None and one.switched
    assert one.build.version_id.startswith(buildinfo.build_info().version + "+h")
    assert (home / "lib" / "current").resolve() == one.build.path
    again = install.install_build(home, source_tree(tmp_path, "again"))
    assert again.path == one.build.path  # the same files: the same build
    two = install.install(home, source_tree(tmp_path, "two", extra="\n# two\n"), switch=False)
    assert two.build is not None and two.build.path != one.build.path and not two.switched
    assert [b.version_id for b in install.builds(home)] == [
        one.build.version_id, two.build.version_id]  # fmt: skip
    assert install.find_build(home, two.build.version_id[:-2]).path == two.build.path
    with pytest.raises(install.InstallError, match="is not installed"):
        install.find_build(home, "9.9")
    # the host's redctl runs the current build's package
    env = {**os.environ, "REDHOME": str(home)}
    code = run(home / "bin" / "redsysctl", "--json", "versions", env=env)
    listed = json.loads(code.stdout)["builds"]
    assert [b["current"] for b in listed] == [True, False]


def test_a_build_that_does_not_run_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "redsys"
    broken = source_tree(tmp_path, extra="\nimport redpss_library_that_is_not_there\n")
    with pytest.raises(install.InstallError, match="redpss_library_that_is_not_there"):
        install.install(home, broken)
    assert [p.name for p in (home / "lib").iterdir()] == []
    with pytest.raises(install.InstallError, match="not a redpss source tree"):
        install.install(home, tmp_path)


def test_build_identity_of_a_git_checkout(tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    for cmd in (["init", "-q"], ["add", "."], ["-c", "user.email=o@x", "-c", "user.name=o",
                                                "commit", "-qm", "x"]):  # fmt: skip
        subprocess.run(["git", "-C", str(src), *cmd], check=True, capture_output=True)
    clean = buildinfo.identify_source(src)
    assert clean.version_id.startswith(f"{clean.version}+g{clean.git_commit[:7]}")
    assert not clean.git_dirty
    (src / "redpss" / "extra.py").write_text("X = 1\n")
    dirty = buildinfo.identify_source(src)
    assert dirty.git_dirty and ".dirty." in dirty.version_id


def test_redctl_version_shows_the_build(
    make_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inst = make_instance("ver1")
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    assert redctl.main(["--instance", "ver1", "--json", "version"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"redpss", "version_id", "git_commit", "build_date", "dictionary_schema",
            "dictionary_installed", "python", "openssl", "mode"} <= set(info)  # fmt: skip
    assert info["openssl"].startswith("OpenSSL") and info["mode"] == "process"


def test_missing_conf_names_repair_and_repair_keeps_everything(
    make_instance: Callable[..., Instance],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inst = make_instance("rep1")
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    assert redctl.main(["--instance", "rep1", "config", "set", "stop_grace", "12"]) == 0
    (inst.home / "data" / "input" / "keep.csv").write_text("1\n")
    secret = (inst.etc / "secret").read_text()
    port = inst.load_config().redsys.sched_service_port
    inst.conf_path.unlink()
    capsys.readouterr()
    assert redctl.main(["--instance", "rep1", "status"]) == 1
    err = capsys.readouterr().err
    assert "red_params.conf is missing" in err and "redsysctl repair rep1" in err
    assert "redsysctl create" not in err
    assert broken_instances(inst.redhome) == [inst]
    assert redsysctl.main(["repair", "rep1"]) == 0
    assert "etc/red_params.conf" in capsys.readouterr().out
    assert inst.load_config().redsys.sched_service_port == port  # the block of its backup
    assert (inst.etc / "secret").read_text() == secret
    assert (inst.home / "data" / "input" / "keep.csv").read_text() == "1\n"
    assert redsysctl.main(["repair", "rep1"]) == 0
    assert "nothing is missing" in capsys.readouterr().out
    with pytest.raises(InstanceError, match="redsysctl create"):
        install.repair_instance(Instance("nothere", inst.redhome))


def test_the_switch_keeps_the_host_tools_on_the_path(tmp_path: Path) -> None:
    inst = Instance("sw1", tmp_path)
    text = shell_env(inst)
    assert f"{inst.home}/bin:{tmp_path}/bin:" in text
    rc = switch.rc_text(inst)
    assert "current environment: SW1" in rc and "exit with CTRL-D" in rc
    assert "PS1='SW1 [\\u@\\h \\W]\\$ '" in rc
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("# mine\n")
    switch.install_aliases(tmp_path, bashrc=bashrc)
    switch.install_aliases(tmp_path, bashrc=bashrc)
    assert bashrc.read_text().count("aliases.sh") == 2  # one line, naming the file twice
    assert bashrc.read_text().startswith("# mine\n")


def test_repair_gives_back_the_ports_the_host_recorded(
    make_instance: Callable[..., Instance], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDPSS_PORT_REGISTRY", str(tmp_path / "registry"))
    inst = Instance("rep2", tmp_path / "home")
    from redpss.instance import create_instance

    create_instance(inst, port_base=22220)
    inst.conf_path.unlink()  # no backup either: only the registry knows the block
    assert install.repair_instance(inst) == ["etc/red_params.conf (the default, ports from 22220)"]
    assert inst.load_config().redsys.sched_service_port == 22220
