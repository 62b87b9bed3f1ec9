"""DBLS throughput: log lines per second acknowledged and on disk, against a bare loop.

Both sides get the same buffers (``--lines`` lines of ~80 bytes, ``--buffer`` lines per
request) over one loopback connection, write them to a file and fsync before acknowledging.
The bare loop is a socket server that reads a length-prefixed buffer, appends it and fsyncs:
what DBLS costs on top of that is JSON framing, checking and the role. Afterwards the lines in
the files are counted: every acknowledged line must be there.

Each side's run is grown until it takes at least a second (each its own size: the rates
compare); then 5 pairs, bare and DBLS alternating (bench/lib/pairing.py); the medians and the
median ratio are reported.

    .venv/bin/python bench/dbls.py [--lines 50000] [--buffer 1000] [--pairs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.pairing import PAIRS, alternate, grow, result, summary  # noqa: E402
from redpss import wire  # noqa: E402
from redpss.config import load_config  # noqa: E402
from redpss.dictionary import open_dictionary  # noqa: E402
from redpss.instance import Instance, create_instance  # noqa: E402
from redpss.roles.base import RoleContext  # noqa: E402
from redpss.roles.dbls import Dbls  # noqa: E402

TARGET = 50_000


def make_lines(n: int) -> list[str]:
    """``n`` log lines of about 80 bytes, one in a thousand an ERROR."""
    return [
        f"2025-01-31 12:00:00 {'ERROR' if i % 1000 == 0 else 'INFO'} step {i:08d} of the load "
        "went as planned"
        for i in range(n)
    ]


def bare(lines: list[str], size: int, out: Path) -> float:
    """The bare library: socket → file → fsync → one-byte ack; returns seconds."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        with out.open("ab") as fh:
            while head := f.read(4):
                data = f.read(struct.unpack("!I", head)[0])
                fh.write(data)
                fh.flush()
                os.fdatasync(fh.fileno())
                conn.sendall(b"k")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        for i in range(0, len(lines), size):
            data = ("\n".join(lines[i : i + size]) + "\n").encode()
            c.sendall(struct.pack("!I", len(data)) + data)
            assert c.recv(1) == b"k"
    elapsed = time.perf_counter() - began
    t.join()
    srv.close()
    return elapsed


def role(lines: list[str], size: int, home: Path) -> tuple[float, Path]:
    """DBLS itself, in this process, over the wire protocol; returns seconds and its log dir."""
    inst = Instance("bench", home)
    create_instance(inst)
    config = load_config(inst.conf_path)
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    dictionary.init()
    dbls = Dbls(RoleContext(inst, config, dictionary))
    dbls.start()
    try:
        began = time.perf_counter()
        with wire.WireClient(
            "127.0.0.1",
            config.redsys.dbls_port,
            secret=config.redsys.pss_secret.reveal(),
            timeout=60,
        ) as client:
            for i in range(0, len(lines), size):
                r = client.call("log", schema="BENCH", lines=lines[i : i + size])
                assert r["written"] == len(lines[i : i + size])
        elapsed = time.perf_counter() - began
    finally:
        dbls.stop()
    return elapsed, inst.log_dir / "DB" / "BENCH"


def count(folder: Path) -> int:
    """Lines in every file of ``folder``."""
    return sum(p.read_bytes().count(b"\n") for p in folder.glob("*.log"))


def main(argv: list[str] | None = None) -> int:
    """Size a run to >= 1 s, then 5 alternating pairs; print the medians and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=50_000, help="first size tried (grown to 1 s)")
    p.add_argument("--buffer", type=int, default=1000)
    p.add_argument("--pairs", type=int, default=PAIRS)
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bdbls", dir="/tmp") as tmp:
        base = Path(tmp)
        runs = iter(range(1_000_000))
        lost = 0

        def once_bare(n: int) -> float:
            out = base / f"bare{next(runs)}.log"
            took = bare(make_lines(n), opts.buffer, out)
            nonlocal lost
            lost += n - out.read_bytes().count(b"\n")
            out.unlink()
            return took

        def once_role(n: int) -> float:
            took, folder = role(make_lines(n), opts.buffer, base / f"rh{next(runs)}")
            nonlocal lost
            lost += n - count(folder)
            return took

        # each side its own size (rates compare; the bare loop needs ~20x the lines for 1 s)
        nb, nr = grow(once_bare, opts.lines), grow(once_role, opts.lines)
        print(f"lines per run: bare {nb}, dbls {nr} (>= 1 s each), buffer={opts.buffer}, fsync")
        pairs = alternate(lambda: nb / once_bare(nb), lambda: nr / once_role(nr), pairs=opts.pairs)
    s = summary(pairs)
    print(f"bare socket->file : {s.bare:12,.0f} lines/s (median)")
    print(f"dbls (wire, role) : {s.ours:12,.0f} lines/s (median), lost {lost}")
    print(f"ratio dbls/bare   : {s.ratio:.2f} (median of pairs; spread {s.spread[0]:.2f}-"
          f"{s.spread[1]:.2f})")  # fmt: skip
    result("dbls", s.ours, "lines/s", ">=", TARGET, ok=s.ours >= TARGET and lost == 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
