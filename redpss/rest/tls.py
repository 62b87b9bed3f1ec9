"""The API's TLS files and its readiness: what the ``rest`` role and ``restctl`` both check.

Here, not in :mod:`redpss.roles.rest`, so that the REST package never imports a role (the role
imports the REST package: docs/architecture.md).
"""

from __future__ import annotations

import ssl
import subprocess
import time
from pathlib import Path

from redpss.certs import ensure_pair
from redpss.errors import RoleError, ServiceUnavailable
from redpss.instance import Instance
from redpss.rest import CERT_FILE, KEY_FILE, ssl_dir
from redpss.wire import open_connection

__all__ = ["READY_TIMEOUT", "check_tls_files", "make_certificate", "wait_tls"]

READY_TIMEOUT = 30.0
"""Seconds gunicorn gets to complete its first TLS handshake."""


def make_certificate(inst: Instance, host: str, *, replace: bool = False) -> tuple[Path, bool]:
    """A self-signed certificate and key for the API in ``etc/ssl/REST`` when there is none
    (``replace``: the old pair is kept as ``*.old`` first); return the certificate and whether
    it was made. ``redsysctl create`` and ``restctl cert`` call it."""
    cert, key = ssl_dir(inst) / CERT_FILE, ssl_dir(inst) / KEY_FILE
    if replace:
        for path in (cert, key):
            if path.exists():
                path.replace(path.with_name(path.name + ".old"))
    made_cert, _key, made = ensure_pair(cert, key, host, what="REST API")
    return made_cert, made


def check_tls_files(inst: Instance) -> tuple[Path, Path]:
    """The certificate and key of the API; :class:`RoleError` naming a missing or bad file."""
    cert, key = ssl_dir(inst) / CERT_FILE, ssl_dir(inst) / KEY_FILE
    for path, what in ((cert, "certificate"), (key, "private key")):
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise RoleError(
                f"REST API {what} {path} cannot be read ({exc.strerror}); the API is served "
                "over HTTPS only (docs/rest.md)"
            ) from exc
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise RoleError(f"REST API certificate {cert} with key {key} not usable: {exc}") from exc
    return cert, key


def wait_tls(
    host: str, port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once ``host:port`` completes a TLS handshake; :class:`RoleError` at the deadline.

    With ``proc``, a child that exits meanwhile ends the wait at once.
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RoleError(f"gunicorn exited with status {proc.returncode} while starting")
        try:
            with (
                open_connection(host, port, 1.0) as sock,
                ctx.wrap_socket(sock, server_hostname=host),
            ):
                return
        except (OSError, ServiceUnavailable) as exc:  # ServiceUnavailable: also self-connected
            last = exc
            time.sleep(0.1)
    raise RoleError(f"REST API did not accept TLS on {host}:{port} within {timeout:.0f} s: {last}")
