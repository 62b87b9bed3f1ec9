"""CFISRV: the FTPS server that shows the data tree to the database (``IMPORT … FROM CSV AT``).

A pyftpdlib server (explicit TLS, required on the control *and* the data channel) on
``cfi_host:cfi_port`` with passive ports ``cfi_pasv_port_start..cfi_pasv_port_end``. One user,
``cfi_user`` with the secret ``cfi_password`` (no anonymous login; an empty password stops the
role at start, naming the key). Its home is ``$REDENV_HOME/data``:

* everywhere **read-only** (change directory, list, retrieve) — ``work/`` above all: the
  landing zone's claims are there, and the database must neither plant, alter nor delete one;
* **below** ``export/`` also store, append, delete, rename, make directories (the database's
  ``EXPORT`` writes there, in a folder of its own that no loader reads) — ``export/`` itself
  cannot be deleted or renamed;
* nothing **outside** the tree: pyftpdlib normalises every path (``..`` stops at the root) and
  refuses one whose real path (symbolic links followed) leaves the root; permissions are judged
  on the real path too, so a link inside ``export/`` pointing elsewhere does not carry the
  write permission along.

Certificate and key: ``etc/ssl/cfisrv.crt`` and ``etc/ssl/cfisrv.key`` of the instance. When
both are missing, a self-signed pair (RSA 2048, one year, names ``localhost``, the host name,
``127.0.0.1`` and ``cfi_host``) is made at start and that is logged; the key is written with
mode 0600. Replace them with a certificate the database trusts for production.

The server runs pyftpdlib's single-threaded I/O loop in a thread of its own: :meth:`start`
returns when the port accepts, :meth:`stop` closes every connection and is idempotent. The loop
sleeps until a socket is ready or pyftpdlib's next timer (a connection's idle timeout) is due;
:meth:`stop` wakes it through a socket pair registered in the loop (an idle cfisrv does not
wake up at all).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import socket
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from OpenSSL import SSL
from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS

from redpss.certs import ensure_pair
from redpss.errors import RoleError
from redpss.roles.base import Role, RoleContext

__all__ = ["CfiAuthorizer", "Cfisrv", "ensure_certificate"]

log = logging.getLogger(__name__)

READ_PERMS = "elr"
"""Everywhere: change directory, list, retrieve."""
EXPORT_PERMS = "elradfmw"
"""Below ``export/``: also append, delete, rename, make directory, store."""
_WRITE = frozenset("adfmwMT")
EXPORT_FOLDER = "export"
LANDING_FOLDERS = ("input", "work", "error", "archive", EXPORT_FOLDER)
"""What the FTPS user sees in the root (``export/`` is not the landing zone's, but lives
beside it so that a file moves out of it by a rename)."""
_LONGEST_SLEEP = 60.0
"""The serve loop's longest sleep without an event (a safety net: :meth:`Cfisrv.stop` wakes it)."""
SERVE_LOOP = "FTPS serve loop"  # its name in the role's health (redctl status)
_JOIN_TIMEOUT = 10.0
CERT_NAME = "cfisrv.crt"
KEY_NAME = "cfisrv.key"


def _pyftpdlib() -> tuple[ModuleType, ModuleType, ModuleType]:
    """pyftpdlib's handlers, ioloop and servers, imported on first use.

    They import the standard library's ``asyncore``/``asynchat``, which warn of their
    deprecation on Python 3.11: imported here, not by everything that imports the role list.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyftpdlib.handlers
        import pyftpdlib.ioloop
        import pyftpdlib.servers
    return pyftpdlib.handlers, pyftpdlib.ioloop, pyftpdlib.servers


class _Waker:
    """A socket pair in pyftpdlib's loop: :meth:`wake` (from any thread) ends its sleep.

    It has what the loop calls on a registered object (``readable``, ``writable``,
    ``handle_read_event``, ``handle_close``, ``handle_error``, ``close``, ``_fileno``)."""

    def __init__(self, ioloop: Any) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._fileno = self._reader.fileno()
        ioloop.register(self._fileno, self, ioloop.READ)
        self._ioloop = ioloop

    def wake(self) -> None:
        """Make the loop's current (or next) sleep return at once."""
        # full: a wake-up is pending anyway; closed: the loop has ended
        with contextlib.suppress(OSError):
            self._writer.send(b"x")

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        with contextlib.suppress(OSError):  # drained: EAGAIN
            while self._reader.recv(512):
                pass

    def handle_close(self) -> None:
        self.close()

    def handle_error(self) -> None:
        log.exception("role=cfisrv waker failed")

    def close(self) -> None:
        self._ioloop.unregister(self._fileno)
        self._reader.close()
        self._writer.close()


class CfiFilesystem(AbstractedFS):  # type: ignore[misc]
    """The data tree as the FTP user sees it: the four landing folders and nothing else.

    ``data/db`` (the embedded dictionary) and anything else beside the landing folders is
    treated like a path outside the root (550), and the root's listing does not show it.
    """

    def _real_root(self) -> str:
        return os.path.realpath(str(self.root))

    def validpath(self, path: str) -> bool:
        """True only for the root itself and what really lies below a landing folder."""
        root = self._real_root()
        real = os.path.realpath(path)
        if real == root:
            return True
        return any(
            real == os.path.join(root, folder) or real.startswith(os.path.join(root, folder, ""))
            for folder in LANDING_FOLDERS
        )

    def listdir(self, path: str) -> list[str]:
        """The names in ``path``; in the root only the landing folders."""
        names = os.listdir(path)
        if os.path.realpath(path) == self._real_root():
            return [n for n in names if n in LANDING_FOLDERS]
        return names

    listdirinfo = listdir


class CfiAuthorizer(DummyAuthorizer):  # type: ignore[misc]
    """One user; passwords compared in constant time; permissions judged on real paths.

    Write permissions (``adfmwMT``) need a real path strictly below ``writable`` — never the
    folder itself, so ``export/`` cannot be removed or renamed away.
    """

    def __init__(self, writable: Path) -> None:
        super().__init__()
        self.writable = os.path.realpath(writable)

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        """Raise AuthenticationFailed unless user and password match (constant time)."""
        del handler
        known = self.user_table.get(username)
        if known is None or not hmac.compare_digest(
            known["pwd"].encode("utf-8"), password.encode("utf-8", "surrogateescape")
        ):
            raise AuthenticationFailed("Authentication failed.")

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        """pyftpdlib's per-directory check, on the real path; writes only below ``writable``."""
        if path is None:
            return bool(super().has_perm(username, perm, path))
        real = os.path.realpath(path)
        if perm in _WRITE and not real.startswith(self.writable + os.sep):
            return False
        return bool(super().has_perm(username, perm, real))


def ensure_certificate(ssl_dir: Path, host: str) -> tuple[Path, Path, bool]:
    """``(certificate, key, made)``: the pair in ``ssl_dir``, made self-signed when missing
    (:func:`redpss.certs.ensure_pair`). One of the two without the other is an error."""
    return ensure_pair(ssl_dir / CERT_NAME, ssl_dir / KEY_NAME, host, what="cfisrv")


def _ssl_context(cert: Path, key: Path) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    try:
        ctx.use_certificate_chain_file(str(cert))
        ctx.use_privatekey_file(str(key))
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise RoleError(f"cfisrv: certificate {cert} / key {key} unusable: {exc}") from exc
    return ctx


class Cfisrv(Role):
    """The FTPS server of the data tree."""

    name = "cfisrv"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        self.root = ctx.instance.home / "data"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._waker: _Waker | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.port: int | None = None

    def _handler(self) -> type[Any]:
        cfg = self.ctx.config.redsys
        password = cfg.cfi_password.reveal()
        if not password:
            raise RoleError(
                "cfisrv: [redsys] cfi_password is empty; set it (literal, env:NAME or "
                "file:PATH) or switch cfisrv off with cfi_enabled = false"
            )
        cert, key, made = ensure_certificate(self.ctx.instance.home / "etc" / "ssl", cfg.cfi_host)
        if made:
            log.warning(
                "role=cfisrv made a self-signed certificate %s (key %s); replace it with one "
                "the database trusts",
                cert,
                key,
            )
        for sub in LANDING_FOLDERS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        authorizer = CfiAuthorizer(self.root / EXPORT_FOLDER)
        home = os.path.realpath(self.root)
        authorizer.add_user(cfg.cfi_user, password, home, perm=READ_PERMS)
        authorizer.override_perm(
            cfg.cfi_user, os.path.join(home, EXPORT_FOLDER), perm=EXPORT_PERMS, recursive=True
        )
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "abstracted_fs": CfiFilesystem,
            "ssl_context": _ssl_context(cert, key),
            "tls_control_required": True,
            "tls_data_required": True,
            "passive_ports": list(range(cfg.cfi_pasv_port_start, cfg.cfi_pasv_port_end + 1)),
            "permit_foreign_addresses": False,
            "permit_privileged_ports": False,
            "banner": f"redpss cfisrv {self.ctx.instance.name} ready (AUTH TLS required)",
        }
        handlers, _, _ = _pyftpdlib()
        return type("CfiHandler", (handlers.TLS_FTPHandler,), attrs)

    def start(self) -> None:
        """Check secret and certificate, bind, serve in a thread; return when the port accepts."""
        cfg = self.ctx.config.redsys
        handler = self._handler()
        try:
            _, ioloop, servers = _pyftpdlib()
            server = servers.FTPServer(
                (cfg.cfi_host, cfg.cfi_port), handler, ioloop=ioloop.IOLoop()
            )
        except OSError as exc:
            raise RoleError(
                f"cfisrv: cannot listen on {cfg.cfi_host}:{cfg.cfi_port}: {exc.strerror or exc}"
            ) from exc
        server.max_cons = 256
        self.port = int(server.address[1])
        with self._lock:
            self._server = server
            self._waker = _Waker(server.ioloop)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, args=(server,), name="cfisrv")
            self._thread.daemon = True
            self._thread.start()
            self.health.watch(SERVE_LOOP, self._thread)
        # FTPServer() has called listen(): the kernel accepts connections from here on
        log.info(
            "role=cfisrv listening on %s:%d (FTPS, passive %d-%d) user=%s root=%s",
            cfg.cfi_host,
            self.port,
            cfg.cfi_pasv_port_start,
            cfg.cfi_pasv_port_end,
            cfg.cfi_user,
            self.root,
        )

    def _loop(self, server: Any) -> None:
        try:
            wait: float | None = _LONGEST_SLEEP
            while not self._stop.is_set():
                # one pass: wait for sockets (or the waker), then run pyftpdlib's due timers;
                # it returns the seconds to its next timer (None: it has none)
                due = server.ioloop.loop(wait, blocking=False)
                wait = _LONGEST_SLEEP if due is None else min(due, _LONGEST_SLEEP)
        except Exception as exc:  # the loop must not die silently
            log.exception("role=cfisrv server loop failed")
            self.health.problem(SERVE_LOOP, f"{SERVE_LOOP} failed: {type(exc).__name__}: {exc}")
        finally:
            server.close_all()  # in the loop's own thread: pyftpdlib is not thread-safe

    def stop(self) -> None:
        """Close the listening socket and every connection; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._server = None
            self._stop.set()
            if self._waker is not None:
                self._waker.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)
            log.info("role=cfisrv stopped")

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"FTPS port {self.port or self.ctx.config.redsys.cfi_port}, root data/"
