"""DBLS, the database log server: log buffers from the database into files and LOG_MESSAGES.

A Lua script in the database sends a *buffer* of log lines for one target schema (wire op
``log``). DBLS appends them to ``$REDENV_HOME/log/DB/<SCHEMA>/<YYYY-MM-DD>.log`` (UTC date) and
acknowledges only after they reached the disk: with ``dbls_fsync = true`` (default) the file
is ``fdatasync``-ed before the reply, otherwise the lines are in the OS page cache (they survive
a crash of DBLS, not of the host). A buffer is checked as a whole before anything is written,
and written all or nothing: when the disk refuses part of it (full disk, quota, I/O error) the
file is cut back to where the buffer began and the request is refused (``disk_full`` or
``write_failed``), so the client's retry neither duplicates lines nor glues them to a torn one.
A torn last line found when a file is opened (a host crash mid-write: never acknowledged) is cut
off too. While the disk is full, dbls reports it as a problem in its heartbeat (status ALERT 1
with the reason) and accepts buffers again by itself once one fits.

ERROR and ALERT lines also go to ``<SCHEMA>.LOG_MESSAGES``. That happens in a background
thread fed by a bounded queue, so a slow or absent dictionary never delays file logging; when
the queue is full the line is only in the file (counted and logged). On stop the queue is
drained within ``stop_grace`` seconds. Files older than ``log_retention`` days below ``log/DB``
are deleted once a day.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss.diskspace import has_room
from redpss.errors import BadArgs, DictionaryError, RemoteError
from redpss.logs import purge_old_logs
from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer
from redpss.wire.ops import LogRequest

__all__ = ["LEVELS", "Dbls", "LogFiles", "parse_buffer"]

log = logging.getLogger(__name__)

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "ALERT")
_TO_DICTIONARY = ("ERROR", "ALERT")
_ALIASES = {"WARNING": "WARN", "CRITICAL": "ALERT", "FATAL": "ALERT"}
_PURGE_EVERY = 86400.0
MAX_REQUEST = 32 << 20
"""Longest request line (a whole buffer) DBLS accepts, in bytes."""


@dataclass(frozen=True)
class LogLine:
    """One line of a buffer, checked."""

    level: str
    text: str  # what goes into the file (no newline)
    message: str  # what goes into LOG_MESSAGES


def _level_of(text: str) -> str:
    # a preformatted line names its level in one of its first three words
    for word in text.split(None, 3)[:3]:
        word = word.strip("[]:").upper()
        word = _ALIASES.get(word, word)
        if word in LEVELS:
            return word
    return "INFO"


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def _object_level(value: str, i: int) -> str:
    level = _ALIASES.get(value.upper(), value.upper())
    if level not in LEVELS:
        raise BadArgs(f"'lines[{i}].level' must be one of {', '.join(LEVELS)}, not {value!r}")
    return level


def parse_buffer(req: LogRequest, *, max_line: int, now: datetime) -> tuple[str, list[LogLine]]:
    """Check the lines of a ``log`` request; return the schema (upper case) and its lines.

    The request's shape was checked when it was parsed (:class:`~redpss.wire.ops.LogRequest`);
    here the levels and the line lengths. Raises BadArgs naming the line; nothing is written for
    a bad buffer.
    """
    stamp = now.isoformat(timespec="milliseconds")
    out = []
    for i, item in enumerate(req.lines):
        if isinstance(item, str):
            level, message = _level_of(item), item
            text = _one_line(item)
        else:
            level, message = _object_level(item.level, i), item.message
            text = f"{stamp} {level:<5} {req.source or '-'}: {_one_line(message)}"
        if len(text.encode("utf-8")) > max_line:
            raise BadArgs(f"'lines[{i}]' is longer than {max_line} bytes")
        out.append(LogLine(level, text, message))
    return req.schema.upper(), out


class LogFiles:
    """The open day files of ``log/DB``; appends are serialised per schema, all or nothing."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        """Write below ``root`` (``log/DB``); ``fsync`` each append when asked."""
        self.root = root
        self.fsync = fsync
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._files: dict[str, tuple[Path, int]] = {}

    def append(self, schema: str, lines: list[str], day: str) -> Path:
        """Append ``lines`` to the schema's file of ``day``; return when they are on disk.

        Raises :class:`OSError` when the disk refuses them; then nothing of them is in the file.
        """
        with self._lock:
            lock = self._locks.setdefault(schema, threading.Lock())
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with lock:
            path = self.root / schema / f"{day}.log"
            fd = self._fd(schema, path)
            size = os.fstat(fd).st_size  # O_APPEND: the buffer goes right after this
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync:
                    os.fdatasync(fd)
            except OSError:
                self._cut(schema, path, fd, size)
                raise
        return path

    def _fd(self, schema: str, path: Path) -> int:
        current = self._files.get(schema)
        if current is not None and current[0] == path and path.exists():
            return current[1]
        if current is not None:
            os.close(current[1])
            del self._files[schema]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _cut_torn_line(path, fd)
        except OSError:
            os.close(fd)
            raise
        self._files[schema] = (path, fd)
        return fd

    def _cut(self, schema: str, path: Path, fd: int, size: int) -> None:
        """Take a partly written buffer back out of the file (freeing the space it took)."""
        try:
            os.ftruncate(fd, size)
            if self.fsync:
                os.fdatasync(fd)
        except OSError as exc:
            # the file may now end in part of the buffer: reopening it cuts a torn line off
            log.error("role=dbls %s: partly written buffer not taken back: %s", path, exc)
            os.close(fd)
            self._files.pop(schema, None)

    def close(self) -> None:
        """Close every open file."""
        with self._lock:
            for _, fd in self._files.values():
                os.close(fd)
            self._files.clear()


def _cut_torn_line(path: Path, fd: int) -> None:
    """Cut a last line without its newline (never acknowledged) off a file being opened."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with path.open("rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # look back for the last full line, a block at a time
        end = size
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            at = block.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            end = start
        else:
            keep = 0
    os.ftruncate(fd, keep)
    log.warning("role=dbls %s: cut a torn last line (%d bytes) off", path, size - keep)


class Dbls(Role):
    """The database log server."""

    name = "dbls"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.files = LogFiles(ctx.instance.log_dir / "DB", fsync=cfg.dbls_fsync)
        self.max_line = cfg.dbls_max_line
        self._queue: queue.Queue[tuple[str, str, str, str | None, datetime] | None] = queue.Queue(
            maxsize=cfg.dbls_queue_size
        )
        self._schemas_ready: set[str] = set()
        self._dropped = 0
        self._written = 0
        self._count_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._last_purge = 0.0
        self._disk_problem = ""
        self._disk_full = False
        self._disk_need = 0  # bytes of the last buffer the disk refused
        self.server = WireServer(
            self,
            host=cfg.dbls_host,
            port=cfg.dbls_port,
            secret=cfg.pss_secret.reveal(),
            max_line=MAX_REQUEST,
            name=f"dbls/{ctx.instance.name}",
        )

    def start(self) -> None:
        """Start the dictionary writer, then listen; returns when the port accepts."""
        self._writer = threading.Thread(target=self._write_messages, name="dbls-dict", daemon=True)
        self._writer.start()
        self.health.watch("dictionary writer", self._writer)
        self.server.start()
        self.health.watch("request server", self.server.thread)
        self._purge()

    def stop(self) -> None:
        """Stop listening, drain the dictionary queue within ``stop_grace``; idempotent."""
        self.server.stop()
        if self._writer is not None and self._writer.is_alive():
            try:
                self._queue.put(None, timeout=self.ctx.config.redsys.stop_grace)
            except queue.Full:
                log.warning("role=dbls dictionary queue not drained at stop")
            self._writer.join(self.ctx.config.redsys.stop_grace)
        self.files.close()

    def tick(self) -> None:
        """Once a day: delete DB log files past the retention; see whether space is back."""
        if time.monotonic() - self._last_purge >= _PURGE_EVERY:
            self._purge()
        self._space_back()
        with self._count_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning("role=dbls %d ERROR/ALERT lines only in files (queue full)", dropped)

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"port {self.server.port}, {self._written} lines"

    def _purge(self) -> None:
        self._last_purge = time.monotonic()
        days = self.ctx.config.redsys.log_retention
        for path in purge_old_logs(self.files.root, days):
            log.info("role=dbls removed %s (older than %d days)", path, days)

    # -- wire ops -----------------------------------------------------------------------------

    def op_log(self, req: LogRequest, peer: Peer) -> dict[str, Any]:
        """Wire op ``log``: append a buffer of lines for a schema; reply when on disk."""
        now = datetime.now(UTC)
        schema, lines = parse_buffer(req, max_line=self.max_line, now=now)
        try:
            path = self.files.append(schema, [ln.text for ln in lines], now.strftime("%Y-%m-%d"))
        except OSError as exc:
            self._disk_need = sum(len(ln.text.encode("utf-8")) + 1 for ln in lines)
            raise self._refused(schema, len(lines), exc) from exc
        self._disk_ok()
        source = req.source or f"{peer.host}"
        queued = 0
        for ln in lines:
            if ln.level in _TO_DICTIONARY:
                try:
                    self._queue.put_nowait((schema, ln.level, ln.message, source, now))
                    queued += 1
                except queue.Full:
                    with self._count_lock:
                        self._dropped += 1
        with self._count_lock:
            self._written += len(lines)
        rel = path.relative_to(self.ctx.instance.home)
        return {"written": len(lines), "file": str(rel), "messages": queued}

    def _refused(self, schema: str, count: int, exc: OSError) -> RemoteError:
        """The error reply for a buffer the disk refused; the problem shown in status."""
        where = self.files.root / schema
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
        text = f"cannot write {where}: {why or exc}"
        if self._disk_problem != text:
            log.error("role=dbls %s; buffers are refused whole until one fits again", text)
        self._disk_problem = text
        self._disk_full = full
        self.health.problem("disk", text)  # status: ALERT 1 with this reason until a write works
        code = "disk_full" if full else "write_failed"
        return RemoteError(code, f"{text}; none of the {count} lines was written, send them again")

    def _space_back(self) -> None:
        """A full disk with room again ends the problem without waiting for the next buffer."""
        need = self._disk_need
        if self._disk_problem and self._disk_full and has_room(self.files.root, need=need):
            self._disk_ok()

    def _disk_ok(self) -> None:
        if self._disk_problem:
            log.info("role=dbls writing again (was: %s)", self._disk_problem)
            self._disk_problem = ""
            self.health.clear("disk")

    # -- the dictionary writer ----------------------------------------------------------------

    def _write_messages(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            schema, level, message, source, ts = item
            try:
                if schema not in self._schemas_ready:
                    self.ctx.dictionary.ensure_schema(schema)
                    self._schemas_ready.add(schema)
                self.ctx.dictionary.log_message(
                    schema, level=level, message=message, source=source, ts=ts
                )
            except DictionaryError as exc:
                # the line is in the file; the dictionary copy is best effort
                log.warning("role=dbls schema=%s LOG_MESSAGES not written: %s", schema, exc)
