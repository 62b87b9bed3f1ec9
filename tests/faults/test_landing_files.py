"""Files that break the loader's assumptions, with real processes (promise 2 and 4; #14.4, #14.6).

* A FIFO, a socket in ``data/input``: moved to ``error/`` without being opened; the files after
  them load as if they were not there.
* ``error/`` that cannot take a rejected file (not writable, the disk full): the file goes back
  to ``input/`` and the run says why; nothing stays in ``work/``; once ``error/`` works again the
  file ends there with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from tests.conftest import run_cli, wait_for
from tests.security.landing_support import (
    MakeInstance,
    archived,
    loaded_texts,
    prepare,
    sidecar,
    start,
)

ENDED = ("OK", "FAILED", "TIMEOUT", "ABORTED", "SKIPPED")
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def _messages(inst: Instance, job: str) -> list[str]:
    with open_dictionary("sqlite", db_dir=inst.db_dir) as d:
        return [r.message or "" for r in d.runs(name=job, limit=100) if r.state in ENDED]


def _exec_errors(inst: Instance) -> list[dict[str, object]]:
    out = run_cli("redctl", "--json", "we_list_error", inst=inst)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def test_a_fifo_and_a_socket_do_not_hold_up_the_files_behind_them(
    make_instance: MakeInstance,
) -> None:
    inst = prepare(make_instance, sched_loader_pool_size="1")
    start(inst)
    inbox = inst.home / "data" / "input"
    os.mkfifo(inbox / "note_a_fifo.csv")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(inbox / "note_b_sock.csv"))
    (inbox / "note_c_after.csv").write_text("after\n")
    wait_for(lambda: archived(inst, "note_c_after.csv"), timeout=30, what="the file after")
    assert "FIFO" in sidecar(inst, "note_a_fifo.csv")["reason"]
    assert "socket" in sidecar(inst, "note_b_sock.csv")["reason"]
    assert loaded_texts(inst) == ["after"]
    # nobody holds the FIFO open for reading (a loader stuck in open() would)
    with pytest.raises(OSError):
        os.open(inst.home / "data" / "error" / "note_a_fifo.csv", os.O_WRONLY | os.O_NONBLOCK)


def test_an_unwritable_error_folder_sends_the_file_back_with_the_reason(
    make_instance: MakeInstance,
) -> None:
    inst = prepare(make_instance)
    data = inst.home / "data"
    (data / "error").chmod(0o555)  # root without CAP_DAC_OVERRIDE cannot write there
    start(inst, wrapper=NO_DAC, expect=1)  # status names data/error/: it cannot be written
    (data / "input" / "note_bad.csv").write_text("a\nb,c\n")

    def said() -> list[str]:
        return [m for m in _messages(inst, "load_notes") if "note_bad.csv" in m]

    messages = wait_for(said, timeout=30, what="the run's message about note_bad.csv")
    assert isinstance(messages, list)
    assert "2 fields" in messages[0] and "error/" in messages[0], messages
    assert (data / "input" / "note_bad.csv").exists()
    assert not any((data / "work").iterdir())
    # the disk failed, not the file: no executor error for an operator to reset; the watcher
    # tries again by itself (back-off) and, once error/ takes it, rejects it for good
    assert _exec_errors(inst) == []
    (data / "error").chmod(0o755)
    assert "2 fields" in sidecar(inst, "note_bad.csv")["reason"]
    assert not (data / "input" / "note_bad.csv").exists()


@pytest.fixture
def small_disk(make_instance: MakeInstance) -> Iterator[Instance]:
    """An instance whose landing folders (not its dictionary) live on a 4 MB tmpfs.

    (cfisrv is off: it serves only what really lies below data/, and these folders do not.)"""
    inst = prepare(make_instance, cfi_enabled="false")
    data = inst.home / "data"
    mount = inst.home / "landing-fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        for folder in ("input", "work", "error", "archive"):
            (data / folder).rmdir()
            (mount / folder).mkdir()
            (data / folder).symlink_to(mount / folder)
        (mount / "input").chmod(0o1777)
        yield inst
    finally:
        run_cli("redctl", "stop", inst=inst)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / ".filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
    return filler


def test_a_full_disk_sends_the_rejected_file_back_until_there_is_room(
    small_disk: Instance,
) -> None:
    inst = small_disk
    data = inst.home / "data"
    start(inst)
    (data / "input" / "note_bad.csv").write_text("a\nb,c\n")
    filler = _fill(data / "archive")

    def said() -> list[str]:
        return [m for m in _messages(inst, "load_notes") if "note_bad.csv" in m]

    messages = wait_for(said, timeout=30, what="the run's message about note_bad.csv")
    assert isinstance(messages, list)
    assert "2 fields" in messages[0] and "error/" in messages[0], messages
    assert (data / "input" / "note_bad.csv").exists()
    assert not any((data / "work").iterdir())
    assert not list((data / "error").iterdir())  # no torn sidecar, no temporary file
    assert _exec_errors(inst) == []
    filler.unlink()
    assert "2 fields" in sidecar(inst, "note_bad.csv")["reason"]  # tried again by itself
