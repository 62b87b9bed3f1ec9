"""The landing zone reads regular files only and follows no link (promise 3; #15.2, #15.7, #15.8).

A local user who may upload (here ``nobody``, with ``data/input`` open to everybody as an
upload folder is to the sFTP users) tries to make the loader read what it may not read itself.
"""

from __future__ import annotations

import time

import pytest

from redpss.instance import Instance
from tests.conftest import wait_for
from tests.security.landing_support import (
    MakeInstance,
    archived,
    as_nobody,
    loaded_texts,
    prepare,
    sidecar,
    start,
)

# a root process that has lost the right to read other users' files: what redsys is to an
# sFTP user's upload in production (the tests run as root, which would read anything)
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


@pytest.fixture
def inst(make_instance: MakeInstance) -> Instance:
    return prepare(make_instance)


def _secrets(inst: Instance) -> list[str]:
    return [(inst.etc / name).read_text().strip() for name in ("secret", "cfi_password")]


def test_links_are_moved_to_error_never_read(inst: Instance) -> None:
    start(inst)
    inbox = inst.home / "data" / "input"
    (inst.home / "data" / "archive" / "old.csv").write_text("archived\n")
    done = as_nobody(
        "ln -s ../../etc/secret note_secret.csv && "
        "ln -s ../../etc/cfi_password note_cfi.csv && "
        "ln -s ../archive/old.csv note_inside.csv && "
        "ln -s /etc/passwd note_outside.csv && "
        "ln -s ../archive note_folder.csv && "
        "ln -s nowhere.csv note_dangling.csv && "
        "printf 'hello\\n' > note_ok.csv",
        cwd=inbox,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: archived(inst, "note_ok.csv"), timeout=30, what="the regular file loaded")
    for name in ("secret", "cfi", "inside", "outside", "folder", "dangling"):
        doc = sidecar(inst, f"note_{name}.csv")
        assert "symbolic link" in doc["reason"], doc
        assert (inst.home / "data" / "error" / f"note_{name}.csv").is_symlink()  # the link
    assert loaded_texts(inst) == ["hello"]
    wait_for(lambda: not any(inbox.iterdir()), timeout=30, what="input/ empty")
    assert not any((inst.home / "data" / "work").iterdir())


def test_swapping_a_file_for_a_link_never_loads_the_link_target(inst: Instance) -> None:
    """The uploader swaps each file for a link to the secret at a random moment around the claim.

    Whatever was claimed is read as it was opened: a regular file loads, a link is refused.
    """
    start(inst)
    inbox = inst.home / "data" / "input"
    script = (
        "i=0; while [ $i -lt 30 ]; do i=$((i+1)); "
        "printf 'plain %s\\n' $i > .t$i && mv .t$i note_r$i.csv; "
        # 0.25..0.45 s: around the quiet period (0.3 s) after which the watcher claims
        "sleep 0.$((25 + i % 3 * 10)); "
        "ln -s ../../etc/secret .l$i && mv -T .l$i note_r$i.csv; "
        "done"
    )
    done = as_nobody(script, cwd=inbox)
    assert done.returncode == 0, done.stderr
    data = inst.home / "data"

    def settled() -> bool:
        return not any(inbox.iterdir()) and not any((data / "work").iterdir())

    wait_for(settled, timeout=90, what="every file and link handled")
    texts = loaded_texts(inst)
    assert all(t.startswith("plain ") for t in texts), texts
    for secret in _secrets(inst):
        assert not any(secret in t for t in texts)
    links = [p for p in (data / "error").iterdir() if p.is_symlink()]
    assert links, "no swap was claimed as a link: the test did not race"
    for link in links:
        assert "symbolic link" in sidecar(inst, link.name)["reason"]


def test_csv_with_nul_is_refused_and_a_bom_is_stripped(inst: Instance) -> None:
    start(inst)
    inbox = inst.home / "data" / "input"
    (inbox / "note_nul.csv").write_bytes(b"fine\nab\x00cd\n")
    (inbox / "note_bom.csv").write_bytes(b"\xef\xbb\xbfwith bom\n")
    wait_for(lambda: archived(inst, "note_bom.csv"), timeout=30, what="the BOM file loaded")
    doc = sidecar(inst, "note_nul.csv")
    assert "NUL" in doc["reason"] and "column 3" in doc["reason"] and doc["line"] == 2, doc
    assert loaded_texts(inst) == ["with bom"]


def test_an_upload_the_loader_cannot_read_goes_to_error(inst: Instance) -> None:
    """sFTP's ``put`` keeps a local 0600: the loader (not root) cannot read it."""
    start(inst, wrapper=NO_DAC)
    inbox = inst.home / "data" / "input"
    done = as_nobody(
        "umask 077 && printf 'private\\n' > note_private.csv && "
        "umask 022 && printf 'public\\n' > note_public.csv",
        cwd=inbox,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: archived(inst, "note_public.csv"), timeout=30, what="the readable file")
    doc = sidecar(inst, "note_private.csv")
    assert "not readable" in doc["reason"] and "0600" in doc["reason"], doc
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # sampling: it must not come back
        assert not (inbox / "note_private.csv").exists()
        time.sleep(0.2)
    assert (inst.home / "data" / "error" / "note_private.csv").exists()
    assert loaded_texts(inst) == ["public"]
