"""Role ``rest``: the REST API behind gunicorn (uvicorn workers), HTTPS only.

The role is a small parent: :meth:`Rest.start` checks the certificate and key in
``$REDENV_HOME/etc/ssl/REST`` (a missing or unreadable one stops the start, naming the file),
launches gunicorn as a child process and returns once the port completes a TLS handshake. The
role's heartbeat thus says that gunicorn is up; if gunicorn dies, the role ends and supervisord
restarts both. :meth:`Rest.stop` sends gunicorn SIGTERM (graceful: running requests finish) and
kills it after ``stop_grace`` seconds.

Logs, a file a day under ``log/REST/`` (:class:`redpss.logs.DailyFile`; jmon deletes them after
``log_retention`` days): ``gunicorn-YYYY-MM-DD.log``, gunicorn's error log (through
``--log-config-json``), and ``access-YYYY-MM-DD.log``, one line per request written by the app
itself (:mod:`redpss.rest.api`: time, client, token name, latency; gunicorn's own access log is
off: it knows no token). What gunicorn prints on its stdout/stderr is read by a thread of the
role into ``log/rest.log``. A start that fails names gunicorn's last words.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redpss.errors import RoleError
from redpss.instance import Instance
from redpss.rest import CERT_FILE, KEY_FILE, rest_log_dir, ssl_dir
from redpss.rest.tls import READY_TIMEOUT, check_tls_files, wait_tls
from redpss.roles.base import Role

__all__ = ["Rest", "gunicorn_command"]

log = logging.getLogger(__name__)

WORKER_CLASS = "uvicorn_worker.UvicornWorker"
APP = "redpss.rest.app:create_app()"
# gunicorn's level names for the guide's
_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warning",
           "ERROR": "error", "ALERT": "critical"}  # fmt: skip


def log_config(inst: Instance, level: str) -> dict[str, Any]:
    """gunicorn's logging (a ``logging.config.dictConfig``): its error log, the API's own lines
    and the access log into a file a day each under ``log/REST`` (several processes write them:
    no rotation by renaming)."""
    folder, gunicorn_level = str(rest_log_dir(inst)), _LEVELS.get(level, "info").upper()
    files = {"class": "redpss.logs.DailyFile", "folder": folder}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": gunicorn_level, "handlers": ["errors"]},
        "loggers": {
            "gunicorn.error": {"level": gunicorn_level, "handlers": ["errors"], "propagate": False},
            # the app writes the access log, with the token's name (redpss.rest.api)
            "gunicorn.access": {"handlers": ["none"], "propagate": False},
        },
        "handlers": {
            "errors": files | {"stem": "gunicorn", "formatter": "generic"},
            "none": {"class": "logging.NullHandler"},
        },
        "formatters": {
            "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"},
        },
    }


def gunicorn_command(
    inst: Instance, host: str, port: int, workers: int, level: str, graceful: float = 10.0
) -> list[str]:
    """The gunicorn command line of the API of ``inst`` (its logging: :func:`log_config`,
    written to ``tmp/rest-logging.json`` by :meth:`Rest.start`)."""
    cert, key = ssl_dir(inst) / CERT_FILE, ssl_dir(inst) / KEY_FILE
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--worker-class", WORKER_CLASS,
        "--certfile", str(cert),
        "--keyfile", str(key),
        "--log-config-json", str(log_config_path(inst)),
        "--log-level", _LEVELS.get(level, "info"),
        "--name", f"redpss-rest-{inst.name}",
        "--graceful-timeout", str(graceful),
        # gunicorn's control socket would live in $HOME, shared by every instance of the host
        "--no-control-socket",
        APP,
    ]  # fmt: skip


def _tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (none when it cannot be read), each cut to 300."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 8192))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [line[-300:] for line in lines[-count:] if line.strip()]


def log_config_path(inst: Instance) -> Path:
    """``tmp/rest-logging.json``: :func:`log_config` as gunicorn reads it."""
    return inst.tmp / "rest-logging.json"


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
        conf = log_config_path(inst)
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(json.dumps(log_config(inst, cfg.log_level.value), indent=2))
        command = gunicorn_command(
            inst,
            cfg.gu_host,
            cfg.gu_port,
            cfg.gu_workers,
            cfg.log_level.value,
            graceful=self.ctx.config.redsys.stop_grace,
        )
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=inst.home,
        )  # fmt: skip
        self._said: collections.deque[str] = collections.deque(maxlen=5)
        self.health.start_thread("gunicorn output reader", self._relay, self.proc)
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
            day = logs / f"gunicorn-{time.strftime('%Y-%m-%d')}.log"
            last = " | ".join([*_tail(day, 3), *self._said]) or "nothing"
            raise RoleError(f"{exc}; gunicorn said: {last} ({day}, log/rest.log)") from exc

    def _relay(self, proc: subprocess.Popen[bytes]) -> None:
        """Copy what gunicorn prints into the role's log until gunicorn closes its output."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._said.append(line[-300:])
                log.info("gunicorn: %s", line)
        self.health.forget("gunicorn output reader")  # gunicorn ended: tick() ends the role

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
