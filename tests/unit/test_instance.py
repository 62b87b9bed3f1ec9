"""Instances: names, the folder tree, ports that never collide, the shell switch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from redpss.errors import InstanceError
from redpss.instance import (
    SUBDIRS,
    Instance,
    create_instance,
    list_instances,
    resolve_instance,
    shell_env,
)


def test_create_makes_the_guide_tree(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=22000)
    for sub in SUBDIRS:
        assert (tmp_path / "env" / "tst1" / sub).is_dir(), sub
    cfg = inst.load_config()
    assert cfg.redsys.sched_service_port == 22000
    assert (inst.etc / "secret").stat().st_mode & 0o077 == 0
    assert "# red_params.conf of instance tst1" in inst.conf_path.read_text()
    assert (inst.home / "bin" / "redctl").stat().st_mode & 0o111


@pytest.mark.parametrize("name", ["Tst1", "1abc", "a", "tst-1", "../x", "averyveryverylongname"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InstanceError, match="bad instance name"):
        create_instance(Instance(name, tmp_path))


def test_existing_instance_is_refused_and_untouched(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=22000)
    before = inst.conf_path.read_text()
    with pytest.raises(InstanceError, match="already exists"):
        create_instance(inst)
    assert inst.conf_path.read_text() == before


def test_two_instances_get_disjoint_ports(tmp_path: Path) -> None:
    a, b = Instance("tst1", tmp_path), Instance("tst2", tmp_path)
    create_instance(a)
    create_instance(b)
    pa, pb = set(a.load_config().ports().values()), set(b.load_config().ports().values())
    assert pa and pb and pa.isdisjoint(pb)
    assert [i.name for i in list_instances(tmp_path)] == ["tst1", "tst2"]


def test_resolve_from_redenv_or_option(tmp_path: Path) -> None:
    env = {"REDENV": "TST1", "REDHOME": str(tmp_path)}
    assert resolve_instance(None, env=env) == Instance("tst1", tmp_path)
    assert resolve_instance("tst2", env=env).name == "tst2"
    with pytest.raises(InstanceError, match="no instance given"):
        resolve_instance(None, env={})


def test_missing_instance_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(InstanceError, match="redsysctl create tst9"):
        Instance("tst9", tmp_path).require()


def test_shell_env_switches_a_real_shell(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=22000)
    script = shell_env(inst) + 'echo "$REDENV|$REDENV_HOME|$PWD|${PATH%%:*}"\n'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "current environment: TST1"
    home = str(inst.home)
    assert lines[1] == f"TST1|{home}|{home}|{home}/bin"
