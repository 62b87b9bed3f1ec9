"""Container mode: CPU of a whole idle instance (every role + sftp + net), target < 5 % of a core.

    python bench/compose_idle.py [--windows N] [--seconds S]

Needs the images (``make images``; here ``make images LOCAL_BASE=1``) and uses ``$DOCKER_HOST`` or
the private engine of images/engine.sh. Starts a throw-away instance with every role the default
red_params.conf enables plus mail2cmd (nothing is due: no job, no watcher, no file), waits until
all are healthy and a settling period, then measures N windows of S seconds (default 5 x 60 s).

What counts is the CPU time the containers' cgroups used in a window (Docker's stats API,
``cpu_stats.cpu_usage.total_usage``: what ``docker stats`` shows as CPU %), summed over the
project, divided by the window: the health checks Docker runs inside the containers count, as
they run in the containers' cgroups. Next to each window, the same number of bare containers of
the same image running ``sleep infinity`` (no role, no health check) is measured over the same
window: the floor of an idle container on this engine. Each container's CPU is taken over its own
interval (the ``read`` times of its two samples). The engine's own processes (dockerd,
containerd, shims: they start each health check) are reported apart, for information.

The last line: ``RESULT compose_idle value=<median % of one core> unit=% target=<5 ok=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss import compose  # noqa: E402
from redpss.instance import PORT_BLOCK, Instance, create_instance  # noqa: E402

TARGET_PERCENT = 5.0
SETTLE_SECONDS = 30
IMAGE = "redpss-runtime:latest"
ENGINE_COMMANDS = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def _api(sock: str, path: str) -> object:
    conn = _UnixConnection(sock)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _read_time(text: str) -> float:
    """The stats' ``read`` timestamp (RFC 3339, nanoseconds) as seconds since the epoch."""
    stamp, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
    return seconds + float(f"0.{frac or 0}")


def container_cpu(sock: str, ids: list[str]) -> dict[str, tuple[float, int]]:
    """Per container: (time of the sample, cumulative CPU ns of its cgroup), from the stats API
    (asked for all containers at once: each answer takes the engine about a second)."""

    def one(cid: str) -> tuple[str, tuple[float, int]]:
        doc = _api(sock, f"/containers/{cid}/stats?stream=false")
        assert isinstance(doc, dict)
        usage = int(doc["cpu_stats"]["cpu_usage"]["total_usage"])
        return doc["name"].lstrip("/"), (_read_time(doc["read"]), usage)

    with ThreadPoolExecutor(max_workers=max(1, len(ids))) as pool:
        return dict(pool.map(one, ids))


def percent(
    before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
) -> dict[str, float]:
    """% of one core per container between two samples, each over its own interval."""
    return {
        name: (after[name][1] - before[name][1]) / 1e9 / (after[name][0] - before[name][0]) * 100
        for name in after
    }


def engine_ticks() -> int:
    """CPU ticks (user + system) of the engine's processes on this host."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm in ENGINE_COMMANDS or comm.startswith("containerd-shim"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total


def free_port_base() -> int:
    """A free block of instance ports below the kernel's ephemeral range (docker-proxy binds
    every port of it on the host; a port there could be taken by any outgoing connection)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, low - PORT_BLOCK, PORT_BLOCK)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + PORT_BLOCK):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise SystemExit("bench/compose_idle: no free block of ports")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def project_ids(project: str) -> list[str]:
    return docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").split()


def measure(
    windows: int, seconds: float
) -> tuple[list[float], list[float], list[float], dict[str, float]]:
    """Per window: the instance's % of one core, the bare containers', the engine's."""
    host = subprocess.run(
        [str(ROOT / "images" / "engine.sh"), "host"], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["DOCKER_HOST"] = host
    sock = host.removeprefix("unix://")
    home = Path(tempfile.mkdtemp(prefix="rhi", dir="/tmp"))
    inst = Instance("idle1", home)
    bare: list[str] = []
    try:
        create_instance(inst, port_base=free_port_base())
        conf = inst.conf_path
        conf.write_text(
            conf.read_text().replace("mail2csv_enabled = false", "mail2csv_enabled = true")
        )
        compose.enable(inst)
        proc = compose.run(inst, "up", "--detach", "--wait", "--wait-timeout", "300", capture=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench/compose_idle: not healthy: {proc.stderr.decode()[-2000:]}")
        ids = project_ids(compose.project_name(inst))
        for i in range(len(ids)):
            bare.append(
                docker("run", "-d", "--rm", "--name", f"bench-idle-bare-{i}", "--init",
                       "--no-healthcheck",
                       "--network", "none", IMAGE, "sleep", "infinity").strip()
            )  # fmt: skip
        print(f"instance idle1: {len(ids)} containers healthy; {len(bare)} bare containers")
        time.sleep(SETTLE_SECONDS)  # start-up work (first heartbeats, imports) settles
        ours, floor, engine = [], [], []
        per: dict[str, float] = {}
        for w in range(windows):
            a0, b0, e0 = container_cpu(sock, ids), container_cpu(sock, bare), engine_ticks()
            t0 = time.monotonic()
            time.sleep(seconds)  # the measured window: the instance is left alone
            a1, b1, e1 = container_cpu(sock, ids), container_cpu(sock, bare), engine_ticks()
            dt = time.monotonic() - t0
            window = percent(a0, a1)
            ours.append(sum(window.values()))
            floor.append(sum(percent(b0, b1).values()))
            engine.append((e1 - e0) / CLK_TCK / dt * 100)
            print(
                f"window {w + 1}/{windows} ({dt:.0f} s): instance {ours[-1]:.2f} %, "
                f"bare {floor[-1]:.2f} %, engine {engine[-1]:.2f} % of one core"
            )
            if not per or abs(ours[-1] - statistics.median(ours)) < 1e-9:
                per = window
        return ours, floor, engine, per
    finally:
        for cid in bare:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        compose.run(inst, "down", "--remove-orphans", "--volumes", capture=True)
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    print(f"load: {os.getloadavg()}")
    ours, floor, engine, per = measure(args.windows, args.seconds)
    for name, pct in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {pct:.2f} %")
    value = statistics.median(ours)
    bare, eng = statistics.median(floor), statistics.median(engine)
    print(
        f"idle instance: median {value:.2f} % of one core over {len(ours)} x {args.seconds:.0f} s "
        f"(bare containers {bare:.2f} %, engine {eng:.2f} %)"
    )
    print(f"load: {os.getloadavg()}")
    ok = "yes" if value < TARGET_PERCENT else "no"
    print(f"RESULT compose_idle value={value:.2f} unit=% target=<{TARGET_PERCENT:.0f} ok={ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
