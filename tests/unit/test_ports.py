"""Ports of the host: blocks below the ephemeral range, one host-wide registry (#14, #19)."""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import time
from pathlib import Path

import pytest

from redpss.errors import InstanceError
from redpss.instance import Instance, create_instance
from redpss.ports import (
    PORT_BLOCK,
    PORT_RANGE_START,
    PortRegistry,
    check_port_base,
    choose_port_base,
    ephemeral_advice,
    ephemeral_ports,
    ephemeral_range,
    host_registry,
    reserved_ports,
)


def _proc(tmp_path: Path, low: int, high: int, reserved: str = "") -> Path:
    proc = tmp_path / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "ip_local_port_range").write_text(f"{low}\t{high}\n")
    (proc / "ip_local_reserved_ports").write_text(reserved + "\n")
    return proc


def test_the_kernel_settings_are_read(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 32768, 60999, "41000-41003,50000")
    assert ephemeral_range(proc) == (32768, 60999)
    assert reserved_ports(proc) == {41000, 41001, 41002, 41003, 50000}
    low, high = ephemeral_range()  # this host's, read at run time
    assert 1024 <= low <= high <= 65535


def test_ports_inside_the_range_are_named_unless_reserved(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 32768, 60999, "41003")
    ports = {"sched_service_port": 41000, "dbls_port": 41003, "jexec_port": 20004}
    assert ephemeral_ports(ports, proc) == [("sched_service_port", 41000)]
    text = ephemeral_advice([("sched_service_port", 41000)], proc)
    assert "sched_service_port = 41000" in text
    assert "32768-60999" in text
    assert "ip_local_reserved_ports=41000-41000" in text


def test_default_blocks_lie_below_the_ephemeral_range(tmp_path: Path) -> None:
    proc = _proc(tmp_path, PORT_RANGE_START + 3 * PORT_BLOCK, 60999)

    def free(port: int) -> bool:  # this host's listeners are not the point here
        return True

    assert choose_port_base(set(), proc, free) == PORT_RANGE_START
    used = set(range(PORT_RANGE_START, PORT_RANGE_START + PORT_BLOCK + 1))
    assert choose_port_base(used, proc, free) == PORT_RANGE_START + 2 * PORT_BLOCK
    # below the range full: above it
    used |= set(range(PORT_RANGE_START, PORT_RANGE_START + 3 * PORT_BLOCK))
    assert choose_port_base(used, proc, free) == 61000
    # a block where something listens is skipped
    assert choose_port_base(set(), proc, lambda p: p != PORT_RANGE_START + 7) == (
        PORT_RANGE_START + PORT_BLOCK
    )


def test_an_explicit_base_inside_the_range_is_refused(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 32768, 60999)
    with pytest.raises(InstanceError, match=r"41000-41019 lie in the kernel's ephemeral .*32768"):
        check_port_base(41000, {}, proc)
    check_port_base(41000, {}, _proc(tmp_path, 32768, 60999, "41000-41019"))  # reserved: fine
    check_port_base(22000, {}, proc)


def test_an_explicit_base_used_by_another_instance_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other" / "red_params.conf"
    with pytest.raises(InstanceError, match=f"port 22005 is used by the instance of {other}"):
        check_port_base(22000, {22005: other}, _proc(tmp_path, 32768, 60999))


def test_instances_under_two_redhomes_get_different_blocks(tmp_path: Path) -> None:
    # issue #19: the same block was handed out under two REDHOMEs
    a, b = Instance("tst1", tmp_path / "home1"), Instance("tst1", tmp_path / "home2")
    create_instance(a)
    create_instance(b)
    pa, pb = set(a.load_config().ports().values()), set(b.load_config().ports().values())
    assert pa.isdisjoint(pb)
    low, _ = ephemeral_range()
    assert max(pa | pb) < low
    with pytest.raises(InstanceError, match="is used by the instance of"):
        create_instance(Instance("tst2", tmp_path / "home3"), port_base=min(pa))


def _create(home: str) -> int:
    inst = Instance("tst1", Path(home))
    create_instance(inst)
    return inst.load_config().redsys.sched_service_port


def test_concurrent_creates_under_many_redhomes_never_share_a_block(tmp_path: Path) -> None:
    homes = [str(tmp_path / f"h{i}") for i in range(6)]
    with concurrent.futures.ProcessPoolExecutor(3) as pool:
        bases = list(pool.map(_create, homes))
    assert len(set(bases)) == len(bases)


def test_a_removed_instance_frees_its_block(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path / "reg")
    conf = tmp_path / "x" / "red_params.conf"
    conf.parent.mkdir()
    conf.write_text("")
    with registry.lock():
        registry.record(conf, {22000, 22001})
        assert registry.used() == {22000: conf, 22001: conf}
        assert registry.used(besides=conf) == {}
    conf.unlink()
    with registry.lock():
        assert registry.used() == {}
    assert not list((tmp_path / "reg").glob("*.json"))


def test_the_registry_comes_from_the_environment(tmp_path: Path) -> None:
    reg = host_registry(tmp_path, {"REDPSS_PORT_REGISTRY": str(tmp_path / "r")})
    assert reg.path == tmp_path / "r" and reg.shared
    assert os.environ["REDPSS_PORT_REGISTRY"]  # the tests never write the host's registry


def test_start_warns_about_configured_ports_inside_the_range(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from redpss import control

    inst = Instance("tst1", tmp_path / "home")
    create_instance(inst, port_base=22000)
    low, high = ephemeral_range()
    text = inst.conf_path.read_text().replace("= 22000", f"= {low + 100}", 1)
    inst.conf_path.write_text(text)
    config = inst.load_config()
    with caplog.at_level("WARNING"):
        control._check_ephemeral_ports(inst, config)
    assert f"sched_service_port = {low + 100}" in caplog.text
    assert f"ephemeral port range {low}-{high}" in caplog.text
    # the registry now knows the edited ports
    registry = host_registry(inst.redhome)
    with registry.lock():
        assert registry.used()[low + 100] == inst.conf_path.absolute()


def test_a_held_lock_is_waited_for_a_bounded_time_then_named(tmp_path: Path) -> None:
    registry = PortRegistry(tmp_path / "reg")
    with registry.lock():  # makes the folder and the lock file
        pass
    holder = os.open(tmp_path / "reg" / ".lock", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        began = time.monotonic()
        with pytest.raises(InstanceError) as err, registry.lock(wait=0.3):
            pass
        assert 0.3 <= time.monotonic() - began < 5
        assert f"{tmp_path / 'reg' / '.lock'} is held by pid {os.getpid()}" in str(err.value)
    finally:
        os.close(holder)
    with registry.lock(wait=0.3):  # free again
        pass
