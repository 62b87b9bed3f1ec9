"""One connection of a :class:`~redpss.wire.server.WireServer`: authenticate, read, answer.

The server owns the policy (slots, deadlines, dispatch); this handler owns the order of
things on one socket: the pre-auth slot first, then request lines, each read only as far as
its secret allows.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import TYPE_CHECKING, BinaryIO, cast

from redpss.errors import RemoteError
from redpss.wire.frames import (
    PREAUTH_LIMIT,
    Peer,
    _error_reply,
    _read_head,
    _read_rest,
    authorize,
    encode,
    find_secret,
)

if TYPE_CHECKING:
    from redpss.wire.server import WireServer

logger = logging.getLogger("redpss.wire")


class Connection(socketserver.BaseRequestHandler):
    """Serves the requests of one connection in order until EOF, idle timeout or stop.

    A new connection is *unauthenticated* until one of its requests carries the right secret:
    the server holds at most ``max_unauthenticated`` such connections, each for at most
    ``preauth_timeout`` seconds. A request whose secret is missing or wrong is answered
    ``unauthorized`` and its connection closed.
    """

    def handle(self) -> None:
        server = cast("WireServer", self.server)
        sock: socket.socket = self.request
        peer = Peer.from_address(self.client_address)
        if not server._register(sock):
            return
        rfile = sock.makefile("rb")
        try:
            if not server._enter_preauth(sock):
                logger.warning(
                    "%s: %s refused: %d connections are waiting to authenticate",
                    server.name, peer, server.max_unauthenticated,
                )  # fmt: skip
                message = "too many connections are waiting to authenticate; try again"
                sock.sendall(encode(_error_reply(None, "busy", message)))
                return
            logger.debug("%s: %s connected", server.name, peer)
            sock.settimeout(server.idle_timeout)
            self._serve(server, sock, cast(BinaryIO, rfile), peer)
        except TimeoutError:
            logger.info("%s: %s idle for %g s, closing", server.name, peer, server.idle_timeout)
        except OSError as exc:
            logger.debug("%s: %s connection ended: %s", server.name, peer, exc)
        finally:
            rfile.close()
            server._unregister(sock)

    @staticmethod
    def _serve(server: WireServer, sock: socket.socket, rfile: BinaryIO, peer: Peer) -> None:
        while True:
            line = Connection._next_line(server, sock, rfile, peer)
            if line is None:
                return
            if not line.strip():
                continue
            reply, verdict = server._handle_line(line, peer)
            if verdict:  # before the reply: the caller may count on its slot being free
                server._leave_preauth(sock)
            sock.sendall(reply)
            if verdict is False:
                return  # unauthorized: nothing more is read from this peer

    @staticmethod
    def _next_line(
        server: WireServer, sock: socket.socket, rfile: BinaryIO, peer: Peer
    ) -> bytes | None:
        """The next request line; its rest is read only when its first part has the secret."""
        while True:
            got = _read_head(rfile, server.max_line)
            if got is None:
                logger.debug("%s: %s disconnected", server.name, peer)
                return None
            head, whole = got
            if whole:
                # the right secret authenticates the connection now, not when the (maybe
                # long: jexec's run) request is answered
                if authorize(find_secret(head), server.secret):
                    server._leave_preauth(sock)
                return head
            if not authorize(find_secret(head), server.secret):
                refused = RemoteError(
                    "unauthorized",
                    f"missing or wrong secret in the first {PREAUTH_LIMIT} bytes of the "
                    "request (send 'secret' first)",
                )
                server._log_rejected(peer, "?", None, refused)
                sock.sendall(encode(_error_reply(None, refused.code, refused.message)))
                return None
            server._leave_preauth(sock)
            try:
                return _read_rest(rfile, head, server.max_line)
            except RemoteError as exc:
                logger.info("%s: %s %s: %s", server.name, peer, exc.code, exc.message)
                sock.sendall(encode(_error_reply(None, exc.code, exc.message)))
