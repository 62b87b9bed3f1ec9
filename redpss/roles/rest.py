"""Role ``rest``: the REST API behind gunicorn (uvicorn workers), HTTPS only.

The role is a small parent: :meth:`Rest.start` checks the certificate and key in
``$REDENV_HOME/etc/ssl/REST`` (a missing or unreadable one stops the start, naming the file),
launches gunicorn as a child process and returns once the port completes a TLS handshake. The
role's heartbeat thus says that gunicorn is up; if gunicorn dies, the role ends and supervisord
restarts both. :meth:`Rest.stop` sends gunicorn SIGTERM (graceful: running requests finish) and
kills it after ``stop_grace`` seconds. Gunicorn's logs go to ``log/REST/``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from redpss.errors import RoleError, ServiceUnavailable
from redpss.instance import Instance
from redpss.rest import CERT_FILE, KEY_FILE, rest_log_dir, ssl_dir
from redpss.roles.base import Role
from redpss.wire import open_connection

__all__ = ["Rest", "check_tls_files", "gunicorn_command", "wait_tls"]

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
WORKER_CLASS = "uvicorn_worker.UvicornWorker"
APP = "redpss.rest.app:create_app()"
# gunicorn's level names for the guide's
_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning",
           "ERROR": "error", "ALERT": "critical"}  # fmt: skip


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


def gunicorn_command(
    inst: Instance, host: str, port: int, workers: int, level: str, graceful: float = 10.0
) -> list[str]:
    """The gunicorn command line of the API of ``inst``."""
    cert, key = ssl_dir(inst) / CERT_FILE, ssl_dir(inst) / KEY_FILE
    logs = rest_log_dir(inst)
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--worker-class", WORKER_CLASS,
        "--certfile", str(cert),
        "--keyfile", str(key),
        "--error-logfile", str(logs / "gunicorn.log"),
        "--access-logfile", str(logs / "access.log"),
        "--log-level", _LEVELS.get(level, "info"),
        "--name", f"redpss-rest-{inst.name}",
        "--graceful-timeout", str(graceful),
        # gunicorn's control socket would live in $HOME, shared by every instance of the host
        "--no-control-socket",
        APP,
    ]  # fmt: skip


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


class Rest(Role):
    """The REST API server (gunicorn) as a supervised child."""

    name = "rest"

    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Check the TLS files, start gunicorn, return when the port accepts TLS."""
        inst, cfg = self.ctx.instance, self.ctx.config.rest
        check_tls_files(inst)
        logs = rest_log_dir(inst)
        logs.mkdir(parents=True, exist_ok=True)
        command = gunicorn_command(
            inst,
            cfg.gu_host,
            cfg.gu_port,
            cfg.gu_workers,
            cfg.log_level.value,
            graceful=self.ctx.config.redsys.stop_grace,
        )
        with (logs / "gunicorn.out").open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=inst.home,
            )  # fmt: skip
        log.info(
            "role=rest gunicorn pid=%d on https://%s:%d workers=%d",
            self.proc.pid,
            cfg.gu_host,
            cfg.gu_port,
            cfg.gu_workers,
        )
        try:
            wait_tls(cfg.gu_host, cfg.gu_port, timeout=READY_TIMEOUT, proc=self.proc)
        except RoleError as exc:
            raise RoleError(f"{exc}; see {logs / 'gunicorn.log'}") from exc

    def tick(self) -> None:
        """A gunicorn that died ends the role (supervisord restarts it)."""
        if self.proc is not None and self.proc.poll() is not None:
            log.error("role=rest gunicorn exited with status %s; stopping", self.proc.returncode)
            self.ctx.stop_requested.set()

    def stop(self) -> None:
        """SIGTERM to gunicorn (graceful), SIGKILL after ``stop_grace``; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.ctx.config.redsys.stop_grace)
        except subprocess.TimeoutExpired:
            log.warning("role=rest gunicorn did not stop in time; killing it")
            proc.kill()
            proc.wait()

    def info(self) -> str | None:
        """Where the API listens."""
        cfg = self.ctx.config.rest
        return f"https://{cfg.gu_host}:{cfg.gu_port}"
