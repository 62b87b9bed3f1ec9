"""Process mode: CPU of a whole idle instance (supervisord + every role), target < 2 % of a core.

    .venv/bin/python bench/process_idle.py [--windows N] [--seconds S]

Creates a throw-away instance (temporary $REDHOME, embedded dictionary, the default
red_params.conf: every role it enables, heartbeats every 5 s, nothing due: no job, no watcher, no
file), starts it with ``redctl start``, waits until every role is healthy and a settling
period, then measures N windows of S seconds (default 5 x 30 s).

What counts is the CPU time (user + system, from /proc) of the instance's process tree: its
supervisord and every descendant, plus what supervisord's reaped children used (cutime/cstime),
divided by the window. Next to each window, in turn, a bare supervisord with the same number of
programs that only sleep is measured the same way: the floor of supervision on this host.

The last line: ``RESULT process_idle value=<median % of one core> unit=% target=<2 ok=...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.roles import enabled_roles  # noqa: E402

TARGET_PERCENT = 2.0
SETTLE_SECONDS = 15.0
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def tree_cpu(root: int) -> tuple[float, dict[int, tuple[str, float]]]:
    """CPU seconds of ``root`` and every descendant (and of root's reaped children), and per
    process its command line and CPU seconds."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents[int(entry)] = int(fields[1])
            stats[int(entry)] = fields
    members = {root}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in members} - members
        members |= more
        grew = bool(more)
    total = 0.0
    each: dict[int, tuple[str, float]] = {}
    for pid in members:
        fields = stats.get(pid)
        if fields is None:
            continue
        own = int(fields[11]) + int(fields[12])  # utime, stime
        total += own
        if pid == root:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        each[pid] = (b" ".join(argv[:5]).decode(errors="replace"), own / TICK)
    return total / TICK, each


def window(root: int, seconds: float) -> float:
    """Percent of one core the tree used over ``seconds``."""
    before, _ = tree_cpu(root)
    start = time.monotonic()
    time.sleep(seconds)  # measuring a window, not waiting for an event
    after, _ = tree_cpu(root)
    return 100.0 * (after - before) / (time.monotonic() - start)


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> str:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}: {out.stdout}{out.stderr}")
    return out.stdout


def bare_supervisord(folder: Path, programs: int) -> subprocess.Popen[bytes]:
    """A supervisord running ``programs`` programs that only sleep (the floor)."""
    conf = folder / "bare.conf"
    lines = [
        "[supervisord]",
        f"logfile={folder / 'bare.log'}",
        f"pidfile={folder / 'bare.pid'}",
        "nodaemon=true",
        "[unix_http_server]",
        f"file={folder / 'bare.sock'}",
    ]
    for i in range(programs):
        lines += [f"[program:sleep{i}]", "command=sleep infinity", "startsecs=0"]
    conf.write_text("\n".join(lines) + "\n")
    return subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="rhidle", dir="/tmp"))
    inst = Instance("idle1", home)
    env = {**os.environ, **inst.environment()}
    bare = None
    pairs: list[tuple[float, float]] = []
    try:
        create_instance(inst)
        roles = enabled_roles(inst.load_config())
        run([str(BIN / "redctl"), "db", "init"], env)
        run([str(BIN / "redctl"), "start"], env)
        deadline = time.monotonic() + 120
        while subprocess.run([str(BIN / "redctl"), "status"], env=env,
                             capture_output=True).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit("the instance did not become healthy within 120 s")
            time.sleep(1)
        root = int(inst.supervisor_pidfile.read_text().strip())
        bare = bare_supervisord(home, len(roles))
        time.sleep(SETTLE_SECONDS)  # let start-up work (first heartbeats, recovery) pass
        _, first = tree_cpu(root)
        began = time.monotonic()
        print(f"instance {inst.name}: {len(first)} processes, roles {', '.join(roles)}")
        for i in range(args.windows):
            ours = window(root, args.seconds)
            floor = window(bare.pid, args.seconds)
            pairs.append((ours, floor))
            print(f"window {i + 1}: instance {ours:.2f} % of a core, bare {floor:.2f} %")
        _, last = tree_cpu(root)
        elapsed = time.monotonic() - began
        print("per process over the whole run (the bare windows included):")
        used = {name: cpu - first.get(pid, (name, 0.0))[1] for pid, (name, cpu) in last.items()}
        for name, cpu in sorted(used.items(), key=lambda kv: -kv[1]):
            print(f"  {100 * cpu / elapsed:6.2f} %  {name}")
    finally:
        if bare is not None:
            bare.send_signal(signal.SIGTERM)
            bare.wait(30)
        subprocess.run([str(BIN / "redctl"), "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
    value = statistics.median(p[0] for p in pairs)
    floor = statistics.median(p[1] for p in pairs)
    print(f"median: instance {value:.2f} %, bare supervisord with as many programs {floor:.2f} %")
    print(f"load: {os.getloadavg()[0]:.2f}")
    ok = "yes" if value < TARGET_PERCENT else "no"
    print(f"RESULT process_idle value={value:.2f} unit=% target=<{TARGET_PERCENT:g} ok={ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
