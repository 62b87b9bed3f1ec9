"""Container mode: start-up of a whole instance to all healthy, image sizes, idle memory.

Needs a Docker engine with the images built (``make images``; here ``make images LOCAL_BASE=1``)
and uses ``$DOCKER_HOST`` or the private engine of images/engine.sh. Creates a throw-away
instance under a temporary $REDHOME, measures, removes it. Targets (issue 7): start-up < 30 s
with images built; idle memory of the whole instance < 400 MB; image size is reported.

    python bench/compose.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss import compose  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402

STARTUP_TARGET = 30.0
MEMORY_TARGET_MB = 400.0
IDLE_SECONDS = 20


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def memory_mb(project: str) -> float:
    ids = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").split()
    total = 0.0
    for line in docker("stats", "--no-stream", "--format", "{{json .}}", *ids).splitlines():
        used = json.loads(line)["MemUsage"].split("/")[0].strip()
        number = used.rstrip("KMGiB")
        unit = used[len(number) :]
        total += float(number) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 2**20}[unit]
    return total


def main() -> int:
    os.environ["DOCKER_HOST"] = subprocess.run(
        [str(ROOT / "images" / "engine.sh"), "host"], capture_output=True, text=True, check=True
    ).stdout.strip()
    home = Path(tempfile.mkdtemp(prefix="rhb", dir="/tmp"))
    inst = Instance("bench1", home)
    try:
        create_instance(inst)
        compose.enable(inst)
        compose.write(inst)
        t0 = time.monotonic()
        code = compose.up(inst)
        startup = time.monotonic() - t0
        if code != 0:
            print("bench/compose: the instance did not become healthy")
            return 1
        time.sleep(IDLE_SECONDS)  # idle: let start-up allocations settle before sampling
        mem = memory_mb(compose.project_name(inst))
        sizes = {
            tag: int(docker("image", "inspect", "--format", "{{.Size}}", tag).strip()) / 2**20
            for tag in ("redpss-runtime:latest", "redpss-sftp:latest")
        }
        roles = len(compose.expected_services(inst, inst.load_config()))
        print(
            f"start-up to all healthy ({roles} services): {startup:.1f} s "
            f"(target < {STARTUP_TARGET:.0f} s)"
        )
        for tag, size in sizes.items():
            print(f"image {tag}: {size:.0f} MB")
        print(
            f"idle memory of the instance after {IDLE_SECONDS} s: {mem:.0f} MB "
            f"(target < {MEMORY_TARGET_MB:.0f} MB)"
        )
        mem_ok = "yes" if mem < MEMORY_TARGET_MB else "no"
        print(f"idle memory target <{MEMORY_TARGET_MB:.0f} MB: ok={mem_ok}")
        ok = "yes" if startup < STARTUP_TARGET else "no"
        target = f"<{STARTUP_TARGET:.0f}"
        print(f"RESULT compose_startup value={startup:.1f} unit=s target={target} ok={ok}")
        return 0
    finally:
        compose.down(inst)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
