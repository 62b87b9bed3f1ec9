"""SENDFILE: export a table or view of a target schema to CSV or Parquet and send it away.

Wire op ``send`` (:class:`~redpss.wire.ops.SendFile`) reads the rows through the dictionary
(:class:`~redpss.dictionary.export.ExportStore`: names checked against the schema's real
objects, rows in batches of ``sendfile_batch_size``), writes them to
``$REDENV_HOME/tmp/sendfile/<id>/<file>`` (:mod:`redpss.export.writer`; memory is bounded by one
batch) and then delivers the file:

- **mail**: SENDMAIL's ``send`` op over the wire protocol, the file as an attachment by its
  path in the instance tree (``tmp/sendfile`` is one of SENDMAIL's attachment folders).
  SENDMAIL reads it while spooling, so the export is deleted as soon as SENDMAIL acknowledged
  (its limits, e.g. ``sendmail_max_size``, apply).
- **sftp**: the one sFTP target of the configuration (:mod:`redpss.export.sftp`).

The request waits for all of it; errors come back with codes of their own (docs/protocol.md).
pyarrow and paramiko are imported by the first request that needs them, not at start.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from redpss import wire
from redpss.dictionary.export import ExportColumn
from redpss.errors import BadArgs, DictionaryError, RemoteError, WireError
from redpss.export.writer import FORMATS, Batches, Export, write_export
from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer, local_address
from redpss.wire.ops import FILE_NAME_RE, ExportMail, SendFile, to_args

if TYPE_CHECKING:
    from redpss.export.sftp import SftpTarget

__all__ = ["Sendfile", "check_target", "not_written", "sftp_dir"]

log = logging.getLogger(__name__)

FILE_PART = re.compile(FILE_NAME_RE)


def sftp_dir(value: str) -> str:
    """``sftp.dir`` made a relative path of safe names; BadArgs when it is not one."""
    if value == "":
        return ""
    parts = PurePosixPath(value).parts
    if value.startswith("/") or not parts:
        raise BadArgs(f"'sftp.dir' must be relative to the sFTP target, not {value!r}")
    for part in parts:
        if part in (".", "..") or not FILE_PART.fullmatch(part):
            raise BadArgs(
                f"every part of 'sftp.dir' must be a name of letters, digits, '.', '_', '-' "
                f"(not starting with '.' or '-'), not {part!r}"
            )
    return "/".join(parts)


def not_written(exc: OSError, folder: Path) -> RemoteError:
    """The reply for an export the disk refused: ``disk_full`` (no space, quota) or
    ``write_failed`` (an I/O error, a file size limit), like dbls and sendmail answer.

    pyarrow's OSError may carry no errno, only the system's text: that is looked at too.
    """
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or any(
        os.strerror(code) in str(exc) for code in (errno.ENOSPC, errno.EDQUOT)
    )
    why = "no space left on the device" if full else (exc.strerror or str(exc))
    return RemoteError(
        "disk_full" if full else "write_failed",
        f"cannot write the export in {folder}: {why}; nothing was sent, send it again later",
    )


def check_target(req: SendFile) -> None:
    """Exactly one target, ``mail`` or ``sftp``; BadArgs when not."""
    if (req.mail is None) == (req.sftp is None):
        raise BadArgs("give exactly one target: 'mail' or 'sftp'")


class Sendfile(Role):
    """The export service."""

    name = "sendfile"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.work = ctx.instance.home / "tmp" / "sendfile"
        self._sftp: SftpTarget | None = None
        self._sent = 0
        self._disk_problem = ""  # why the last export could not be written, until one is
        self.server = WireServer(
            self,
            host=cfg.sendfile_host,
            port=cfg.sendfile_port,
            secret=cfg.pss_secret.reveal(),
            name=f"sendfile/{ctx.instance.name}",
        )

    def start(self) -> None:
        """Clear exports left by a previous process; listen on ``sendfile_port``."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(mode=0o700, parents=True, exist_ok=True)  # exports: the instance user's
        self.server.start()
        self.health.watch("request server", self.server.thread)

    def stop(self) -> None:
        """Stop listening (requests in progress end with their connections); idempotent."""
        self.server.stop()

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"port {self.server.port}, {self._sent} exports sent"

    @property
    def sftp(self) -> SftpTarget:
        """The sFTP target (paramiko is imported the first time an export goes there)."""
        if self._sftp is None:
            from redpss.export.sftp import SftpTarget

            self._sftp = SftpTarget(self.ctx.config.redsys, self.ctx.instance.home)
        return self._sftp

    def op_send(self, req: SendFile, peer: Peer) -> dict[str, Any]:
        """Wire op ``send``: export a table or view and deliver it by mail or sFTP."""
        check_target(req)
        remote_dir = sftp_dir(req.sftp.dir) if req.sftp is not None else ""
        export_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        began = time.monotonic()
        try:
            result = self._export(req, export_id, remote_dir)
        except DictionaryError as exc:
            raise RemoteError("export_failed", f"reading {req.schema}.{req.object}: {exc}") from exc
        self._sent += 1
        log.info(
            "role=sendfile export=%s %s.%s %s rows=%d bytes=%d via=%s %.2f s from %s",
            export_id, req.schema, req.object, req.format, result["rows"], result["bytes"],
            result["via"], time.monotonic() - began, peer.host,
        )  # fmt: skip
        return result

    def _rows(self, req: SendFile) -> tuple[list[ExportColumn], Batches]:
        """The columns and the batches of rows; names are checked before a file is made.

        The dictionary says an object, column or filter that does not exist with a ValueError
        (its contract, :mod:`redpss.dictionary.export`): the caller's mistake, so BadArgs here.
        """
        try:
            columns = self.ctx.dictionary.export_columns(req.schema, req.object)
            batches = self.ctx.dictionary.export_rows(
                req.schema,
                req.object,
                columns=req.columns,
                where=req.where,
                batch_size=self.ctx.config.redsys.sendfile_batch_size,
            )
            first = next(batches)  # a generator: the names are checked by its first step
        except ValueError as exc:
            raise BadArgs(str(exc)) from exc
        return columns, itertools.chain([first], batches)

    def _export(self, req: SendFile, export_id: str, remote_dir: str) -> dict[str, Any]:
        columns, batches = self._rows(req)
        name = req.file_name or f"{req.object.upper()}_{export_id[:15]}{FORMATS[req.format]}"
        folder = self.work / export_id
        try:
            try:
                folder.mkdir(parents=True)
                export = write_export(
                    batches,
                    columns,
                    folder / name,
                    fmt=req.format,
                    delimiter=req.delimiter,
                    header=req.header,
                )
            except OSError as exc:
                raise self._disk_refused(exc) from exc
            self._disk_ok()
            result: dict[str, Any] = {"id": export_id, "file_name": name}
            result.update(format=req.format, rows=export.rows, bytes=export.size)
            if req.mail is not None:
                result.update(via="mail", mail_id=self._mail(export, req))
            else:
                overwrite = req.sftp is not None and req.sftp.overwrite
                remote = self.sftp.upload(export.path, remote_dir, overwrite=overwrite)
                result.update(via="sftp", remote_path=remote)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return result

    def _disk_refused(self, exc: OSError) -> RemoteError:
        """An export its disk refused: the reply, and status names the cause (ALERT 1) until
        the next export is written."""
        error = not_written(exc, self.work)
        log.error("role=sendfile %s", error.message)
        self._disk_problem = error.message.split("; ", 1)[0]
        self.health.problem("disk", self._disk_problem)
        return error

    def _disk_ok(self) -> None:
        if self._disk_problem:
            log.info("role=sendfile exports are written again (was: %s)", self._disk_problem)
            self._disk_problem = ""
            self.health.clear("disk")

    def _mail(self, export: Export, req: SendFile) -> str:
        cfg = self.ctx.config.redsys
        assert req.mail is not None
        mail: ExportMail = req.mail
        args = to_args(mail)
        args.setdefault("subject", f"Export {req.schema}.{req.object}")
        rel = export.path.relative_to(self.ctx.instance.home)
        try:
            reply = wire.call(
                local_address(cfg.sendmail_host),
                cfg.sendmail_port,
                "send",
                secret=cfg.pss_secret.reveal(),
                timeout=60,
                **args,
                attachments=[str(rel)],
            )
        except RemoteError as exc:
            raise RemoteError(exc.code, f"sendmail refused the export: {exc.message}") from exc
        except WireError as exc:
            raise RemoteError("mail_failed", f"sendmail unreachable: {exc}") from exc
        return str(reply["id"])
