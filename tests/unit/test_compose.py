"""compose/redpss.yaml and redpss.compose: the stack, the env file, the profiles, the override.

The compose CLI (``docker-compose`` of the dev extra) reads the files as it would for ``up``;
``config`` needs no engine.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from redpss import compose
from redpss.cli import redsysctl
from redpss.errors import InstanceError
from redpss.instance import Instance, create_instance
from redpss.roles import ROLES, enabled_roles

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "compose" / "redpss.yaml"
SWITCHES = (("redsys", "cfi_enabled"), ("redsys", "mail2csv_enabled"), ("rest", "rest_enabled"))
NOT_ROLES = {"init", "net", "sftp"}


def _stack() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(STACK.read_text())
    return doc


def _set(inst: Instance, key: str, value: str) -> None:
    conf = inst.conf_path
    text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", conf.read_text())
    assert n == 1, key
    conf.write_text(text)


def _compose(inst: Instance, *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = compose.run(inst, *args, capture=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


@pytest.fixture
def inst(tmp_path: Path) -> Instance:
    """A created instance in container mode (nothing runs)."""
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=23000)
    compose.enable(inst)
    return inst


def test_the_package_ships_the_stack_of_the_repository() -> None:
    assert compose.stack_file().resolve() == STACK.resolve()


@pytest.mark.parametrize("switches", list(itertools.product((False, True), repeat=3)))
def test_services_are_the_enabled_roles_for_every_combination_of_switches(
    inst: Instance, switches: tuple[bool, bool, bool]
) -> None:
    for (_, key), on in zip(SWITCHES, switches, strict=True):
        _set(inst, key, "true" if on else "false")
    config = inst.load_config()
    out = _compose(inst, "config", "--services").stdout.decode().split()
    assert set(out) == {*enabled_roles(config), *NOT_ROLES}
    env = compose.settings_path(inst).read_text()
    assert f"COMPOSE_PROFILES={','.join(compose.profiles(config))}\n" in env


def test_every_role_is_a_service_in_start_order(inst: Instance) -> None:
    services = _stack()["services"]
    assert set(services) == {*ROLES, *NOT_ROLES}
    order = list(ROLES)
    optional = {role: name for name, roles in compose.PROFILES.items() for role in roles}
    for role in ROLES:
        svc = services[role]
        assert svc.get("profiles", []) == ([optional[role]] if role in optional else []), role
        deps = svc["depends_on"]
        assert deps["init"]["condition"] == "service_completed_successfully"
        for dep, how in deps.items():
            if dep in ("init", "net"):
                continue
            # only on roles that start before it; an optional one is not required
            assert order.index(dep) < order.index(role), (role, dep)
            assert how.get("required", True) is (dep not in optional or dep in _same(role)), (
                role,
                dep,
            )
        # started, not waited for (as supervisord's priorities): no role waits for a peer's health
        assert {how["condition"] for dep, how in deps.items() if dep != "init"} == {
            "service_started"
        }, role
        # each role after the first waits for the one before it that always runs with it
        earlier = [r for r in order[: order.index(role)] if r not in optional or r in _same(role)]
        if earlier:
            assert earlier[-1] in deps, role


def _same(role: str) -> tuple[str, ...]:
    """The roles of ``role``'s profile (they are on or off together)."""
    return next((roles for roles in compose.PROFILES.values() if role in roles), ())


def test_production_defaults_of_every_role(inst: Instance) -> None:
    config = _compose(inst, "--profile", "*", "config", "--format", "json").stdout
    services = yaml.safe_load(config)["services"]
    for name, svc in services.items():
        assert svc["logging"]["driver"] == "json-file", name
        assert svc["logging"]["options"] == {"max-size": "10m", "max-file": "3"}, name
        if name == "init":
            continue
        assert svc["init"] is True, name
        assert svc["mem_limit"], name
        assert svc["restart"] == "unless-stopped", name
        assert "healthcheck" in svc or name == "net", name
        # every role and net: read-only root, no privileges to gain, not root
        if name != "sftp":
            assert svc["read_only"] is True, name
            assert svc["user"] == "1100:1100", name
    for role in ROLES:
        assert services[role]["network_mode"] == "service:net"
        assert services[role]["stop_grace_period"] == "30s"
        assert services[role]["environment"]["ROLE"] == role


def test_every_role_is_told_its_image(inst: Instance) -> None:
    # redctl version inside a container showed "image unknown": no role was given REDPSS_IMAGE
    config = _compose(inst, "--profile", "*", "config", "--format", "json").stdout
    services = yaml.safe_load(config)["services"]
    for role in ROLES:
        svc = services[role]
        assert svc["environment"]["REDPSS_IMAGE"] == svc["image"] != "", role


def test_config_names_no_secret_and_publishes_on_the_publish_address(
    inst: Instance, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    assert redsysctl.main(["compose", "tst1", "config"]) == 0
    out = capfd.readouterr().out
    for name in ("secret", "cfi_password"):
        assert (inst.etc / name).read_text().strip() not in out
    assert "name: red_tst1" in out
    assert re.findall(r"host_ip: (\S+)", out) and set(re.findall(r"host_ip: (\S+)", out)) == {
        "127.0.0.1"
    }
    assert 'published: "23008"' in out  # sFTP: the spare port of the block
    assert "/data/input:/app/redftp/env/tst1/input" in out.replace("\n        target: ", ":")


def test_the_shell_does_not_change_the_project(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compose lets the environment win over --env-file: redpss calls it without those keys
    monkeypatch.setenv("COMPOSE_PROFILES", "rest,mail2cmd")
    monkeypatch.setenv("RED_INSTANCE", "other")
    monkeypatch.setenv("PUBLISH_ADDRESS", "0.0.0.0")
    services = _compose(inst, "config", "--services").stdout.decode().split()
    assert "rest" not in services and "mail2cmd" not in services
    out = _compose(inst, "config").stdout.decode()
    assert "name: red_tst1" in out and "0.0.0.0" not in out


def test_override_is_created_once_merged_and_never_overwritten(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    override = compose.override_path(inst)
    assert override.read_text().startswith("# $REDENV_HOME/etc/compose.override.yaml")
    mine = "services:\n  sched:\n    mem_limit: 1g\n    labels:\n      com.example.team: dwh\n"
    override.write_text(mine)
    compose.enable(inst)
    compose.write_env(inst)
    assert redsysctl.main(["compose", "tst1"]) == 0
    assert override.read_text() == mine
    sched = yaml.safe_load(_compose(inst, "config", "--format", "json").stdout)["services"]["sched"]
    assert sched["labels"] == {"com.example.team": "dwh"}
    assert sched["mem_limit"] == "1073741824"


def test_env_file_keeps_the_settings_and_follows_red_params(inst: Instance) -> None:
    path = compose.settings_path(inst)
    text = path.read_text().replace("PUBLISH_ADDRESS=127.0.0.1", "PUBLISH_ADDRESS=0.0.0.0")
    path.write_text(text.replace("RED_PORT_SCHED=23000", "RED_PORT_SCHED=1"))
    _set(inst, "sched_service_port", "23100")
    compose.write_env(inst)
    text = path.read_text()
    assert "PUBLISH_ADDRESS=0.0.0.0\n" in text
    assert "RED_PORT_SCHED=23100\n" in text
    assert "RED_SFTP_PORT=23108\n" in text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("NOPE=1", "unknown setting 'NOPE'"),
        ("SFTP_PORT=x", "SFTP_PORT must be a number"),
        ("LOG_MAX_SIZE=lots", "LOG_MAX_SIZE must be a size"),
        ("PUBLISH_ADDRESS=example", "PUBLISH_ADDRESS must be an IP address"),
        ("REDPSS_IMAGE=", "REDPSS_IMAGE is empty"),
    ],
)
def test_bad_settings_are_refused_with_file_and_line(
    inst: Instance, line: str, message: str
) -> None:
    path = compose.settings_path(inst)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], line, *lines[3:]]) + "\n")
    with pytest.raises(InstanceError, match=rf"compose\.env:4: {message}"):
        compose.load_settings(inst)


def test_ids_are_those_of_the_images() -> None:
    versions = dict(
        line.split("=", 1)
        for line in (ROOT / "images" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert int(versions["REDSYS_UID"]) == compose.REDSYS_UID
    assert int(versions["REDSYS_GID"]) == compose.REDSYS_GID
    assert int(versions["REDFTP_GID"]) == compose.REDFTP_GID


def test_compose_with_arguments_needs_container_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(tmp_path))
    create_instance(Instance("tst2", tmp_path), port_base=23100)
    assert redsysctl.main(["compose", "tst2", "ps"]) == 1
    assert "not in container mode (redsysctl compose tst2)" in capsys.readouterr().err


def test_update_settings_changes_one_setting_and_keeps_the_override(inst: Instance) -> None:
    override = compose.override_path(inst)
    override.write_text("services: {}\n")
    compose.update_settings(inst, REDPSS_IMAGE="redpss-runtime:2.0", LOG_MAX_FILE=5)
    settings = compose.load_settings(inst)
    assert settings.REDPSS_IMAGE == "redpss-runtime:2.0"
    assert settings.LOG_MAX_FILE == 5
    assert settings.PUBLISH_ADDRESS == "127.0.0.1"
    assert "RED_INSTANCE=tst1\n" in compose.settings_path(inst).read_text()
    assert override.read_text() == "services: {}\n"
    with pytest.raises(InstanceError, match="LOG_MAX_FILE must be a number"):
        compose.update_settings(inst, LOG_MAX_FILE="many")
    with pytest.raises(InstanceError, match="unknown setting 'IMAGE'"):
        compose.update_settings(inst, IMAGE="x")
