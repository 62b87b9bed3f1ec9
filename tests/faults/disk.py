"""A small, real full disk for fault tests: a tmpfs mounted over a folder of an instance."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fill", "remount", "tmpfs"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``256k``, ``8m``) over ``path``; unmount it afterwards.

    Needs root (the test tier runs as root); skips otherwise, saying why."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # lazy: a role that still holds a file there must not keep the mount (or the test) alive
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, size: str) -> None:
    """Grow (or shrink) the tmpfs at ``path``: space comes back without touching its files."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` (a ballast file) until the filesystem is full; return the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError:
                try:
                    while True:  # the last blocks, a byte at a time
                        written += os.write(fd, b"\0")
                except OSError:
                    return written
    finally:
        os.close(fd)
