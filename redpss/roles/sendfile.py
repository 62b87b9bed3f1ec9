"""SENDFILE: export a table or view of a target schema to CSV or Parquet and send it away.

Wire op ``send`` reads the rows through the dictionary (:class:`~redpss.dictionary.export.
ExportStore`: names checked against the schema's real objects, rows in batches of
``sendfile_batch_size``), writes them to ``$REDENV_HOME/tmp/sendfile/<id>/<file>`` with the csv
module or a pyarrow ``ParquetWriter`` one batch at a time — memory is bounded by one batch —
and then delivers the file:

- **mail**: SENDMAIL's ``send`` op over the wire protocol, the file as an attachment by its
  path in the instance tree. SENDMAIL reads it while spooling, so the export is deleted as
  soon as SENDMAIL acknowledged (its limits, e.g. ``sendmail_max_size``, apply).
- **sftp**: the one sFTP target of the configuration (paramiko): the server's host key must be
  in ``sendfile_sftp_known_hosts`` (unknown or different keys are refused), key authentication
  only. The file is uploaded as ``<name>.part`` and renamed when complete, so a reader on the
  server never sees half a file; an existing file is not overwritten unless asked.

The request waits for all of it; errors come back with codes of their own (docs/protocol.md).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko
import pyarrow as pa
import pyarrow.parquet as pq

from redpss import wire
from redpss.dictionary.export import ExportColumn
from redpss.errors import DictionaryError, RemoteError, WireError
from redpss.roles.base import Role, RoleContext
from redpss.wire import Peer, WireServer, local_address

__all__ = ["Export", "SendRequest", "Sendfile", "check_request", "write_export"]

log = logging.getLogger(__name__)

FORMATS = {"csv": ".csv", "parquet": ".parquet"}
_ARGS = {"schema", "object", "columns", "where", "format", "file_name", "delimiter", "header"}
_ARGS |= {"mail", "sftp"}
_MAIL_ARGS = {"to", "cc", "bcc", "subject", "body", "html", "reply_to", "key"}
_SFTP_ARGS = {"dir", "overwrite"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")
_ARROW_TYPES = {
    "INTEGER": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "BINARY": pa.binary(),
}


@dataclass(frozen=True)
class SendRequest:
    """A checked ``send`` request."""

    schema: str
    object: str
    columns: list[str] | None
    where: dict[str, Any] | None
    format: str
    file_name: str | None
    delimiter: str
    header: bool
    mail: dict[str, Any] | None
    sftp_dir: str
    overwrite: bool


@dataclass(frozen=True)
class Export:
    """A written export file."""

    path: Path
    rows: int
    size: int


def _safe_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        raise ValueError(
            f"{field} must be a file name of letters, digits, '.', '_', '-' (at most 200, not "
            f"starting with '.' or '-'), not {value!r}"
        )
    return value


def _sftp_dir(value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError("'sftp.dir' must be a relative directory")
    parts = PurePosixPath(value).parts
    if value.startswith("/") or not parts:
        raise ValueError(f"'sftp.dir' must be relative to the sFTP target, not {value!r}")
    for part in parts:
        _safe_name(part, "every part of 'sftp.dir'")
    return "/".join(parts)


def _sub_args(args: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' must be an object")
    if unknown := set(value) - allowed:
        raise ValueError(f"unknown argument(s) of '{name}': {', '.join(sorted(unknown))}")
    return value


def _selection(args: dict[str, Any]) -> tuple[list[str] | None, dict[str, Any] | None]:
    columns = args.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns)
    ):
        raise ValueError("'columns' must be a non-empty list of column names")
    where = args.get("where")
    if where is not None:
        if not isinstance(where, dict):
            raise ValueError("'where' must be an object of column: value")
        for key, value in where.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | None):
                raise ValueError(f"'where.{key}' must be a string, a number or null")
    return columns, where


def check_request(args: dict[str, Any]) -> SendRequest:
    """Check the arguments of ``send``; ValueError names the field."""
    if unknown := set(args) - _ARGS:
        raise ValueError(f"unknown argument(s) {', '.join(sorted(unknown))}")
    for field in ("schema", "object"):
        if not isinstance(args.get(field), str) or not args[field]:
            raise ValueError(f"'{field}' is missing: give the name of the {field}")
    columns, where = _selection(args)
    fmt = args.get("format", "csv")
    if fmt not in FORMATS:
        raise ValueError(f"'format' must be one of {', '.join(FORMATS)}, not {fmt!r}")
    file_name = args.get("file_name")
    if file_name is not None:
        _safe_name(file_name, "'file_name'")
    delimiter = args.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValueError("'delimiter' must be one character (not a quote or a line break)")
    header = args.get("header", True)
    if not isinstance(header, bool):
        raise ValueError("'header' must be true or false")
    mail = _sub_args(args, "mail", _MAIL_ARGS)
    sftp = _sub_args(args, "sftp", _SFTP_ARGS)
    if (mail is None) == (sftp is None):
        raise ValueError("give exactly one target: 'mail' or 'sftp'")
    if mail is not None and "subject" not in mail:
        mail = {**mail, "subject": f"Export {args['schema']}.{args['object']}"}
    overwrite = (sftp or {}).get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ValueError("'sftp.overwrite' must be true or false")
    return SendRequest(
        schema=args["schema"],
        object=args["object"],
        columns=columns,
        where=where,
        format=fmt,
        file_name=file_name,
        delimiter=delimiter,
        header=header,
        mail=mail,
        sftp_dir=_sftp_dir((sftp or {}).get("dir")),
        overwrite=overwrite,
    )


# -- writing ----------------------------------------------------------------------------------

Batches = Iterator[tuple[list[str], list[tuple[Any, ...]]]]


def _text(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def _write_csv(batches: Batches, path: Path, delimiter: str, header: bool) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        for names, batch in batches:
            if header and rows == 0:
                writer.writerow(names)
                header = False
            writer.writerows([tuple(map(_text, row)) for row in batch])
            rows += len(batch)
    return rows


def _arrow_column(values: tuple[Any, ...], kind: str) -> pa.Array:
    if kind == "BOOLEAN":
        values = tuple(None if v is None else bool(v) for v in values)
    elif kind == "VARCHAR":
        values = tuple(v if v is None or isinstance(v, str) else str(_text(v)) for v in values)
    return pa.array(values, type=_ARROW_TYPES[kind])


def _write_parquet(batches: Batches, path: Path, kinds: dict[str, str]) -> int:
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for names, batch in batches:
            schema = pa.schema([(n, _ARROW_TYPES[kinds[n]]) for n in names])
            if writer is None:
                writer = pq.ParquetWriter(str(path), schema, compression="snappy")
            if not batch:
                continue
            arrays = []
            for name, values in zip(names, zip(*batch, strict=True), strict=True):
                try:
                    arrays.append(_arrow_column(values, kinds[name]))
                except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                    raise RemoteError(
                        "export_failed",
                        f"column {name} ({kinds[name]}) holds a value Parquet cannot take "
                        f"as such: {exc}",
                    ) from exc
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            rows += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return rows


def write_export(
    batches: Batches, columns: list[ExportColumn], path: Path, req: SendRequest
) -> Export:
    """Write the batches to ``path`` in the request's format; memory stays one batch."""
    if req.format == "parquet":
        rows = _write_parquet(batches, path, {c.name: c.kind for c in columns})
    else:
        rows = _write_csv(batches, path, req.delimiter, req.header)
    return Export(path, rows, path.stat().st_size)


# -- delivery ---------------------------------------------------------------------------------


class SftpTarget:
    """The sFTP target of the configuration: host key checked, key authentication only."""

    def __init__(self, ctx: RoleContext) -> None:
        """Read the target from the configuration (paths relative to ``$REDENV_HOME``)."""
        cfg = ctx.config.redsys
        home = ctx.instance.home
        self.host, self.port = cfg.sendfile_sftp_host, cfg.sendfile_sftp_port
        self.user = cfg.sendfile_sftp_user
        self.key_file = home / cfg.sendfile_sftp_key_file if cfg.sendfile_sftp_key_file else None
        self.key_pass = cfg.sendfile_sftp_key_pass.reveal() or None
        kh = cfg.sendfile_sftp_known_hosts
        self.known_hosts = home / kh if kh else None
        self.base = cfg.sendfile_sftp_dir
        self.timeout = cfg.sendfile_sftp_timeout

    @property
    def address(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.user}@{self.host}:{self.port}"

    def _check(self) -> tuple[Path, Path]:
        if not self.host:
            raise RemoteError("not_configured", "no sFTP target: sendfile_sftp_host is empty")
        if not self.user or self.key_file is None or self.known_hosts is None:
            raise RemoteError(
                "not_configured",
                "the sFTP target needs sendfile_sftp_user, sendfile_sftp_key_file and "
                "sendfile_sftp_known_hosts",
            )
        for what, path in (("key file", self.key_file), ("known_hosts", self.known_hosts)):
            if not path.is_file():
                raise RemoteError("not_configured", f"sFTP {what} {path} does not exist")
        return self.key_file, self.known_hosts

    def _connect(self) -> paramiko.SSHClient:
        key_file, known_hosts = self._check()
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(str(known_hosts))
        except OSError as exc:
            raise RemoteError(
                "not_configured", f"cannot read known_hosts {known_hosts}: {exc.strerror}"
            ) from exc
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=str(key_file),
                passphrase=self.key_pass,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise RemoteError(
                "host_key",
                f"sFTP server {self.host}:{self.port} presented a {exc.key.get_name()} host key "
                f"that does not match {known_hosts}: refused (possible man-in-the-middle)",
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise RemoteError("sftp_auth", f"sFTP login as {self.address} refused: {exc}") from exc
        except paramiko.SSHException as exc:
            client.close()
            code = "host_key" if "known_hosts" in str(exc) else "sftp_failed"
            raise RemoteError(code, f"sFTP to {self.address} refused: {exc}") from exc
        except OSError as exc:  # TimeoutError included
            client.close()
            raise RemoteError("sftp_failed", f"cannot reach sFTP {self.address}: {exc}") from exc
        return client

    def upload(self, local: Path, sub_dir: str, *, overwrite: bool) -> str:
        """Upload ``local`` below the target's folder; return the remote path."""
        folder = "/".join(p for p in (self.base.rstrip("/"), sub_dir) if p)
        remote = f"{folder}/{local.name}" if folder else local.name
        part = f"{folder}/.{local.name}.part" if folder else f".{local.name}.part"
        client = self._connect()
        try:
            sftp = client.open_sftp()
            try:
                self._makedirs(sftp, sub_dir)
                if not overwrite and _exists(sftp, remote):
                    raise RemoteError("exists", f"{remote} exists on {self.address}; not replaced")
                sftp.put(str(local), part, confirm=True)
                try:
                    if overwrite:
                        sftp.posix_rename(part, remote)
                    else:  # OpenSSH's plain rename refuses an existing target
                        sftp.rename(part, remote)
                except OSError:
                    with contextlib.suppress(OSError):
                        sftp.remove(part)
                    raise
            finally:
                sftp.close()
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError("sftp_failed", f"upload to {self.address} failed: {exc}") from exc
        finally:
            client.close()
        return remote

    def _makedirs(self, sftp: paramiko.SFTPClient, sub_dir: str) -> None:
        path = self.base.rstrip("/")
        for part in sub_dir.split("/") if sub_dir else []:
            path = f"{path}/{part}" if path else part
            if not _exists(sftp, path):
                sftp.mkdir(path)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


class Sendfile(Role):
    """The export service."""

    name = "sendfile"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config.redsys
        self.work = ctx.instance.home / "tmp" / "sendfile"
        self.sftp = SftpTarget(ctx)
        self._sent = 0
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

    def op_send(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        """Wire op ``send``: export a table or view and deliver it by mail or sFTP."""
        req = check_request(args)
        cfg = self.ctx.config.redsys
        export_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
        began = time.monotonic()
        try:
            columns = self.ctx.dictionary.export_columns(req.schema, req.object)
            batches = self.ctx.dictionary.export_rows(
                req.schema,
                req.object,
                columns=req.columns,
                where=req.where,
                batch_size=cfg.sendfile_batch_size,
            )
            name = req.file_name or f"{req.object.upper()}_{export_id[:15]}{FORMATS[req.format]}"
            folder = self.work / export_id
            folder.mkdir(parents=True)
            try:
                export = write_export(batches, columns, folder / name, req)
                result: dict[str, Any] = {"id": export_id, "file_name": name}
                result.update(format=req.format, rows=export.rows, bytes=export.size)
                if req.mail is not None:
                    result.update(via="mail", mail_id=self._mail(export, req.mail))
                else:
                    remote = self.sftp.upload(export.path, req.sftp_dir, overwrite=req.overwrite)
                    result.update(via="sftp", remote_path=remote)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        except DictionaryError as exc:
            raise RemoteError("export_failed", f"reading {req.schema}.{req.object}: {exc}") from exc
        self._sent += 1
        log.info(
            "role=sendfile export=%s %s.%s %s rows=%d bytes=%d via=%s %.2f s from %s",
            export_id, req.schema, req.object, req.format, result["rows"], result["bytes"],
            result["via"], time.monotonic() - began, peer.host,
        )  # fmt: skip
        return result

    def _mail(self, export: Export, mail: dict[str, Any]) -> str:
        cfg = self.ctx.config.redsys
        rel = export.path.relative_to(self.ctx.instance.home)
        try:
            reply = wire.call(
                local_address(cfg.sendmail_host),
                cfg.sendmail_port,
                "send",
                secret=cfg.pss_secret.reveal(),
                timeout=60,
                **mail,
                attachments=[str(rel)],
            )
        except RemoteError as exc:
            raise RemoteError(exc.code, f"sendmail refused the export: {exc.message}") from exc
        except WireError as exc:
            raise RemoteError("mail_failed", f"sendmail unreachable: {exc}") from exc
        return str(reply["id"])
