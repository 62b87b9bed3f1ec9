"""The sFTP target of SENDFILE: host key checked, key authentication only (paramiko).

The database chooses a sub-folder below ``sendfile_sftp_dir``, never a host. The server's host
key must be in ``sendfile_sftp_known_hosts`` (unknown or different keys are refused), the login
is by key only (no agent, no password). A file is uploaded as ``.<name>.part`` and renamed
when complete, so a reader on the server never sees half a file; an existing file is not
replaced unless asked. Errors are RemoteErrors with the codes of docs/protocol.md.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import paramiko

from redpss.config import ServerSection
from redpss.errors import RemoteError

__all__ = ["SftpTarget"]


class SftpTarget:
    """The sFTP target of the configuration: host key checked, key authentication only."""

    def __init__(self, cfg: ServerSection, home: Path) -> None:
        """Read the target from the configuration (paths relative to ``$REDENV_HOME``)."""
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
