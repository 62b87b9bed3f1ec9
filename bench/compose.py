"""Container mode: start-up of a whole instance to all healthy, image sizes, idle memory.

Needs a Docker engine with the images built (``make images``; here ``make images LOCAL_BASE=1``)
and uses ``$DOCKER_HOST`` or the private engine of images/engine.sh. Creates a throw-away
instance (every role the default red_params.conf enables) under a temporary $REDHOME, measures,
removes it. Targets (issue 7): start-up < 30 s with images built; idle memory of the whole
instance < 400 MB (bench/compose_memory.py); image sizes are reported.

    python bench/compose.py            ends with RESULT compose_startup
    python bench/compose_memory.py     the same run, ends with RESULT compose_idle_memory

Idle memory is what ``docker stats`` shows for every container of the project (the cgroups'
usage without inactive page cache), summed; the median of a few samples, taken after the
instance idled, so that one health check that happens to run does not decide the figure.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss import compose  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402

STARTUP_TARGET = 30.0
MEMORY_TARGET_MB = 400.0
IDLE_SECONDS = 20
SAMPLES = 5
IMAGES = ("redpss-runtime:latest", "redpss-sftp:latest")
_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}


@dataclass(frozen=True)
class Figures:
    """What one run measured."""

    services: int
    startup: float
    memory: float
    memory_max: float
    per_container: dict[str, float]
    sizes: dict[str, float]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def container_memory(project: str) -> dict[str, float]:
    """MB per running container of the project, one ``docker stats`` sample."""
    ids = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").split()
    out: dict[str, float] = {}
    for line in docker("stats", "--no-stream", "--format", "{{json .}}", *ids).splitlines():
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number = used.rstrip("KMGiB")
        out[row["Name"]] = float(number) * _UNITS[used[len(number) :]]
    return out


def measure() -> Figures:
    """Start a throw-away instance, measure, remove it (engine from images/engine.sh host)."""
    os.environ["DOCKER_HOST"] = subprocess.run(
        [str(ROOT / "images" / "engine.sh"), "host"], capture_output=True, text=True, check=True
    ).stdout.strip()
    home = Path(tempfile.mkdtemp(prefix="rhb", dir="/tmp"))
    inst = Instance("bench1", home)
    try:
        create_instance(inst)
        compose.enable(inst)
        t0 = time.monotonic()
        proc = compose.run(inst, "up", "--detach", "--wait", "--wait-timeout", "180", capture=True)
        startup = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit(f"bench/compose: not healthy: {proc.stderr.decode()[-2000:]}")
        time.sleep(IDLE_SECONDS)  # idle: let start-up allocations settle before sampling
        samples = [container_memory(compose.project_name(inst)) for _ in range(SAMPLES)]
        totals = [sum(s.values()) for s in samples]
        median = statistics.median(totals)
        per = samples[totals.index(min(totals, key=lambda t: abs(t - median)))]
        sizes = {
            tag: int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip()) / 2**20
            for tag in IMAGES
        }
        services = len(compose.expected_services(inst, inst.load_config()))
        return Figures(services, startup, median, max(totals), per, sizes)
    finally:
        compose.run(inst, "down", "--remove-orphans", "--volumes", capture=True)
        shutil.rmtree(home, ignore_errors=True)


def report(f: Figures) -> None:
    """Print what was measured (everything but the RESULT line)."""
    print(f"start-up to all healthy ({f.services} services): {f.startup:.1f} s")
    for tag, size in f.sizes.items():
        print(f"image {tag}: {size:.0f} MB")
    for name, mb in sorted(f.per_container.items()):
        print(f"  {name}: {mb:.1f} MB")
    print(
        f"idle memory of the instance after {IDLE_SECONDS} s: {f.memory:.0f} MB "
        f"(median of {SAMPLES} samples, max {f.memory_max:.0f} MB)"
    )


def main() -> int:
    f = measure()
    report(f)
    ok = "yes" if f.startup < STARTUP_TARGET else "no"
    print(
        f"RESULT compose_startup value={f.startup:.1f} unit=s target=<{STARTUP_TARGET:.0f} ok={ok}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
