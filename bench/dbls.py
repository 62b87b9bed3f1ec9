"""DBLS throughput: log lines per second acknowledged and on disk, against a bare loop.

Both sides get the same buffers (``--lines`` lines of ~80 bytes, ``--buffer`` lines per
request) over one loopback connection, write them to a file and fsync before acknowledging.
The bare loop is a socket server that reads a length-prefixed buffer, appends it and fsyncs:
what DBLS costs on top of that is JSON framing, checking and the role. Afterwards the lines in
the files are counted: every acknowledged line must be there.

    .venv/bin/python bench/dbls.py [--lines 200000] [--buffer 1000]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

from redpss import wire
from redpss.config import load_config
from redpss.dictionary import open_dictionary
from redpss.instance import Instance, create_instance
from redpss.roles.base import RoleContext
from redpss.roles.dbls import Dbls

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
    """Run both, print the ratio and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--buffer", type=int, default=1000)
    opts = p.parse_args(argv)
    lines = make_lines(opts.lines)
    with tempfile.TemporaryDirectory(prefix="bdbls", dir="/tmp") as tmp:
        base = Path(tmp)
        t_bare = bare(lines, opts.buffer, base / "bare.log")
        t_role, folder = role(lines, opts.buffer, base / "rh")
        lost = opts.lines - count(folder)
        lost_bare = opts.lines - (base / "bare.log").read_bytes().count(b"\n")
    rate_bare, rate_role = opts.lines / t_bare, opts.lines / t_role
    print(f"lines={opts.lines} buffer={opts.buffer} fsync per buffer")
    print(f"bare socket->file : {rate_bare:12,.0f} lines/s  ({t_bare:.2f} s, lost {lost_bare})")
    print(f"dbls (wire, role) : {rate_role:12,.0f} lines/s  ({t_role:.2f} s, lost {lost})")
    print(f"ratio dbls/bare   : {rate_role / rate_bare:.2f}")
    ok = rate_role >= TARGET and lost == 0
    print(
        f"RESULT dbls value={rate_role:.0f} unit=lines/s target=>={TARGET} "
        f"ok={'yes' if ok else 'no'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
