"""The file lifecycle of the landing zone: ``input/ → work/ → archive/ | error/``.

Every step is a ``rename`` (or ``link`` + ``unlink``) inside one filesystem, never a copy:

* **complete**: :func:`complete_files` lists files of ``input/`` that are finished — their
  size, mtime *and* ctime have not changed for the quiet period (ctime cannot be set back by
  ``touch -d`` or an sFTP client that preserves times), or, when the loader asks for it, their
  marker file ``<name>.done`` / ``<name>.ok`` exists. An upload in progress writes, so it
  changes the ctime at least every quiet period; a sender that can stall for longer must use
  a marker. (A kernel read lease would tell "open for writing" exactly, but breaking it sends
  SIGIO to the lease holder, whose default action kills the process: not worth the risk.)
  Hidden files (``.name``), partial uploads (``*.part``, ``*.filepart``, ``*.tmp``), markers
  and error sidecars are never data files.
* **claim**: :func:`claim` renames ``input/<name>`` to ``work/<claim id>.<name>``. The rename is
  atomic, so of two claimers exactly one wins; the claim id (kind letter, time, random) is what
  the load ledger records, so recovery can tell a loaded claim from an unloaded one.
* **finish**: :func:`archive` or :func:`reject` move the claim out of ``work/``; ``reject``
  first writes the sidecar ``error/<name>.error.json`` (reason, loader, time, line/byte when
  known). A name already taken in the destination gets the claim id appended
  (``name.<claim id>``) — nothing is ever overwritten (``link`` fails on an existing name).
* **recover**: :func:`work_claims` lists what a dead process left in ``work/``;
  :func:`requeue` puts a claim back into ``input/`` under its original name.

Names are used as they are (spaces, unicode, leading dashes: no shell is ever involved); a name
too long to carry the claim id prefix (over 229 bytes) is shortened in ``work/`` only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "Claim",
    "LandingZone",
    "archive",
    "claim",
    "complete_files",
    "inside",
    "purge_expired",
    "reject",
    "requeue",
    "work_claims",
]

log = logging.getLogger(__name__)

MARKER_SUFFIXES = (".done", ".ok")
PARTIAL_SUFFIXES = (".part", ".filepart", ".tmp")
ERROR_SUFFIX = ".error.json"
_NAME_MAX = 255
_CLAIM_RE = re.compile(r"(?P<id>[A-Z][0-9a-f]{24})\.(?P<name>.+)", re.DOTALL)


@dataclass(frozen=True)
class LandingZone:
    """The four folders of ``$REDENV_HOME/data``."""

    data: Path

    @property
    def input(self) -> Path:
        return self.data / "input"

    @property
    def work(self) -> Path:
        return self.data / "work"

    @property
    def error(self) -> Path:
        return self.data / "error"

    @property
    def archive(self) -> Path:
        return self.data / "archive"

    def ensure(self) -> LandingZone:
        """Create the folders if needed; return self."""
        for path in (self.input, self.work, self.error, self.archive):
            path.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class Claim:
    """A file claimed into ``work/``: its id, its original name and where it is now."""

    claim_id: str
    name: str
    path: Path


# -- complete files --------------------------------------------------------------------------


def is_data_name(name: str) -> bool:
    """False for names that are never data: hidden, partial uploads, markers, error sidecars."""
    if name.startswith("."):
        return False
    return not name.endswith(PARTIAL_SUFFIXES + MARKER_SUFFIXES + (ERROR_SUFFIX,))


def complete_files(
    input_dir: Path, pattern: re.Pattern[str], *, quiet_period: float, marker: bool
) -> list[Path]:
    """Files in ``input_dir`` matching ``pattern`` (``search``) that are complete, oldest first.

    ``marker``: complete when ``<name>.done`` or ``<name>.ok`` exists. Otherwise: unchanged
    (size, mtime, ctime) for ``quiet_period`` seconds.
    Symbolic links are listed too (by their own times) so the loader can refuse them.
    """
    now = time.time()
    found: list[tuple[float, Path]] = []
    try:
        entries = list(os.scandir(input_dir))
    except FileNotFoundError:
        return []
    names = {e.name for e in entries}
    for entry in entries:
        name = entry.name
        if not is_data_name(name) or not pattern.search(name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                continue
        except FileNotFoundError:
            continue
        changed = max(st.st_mtime, st.st_ctime)
        if marker:
            if not any(name + m in names for m in MARKER_SUFFIXES):
                continue
        elif now - changed < quiet_period:
            continue
        found.append((changed, Path(entry.path)))
    found.sort(key=lambda item: (item[0], item[1].name))
    return [path for _, path in found]


# -- claim and finish ------------------------------------------------------------------------


def new_claim_id(kind: str = "L") -> str:
    """A claim id: kind letter, 16 hex digits of time in ns, 8 random hex digits."""
    return f"{kind}{time.time_ns():016x}{secrets.token_hex(4)}"


def _work_name(claim_id: str, name: str) -> str:
    full = f"{claim_id}.{name}"
    raw = full.encode("utf-8", "surrogateescape")
    if len(raw) <= _NAME_MAX:
        return full
    return raw[:_NAME_MAX].decode("utf-8", "ignore")


def claim(zone: LandingZone, source: Path, *, kind: str = "L") -> Claim | None:
    """Rename ``source`` (in ``input/``) into ``work/``; None when another claimer was faster."""
    claim_id = new_claim_id(kind)
    target = zone.work / _work_name(claim_id, source.name)
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return None
    for suffix in MARKER_SUFFIXES:  # the marker has done its job
        with contextlib.suppress(FileNotFoundError):
            (source.parent / (source.name + suffix)).unlink()
    return Claim(claim_id, source.name, target)


def _move_new(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` without overwriting it (:class:`FileExistsError` if it exists).

    A hard link and an unlink never overwrite. The kernel refuses the link (EPERM, Linux's
    ``fs.protected_hardlinks``) when the file belongs to another user and is not writable for
    us: a file an sFTP user uploaded with mode 0644 in container mode (its owner is the sFTP
    user, the group redftp). Moving needs only the folders' permissions, so then it is a rename
    after checking that ``dst`` is free; only a second file of the same name finishing in the
    same instant could slip into that gap.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except PermissionError:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _place(src: Path, folder: Path, name: str, claim_id: str) -> Path:
    """Move ``src`` to ``folder/name`` without overwriting; on a clash append the claim id."""
    for candidate in (name, f"{name}.{claim_id}"):
        dst = folder / candidate
        try:
            _move_new(src, dst)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            continue
        return dst
    # both names taken (or too long): the claim's own name is unique
    dst = folder / src.name
    os.rename(src, dst)
    return dst


def archive(zone: LandingZone, item: Claim) -> Path:
    """Move a claim to ``archive/``; return where it went."""
    if _already_placed(item):
        return item.path
    return _place(item.path, zone.archive, item.name, item.claim_id)


def _already_placed(item: Claim) -> bool:
    """True when a crash hit between ``link`` and ``unlink``: only the unlink is left to do."""
    try:
        st = item.path.lstat()
    except FileNotFoundError:
        return False
    if st.st_nlink > 1 and not item.path.is_symlink():
        item.path.unlink()
        return True
    return False


def reject(
    zone: LandingZone,
    item: Claim,
    reason: str,
    *,
    loader: str | None,
    line: int | None = None,
    byte: int | None = None,
) -> Path:
    """Move a claim to ``error/`` with its sidecar ``<name>.error.json``; return the file's path.

    A claim whose file vanished gets the sidecar alone (its reason says so).
    """
    exists = item.path.exists() or item.path.is_symlink()
    if exists:
        final = item.name
        if (zone.error / final).exists() or (zone.error / (final + ERROR_SUFFIX)).exists():
            final = f"{item.name}.{item.claim_id}"
    else:
        final = f"{item.name}.{item.claim_id}"
    doc: dict[str, Any] = {
        "file": item.name,
        "reason": reason,
        "loader": loader,
        "claim_id": item.claim_id,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "line": line,
        "byte": byte,
    }
    _write_atomic(zone.error / (final + ERROR_SUFFIX), json.dumps(doc, ensure_ascii=False))
    if not exists:
        return zone.error / final
    return _place(item.path, zone.error, final, item.claim_id)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{secrets.token_hex(6)}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


# -- recovery --------------------------------------------------------------------------------


def parse_work_name(name: str) -> tuple[str, str] | None:
    """``(claim id, original name)`` of a ``work/`` file name, or None if it is not a claim."""
    match = _CLAIM_RE.fullmatch(name)
    return (match["id"], match["name"]) if match else None


def work_claims(zone: LandingZone, *, kind: str = "L") -> Iterator[Claim]:
    """The claims of ``kind`` in ``work/`` (left there by a process that died)."""
    try:
        entries = sorted(os.scandir(zone.work), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        parsed = parse_work_name(entry.name)
        if parsed and parsed[0].startswith(kind):
            yield Claim(parsed[0], parsed[1], Path(entry.path))


def requeue(zone: LandingZone, item: Claim) -> Path | None:
    """Put a claim back into ``input/<name>``; None (left in work/) when that name is taken."""
    try:
        _move_new(item.path, zone.input / item.name)
    except FileExistsError:
        if _already_placed(item):  # crashed between link and unlink
            return zone.input / item.name
        log.warning("landing: input/%s exists: claim %s left in work/", item.name, item.path)
        return None
    return zone.input / item.name


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves (following every link) to somewhere below ``root``."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_relative_to(root.resolve())


def purge_expired(
    folder: Path, retention_days: float, *, now: float | None = None, suffix: str = ""
) -> int:
    """Delete files in ``folder`` that arrived there more than ``retention_days`` ago.

    "Arrived" is the ctime: a rename sets it, while the mtime keeps the upload's time.
    Only names ending with ``suffix`` (default: all). Returns the number of files deleted.
    """
    limit = (time.time() if now is None else now) - retention_days * 86400
    deleted = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(suffix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False) or st.st_ctime >= limit:
                continue
            os.unlink(entry.path)
            deleted += 1
        except FileNotFoundError:
            continue
    return deleted
