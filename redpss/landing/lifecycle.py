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
  atomic, so of two claimers exactly one wins; the claim id (kind letter, time, and a MAC of
  both and the name keyed with the instance secret) is what the load ledger records, so
  recovery can tell a loaded claim from an unloaded one — and a claim this instance issued from
  a file someone else put into ``work/`` under a claim-shaped name (:func:`issued`).
* **open**: :func:`redpss.landing.opened.open_regular` reads a claimed file only as what it is
  when opened (regular files only, no link followed).
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
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "Claim",
    "Due",
    "LandingZone",
    "archive",
    "claim",
    "claim_key",
    "complete_files",
    "complete_names",
    "display_name",
    "issued",
    "purge_expired",
    "reject",
    "requeue",
    "same_name",
    "stored_name",
    "work_claims",
]

log = logging.getLogger(__name__)

MARKER_SUFFIXES = (".done", ".ok")
PARTIAL_SUFFIXES = (".part", ".filepart", ".tmp")
ERROR_SUFFIX = ".error.json"
_NAME_MAX = 255
_CLAIM_RE = re.compile(r"(?P<id>[A-Z][0-9a-f]{24})\.(?P<name>.+)", re.DOTALL)


def claim_key(secret: str) -> bytes:
    """The key that signs claim ids, derived from the instance secret (``pss_secret``)."""
    return hmac.new(secret.encode("utf-8"), b"redpss landing claim v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class LandingZone:
    """The four folders of ``$REDENV_HOME/data``, and the key that signs this zone's claims."""

    data: Path
    key: bytes = field(repr=False)

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

    @property
    def shown(self) -> str:
        """The name for messages, sidecars and the ledger (:func:`display_name`)."""
        return display_name(self.name)


# -- complete files --------------------------------------------------------------------------


def is_data_name(name: str) -> bool:
    """False for names that are never data: hidden, partial uploads, markers, error sidecars."""
    if name.startswith("."):
        return False
    return not name.endswith(PARTIAL_SUFFIXES + MARKER_SUFFIXES + (ERROR_SUFFIX,))


class Due(NamedTuple):
    """A complete file of ``input/``: its name, and its size and mtime when it was judged."""

    name: str
    size: int
    mtime_ns: int


def complete_names(
    input_dir: Path, select: Callable[[str], object], *, quiet_period: float, marker: bool
) -> list[Due]:
    """The files in ``input_dir`` whose name ``select`` accepts and that are complete, oldest
    first (by their last change, then name).

    ``marker``: complete when ``<name>.done`` or ``<name>.ok`` exists. Otherwise: unchanged
    (size, mtime, ctime) for ``quiet_period`` seconds. Symbolic links and special files are
    listed too (by their own times) so the loader can refuse them; folders are not.

    One ``scandir`` and one ``lstat`` per selected name, and nothing else per file (no path
    objects: at 100 000 waiting files making them took 3 of the 4 seconds of a scan); a
    caller makes the path of the file it claims.
    """
    now = time.time()
    found: list[tuple[float, str, int, int]] = []
    try:
        entries = list(os.scandir(input_dir))
    except FileNotFoundError:
        return []
    names = {e.name for e in entries} if marker else set()
    for entry in entries:
        name = entry.name
        if not is_data_name(name) or not select(name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):  # the directory entry's type: no syscall
                continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        changed = max(st.st_mtime, st.st_ctime)
        if marker:
            if not any(name + m in names for m in MARKER_SUFFIXES):
                continue
        elif now - changed < quiet_period:
            continue
        found.append((changed, name, st.st_size, st.st_mtime_ns))
    found.sort()
    return [Due(name, size, mtime) for _, name, size, mtime in found]


def complete_files(
    input_dir: Path, pattern: re.Pattern[str], *, quiet_period: float, marker: bool
) -> list[Path]:
    """:func:`complete_names` of the names ``pattern`` finds (``search``), as paths."""
    due = complete_names(input_dir, pattern.search, quiet_period=quiet_period, marker=marker)
    return [input_dir / d.name for d in due]


# -- claim and finish ------------------------------------------------------------------------


_ID_LEN = 25  # kind letter, 16 hex digits of time, 8 hex digits of MAC


_ROOM = _NAME_MAX - _ID_LEN - 1


def stored_name(name: str) -> str:
    """``name`` as it is kept after the claim id in ``work/`` (shortened to fit 255 bytes).

    Cut at a character's start; bytes that are not UTF-8 are kept (as surrogates, like every
    name the operating system hands over).
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= _ROOM:
        return name
    cut = _ROOM
    while cut > _ROOM - 3 and raw[cut] & 0xC0 == 0x80:  # inside a character
        cut -= 1
    return raw[:cut].decode("utf-8", "surrogateescape")


def display_name(name: str) -> str:
    """``name`` as text any UTF-8 consumer takes (a sidecar, the ledger, a message): bytes of
    the name that are not UTF-8 (an sFTP client may send any) shown as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def same_name(recorded: str, stored: str) -> bool:
    """True when ``recorded`` (a ledger's :func:`display_name` of the whole name) is the name
    kept in ``work/`` as ``stored`` (maybe shortened by :func:`stored_name`)."""
    shown = display_name(stored)
    if len(stored.encode("utf-8", "surrogateescape")) <= _ROOM - 3:
        return recorded == shown
    return recorded.startswith(shown)


def _mac(key: bytes, head: str, stored: str) -> str:
    text = f"{head}.{stored}".encode("utf-8", "surrogateescape")
    return hmac.new(key, text, hashlib.sha256).hexdigest()[:8]


def new_claim_id(key: bytes, name: str, kind: str = "L") -> str:
    """A claim id: kind letter, 16 hex digits of time in ns, 8 hex digits of MAC.

    The MAC covers kind, time and the name as stored in ``work/``, keyed with the zone's key:
    only a holder of the instance secret can make a claim name that :func:`issued` accepts.
    """
    head = f"{kind}{time.time_ns():016x}"
    return head + _mac(key, head, stored_name(name))


def _work_name(claim_id: str, name: str) -> str:
    return f"{claim_id}.{stored_name(name)}"


def issued(zone: LandingZone, item: Claim) -> bool:
    """True when ``item``'s name in ``work/`` is one this zone's key made (see :func:`claim`)."""
    parsed = parse_work_name(item.path.name)
    if parsed is None or parsed[0] != item.claim_id:
        return False
    head, mac = item.claim_id[:17], item.claim_id[17:]
    return hmac.compare_digest(mac, _mac(zone.key, head, parsed[1]))


def claim(zone: LandingZone, source: Path, *, kind: str = "L") -> Claim | None:
    """Rename ``source`` (in ``input/``) into ``work/``; None when another claimer was faster."""
    claim_id = new_claim_id(zone.key, source.name, kind)
    target = zone.work / _work_name(claim_id, source.name)
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return None
    for suffix in MARKER_SUFFIXES:  # the marker has done its job
        marker = source.name + suffix
        if len(marker.encode("utf-8", "surrogateescape")) <= _NAME_MAX:  # else it cannot exist
            with contextlib.suppress(FileNotFoundError):
                (source.parent / marker).unlink()
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

    A claim whose file vanished gets the sidecar alone (its reason says so). OSError when
    ``error/`` cannot take the file (not writable, the disk full): then nothing of it is left
    in ``error/`` and the claim is still in ``work/`` — the caller decides (see
    :func:`requeue`).
    """
    exists = item.path.exists() or item.path.is_symlink()
    if exists:
        final = item.name
        if (zone.error / final).exists() or (zone.error / (final + ERROR_SUFFIX)).exists():
            final = f"{item.name}.{item.claim_id}"
    else:
        final = f"{item.name}.{item.claim_id}"
    doc: dict[str, Any] = {
        "file": item.shown,
        "reason": reason,
        "loader": loader,
        "claim_id": item.claim_id,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "line": line,
        "byte": byte,
    }
    side = zone.error / (final + ERROR_SUFFIX)
    _write_atomic(side, json.dumps(doc, ensure_ascii=False))
    if not exists:
        return zone.error / final
    try:
        return _place(item.path, zone.error, final, item.claim_id)
    except OSError:
        side.unlink(missing_ok=True)  # no reason without its file
        raise


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except Exception:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a full disk leaves no torn temporary file behind
        raise


# -- recovery --------------------------------------------------------------------------------


def parse_work_name(name: str) -> tuple[str, str] | None:
    """``(claim id, original name)`` of a ``work/`` file name, or None if it is not a claim."""
    match = _CLAIM_RE.fullmatch(name)
    return (match["id"], match["name"]) if match else None


def work_claims(zone: LandingZone, *, kind: str = "L") -> Iterator[Claim]:
    """The claim-shaped names of ``kind`` in ``work/`` (left there by a process that died).

    Whether this zone issued one is for :func:`issued` to say.
    """
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


def purge_expired(
    folder: Path,
    retention_days: float,
    *,
    now: float | None = None,
    suffix: str = "",
    skip: tuple[str, ...] = (),
) -> int:
    """Delete files in ``folder`` that arrived there more than ``retention_days`` ago.

    "Arrived" is the ctime: a rename sets it, while the mtime keeps the upload's time.
    Only names ending with ``suffix`` (default: all) and not with one of ``skip``. Returns the
    number of files deleted.
    """
    limit = (time.time() if now is None else now) - retention_days * 86400
    deleted = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(suffix) or (skip and entry.name.endswith(skip)):
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
